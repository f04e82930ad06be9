package ingest

import (
	"testing"
	"time"

	"keepwatch"
)

func TestPayloadHeartbeatVersusStatus(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		in     string
		status bool
		n      int
	}{
		{``, false, 0},
		{`{}`, false, 0},
		{`{"agent_version":"1.2"}`, false, 0},
		{`{"conditions":[]}`, true, 0},
		{`{"conditions":[{"kind":"storage_full","subject":"E:"},{"kind":"camera_unreachable","subject":"cam-1"}]}`, true, 2},
	} {
		r, err := parsePayload([]byte(c.in), now)
		if err != nil || r.Status != c.status || len(r.Conditions) != c.n {
			t.Errorf("%s: status=%v n=%d err=%v", c.in, r.Status, len(r.Conditions), err)
		}
	}
}

func TestPayloadEventTimes(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	r, err := parsePayload([]byte(`{"events":[{"kind":"archive_move_failed","at":"2026-11-25T09:30:00Z"},{"kind":"file_delete_failed","at":"2030-01-01T00:00:00Z"},{"kind":"archive_fatal_error"}]}`), now)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Events[0].At.Equal(now.Add(-150 * time.Minute)) {
		t.Errorf("offline event moved: %s", r.Events[0].At)
	}
	if !r.Events[1].At.Equal(now) || !r.Events[2].At.Equal(now) {
		t.Errorf("future or missing times not placed at reception: %s %s", r.Events[1].At, r.Events[2].At)
	}
	if r.Events[0].Severity != keepwatch.SeverityError {
		t.Errorf("severity %s", r.Events[0].Severity)
	}
}

// Drive samples are taken at their time (or the report's), moved onto
// keepwatch's clock with the report; a sample that breaks a rule refuses
// the report; keepwatch's own kinds are never reported.
func TestPayloadDrives(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	r, err := parsePayload([]byte(`{"sent_at":"2026-11-25T11:55:00Z","transmitted_at":"2026-11-25T13:00:00Z","drives":[
		{"path":"E:\\Recordings","role":"recording","at":"2026-11-25T12:50:00Z","capacity":1000,"free":100,"oldest_recording_at":"2026-11-01T13:00:00Z"},
		{"path":"F:\\Archive","capacity":2000,"free":2000}]}`), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Drives) != 2 || r.Status {
		t.Fatalf("drives %+v status %v", r.Drives, r.Status)
	}
	e, f := r.Drives[0], r.Drives[1]
	if e.Path != `E:\Recordings` || e.Role != keepwatch.DriveRecording || !e.At.Equal(now.Add(-10*time.Minute)) ||
		!e.OldestRecording.Equal(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)) || e.Used() != 900 {
		t.Fatalf("E: %+v", e)
	}
	if f.Role != keepwatch.DriveOther || !f.At.Equal(now.Add(-65*time.Minute)) || !f.OldestRecording.IsZero() {
		t.Fatalf("F: %+v", f)
	}
	for _, bad := range []string{
		`{"drives":[{"path":"E:","capacity":0,"free":0}]}`,
		`{"drives":[{"path":"E:","capacity":10,"free":11}]}`,
		`{"drives":[{"path":"","capacity":10,"free":1}]}`,
		`{"drives":[{"path":"E:","capacity":10,"free":1},{"path":"E:","capacity":10,"free":1}]}`,
		`{"drives":[{"path":"E:","role":"cache","capacity":10,"free":1}]}`,
		`{"drives":[{"path":"E:","capacity":10,"free":1,"at":"2026-11-25T14:00:00Z"}]}`,
		`{"drives":[{"path":"E:","capacity":18446744073709551615,"free":1}]}`,
		`{"conditions":[{"kind":"storage_forecast","subject":"E:"}]}`,
		`{"conditions":[{"kind":"retention_short","subject":"E:"}]}`,
	} {
		if _, err := parsePayload([]byte(bad), now); keepwatch.ErrorCode(err) != keepwatch.EINVALID {
			t.Errorf("%s: %v, want invalid_request", bad, err)
		}
	}
}

// FuzzPayload: any plaintext is either refused with invalid_request or
// yields only valid, bounded conditions and events.
func FuzzPayload(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"conditions":[]}`, `{"conditions":[{"kind":"storage_full","subject":"E:","since":"2026-01-01T00:00:00Z"}]}`,
		`{"events":[{"kind":"archive_move_failed","at":"2026-11-25T09:30:00Z","message":"x"}]}`, `{"consent":false}`, `[1,2]`, `{"conditions":null}`} {
		f.Add([]byte(s))
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parsePayload(b, now)
		if err != nil {
			if keepwatch.ErrorCode(err) != keepwatch.EINVALID {
				t.Fatalf("error code %s", keepwatch.ErrorCode(err))
			}
			return
		}
		if len(r.Conditions) > keepwatch.MaxConditions || len(r.Events) > keepwatch.MaxEvents {
			t.Fatal("limits not enforced")
		}
		for _, c := range r.Conditions {
			if !keepwatch.ValidKind(c.Kind) || !keepwatch.ValidText(c.Subject, keepwatch.MaxSubjectLen) || c.Kind == keepwatch.KindServerUnavailable {
				t.Fatalf("invalid condition accepted: %+v", c)
			}
		}
		for _, e := range r.Events {
			if !keepwatch.ValidKind(e.Kind) || e.At.IsZero() || e.At.After(now.Add(time.Hour)) {
				t.Fatalf("invalid event accepted: %+v", e)
			}
		}
	})
}
