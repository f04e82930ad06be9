package ingest

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"keepwatch"
	"keepwatch/internal/protocol"
)

// errUseHTTPS refuses by datagram what only HTTPS takes (status reports,
// events, consent changes).
var errUseHTTPS = keepwatch.Errorf(keepwatch.EINVALID, "status reports, events and consent changes go over HTTPS")

// DatagramReadBuffer is the socket receive buffer asked for heartbeat
// datagrams: about 16,000 of them (docs/operations.md: raise
// net.core.rmem_max to let the kernel grant it).
const DatagramReadBuffer = 16 << 20

// maxDatagramsInFlight bounds the heartbeat datagrams waiting for their
// commit; beyond it new ones are dropped (their agents try again, then
// use HTTPS).
const maxDatagramsInFlight = 8192

// ServeDatagrams answers heartbeat datagrams on pc until pc is closed
// (docs/protocol.md, "Heartbeat datagrams"). Each goes through the same
// path as an HTTPS heartbeat (authentication, sequence, pace, group
// commit) and is answered, once durable, by a datagram MACed under the
// server's key. Anything that does not authenticate gets no answer and
// counts against its source address, as refused reports do.
func (h *Handler) ServeDatagrams(ctx context.Context, pc net.PacketConn) error {
	if uc, ok := pc.(*net.UDPConn); ok {
		// Room for bursts while this process is not scheduled: the
		// kernel drops what does not fit (capped by net.core.rmem_max).
		uc.SetReadBuffer(DatagramReadBuffer)
	}
	sem := make(chan struct{}, maxDatagramsInFlight)
	pool := sync.Pool{New: func() any { b := make([]byte, protocol.MaxDatagram+1); return &b }}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		bp := pool.Get().(*[]byte)
		n, addr, err := pc.ReadFrom(*bp)
		if err != nil {
			pool.Put(bp)
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			time.Sleep(10 * time.Millisecond) // a transient socket error: do not spin
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			pool.Put(bp)
			h.datagrams.Inc("dropped")
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { pool.Put(bp); <-sem; wg.Done() }()
			if ans := h.datagram(ctx, addr, (*bp)[:n]); ans != nil {
				pc.WriteTo(ans, addr)
			}
		}()
	}
}

// datagram handles one heartbeat datagram and returns the answer to send,
// or nil for none.
func (h *Handler) datagram(ctx context.Context, from net.Addr, b []byte) []byte {
	src := from.String()
	if ua, ok := from.(*net.UDPAddr); ok {
		src = ua.IP.String()
	}
	now := h.Now()
	if h.badReports.Blocked(src, now) > 0 {
		h.datagrams.Inc("unanswered")
		return nil
	}
	hdr, err := protocol.ParseHeader(b)
	if err != nil || len(b) > protocol.MaxDatagram {
		h.refused.Inc(keepwatch.EINVALID)
		h.datagrams.Inc("unanswered")
		h.badReports.Allow(src, now)
		return nil
	}
	a, err := h.accept(ctx, b, 0, true)
	status := protocol.DatagramAccepted
	if err != nil {
		code := keepwatch.ErrorCode(err)
		h.refused.Inc(code)
		if a.auth == nil || code == keepwatch.EUNAUTHORIZED || code == keepwatch.EREENROLLPENDING {
			h.datagrams.Inc("unanswered")
			h.badReports.Allow(src, now)
			return nil
		}
		outcome := "use_https"
		status = protocol.DatagramUseHTTPS
		if code == keepwatch.EREPLAYED {
			status, outcome = protocol.DatagramReplayed, "replayed"
		}
		h.datagrams.Inc(outcome)
	} else {
		h.accepted.Inc(a.typ)
		h.datagrams.Inc("accepted")
	}
	c, err := h.creds.lookup(ctx, hdr.ID)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	key := c.key
	c.mu.Unlock()
	return protocol.DatagramAnswer{
		ID: hdr.ID, Seq: hdr.Seq, Status: status, State: a.resp.State,
		IntervalSeconds: uint32(h.Interval / time.Second), KeepAliveSeconds: uint16(h.KeepAlive / time.Second),
		ServerTime: now,
	}.Seal(key[:])
}
