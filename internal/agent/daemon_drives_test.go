package agent

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"keepwatch/internal/protocol"
)

// receiver is a TLS endpoint that opens the agent's sealed reports with
// the key it shares with the agent and keeps their payloads: what the
// wire carries, as keepwatch would read it.
type receiver struct {
	srv *httptest.Server
	key []byte
	mu  sync.Mutex
	got []protocol.Payload
}

func newReceiver(t *testing.T, dir string) *receiver {
	t.Helper()
	r := &receiver{key: make([]byte, 32)}
	rand.Read(r.key)
	id := protocol.NewServerID()
	var last uint64
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+protocol.ReportPath, func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		h, err := protocol.ParseHeader(body)
		if err != nil || h.ID != id {
			http.Error(w, `{"error":{"code":"invalid_request","message":"envelope"}}`, http.StatusBadRequest)
			return
		}
		pt, err := protocol.Open(r.key, body)
		if err != nil {
			http.Error(w, `{"error":{"code":"unauthorized","message":"forged"}}`, http.StatusUnauthorized)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if h.Seq <= last {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"error":{"code":"replayed","message":"replayed"}}`))
			return
		}
		last = h.Seq
		var p protocol.Payload
		if len(pt) > 0 {
			if err := json.Unmarshal(pt, &p); err != nil {
				t.Errorf("payload %d is not JSON: %v", h.Seq, err)
			}
		}
		r.got = append(r.got, p)
		w.Header().Set("Content-Type", "application/json")
		b, _ := json.Marshal(protocol.ReportResponse{Seq: h.Seq, State: "ok", HeartbeatIntervalSeconds: 3600,
			ServerTime: time.Now().UTC().Format(time.RFC3339Nano)})
		// Answers carry keepwatch's MAC, or the agent does not take them.
		w.Header().Set(protocol.MACHeader, base64.StdEncoding.EncodeToString(protocol.AnswerMAC(protocol.AuthKey(r.key), id, h.Seq, 200, b)))
		w.Write(b)
	})
	r.srv = httptest.NewTLSServer(mux)
	t.Cleanup(r.srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	st := &State{Server: r.srv.URL, CAFile: ca, SLC: "DRV-0001", Name: "RS-01", ServerID: id.String(), Key: r.key,
		Interval: 3600, Consent: true, EnrolledAt: time.Now().UTC()}
	if err := st.Save(dir); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *receiver) payloads() []protocol.Payload {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]protocol.Payload(nil), r.got...)
}

func TestDriveSamplesRideInStatusReportsWithoutChangingConditions(t *testing.T) {
	dir := t.TempDir()
	rcv := newReceiver(t, dir)
	drive := t.TempDir()
	rec := filepath.Join(drive, "Recordings")
	mkdirs(t, rec, "2026-11-02/f", "2026-11-03/f")
	cfg := Config{Drives: []Drive{{Path: drive, Role: "recording", Recordings: rec, Layout: LayoutDatedFolders}}, LocalAPI: "127.0.0.1:0"}
	if err := cfg.normalize(); err != nil {
		t.Fatal(err)
	}
	// Faster than a configuration may ask, so the test takes a moment.
	cfg.Checks.DriveSamples.Every = Duration(100 * time.Millisecond)
	cfg.Checks.Drives.Every = Duration(time.Hour)
	d := &Daemon{Dir: dir, Config: cfg, Logger: quiet()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	})
	select {
	case <-d.Ready():
	case err := <-done:
		t.Fatalf("daemon ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon not ready")
	}
	waitFor(t, 10*time.Second, "the first status report", func() bool { return len(rcv.payloads()) > 0 })
	// The first status report waited for the first round of samples.
	first := rcv.payloads()[0]
	if first.Conditions == nil || len(first.Drives) != 1 {
		t.Fatalf("first report: %+v", first)
	}
	if _, _, err := d.SetConditions(nil, nil, false); err != nil { // nothing changes: nothing recorded
		t.Fatal(err)
	}
	vms := []protocol.PayloadCondition{{Kind: "camera_unreachable", Subject: "cam-07"}}
	if _, _, err := d.SetConditions(vms, nil, false); err != nil {
		t.Fatal(err)
	}
	mark := len(rcv.payloads())
	waitFor(t, 10*time.Second, "three more rounds of samples", func() bool { return len(rcv.payloads()) >= mark+4 })

	var prev time.Time
	withCamera := 0
	for i, p := range rcv.payloads() {
		if p.Conditions == nil {
			if len(p.Drives) > 0 {
				t.Fatalf("report %d: drive samples in a heartbeat: %+v", i, p)
			}
			continue
		}
		if len(p.Drives) == 0 {
			continue // the report of the changed conditions, between two rounds
		}
		s := p.Drives[0]
		if s.Path != drive || s.Role != "recording" || s.Capacity == 0 || s.Free > s.Capacity || s.At == nil || s.At.Before(prev) {
			t.Fatalf("report %d: sample %+v", i, s)
		}
		prev = *s.At
		if s.OldestRecordingAt == nil || s.OldestRecordingAt.Format("2006-01-02") != "2026-11-02" {
			t.Fatalf("report %d: oldest recording %v", i, s.OldestRecordingAt)
		}
		// Every status report carries the full set: the camera, once
		// reported, is in each one after.
		if len(*p.Conditions) == 1 && (*p.Conditions)[0].Subject == "cam-07" {
			withCamera++
		} else if withCamera > 0 {
			t.Fatalf("report %d: conditions %+v after the camera was reported", i, *p.Conditions)
		}
	}
	if withCamera < 3 {
		t.Fatalf("%d sampled reports carried the camera", withCamera)
	}
	st, err := d.Status()
	if err != nil || len(st.Drives) != 1 || st.Drives[0].Path != drive {
		t.Fatalf("status: %+v %v", st.Drives, err)
	}
	found := false
	for _, c := range st.Checks {
		found = found || (c.Name == "drive_samples" && c.Error == "" && !c.LastRun.IsZero())
	}
	if !found {
		t.Fatalf("checks: %+v", st.Checks)
	}
}
