package main

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/agent"
	"keepwatch/internal/app"
	"keepwatch/internal/protocol"
	"keepwatch/internal/store"
)

// datagramAgent enrolls one server of alice's and returns its sender
// (state in memory) with a client of its own.
func datagramAgent(t *testing.T, w *world, name string) *agent.Sender {
	t.Helper()
	dir := w.enroll(t, w.aliceSLC, w.aliceKey, name)
	st, err := agent.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := agent.NewClient(w.a.URL(), filepath.Join(w.data, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	c.DatagramWait = 300 * time.Millisecond
	t.Cleanup(c.Close)
	return &agent.Sender{State: st, Client: c}
}

func heartbeat(t *testing.T, s *agent.Sender) (protocol.ReportResponse, error) {
	t.Helper()
	now := time.Now().UTC()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return s.Send(ctx, &protocol.Payload{SentAt: &now})
}

func lastSeq(t *testing.T, w *world, s *agent.Sender) uint64 {
	t.Helper()
	rec, err := w.a.Store.ServerRecord(context.Background(), s.State.ServerID)
	if err != nil {
		t.Fatal(err)
	}
	return rec.LastSeq
}

// exchange sends one datagram from a fresh socket (a new source port,
// as after a NAT rebinding) and returns the answer, nil if none came.
func exchange(t *testing.T, addr string, b []byte, wait time.Duration) []byte {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// TestHeartbeatsTravelByDatagram: heartbeats go by datagram and are
// durable when answered; an answer is MACed under the server's key; a
// new source port changes nothing; a replayed datagram is refused and a
// forged or junk one gets no answer at all.
func TestHeartbeatsTravelByDatagram(t *testing.T) {
	w := newWorld(t, store.SQLite, app.Config{Interval: time.Minute})
	s := datagramAgent(t, w, "RS-UDP")
	status, _ := agent.StatusPayload(nil, nil, time.Now().UTC())
	resp, err := s.Send(context.Background(), status)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Datagram || resp.KeepAliveSeconds != 15 {
		t.Fatalf("status report answer %+v: want HTTPS with keep_alive_seconds 15", resp)
	}
	for i := 0; i < 3; i++ {
		resp, err := heartbeat(t, s)
		if err != nil {
			t.Fatal(err)
		}
		if !resp.Datagram || resp.State != "ok" || resp.HeartbeatIntervalSeconds != 60 {
			t.Fatalf("heartbeat answer %+v: want by datagram, ok, 60 s", resp)
		}
		if got := lastSeq(t, w, s); got != s.State.Seq {
			t.Fatalf("stored last_seq %d, the agent sent %d: answered before durable", got, s.State.Seq)
		}
	}

	udp := w.a.DatagramAddr()
	id, _ := protocol.ParseServerID(s.State.ServerID)
	macKey := protocol.DatagramKey(s.State.Key)
	// Two heartbeats from two sockets (two source ports): both accepted.
	var env []byte
	for i := 0; i < 2; i++ {
		s.State.Seq++
		env, _ = protocol.Seal(s.State.Key, id, s.State.Seq, nil)
		a, err := protocol.OpenDatagramAnswer(macKey, id, s.State.Seq, exchange(t, udp, env, 5*time.Second))
		if err != nil || a.Status != protocol.DatagramAccepted {
			t.Fatalf("heartbeat from a new source port: %+v, %v", a, err)
		}
	}
	// The same datagram again (a replay): refused, nothing moves.
	before := lastSeq(t, w, s)
	a, err := protocol.OpenDatagramAnswer(macKey, id, s.State.Seq, exchange(t, udp, env, 5*time.Second))
	if err != nil || a.Status != protocol.DatagramReplayed {
		t.Fatalf("replayed datagram: %+v, %v; want replayed", a, err)
	}
	if got := lastSeq(t, w, s); got != before {
		t.Fatalf("a replay moved last_seq from %d to %d", before, got)
	}
	// Forged (another key) and junk: no answer, counted as refused.
	refused := w.a.Ingest.Refused(keepwatch.EUNAUTHORIZED)
	forged, _ := protocol.Seal(bytes.Repeat([]byte{9}, 32), id, s.State.Seq+1, nil)
	if b := exchange(t, udp, forged, 500*time.Millisecond); b != nil {
		t.Fatalf("a forged heartbeat was answered: %x", b)
	}
	if b := exchange(t, udp, bytes.Repeat([]byte{2}, 80), 500*time.Millisecond); b != nil {
		t.Fatalf("junk was answered: %x", b)
	}
	if got := w.a.Ingest.Refused(keepwatch.EUNAUTHORIZED); got != refused+1 {
		t.Fatalf("unauthorized refusals %d → %d, want one more", refused, got)
	}
	if got := lastSeq(t, w, s); got != before {
		t.Fatalf("a forged heartbeat moved last_seq from %d to %d", before, got)
	}
	// A status report by datagram is sent to HTTPS, not applied.
	s.State.Seq++
	sealedStatus, _ := protocol.Seal(s.State.Key, id, s.State.Seq, []byte(`{"conditions":[]}`))
	a, err = protocol.OpenDatagramAnswer(macKey, id, s.State.Seq, exchange(t, udp, sealedStatus, 5*time.Second))
	if err != nil || a.Status != protocol.DatagramUseHTTPS {
		t.Fatalf("status report by datagram: %+v, %v; want use HTTPS", a, err)
	}
	if got := lastSeq(t, w, s); got != before {
		t.Fatalf("a status report by datagram was applied: last_seq %d → %d", before, got)
	}
}

// fakeUDP answers keepwatch's UDP port in its place: forged answers, or
// none (datagrams dropped on the way).
type fakeUDP struct {
	pc     net.PacketConn
	got    atomic.Int64
	forge  atomic.Bool
	wg     sync.WaitGroup
	forged protocol.DatagramAnswer
}

func startFakeUDP(t *testing.T, addr string) *fakeUDP {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeUDP{pc: pc}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			f.got.Add(1)
			h, err := protocol.ParseHeader(buf[:n])
			if err != nil || !f.forge.Load() {
				continue
			}
			// An answer that looks right but is MACed under another key,
			// and one without a MAC at all.
			a := protocol.DatagramAnswer{ID: h.ID, Seq: h.Seq, Status: protocol.DatagramAccepted, State: "ok", IntervalSeconds: 1}
			pc.WriteTo(a.Seal(bytes.Repeat([]byte{3}, 32)), from)
			b := a.Seal(bytes.Repeat([]byte{3}, 32))
			pc.WriteTo(b[:len(b)-32], from)
		}
	}()
	t.Cleanup(func() { pc.Close(); f.wg.Wait() })
	return f
}

// TestHeartbeatFallsBackToHTTPSWhenDatagramsAreDroppedOrForged: when no
// authenticated answer comes (datagrams dropped, or answered by someone
// without the key), the same heartbeat goes over HTTPS and is delivered
// once; datagrams then rest, the next heartbeat goes over HTTPS at once.
func TestHeartbeatFallsBackToHTTPSWhenDatagramsAreDroppedOrForged(t *testing.T) {
	w := newWorld(t, store.SQLite, app.Config{Interval: time.Minute, UDPAddr: "off"})
	_, port, _ := net.SplitHostPort(w.a.URL()[len("https://"):])
	fake := startFakeUDP(t, "127.0.0.1:"+port)
	for _, forge := range []bool{false, true} {
		t.Run("forged="+strconv.FormatBool(forge), func(t *testing.T) {
			fake.forge.Store(forge)
			s := datagramAgent(t, w, "RS-FALLBACK-"+strconv.FormatBool(forge))
			sent := fake.got.Load()
			resp, err := heartbeat(t, s)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Datagram || resp.State != "ok" {
				t.Fatalf("answer %+v: want delivered over HTTPS", resp)
			}
			if got := fake.got.Load() - sent; got != agent.DatagramTries {
				t.Fatalf("%d datagrams sent before falling back, want %d", got, agent.DatagramTries)
			}
			if got := lastSeq(t, w, s); got != s.State.Seq {
				t.Fatalf("stored last_seq %d, want %d", got, s.State.Seq)
			}
			// Datagrams rest: the next heartbeat goes straight to HTTPS.
			sent = fake.got.Load()
			if resp, err := heartbeat(t, s); err != nil || resp.Datagram {
				t.Fatalf("second heartbeat: %+v, %v", resp, err)
			}
			if got := fake.got.Load() - sent; got != 0 {
				t.Fatalf("%d datagrams sent while datagrams rest", got)
			}
			if got := lastSeq(t, w, s); got != s.State.Seq {
				t.Fatalf("stored last_seq %d, want %d", got, s.State.Seq)
			}
		})
	}
}

// TestHeartbeatDatagramsSurviveARestart: while keepwatch is down the
// heartbeat fails (and is retried by the agent's spool); once it is back
// on the same address, heartbeats go by datagram again.
func TestHeartbeatDatagramsSurviveARestart(t *testing.T) {
	w := newWorld(t, store.SQLite, app.Config{Interval: time.Minute})
	s := datagramAgent(t, w, "RS-RESTART")
	if resp, err := heartbeat(t, s); err != nil || !resp.Datagram {
		t.Fatalf("before the restart: %+v, %v", resp, err)
	}
	addr := w.a.URL()[len("https://"):]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := heartbeat(t, s); err == nil {
		t.Fatal("a heartbeat was acknowledged while keepwatch was down")
	}
	s.State.Seq-- // the agent's spool sends the same report again
	a, err := app.New(context.Background(), app.Config{DataDir: w.data, Addr: addr, SelfSigned: true, Interval: time.Minute, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for tries := 0; ; tries++ {
		if err = a.Start(context.Background()); err == nil {
			break
		}
		if tries > 50 {
			t.Fatalf("restart keepwatch on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	w.a = a
	resp, err := heartbeat(t, s)
	if err != nil || !resp.Datagram {
		t.Fatalf("after the restart: %+v, %v; want accepted by datagram", resp, err)
	}
	if got := lastSeq(t, w, s); got != s.State.Seq {
		t.Fatalf("stored last_seq %d, want %d", got, s.State.Seq)
	}
}
