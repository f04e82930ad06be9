package keepwatch

import (
	"strings"
	"testing"
	"time"
)

func TestRaiseRecursReopensOrOpens(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	p := IncidentPolicy{ReopenWindow: time.Hour}
	open := &Incident{ID: 1, State: IncidentOpen, Count: 1, LastAt: t0}
	if got := p.Raise(open, nil, t0.Add(time.Minute)); got != RaiseRecur {
		t.Fatalf("an unresolved incident: %v, want recur", got)
	}
	resolvedAt := t0.Add(10 * time.Minute)
	resolved := &Incident{ID: 2, State: IncidentResolved, ResolvedAt: &resolvedAt}
	if got := p.Raise(nil, resolved, resolvedAt.Add(59*time.Minute)); got != RaiseReopen {
		t.Fatalf("within the reopen window: %v, want reopen", got)
	}
	if got := p.Raise(nil, resolved, resolvedAt.Add(61*time.Minute)); got != RaiseOpen {
		t.Fatalf("after the reopen window: %v, want open", got)
	}
	if got := p.Raise(nil, nil, t0); got != RaiseOpen {
		t.Fatalf("nothing before: %v, want open", got)
	}
	if got := (IncidentPolicy{}).Raise(nil, resolved, resolvedAt.Add(DefaultReopenWindow)); got != RaiseReopen {
		t.Fatalf("default window: %v", got)
	}
}

func TestIncidentTransitions(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	n := Incident{State: IncidentOpen, Count: 1, LastAt: t0}
	n.Recur(t0.Add(-time.Minute)) // an old event delivered late does not move last_at back
	if n.Count != 2 || !n.LastAt.Equal(t0) {
		t.Fatalf("recur: %+v", n)
	}
	if err := n.Acknowledge("user:ann", "on it", t0.Add(time.Minute)); err != nil || n.State != IncidentAcknowledged || n.AckedBy != "user:ann" {
		t.Fatalf("ack: %v %+v", err, n)
	}
	if err := n.Acknowledge("user:bob", "", t0); ErrorCode(err) != ECONFLICT {
		t.Fatalf("second ack: %v", err)
	}
	if err := n.Resolve("user:ann", "fixed", t0.Add(2*time.Minute), false); err != nil || n.State != IncidentResolved {
		t.Fatalf("resolve: %v %+v", err, n)
	}
	if err := n.Resolve("user:ann", "", t0, false); ErrorCode(err) != ECONFLICT {
		t.Fatalf("second resolve: %v", err)
	}
	if n.Clear(t0.Add(3*time.Minute), "") {
		t.Fatal("clearing a resolved incident changed it")
	}
	parent := int64(9)
	n.ParentID = &parent
	n.Reopen(t0.Add(4 * time.Minute))
	if n.State != IncidentOpen || n.AckedAt != nil || n.AckedBy != "" || n.ResolvedAt != nil || n.ParentID != nil || n.Count != 3 {
		t.Fatalf("reopen kept old facts: %+v", n)
	}
	if !n.Clear(t0.Add(5*time.Minute), "no recurrence for 24h") || n.ResolvedBy != ActorKeepwatch || n.ResolveNote == "" {
		t.Fatalf("clear: %+v", n)
	}
}

func TestSiteOutageNeedsEveryServerWithinTheWindow(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	w := time.Minute
	for _, c := range []struct {
		s    SiteServers
		want bool
	}{
		{SiteServers{Total: 3, Down: 3, FirstDown: at.Add(-30 * time.Second)}, true},
		{SiteServers{Total: 3, Down: 2, FirstDown: at}, false},
		{SiteServers{Total: 1, Down: 1, FirstDown: at}, false}, // one server cannot tell
		{SiteServers{Total: 2, Down: 2, FirstDown: at.Add(-2 * time.Minute)}, false},
	} {
		if got := SiteOutage(c.s, at, w); got != c.want {
			t.Errorf("%+v: %v", c.s, got)
		}
	}
}

func TestConnectionLostNeedsAReportFromTheSpool(t *testing.T) {
	last := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	back := last.Add(10 * time.Minute)
	if _, ok := ConnectionLost(last, back, time.Time{}, time.Minute); ok {
		t.Error("a report without its recording time proves nothing")
	}
	if _, ok := ConnectionLost(last, back, back.Add(-30*time.Second), time.Minute); ok {
		t.Error("a report recorded just now proves nothing")
	}
	note, ok := ConnectionLost(last, back, last.Add(time.Minute), time.Minute)
	if !ok || !strings.Contains(note, "connection lost from 2026-11-30 12:00 UTC to 2026-11-30 12:10 UTC") {
		t.Errorf("%q %v", note, ok)
	}
}

func TestQuietPeriod(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	p := IncidentPolicy{}
	if !p.QuietSince(now).Equal(now.Add(-24*time.Hour)) || p.QuietNote() != "no recurrence for 24h" {
		t.Errorf("%v %q", p.QuietSince(now), p.QuietNote())
	}
	if n := (IncidentPolicy{QuietPeriod: 90 * time.Minute}).QuietNote(); n != "no recurrence for 1h30m" {
		t.Errorf("%q", n)
	}
}
