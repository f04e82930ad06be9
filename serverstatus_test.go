package keepwatch

import (
	"testing"
	"time"
)

func TestServerRowsShowTheirWorstCondition(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	low := Condition{Kind: KindStorageLow, Severity: SeverityWarning, Since: now.Add(-2 * time.Hour)}
	full := Condition{Kind: KindStorageFull, Severity: SeverityError, Since: now.Add(-time.Hour)}
	for _, c := range []struct {
		s    Server
		want Status
	}{
		{Server{State: ServerOK}, StatusOK},
		{Server{State: ServerOK, Conditions: []Condition{low}}, StatusWarning},
		{Server{State: ServerOK, Conditions: []Condition{low, full}}, StatusError},
		{Server{State: ServerUnavailable, Conditions: []Condition{full}}, StatusUnavailable},
		{Server{State: ServerPending}, StatusNeverReported},
		{Server{State: ServerConsentWithdrawn}, StatusConsentWithdrawn},
	} {
		if got := ServerStatus(c.s); got != c.want {
			t.Errorf("%+v: %s, want %s", c.s, got, c.want)
		}
	}
	if w := WorstCondition([]Condition{low, full}); w == nil || w.Kind != KindStorageFull {
		t.Errorf("worst: %+v", w)
	}
}

// A paused installation monitors nothing: no server is counted as ok, and
// a paused or never-reported one is not "ok".
func TestSummarizeCountsOnlyServersKnownToBeOK(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	in := Installation{SLC: "M01", CarePlusUntil: DateOf(now).AddDays(-3)}
	ok := Server{ID: "a", State: ServerOK, LastSeen: now.Add(-72 * time.Hour)}
	v := Summarize(InstallationFacts{Installation: in, Servers: []Server{ok, ok}}, now)
	if v.Status != StatusPaused || v.ServersOK != 0 || v.ServersTotal != 2 {
		t.Errorf("paused: %s %d/%d", v.Status, v.ServersOK, v.ServersTotal)
	}
	in.CarePlusUntil = DateOf(now).AddDays(10)
	v = Summarize(InstallationFacts{Installation: in, Servers: []Server{{ID: "p", State: ServerPending}}}, now)
	if v.Status != StatusNeverReported || v.ServersOK != 0 {
		t.Errorf("never reported: %s %d/%d", v.Status, v.ServersOK, v.ServersTotal)
	}
	v = Summarize(InstallationFacts{Installation: in, Servers: []Server{{ID: "c", State: ServerConsentWithdrawn, LastSeen: now}}}, now)
	if v.Status != StatusConsentWithdrawn || v.ServersOK != 0 {
		t.Errorf("consent withdrawn: %s %d/%d", v.Status, v.ServersOK, v.ServersTotal)
	}
	// Maintenance sorts after every problem.
	if StatusMaintenance.Rank() >= StatusWarning.Rank() || StatusMaintenance.NeedsAttention() {
		t.Error("maintenance ranks among problems")
	}
}
