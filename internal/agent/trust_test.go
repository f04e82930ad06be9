package agent

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/tlsutil"
)

// forgingProxy is a TLS-terminating proxy in front of keepwatch that, while
// forge holds an answer, swallows the report and answers that instead,
// without keepwatch's MAC (it cannot make one).
type forgingProxy struct {
	srv    *httptest.Server
	caFile string
	forge  atomic.Pointer[forgedAnswer]
}

type forgedAnswer struct {
	status int
	body   string
}

func newForgingProxy(t *testing.T, target, targetCA string) *forgingProxy {
	tc, err := tlsutil.ClientConfig(targetCA)
	if err != nil {
		t.Fatal(err)
	}
	up := &http.Transport{TLSClientConfig: tc}
	p := &forgingProxy{}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := p.forge.Load(); f != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(f.status)
			io.WriteString(w, f.body)
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
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(p.srv.Close)
	p.caFile = filepath.Join(t.TempDir(), "proxy.pem")
	os.WriteFile(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw}), 0o600)
	return p
}

// Before, a middlebox could make the agent drop a spooled report as
// delivered (a fake 200 or replayed), stop for good (a fake unauthorized)
// or adopt any interval. Answers without keepwatch's MAC now change
// nothing: the report stays spooled and is delivered once the path is
// clean, exactly once.
func TestForgedAnswersNeitherDropStopNorRetime(t *testing.T) {
	f := newFixture(t, time.Second)
	proxy := newForgingProxy(t, f.app.URL(), f.app.CertFile)
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
	at := time.Now().UTC().Truncate(time.Millisecond)
	interval := l.State.Interval
	for _, forged := range []forgedAnswer{
		{200, `{"seq":1,"state":"ok","heartbeat_interval_seconds":86400,"server_time":"2026-01-01T00:00:00Z"}`},
		{409, `{"error":{"code":"replayed","message":"already seen"}}`},
		{401, `{"error":{"code":"unauthorized","message":"enroll again"}}`},
		{400, `{"error":{"code":"invalid_request","message":"bad payload"}}`},
	} {
		proxy.forge.Store(&forged)
		if _, _, err := l.Send(context.Background(), eventPayload(1, at)); err == nil {
			t.Fatalf("forged %d answer taken as delivery", forged.status)
		}
		stats, _ := l.Status()
		if stats.Spool.Depth == 0 || stats.Spool.Refused != 0 {
			t.Fatalf("after a forged %d: spool %+v", forged.status, stats.Spool)
		}
		if l.State.Interval != interval {
			t.Fatalf("after a forged %d: interval %d, want %d", forged.status, l.State.Interval, interval)
		}
	}
	if _, _, ev := f.history(keepwatch.KindArchiveMoveFailed); ev != 0 {
		t.Fatalf("keepwatch holds %d events, want none yet", ev)
	}
	// The path is clean again: everything spooled arrives, the event once.
	proxy.forge.Store(nil)
	if _, _, err := l.Send(context.Background(), nil); err != nil {
		t.Fatalf("after the forgeries: %v", err)
	}
	if stats, _ := l.Status(); stats.Spool.Depth != 0 {
		t.Fatalf("spool after delivery: %+v", stats.Spool)
	}
	if _, _, ev := f.history(keepwatch.KindArchiveMoveFailed); ev != 4 {
		t.Fatalf("keepwatch holds %d events, want the 4 sent", ev)
	}
}

// agent rotate replaces the report key in-band; keepwatch refuses the old
// key from the new key's first use.
func TestRotateReplacesTheReportKeyInBand(t *testing.T) {
	f := newFixture(t, time.Second)
	old := bytes.Clone(f.state.Key)
	l, err := OpenLocal(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.Close()
	st, err := Load(f.dir)
	if err != nil || bytes.Equal(st.Key, old) || len(st.Key) != 32 {
		t.Fatalf("state after rotate: key changed %v, %v", st != nil && !bytes.Equal(st.Key, old), err)
	}
	rec, err := f.app.Store.ServerRecord(context.Background(), st.ServerID)
	if err != nil || !bytes.Equal(rec.Key, st.Key) || rec.NextKey != nil {
		t.Fatalf("keepwatch's key after rotate: same as the agent's %v, next %x, %v", bytes.Equal(rec.Key, st.Key), rec.NextKey, err)
	}
	c, _ := NewClient(st.Server, st.CAFile)
	stale := &Sender{State: &State{ServerID: st.ServerID, Key: old, Seq: st.Seq + 100}, Client: c}
	_, err = stale.Send(context.Background(), nil)
	var se *ServerError
	if !errors.As(err, &se) || se.Code != keepwatch.EUNAUTHORIZED {
		t.Fatalf("the old key after rotation: %v", err)
	}
	l, err = OpenLocal(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, _, err := l.Send(context.Background(), eventPayload(1, time.Now().UTC())); err != nil {
		t.Fatalf("the new key: %v", err)
	}
}

// keepwatch can require a rotation; a running agent carries it out by
// itself.
func TestARunningAgentRotatesWhenKeepwatchAsks(t *testing.T) {
	f := newFixture(t, time.Second)
	old := bytes.Clone(f.state.Key)
	f.runDaemon(Config{}, Probes{})
	if err := f.app.Store.RequireRotation(context.Background(), f.state.ServerID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the agent switched to a new key and keepwatch with it", func() bool {
		st, err := Load(f.dir)
		if err != nil || bytes.Equal(st.Key, old) {
			return false
		}
		rec, err := f.app.Store.ServerRecord(context.Background(), st.ServerID)
		return err == nil && bytes.Equal(rec.Key, st.Key) && !rec.RotateRequired
	})
}

// A reinstalled machine enrolls its name again without the old state: it
// keeps its reports until the integrator approves, then delivers them.
func TestAPendingReenrollmentKeepsReportsUntilApproved(t *testing.T) {
	f := newFixture(t, time.Second)
	dir := t.TempDir()
	st, err := Enroll(context.Background(), EnrollOptions{Server: f.app.URL(), CAFile: f.app.CertFile, SLC: f.slc, Key: "key", Name: "RS-01", Consent: true})
	if err != nil || !st.Pending || st.ServerID != f.state.ServerID {
		t.Fatalf("re-enrollment without the old state: %+v %v", st, err)
	}
	if err := st.Save(dir); err != nil {
		t.Fatal(err)
	}
	l, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	at := time.Now().UTC().Truncate(time.Millisecond)
	_, _, err = l.Send(context.Background(), eventPayload(1, at))
	var se *ServerError
	if !errors.As(err, &se) || se.Code != keepwatch.EREENROLLPENDING || !se.Authenticated {
		t.Fatalf("report while pending: %v", err)
	}
	if stats, _ := l.Status(); stats.Spool.Depth != 1 {
		t.Fatalf("spool while pending: %+v", stats.Spool)
	}
	list, err := f.app.Store.Reenrollments(context.Background(), f.integratorID, 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("pending list: %+v %v", list, err)
	}
	if _, err := f.app.Store.DecideReenrollment(context.Background(), f.integratorID, list[0].ID, true, "user:owner"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the spooled report is delivered after approval", func() bool {
		_, _, err := l.Send(context.Background(), nil)
		return err == nil
	})
	if _, _, ev := f.history(keepwatch.KindArchiveMoveFailed); ev != 1 {
		t.Fatalf("keepwatch holds %d events, want 1", ev)
	}
	if l.State.Pending {
		t.Fatal("the state still says pending after approval")
	}
}
