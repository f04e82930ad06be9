package keepwatch

import (
	"testing"
	"time"
)

func TestSummarizeTellsSiteOutagesAndMaintenance(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	in := Installation{ID: 1, SLC: "M01", CarePlusUntil: DateOf(now).AddDays(100)}
	ok := Server{ID: "a", Name: "RS-01", State: ServerOK, LastSeen: now}
	down := Server{ID: "b", Name: "RS-02", State: ServerUnavailable, LastSeen: now.Add(-time.Hour), StateSince: now.Add(-50 * time.Minute)}
	down2 := down
	down2.ID, down2.Name = "c", "RS-03"
	storage := ok
	storage.Conditions = []Condition{{Kind: KindStorageFull, Subject: "E:", Severity: SeverityError, Since: now.Add(-time.Hour)}}
	window := MaintenanceWindow{SLC: "M01", Start: now.Add(-time.Hour), End: now.Add(time.Hour)}
	later := MaintenanceWindow{SLC: "M01", Start: now.Add(time.Hour), End: now.Add(2 * time.Hour)}
	for _, c := range []struct {
		name string
		f    InstallationFacts
		want Status
	}{
		{"all servers silent together", InstallationFacts{Servers: []Server{down, down2}}, StatusSiteUnreachable},
		{"one of two silent", InstallationFacts{Servers: []Server{ok, down}}, StatusUnavailable},
		// One server alone cannot tell a dead link from a dead server.
		{"single server silent", InstallationFacts{Servers: []Server{down}}, StatusUnavailable},
		{"site incident still open while one is back", InstallationFacts{Servers: []Server{ok, down}, SiteOutage: true}, StatusSiteUnreachable},
		{"maintenance hides the outage", InstallationFacts{Servers: []Server{down, down2}, Maintenance: []MaintenanceWindow{window}}, StatusMaintenance},
		{"a window later does not", InstallationFacts{Servers: []Server{storage}, Maintenance: []MaintenanceWindow{later}}, StatusError},
		{"error", InstallationFacts{Servers: []Server{storage}}, StatusError},
		{"never reported", InstallationFacts{Servers: []Server{{ID: "p", State: ServerPending}}}, StatusNeverReported},
		{"no servers", InstallationFacts{}, StatusNeverReported},
		{"ok", InstallationFacts{Servers: []Server{ok}}, StatusOK},
	} {
		c.f.Installation = in
		v := Summarize(c.f, now)
		if v.Status != c.want {
			t.Errorf("%s: %s, want %s", c.name, v.Status, c.want)
		}
	}
	paused := InstallationFacts{Installation: in, Servers: []Server{down}, Maintenance: []MaintenanceWindow{window}}
	paused.Installation.CarePlusUntil = DateOf(now).AddDays(-1)
	if v := Summarize(paused, now); v.Status != StatusPaused {
		t.Errorf("Care Plus ended: %s, want paused", v.Status)
	}
	v := Summarize(InstallationFacts{Installation: in, Maintenance: []MaintenanceWindow{window}}, now)
	if v.Maintenance == nil || !v.Maintenance.End.Equal(window.End) || !v.Since.Equal(window.Start) {
		t.Errorf("maintenance view: %+v", v)
	}
}

func TestStatusRanksProblemsBeforeMutedInstallations(t *testing.T) {
	order := []Status{StatusSiteUnreachable, StatusUnavailable, StatusError, StatusWarning, StatusConsentWithdrawn,
		StatusNeverReported, StatusMaintenance, StatusPaused, StatusOK}
	for i := 1; i < len(order); i++ {
		if order[i-1].Rank() <= order[i].Rank() {
			t.Errorf("%s must rank above %s", order[i-1], order[i])
		}
	}
	if StatusMaintenance.NeedsAttention() || !StatusSiteUnreachable.NeedsAttention() {
		t.Error("maintenance is muted; a site outage needs attention")
	}
	counts := CountStatuses([]InstallationView{{Status: StatusMaintenance}})
	if len(counts) != len(Statuses) || counts[StatusMaintenance] != 1 || counts[StatusSiteUnreachable] != 0 {
		t.Errorf("counts: %v", counts)
	}
}
