package agent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"time"

	"keepwatch"
	"keepwatch/internal/protocol"
)

// Heartbeats go by datagram when keepwatch answers them that way
// (docs/protocol.md, "Heartbeat datagrams"): the first try waits
// DatagramWait for an authenticated answer, the second twice as long
// (a busy keepwatch is not made busier by a flood of HTTPS fallbacks),
// then the same envelope goes over HTTPS and datagrams rest for
// DatagramRetry.
const (
	DatagramTries = 2
	DatagramWait  = 2 * time.Second
	DatagramRetry = 10 * time.Minute
)

// Heartbeat delivers a sealed heartbeat (id, seq under key): by datagram
// when keepwatch answers datagrams, otherwise, or when no authenticated
// answer comes, over HTTPS. A replayed answer is a *ServerError with code
// replayed, as over HTTPS.
func (c *Client) Heartbeat(ctx context.Context, key []byte, id protocol.ServerID, seq uint64, env []byte) (protocol.ReportResponse, error) {
	tried := false
	if c.datagramsUsable() && len(env) <= protocol.MaxDatagram {
		a, tries, err := c.datagram(ctx, key, id, seq, env)
		if err == nil && a.Status == protocol.DatagramReplayed && tries > 1 {
			// The first copy got through and only its answer was lost.
			a.Status = protocol.DatagramAccepted
		}
		switch {
		case err == nil && a.Status == protocol.DatagramAccepted:
			resp := protocol.ReportResponse{Seq: seq, State: a.State, HeartbeatIntervalSeconds: int64(a.IntervalSeconds),
				ServerTime: a.ServerTime.Format(time.RFC3339Nano), KeepAliveSeconds: int64(a.KeepAliveSeconds), Datagram: true}
			return resp, nil
		case err == nil && a.Status == protocol.DatagramReplayed:
			return protocol.ReportResponse{}, &ServerError{Status: http.StatusConflict, Code: keepwatch.EREPLAYED,
				Message: "sequence number is not above the last accepted one", Authenticated: true}
		case err == nil:
			// keepwatch wants this one over HTTPS: it says why there.
		case ctx.Err() != nil:
			return protocol.ReportResponse{}, ctx.Err()
		default:
			tried = true
			c.mu.Lock()
			c.datagramsFrom = time.Now().Add(DatagramRetry)
			c.mu.Unlock()
		}
	}
	resp, err := c.Report(ctx, env, protocol.AuthKey(key))
	var se *ServerError
	switch {
	case !tried:
	case errors.As(err, &se) && se.Code == keepwatch.EREPLAYED && se.Authenticated:
		// A datagram got through and only its answer was lost.
		return protocol.ReportResponse{Seq: seq}, nil
	case err != nil && se == nil:
		// keepwatch is unreachable altogether (restarting, the link is
		// down), not only its datagrams: try them again next time.
		c.mu.Lock()
		c.datagramsFrom = time.Time{}
		c.mu.Unlock()
	}
	return resp, err
}

func (c *Client) datagramsUsable() bool {
	if c.DisableDatagrams {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return !time.Now().Before(c.datagramsFrom)
}

// errNoAnswer is a datagram exchange without an authenticated answer.
var errNoAnswer = errors.New("no authenticated answer to the heartbeat datagram")

// datagram sends env to keepwatch's UDP port (the port of its URL) from
// a fresh socket and waits for an answer whose MAC verifies; anything
// else arriving is ignored.
func (c *Client) datagram(ctx context.Context, key []byte, id protocol.ServerID, seq uint64, env []byte) (protocol.DatagramAnswer, int, error) {
	u, err := url.Parse(c.BaseURL)
	if err != nil {
		return protocol.DatagramAnswer{}, 0, err
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80"}[u.Scheme]
		if port == "" {
			port = "443"
		}
	}
	var d net.Dialer
	if c.DatagramSource != nil {
		d.LocalAddr = c.DatagramSource
	}
	conn, err := d.DialContext(ctx, "udp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return protocol.DatagramAnswer{}, 0, err
	}
	defer conn.Close()
	macKey := protocol.DatagramKey(key)
	wait := c.DatagramWait
	if wait <= 0 {
		wait = DatagramWait
	}
	buf := make([]byte, 512)
	for try := 1; try <= DatagramTries; try, wait = try+1, 2*wait {
		if _, err := conn.Write(env); err != nil {
			return protocol.DatagramAnswer{}, try, err
		}
		deadline := time.Now().Add(wait)
		if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
			deadline = dl
		}
		conn.SetReadDeadline(deadline)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				break // timed out (or refused): try again
			}
			if a, err := protocol.OpenDatagramAnswer(macKey, id, seq, buf[:n]); err == nil {
				return a, try, nil
			}
		}
		if ctx.Err() != nil {
			return protocol.DatagramAnswer{}, try, ctx.Err()
		}
	}
	return protocol.DatagramAnswer{}, DatagramTries, errNoAnswer
}

// Close closes the client's idle connections.
func (c *Client) Close() { c.HTTP.CloseIdleConnections() }

// keepAlive closes the connection after a report when keepwatch advises
// a keep-alive shorter than the wait for the next one.
func (c *Client) keepAlive(resp protocol.ReportResponse) {
	closeAfter := resp.KeepAliveSeconds > 0 && resp.HeartbeatIntervalSeconds > resp.KeepAliveSeconds
	c.mu.Lock()
	c.closeAfter = closeAfter
	hold := c.holdOpen
	c.mu.Unlock()
	if closeAfter && !hold {
		c.HTTP.CloseIdleConnections()
	}
}
