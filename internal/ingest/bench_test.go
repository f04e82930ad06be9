package ingest_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"keepwatch/internal/protocol"
)

// BenchmarkIngestHeartbeat measures the handler for a heartbeat of a
// healthy server: envelope open, replay check, in-memory liveness. No
// network, no TLS: the cost keepwatch itself adds per heartbeat.
func BenchmarkIngestHeartbeat(b *testing.B) {
	benchIngest(b, "")
}

// BenchmarkIngestTimedHeartbeat measures the heartbeat the agent sends:
// transmitted_at and the last status number, judged for a held-back
// heartbeat or a lost status report.
func BenchmarkIngestTimedHeartbeat(b *testing.B) {
	benchIngest(b, `{"transmitted_at":"`+time.Now().UTC().Format(time.RFC3339Nano)+`"}`)
}

// BenchmarkIngestStatus measures a status report whose conditions are
// unchanged: it is stored durably before the answer.
func BenchmarkIngestStatus(b *testing.B) {
	benchIngest(b, `{"conditions":[{"kind":"storage_low","subject":"E:"}]}`)
}

func benchIngest(b *testing.B, payload string) {
	r := newRigTB(b)
	r.a.Ingest.ServerRate, r.a.Ingest.ServerBurst = 1e9, 1<<30 // one server stands for many
	s := r.enrollTB(b, "RS-01")
	id, _ := protocol.ParseServerID(s.State.ServerID)
	envs := make([][]byte, b.N)
	for i := range envs {
		envs[i], _ = protocol.Seal(s.State.Key, id, uint64(i+1), []byte(payload))
	}
	h := r.a.Handler()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest(http.MethodPost, protocol.ReportPath, bytes.NewReader(envs[i]))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(fmt.Sprint(w.Code, w.Body.String()))
		}
	}
}

// BenchmarkIngestDriveSamples measures a report with two drives' samples
// of a new 5-minute slot: stored with the report, then the drives judged
// on their last 14 days (raw points here: compaction does not run).
func BenchmarkIngestDriveSamples(b *testing.B) {
	r := newRigTB(b)
	s := r.enrollTB(b, "RS-01")
	id, _ := protocol.ParseServerID(s.State.ServerID)
	start := time.Now().Add(-time.Duration(b.N+1) * 5 * time.Minute).UTC()
	envs := make([][]byte, b.N)
	for i := range envs {
		at := start.Add(time.Duration(i) * 5 * time.Minute).Format(time.RFC3339)
		payload := fmt.Sprintf(`{"drives":[{"path":"E:\\Recordings","role":"recording","at":%q,"capacity":8000000000000,"free":%d,"oldest_recording_at":"2026-01-01T00:00:00Z"},`+
			`{"path":"F:\\Archive","role":"archive","at":%q,"capacity":16000000000000,"free":9000000000000}]}`, at, 4000000000000-i*1000000000, at)
		envs[i], _ = protocol.Seal(s.State.Key, id, uint64(i+1), []byte(payload))
	}
	h := r.a.Handler()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest(http.MethodPost, protocol.ReportPath, bytes.NewReader(envs[i]))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(fmt.Sprint(w.Code, w.Body.String()))
		}
	}
}
