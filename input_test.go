package keepwatch

import (
	"testing"
	"time"
)

func TestStateIncidentsCannotBeResolvedWhileReported(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	state := Incident{State: IncidentAcknowledged, Kind: KindStorageFull}
	if err := state.Resolve("user:ann", "", t0, true); ErrorCode(err) != ECONDITIONACTIVE || state.State != IncidentAcknowledged {
		t.Fatalf("resolving a reported condition: %v, %s", err, state.State)
	}
	// Once the server no longer reports it (consent withdrawn, server
	// removed), a person may close it.
	if err := state.Resolve("user:ann", "server replaced", t0, false); err != nil || state.State != IncidentResolved {
		t.Fatalf("resolving a condition no longer reported: %v", err)
	}
	event := Incident{State: IncidentOpen, Kind: KindArchiveMoveFailed, Event: true}
	if err := event.Resolve("user:ann", "", t0, true); err != nil || event.State != IncidentResolved {
		t.Fatalf("resolving an event: %v", err)
	}
	for _, k := range []string{KindServerUnavailable, KindSiteUnreachable, KindCameraUnreachable} {
		if (&Incident{Kind: k}).ResolvesWhen() == "" {
			t.Errorf("%s: no explanation", k)
		}
	}
}

func TestMaintenanceStopCancelsOrEnds(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	later := MaintenanceWindow{Start: now.Add(time.Hour), End: now.Add(2 * time.Hour)}
	if _, cancel, err := later.Stop(now); err != nil || !cancel {
		t.Fatalf("a scheduled window: cancel %v, %v", cancel, err)
	}
	running := MaintenanceWindow{Start: now.Add(-time.Hour), End: now.Add(time.Hour)}
	if m, cancel, err := running.Stop(now); err != nil || cancel || !m.End.Equal(now) {
		t.Fatalf("a running window: %+v %v %v", m, cancel, err)
	}
	over := MaintenanceWindow{Start: now.Add(-2 * time.Hour), End: now.Add(-time.Hour)}
	if _, _, err := over.Stop(now); ErrorCode(err) != ECONFLICT {
		t.Fatalf("a window over: %v", err)
	}
	_, err := NewMaintenance("M01", now.Add(-time.Hour), now.Add(time.Hour), "", "user:ann", now)
	if FieldOf(err) != "start" || ErrorCode(err) != EINVALID {
		t.Fatalf("a start in the past: %v (field %q)", err, FieldOf(err))
	}
	if _, err := NewMaintenance("M01", now, now.Add(40*24*time.Hour), "", "user:ann", now); FieldOf(err) != "end" {
		t.Fatalf("too long: %v", err)
	}
}

func TestPeopleAndTimesReadTheSameEverywhere(t *testing.T) {
	for in, want := range map[string]string{"user:sam@example.com": "sam@example.com", "token:crm-sync": "API token crm-sync", "keepwatch": "keepwatch"} {
		if got := ActorName(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
	at := time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC)
	if FormatTime(at) != "2026-12-01 22:00 UTC" || FormatTime(time.Time{}) != "" {
		t.Errorf("format: %q", FormatTime(at))
	}
	for _, s := range []string{"2026-12-01 22:00", "2026-12-01T22:00", " 2026-12-01 22:00 UTC "} {
		if got, err := ParseTime(s); err != nil || !got.Equal(at) {
			t.Errorf("parse %q: %v %v", s, got, err)
		}
	}
	if _, err := ParseTime("12/01/2026, 10:00 PM"); err == nil {
		t.Error("a US date parsed")
	}
	if KindLabel(KindStorageFull) != "Storage full" || KindLabel("thermal_alarm") != "Thermal alarm" {
		t.Error("kind labels")
	}
}
