package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"keepwatch"
	"keepwatch/internal/store"
)

// The drives API shows each drive's forecast and retention; setting a
// required retention raises retention_short at once, audited, and
// clearing it clears the condition.
func TestDrivesShowForecastAndSettingsJudgeAtOnce(t *testing.T) {
	tn := setup(t, store.SQLite)
	path := "/api/v1/installations/" + aliceSLC
	status, body := tn.call(t, "alice-viewer", "GET", path+"/drives", "")
	if status != 200 {
		t.Fatalf("drives: %d %s", status, body)
	}
	var got struct {
		Drives   []keepwatch.DriveStatus
		Settings struct {
			ForecastHorizonDays int `json:"forecast_horizon_days"`
		}
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Drives) != 1 || got.Settings.ForecastHorizonDays != 14 {
		t.Fatalf("drives %s", body)
	}
	d := got.Drives[0]
	// 4 TiB free, growing 16 GiB an hour: full in ~10.7 days.
	if d.Path != `E:\Recordings` || d.Server != "RS-01" || d.DaysUntilFull == nil || *d.DaysUntilFull < 9 || *d.DaysUntilFull > 12 ||
		d.FullAt == nil || d.RetentionDays == nil || *d.RetentionDays != 20 || d.RequiredRetentionDays != 0 {
		t.Fatalf("drive %s", body)
	}
	for _, k := range []string{`"days_until_full"`, `"full_at"`, `"oldest_recording_at"`, `"retention_days"`, `"required_retention_days"`, `"capacity_bytes"`, `"free_bytes"`} {
		if !strings.Contains(body, k) {
			t.Fatalf("drives lack %s: %s", k, body)
		}
	}
	status, body = tn.call(t, "alice-viewer", "GET", path+"/drives/series?path=E:%5CRecordings&range=30d", "")
	if status != 200 || !strings.Contains(body, `"resolution":"day"`) || strings.Count(body, `"used_bytes"`) < 1 {
		t.Fatalf("series: %d %s", status, body)
	}

	status, body = tn.call(t, "alice-technician", "PUT", path+"/drive-settings", `{"required_retention_days":30,"drives":[{"path":"F:\\Archive","required_retention_days":90}]}`)
	if status != 200 || !strings.Contains(body, `"required_retention_days":30`) || !strings.Contains(body, `F:\\Archive`) {
		t.Fatalf("settings: %d %s", status, body)
	}
	conds := func() map[string]keepwatch.Condition {
		srv, err := tn.a.Store.Servers(ctx, tn.aliceID, aliceSLC)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]keepwatch.Condition{}
		for _, c := range srv[0].Conditions {
			m[c.Kind] = c
		}
		return m
	}
	c, ok := conds()[keepwatch.KindRetentionShort]
	if !ok || c.Severity != keepwatch.SeverityWarning || c.Message != "footage kept 20 days, 30 required" {
		t.Fatalf("retention_short %+v", conds())
	}
	if _, ok := conds()[keepwatch.KindStorageForecast]; !ok {
		t.Fatalf("storage_forecast not raised: %+v", conds())
	}
	log, err := tn.a.Store.AuditLog(ctx, tn.aliceID, 5)
	if err != nil || len(log) == 0 || log[0].Action != "drives.settings" || !strings.Contains(log[0].Detail, "required retention 30 days") {
		t.Fatalf("audit %+v %v", log, err)
	}
	// A horizon under the ~10.7 days clears the forecast, no requirement
	// clears the retention.
	if status, body := tn.call(t, "alice-owner", "PUT", path+"/drive-settings", `{"forecast_horizon_days":7}`); status != 200 {
		t.Fatalf("settings: %d %s", status, body)
	}
	if m := conds(); len(m) != 1 {
		t.Fatalf("conditions after clearing %+v, want storage_full only", m)
	}
}
