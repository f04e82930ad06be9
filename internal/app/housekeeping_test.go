package app_test

import (
	"strings"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/app"
)

// History is kept at least 30 days; the periods given are the ones
// pruning applies, the audit log's apart from the rest.
func TestHistoryPeriodsArePruned(t *testing.T) {
	if _, err := app.New(ctx, app.Config{DataDir: t.TempDir(), InsecureHTTP: true, HistoryDays: 7}); err == nil || !strings.Contains(err.Error(), "at least 30 days") {
		t.Fatalf("a week of history: %v", err)
	}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	a, err := app.New(ctx, app.Config{DataDir: t.TempDir(), InsecureHTTP: true, HistoryDays: 30, AuditDays: 60, Now: func() time.Time { return now }, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Store.Close()
	in, err := a.Store.CreateIntegrator(ctx, "Alice Security")
	if err != nil {
		t.Fatal(err)
	}
	for _, days := range []int{90, 45, 10} {
		if err := a.Store.Audit(ctx, keepwatch.AuditEntry{IntegratorID: in.ID, At: now.Add(-time.Duration(days) * 24 * time.Hour), Actor: "user:a@alice.example", Action: "incident.ack", Target: "incident 1"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := a.PruneOnce(ctx); n != 1 {
		t.Fatalf("pruned %d rows, want the audit entry older than 60 days", n)
	}
	log, err := a.Store.AuditLog(ctx, in.ID, 10)
	if err != nil || len(log) != 2 {
		t.Fatalf("audit log %+v %v", log, err)
	}
}
