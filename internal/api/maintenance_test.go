package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/store"
)

// Resolving has one meaning through the API as on the dashboard: a state
// incident whose condition is still reported is refused with
// condition_active, and resolves by itself when its condition clears.
func TestResolvingAReportedConditionIsRefusedWithItsCode(t *testing.T) {
	tn := setup(t, store.SQLite)
	inc := fmt.Sprint(tn.incident)
	status, body := tn.call(t, "alice-technician", "POST", "/api/v1/incidents/"+inc+"/resolve", `{"note":"done"}`)
	if status != 409 || code(body) != keepwatch.ECONDITIONACTIVE || !strings.Contains(body, "acknowledge or assign") {
		t.Fatalf("resolve while reported: %d %s", status, body)
	}
	if status, body := tn.call(t, "alice-technician", "POST", "/api/v1/incidents/"+inc+"/ack", `{"note":"on it"}`); status != 200 {
		t.Fatalf("ack: %d %s", status, body)
	}
	// The server reports the disk fine: keepwatch resolves it.
	n, err := tn.a.Store.Incident(ctx, tn.aliceID, tn.incident)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tn.a.Store.ApplyReport(ctx, keepwatch.Report{ServerID: n.ServerID, Seq: 2, ReceivedAt: time.Now(), Interval: time.Minute, Status: true}); err != nil {
		t.Fatal(err)
	}
	_, body = tn.call(t, "alice-technician", "GET", "/api/v1/incidents/"+inc, "")
	var got keepwatch.Incident
	json.Unmarshal([]byte(body), &got)
	if got.State != keepwatch.IncidentResolved || got.ResolvedBy != keepwatch.ActorKeepwatch {
		t.Fatalf("after the condition cleared: %s", body)
	}
	if status, body := tn.call(t, "alice-technician", "POST", "/api/v1/incidents/"+inc+"/resolve", `{}`); status != 409 || code(body) != "conflict" {
		t.Fatalf("resolve twice: %d %s", status, body)
	}
}

func TestMaintenanceWindowsThroughTheAPI(t *testing.T) {
	tn := setup(t, store.SQLite)
	base := "/api/v1/installations/" + aliceSLC + "/maintenance"
	for _, c := range []struct{ body, field string }{
		{`{"start":"2020-01-01T00:00:00Z","duration_seconds":3600}`, "must start in the future"},
		{`{"duration_seconds":3600000}`, "between one minute and 31 days"},
		{`{}`, "end or its duration_seconds"},
		{`{"duration_seconds":600,"end":"2099-01-01T00:00:00Z"}`, "not both"},
		{`{"duration_seconds":600,"reason":"` + strings.Repeat("x", 201) + `"}`, "at most 200"},
	} {
		status, body := tn.call(t, "alice-technician", "POST", base, c.body)
		if status != 400 || code(body) != "invalid_request" || !strings.Contains(body, c.field) {
			t.Errorf("%s: %d %s", c.body, status, body)
		}
	}
	status, body := tn.call(t, "alice-technician", "POST", base, `{"duration_seconds":7200,"reason":"replacing disks"}`)
	var m keepwatch.MaintenanceWindow
	json.Unmarshal([]byte(body), &m)
	if status != 201 || m.ID == 0 || m.End.Sub(m.Start) != 2*time.Hour || m.CreatedBy != "token:technician" {
		t.Fatalf("set: %d %s", status, body)
	}
	_, body = tn.call(t, "alice-viewer", "GET", "/api/v1/installations/"+aliceSLC, "")
	if !strings.Contains(body, `"status":"maintenance"`) {
		t.Fatalf("installation during maintenance: %s", body)
	}
	_, body = tn.call(t, "alice-viewer", "GET", base, "")
	var list struct{ Maintenance []keepwatch.MaintenanceWindow }
	json.Unmarshal([]byte(body), &list)
	if len(list.Maintenance) != 2 || list.Maintenance[0].ID != m.ID || list.Maintenance[1].ID != tn.window {
		t.Fatalf("list: %s", body)
	}
	// The running window ends now; the scheduled one is cancelled.
	status, body = tn.call(t, "alice-technician", "DELETE", fmt.Sprintf("%s/%d", base, m.ID), "")
	if status != 200 || !strings.Contains(body, `"cancelled":false`) {
		t.Fatalf("end running: %d %s", status, body)
	}
	status, body = tn.call(t, "alice-technician", "DELETE", fmt.Sprintf("%s/%d", base, tn.window), "")
	if status != 200 || !strings.Contains(body, `"cancelled":true`) {
		t.Fatalf("cancel scheduled: %d %s", status, body)
	}
	if status, body := tn.call(t, "alice-technician", "DELETE", fmt.Sprintf("%s/%d", base, tn.window), ""); status != 404 {
		t.Fatalf("cancel twice: %d %s", status, body)
	}
	_, body = tn.call(t, "alice-viewer", "GET", base, "")
	if !strings.Contains(body, `"maintenance":[]`) {
		t.Fatalf("after stopping both: %s", body)
	}
	entries, err := tn.a.Store.AuditLog(ctx, tn.aliceID, 20)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		if strings.HasPrefix(e.Action, "maintenance.") {
			actions = append(actions, e.Action+" "+e.Target)
		}
	}
	if strings.Join(actions, ",") != "maintenance.stop "+aliceSLC+",maintenance.stop "+aliceSLC+",maintenance.set "+aliceSLC {
		t.Fatalf("audited: %v", actions)
	}
}
