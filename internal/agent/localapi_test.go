package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/protocol"
)

type apiAnswer struct {
	status int
	code   string
	body   map[string]any
}

func callLocal(t *testing.T, d *Daemon, method, path, contentType, body string, header ...string) apiAnswer {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+d.Addr()+path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a apiAnswer
	a.status = resp.StatusCode
	if err := json.Unmarshal(b, &a.body); err != nil {
		t.Fatalf("%s %s answered %d with a body that is not JSON: %q", method, path, resp.StatusCode, b)
	}
	if e, ok := a.body["error"].(map[string]any); ok {
		a.code, _ = e["code"].(string)
	}
	return a
}

func TestLocalAPIRefusesBadInputWithCodedErrors(t *testing.T) {
	f := newFixture(t, time.Second)
	d := f.runDaemon(Config{}, Probes{})
	const js = "application/json"
	big := `{"events": [{"kind": "archive_move_failed", "message": "` + strings.Repeat("x", maxLocalBody) + `"}]}`
	for _, c := range []struct {
		name, method, path, ct, body string
		header                       []string
		status                       int
		code                         string
	}{
		{"not JSON", "POST", "/v1/events", js, `{"events": [`, nil, 400, keepwatch.EINVALID},
		{"no events", "POST", "/v1/events", js, `{"events": []}`, nil, 400, keepwatch.EINVALID},
		{"bad kind", "POST", "/v1/events", js, `{"events": [{"kind": "Archive Failed"}]}`, nil, 400, keepwatch.EINVALID},
		{"keepwatch's own kind", "PUT", "/v1/conditions", js, `{"conditions": [{"kind": "server_unavailable"}]}`, nil, 400, keepwatch.EINVALID},
		{"keepwatch's flood", "PUT", "/v1/conditions", js, `{"conditions": [{"kind": "flood"}]}`, nil, 400, keepwatch.EINVALID},
		{"keepwatch's forecast as an event", "POST", "/v1/events", js, `{"events": [{"kind": "storage_forecast"}]}`, nil, 400, keepwatch.EINVALID},
		{"control character", "POST", "/v1/events", js, `{"events": [{"kind": "file_delete_failed", "subject": "a\u0007b"}]}`, nil, 400, keepwatch.EINVALID},
		{"event from the future", "POST", "/v1/events", js, `{"events": [{"kind": "file_delete_failed", "at": "2999-01-01T00:00:00Z"}]}`, nil, 400, keepwatch.EINVALID},
		{"conditions missing", "PUT", "/v1/conditions", js, `{}`, nil, 400, keepwatch.EINVALID},
		{"unknown field is fine but trailing data is not", "PUT", "/v1/conditions", js, `{"conditions": []} {}`, nil, 400, keepwatch.EINVALID},
		{"too large", "POST", "/v1/events", js, big, nil, 413, keepwatch.ETOOLARGE},
		{"text/plain (what a web page can send)", "POST", "/v1/events", "text/plain", `{"events": [{"kind": "file_delete_failed"}]}`, nil, 400, keepwatch.EINVALID},
		{"no content type", "POST", "/v1/events", "", `{"events": [{"kind": "file_delete_failed"}]}`, nil, 400, keepwatch.EINVALID},
		{"cross-origin", "POST", "/v1/events", js, `{"events": [{"kind": "file_delete_failed"}]}`, []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}, 403, keepwatch.EFORBIDDEN},
		{"another host name (DNS rebinding)", "GET", "/v1/status", "", "", []string{"Host", "evil.example:8444"}, 403, keepwatch.EFORBIDDEN},
		{"consent missing", "PUT", "/v1/consent", js, `{}`, nil, 400, keepwatch.EINVALID},
		{"wrong method", "DELETE", "/v1/events", "", "", nil, 400, keepwatch.EINVALID},
		{"unknown path", "GET", "/v2/anything", "", "", nil, 404, keepwatch.ENOTFOUND},
	} {
		a := callLocal(t, d, c.method, c.path, c.ct, c.body, c.header...)
		if a.status != c.status || a.code != c.code {
			t.Errorf("%s: %d %q, want %d %q (%v)", c.name, a.status, a.code, c.status, c.code, a.body)
		}
	}
	time.Sleep(300 * time.Millisecond) // time enough to deliver anything recorded
	if _, _, ev := f.history(keepwatch.KindFileDeleteFailed); ev != 0 {
		t.Fatalf("a refused request recorded %d events", ev)
	}
}

func TestVMSReportsEventsAndConditionsThroughTheLocalAPI(t *testing.T) {
	f := newFixture(t, time.Second)
	d := f.runDaemon(Config{}, Probes{})
	const js = "application/json"
	at := time.Now().UTC().Add(-5 * time.Minute).Truncate(time.Millisecond)
	a := callLocal(t, d, "POST", "/v1/events", js, `{"events": [{"kind": "archive_move_failed", "subject": "Archive 2026-11-24", "at": "`+at.Format(time.RFC3339Nano)+`", "message": "target drive E: not ready"}]}`)
	if a.status != 202 || a.body["seq"] == nil {
		t.Fatalf("POST /v1/events: %d %v", a.status, a.body)
	}
	a = callLocal(t, d, "PUT", "/v1/conditions", js, `{"conditions": [{"kind": "storage_full", "subject": "E:\\Recordings"}, {"kind": "vendor_specific_fault", "subject": "x"}]}`, "Host", "localhost:1")
	if a.status != 200 {
		t.Fatalf("PUT /v1/conditions: %d %v", a.status, a.body)
	}
	waitFor(t, 10*time.Second, "keepwatch holds the VMS's conditions", func() bool {
		act := f.active()
		return act[`storage_full:E:\Recordings`] && act["vendor_specific_fault:x"]
	})
	in := f.incidents(keepwatch.KindArchiveMoveFailed)
	if len(in) != 1 || !in[0].OpenedAt.Equal(at) || in[0].Subject != "Archive 2026-11-24" {
		t.Fatalf("event incident %+v, want one at %s", in, at)
	}
	// The same set again records nothing; an empty set clears.
	if a = callLocal(t, d, "PUT", "/v1/conditions", js, `{"conditions": [{"kind": "vendor_specific_fault", "subject": "x"}, {"kind": "storage_full", "subject": "E:\\Recordings"}]}`); a.body["seq"] != nil {
		t.Fatalf("an unchanged set recorded report %v", a.body["seq"])
	}
	callLocal(t, d, "PUT", "/v1/conditions", js, `{"conditions": []}`)
	waitFor(t, 10*time.Second, "the conditions clear", func() bool {
		act := f.active()
		return !act[`storage_full:E:\Recordings`] && !act["vendor_specific_fault:x"]
	})

	var st Status
	b, _ := json.Marshal(callLocal(t, d, "GET", "/v1/status", "", "").body)
	json.Unmarshal(b, &st)
	if !st.Running || st.ServerID != f.state.ServerID || st.SLC != f.slc || st.Spool.LastAckedSeq == 0 || bytes.Contains(b, []byte(`"key"`)) {
		t.Fatalf("status %s", b)
	}
}

func TestCommandsGoThroughTheRunningDaemon(t *testing.T) {
	f := newFixture(t, time.Second)
	d := f.runDaemon(Config{}, Probes{})
	ctx := context.Background()
	if _, err := OpenLocal(f.dir); err != ErrDaemonRunning {
		t.Fatalf("opening the spool beside the daemon: %v", err)
	}
	local, ctl, err := Attach(ctx, f.dir)
	if err != nil || local != nil || ctl == nil {
		t.Fatalf("attach: %v %v %v", local, ctl, err)
	}
	// Reports from the command and the daemon's own heartbeats share one
	// sequence: none is refused as replayed.
	for i := range 20 {
		rec, err := ctl.SetConditions(ctx, []protocol.PayloadCondition{{Kind: "camera_unreachable", Subject: "cam-" + string(rune('a'+i))}}, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ctl.WaitDelivered(ctx, rec.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.app.Ingest.Refused(keepwatch.EREPLAYED); n != 0 {
		t.Fatalf("%d reports refused as replayed", n)
	}
	if !f.active()["camera_unreachable:cam-t"] || len(f.active()) != 1 {
		t.Fatalf("active at keepwatch: %v", f.active())
	}
	_ = d
}

func TestVMSConditionsSurviveAnAgentRestart(t *testing.T) {
	f := newFixture(t, time.Second)
	d := f.runDaemon(Config{}, Probes{})
	const key = `storage_full:E:\Recordings`
	if _, _, err := d.SetConditions([]protocol.PayloadCondition{{Kind: keepwatch.KindStorageFull, Subject: `E:\Recordings`}}, nil, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "keepwatch holds the VMS's condition", func() bool { return f.active()[key] })
	f.stopDaemon()

	d = f.runDaemon(Config{}, Probes{})
	waitFor(t, 10*time.Second, "the restarted agent's first status report is delivered", func() bool {
		st, _ := d.Status()
		return st.Spool.Depth == 0 && f.app.Ingest.Accepted("status") >= 3
	})
	raised, cleared, _ := f.history(keepwatch.KindStorageFull)
	if !f.active()[key] || raised != 1 || cleared != 0 {
		t.Fatalf("after a restart the VMS's condition is active=%v, raised %d, cleared %d times", f.active()[key], raised, cleared)
	}
}
