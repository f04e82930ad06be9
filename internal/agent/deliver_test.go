package agent

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/protocol"
	"keepwatch/internal/tlsutil"
)

// lossyProxy is a TLS reverse proxy in front of keepwatch that, for the
// requests it is told to, forwards the report and then cuts the
// connection instead of relaying keepwatch's answer: the report is
// accepted, its acknowledgement lost.
type lossyProxy struct {
	srv    *httptest.Server
	caFile string
	drop   atomic.Int32 // answers still to lose
	cut    atomic.Bool  // the link is down: nothing gets through
	seen   atomic.Int32
}

func newLossyProxy(t *testing.T, target, targetCA string) *lossyProxy {
	tc, err := tlsutil.ClientConfig(targetCA)
	if err != nil {
		t.Fatal(err)
	}
	up := &http.Transport{TLSClientConfig: tc}
	p := &lossyProxy{}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.seen.Add(1)
		if p.cut.Load() {
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.Path, r.Body)
		req.Header = r.Header.Clone()
		resp, err := up.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if p.drop.Add(-1) >= 0 {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
	}))
	t.Cleanup(p.srv.Close)
	p.caFile = filepath.Join(t.TempDir(), "proxy.pem")
	os.WriteFile(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw}), 0o600)
	return p
}

func TestLostAcknowledgementDoesNotDuplicateEvents(t *testing.T) {
	f := newFixture(t, time.Second)
	proxy := newLossyProxy(t, f.app.URL(), f.app.CertFile)
	st := *f.state
	st.Server, st.CAFile = proxy.srv.URL, proxy.caFile
	if err := st.Save(f.dir); err != nil {
		t.Fatal(err)
	}
	l, err := OpenLocal(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	at := time.Now().UTC().Truncate(time.Millisecond) // after the registration: the holder's history starts there
	proxy.drop.Store(1)
	seq, _, err := l.Send(context.Background(), eventPayload(1, at))
	if err == nil {
		t.Fatal("the lost answer went unnoticed")
	}
	if _, _, ev := f.history(keepwatch.KindArchiveMoveFailed); ev != 1 {
		t.Fatalf("keepwatch holds %d events after the first attempt, want 1", ev)
	}
	// The next send delivers the spool in order: the report whose answer
	// was lost first (keepwatch: replayed, so it is delivered), then the
	// new one.
	seq2, resp, err := l.Send(context.Background(), nil)
	if err != nil || resp.Seq != seq2 || seq2 <= seq {
		t.Fatalf("second send: #%d %+v %v", seq2, resp, err)
	}
	if _, _, ev := f.history(keepwatch.KindArchiveMoveFailed); ev != 1 {
		t.Fatalf("keepwatch holds the event %d times, want once", ev)
	}
	stats, _ := l.Status()
	if stats.Spool.Depth != 0 || stats.Spool.LastAckedSeq != seq2 {
		t.Fatalf("spool after delivery: %+v", stats.Spool)
	}
	if in := f.incidents(keepwatch.KindArchiveMoveFailed); len(in) != 1 || in[0].Count != 1 || !in[0].OpenedAt.Equal(at) {
		t.Fatalf("incidents %+v, want one, counted once, opened at %s", in, at)
	}
}

func TestCounterBehindKeepwatchMovesForward(t *testing.T) {
	f := newFixture(t, time.Second)
	// The server reported with numbers 1 to 5, then its state directory
	// was restored from a backup taken before.
	c, _ := NewClient(f.state.Server, f.state.CAFile)
	live := &Sender{State: &State{ServerID: f.state.ServerID, Key: f.state.Key}, Client: c}
	for range 5 {
		if _, err := live.Send(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
	l, err := OpenLocal(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	at := time.Now().UTC().Truncate(time.Millisecond)
	_, resp, err := l.Send(context.Background(), eventPayload(7, at))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Seq <= 1_000_000 {
		t.Fatalf("accepted as #%d; the counter did not move past keepwatch's", resp.Seq)
	}
	if _, _, ev := f.history(keepwatch.KindArchiveMoveFailed); ev != 1 {
		t.Fatalf("keepwatch holds the event %d times, want once", ev)
	}
}

func TestCarePlusEndedPausesDeliveryWithoutLosingEvents(t *testing.T) {
	f := newFixture(t, time.Second)
	d := f.runDaemon(Config{}, Probes{})
	ctx := context.Background()
	past, _ := keepwatch.ParseDate("2020-01-01")
	if err := f.app.Store.SetCarePlus(ctx, f.slc, past); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "delivery paused by care_plus_inactive", func() bool {
		st, _ := d.Status()
		return st.Delivery.State == "paused" && strings.Contains(st.Spool.LastError, keepwatch.ECAREPLUSINACTIVE)
	})
	at := time.Now().UTC().Truncate(time.Millisecond)
	for i := range 3 {
		if _, err := d.RecordEvents([]protocol.PayloadEvent{{Kind: keepwatch.KindArchiveFatalError, Subject: fmt.Sprint("archive-", i), At: at.Add(time.Duration(i) * time.Millisecond)}}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond) // a few paused retries
	if _, _, ev := f.history(keepwatch.KindArchiveFatalError); ev != 0 {
		t.Fatalf("%d events got through a refusing keepwatch", ev)
	}
	future, _ := keepwatch.ParseDate("2099-01-01")
	if err := f.app.Store.SetCarePlus(ctx, f.slc, future); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the events arrive after renewal", func() bool {
		_, _, ev := f.history(keepwatch.KindArchiveFatalError)
		return ev == 3
	})
	for i, in := range f.incidents(keepwatch.KindArchiveFatalError) {
		if in.Subject != fmt.Sprint("archive-", i) || !in.OpenedAt.Equal(at.Add(time.Duration(i)*time.Millisecond)) || in.Count != 1 {
			t.Fatalf("incident %d: %+v", i, in)
		}
	}
}

func TestConsentOffStopsSendingAndTellsKeepwatchOnce(t *testing.T) {
	f := newFixture(t, time.Second)
	d := f.runDaemon(Config{}, Probes{})
	ctx := context.Background()
	serverState := func() keepwatch.ServerState {
		list, err := f.app.Store.Servers(ctx, f.integratorID, f.slc)
		if err != nil || len(list) != 1 {
			t.Fatalf("servers: %v %v", list, err)
		}
		return list[0].State
	}
	waitFor(t, 10*time.Second, "server ok", func() bool { return serverState() == keepwatch.ServerOK })
	if _, err := d.SetConsent(false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "keepwatch shows consent withdrawn", func() bool { return serverState() == keepwatch.ServerConsentWithdrawn })
	if _, err := d.RecordEvents([]protocol.PayloadEvent{{Kind: keepwatch.KindArchiveMoveFailed}}); keepwatch.ErrorCode(err) != keepwatch.ECONSENTREQUIRED {
		t.Fatalf("an event without consent: %v", err)
	}
	before, _ := d.Status()
	accepted := f.app.Ingest.Accepted("heartbeat") + f.app.Ingest.Accepted("status")
	time.Sleep(2500 * time.Millisecond) // more than two heartbeat intervals
	after, _ := d.Status()
	if after.Spool.LastSeq != before.Spool.LastSeq || f.app.Ingest.Accepted("heartbeat")+f.app.Ingest.Accepted("status") != accepted {
		t.Fatalf("reports recorded or sent without consent: seq %d → %d", before.Spool.LastSeq, after.Spool.LastSeq)
	}
	if seq, _ := d.SetConsent(false); seq != 0 {
		t.Fatal("withdrawing twice told keepwatch twice")
	}
	if _, err := d.SetConsent(true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "monitoring resumes", func() bool { return serverState() == keepwatch.ServerOK })
}

func TestLostConnectionIsToldApartFromAServerThatWasDown(t *testing.T) {
	f := newFixture(t, time.Second)
	proxy := newLossyProxy(t, f.app.URL(), f.app.CertFile)
	st := *f.state
	st.Server, st.CAFile = proxy.srv.URL, proxy.caFile
	if err := st.Save(f.dir); err != nil {
		t.Fatal(err)
	}
	d := f.runDaemon(Config{}, Probes{})
	ctx := context.Background()
	serverState := func() keepwatch.ServerState {
		list, err := f.app.Store.Servers(ctx, f.integratorID, f.slc)
		if err != nil || len(list) != 1 {
			t.Fatalf("servers: %v %v", list, err)
		}
		return list[0].State
	}
	waitFor(t, 10*time.Second, "server ok", func() bool { return serverState() == keepwatch.ServerOK })

	// The site's Internet link goes down; the agent keeps recording.
	proxy.cut.Store(true)
	at := time.Now().UTC().Truncate(time.Millisecond)
	waitFor(t, 10*time.Second, "keepwatch declares the silent server unavailable", func() bool { return serverState() == keepwatch.ServerUnavailable })
	if _, err := d.RecordEvents([]protocol.PayloadEvent{{Kind: keepwatch.KindFileDeleteFailed, Subject: "E:\\Recordings\\0001.blk", At: at}}); err != nil {
		t.Fatal(err)
	}
	proxy.cut.Store(false)
	waitFor(t, 10*time.Second, "the server is back", func() bool { return serverState() == keepwatch.ServerOK })
	waitFor(t, 10*time.Second, "the spool is delivered", func() bool {
		s, _ := d.Status()
		return s.Spool.Depth == 0
	})
	out := f.incidents(keepwatch.KindServerUnavailable)
	if len(out) != 1 || !strings.Contains(out[0].Annotation, "server was running; connection lost") {
		t.Fatalf("outage incidents %+v, want one annotated as a lost connection", out)
	}
	if ev := f.incidents(keepwatch.KindFileDeleteFailed); len(ev) != 1 || !ev[0].OpenedAt.Equal(at) {
		t.Fatalf("the offline event %+v, want it at its own time %s", ev, at)
	}
}

func TestKeepwatchPlacesEventsOfAnAgentWithAWrongClock(t *testing.T) {
	f := newFixture(t, time.Second)
	// This machine's clock is ten minutes fast; the VMS stamps events by it.
	const skew = 10 * time.Minute
	cfg := Config{LocalAPI: "127.0.0.1:0"}
	if err := cfg.normalize(); err != nil {
		t.Fatal(err)
	}
	d := &Daemon{Dir: f.dir, Config: cfg, Logger: quiet(), Now: func() time.Time { return time.Now().Add(skew) }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-d.Ready()
	happened := time.Now().Add(-time.Minute) // by keepwatch's (true) clock
	if _, err := d.RecordEvents([]protocol.PayloadEvent{{Kind: keepwatch.KindArchiveOperationFailed, Subject: "nightly", At: happened.Add(skew)}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the event arrives", func() bool { return len(f.incidents(keepwatch.KindArchiveOperationFailed)) == 1 })
	got := f.incidents(keepwatch.KindArchiveOperationFailed)[0].OpenedAt
	if off := got.Sub(happened); off < -5*time.Second || off > 5*time.Second {
		t.Fatalf("the event is placed at %s, %s from when it happened: transmitted_at did not let keepwatch correct the clock", got, off)
	}
}
