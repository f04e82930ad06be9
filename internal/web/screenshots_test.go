package web_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"keepwatch"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
)

// TestScreenshots renders the pages from a demo-like dataset into the
// directory named by KEEPWATCH_SCREENSHOTS (make screenshots), at laptop
// and phone widths, and fails if a page is wider than the phone.
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("KEEPWATCH_SCREENSHOTS")
	if dir == "" {
		t.Skip("set KEEPWATCH_SCREENSHOTS=DIR to render the dashboard's screenshots")
	}
	must(t, os.MkdirAll(dir, 0o755))
	f := newFixture(t, fixtureOptions{dialect: store.SQLite, passwords: true, listen: true, seed: seedDemo})
	b := newBrowser(t, 4*time.Minute)
	f.signIn(t, b, f.emails["alice-owner"])
	site := demoIncident(t, f, keepwatch.KindSiteUnreachable)
	pages := []struct{ name, path, wait string }{
		{"overview", "/", "#rows"},
		{"installation", "/installations/DEMO-1001", "#conditions"},
		{"drives", "/installations/DEMO-1001#drives", "#drives"},
		{"incidents", "/incidents", "#incident-list"},
		{"incident", fmt.Sprintf("/incidents/%d", site), "#history"},
		{"registration", "/registrations", "#register-form"},
		{"settings", "/settings", "#audit"},
		{"notifications", "/notifications", "#rules"},
		{"account", "/account", "#password"},
	}
	for _, size := range []struct {
		name          string
		width, height int64
	}{{"laptop", 1366, 860}, {"phone", 390, 844}} {
		for _, p := range pages {
			run(t, b,
				chromedp.EmulateViewport(size.width, size.height),
				chromedp.Navigate(f.base+p.path),
				chromedp.WaitVisible(chromedp.CSS(p.wait)),
				chromedp.WaitVisible(chromedp.CSS(`#live-status[data-state="on"], body:not(:has(#live))`)),
			)
			if over := eval[int](t, b, `document.documentElement.scrollWidth - window.innerWidth`); over > 0 {
				t.Errorf("%s at %s: %d px wider than the window", p.path, size.name, over)
			}
			shot := chromedp.FullScreenshot(100) // 100: PNG
			if p.name == "overview" || p.name == "drives" || size.name == "laptop" && p.name != "settings" && p.name != "incident" {
				shot = chromedp.CaptureScreenshot() // the first screen, as a person sees it
			}
			png, err := chromedp.Run(b, shot)
			must(t, err)
			file := filepath.Join(dir, p.name+"-"+size.name+".png")
			must(t, os.WriteFile(file, png, 0o644))
			t.Logf("wrote %s (%d KiB)", file, len(png)>>10)
		}
	}
}

// demoIncident is the id of the first unresolved incident of a kind in
// the demo data.
func demoIncident(t testing.TB, f *fixture, kind string) int64 {
	t.Helper()
	ins, err := f.a.Store.Incidents(ctx, f.alice, "", 500)
	must(t, err)
	for _, n := range ins {
		if n.Kind == kind {
			return n.ID
		}
	}
	t.Fatalf("no %s incident in the demo data", kind)
	return 0
}

// seedDemo gives alice the kind of fleet the demo runs: most installations
// healthy, one of each problem, a site offline, some history.
func seedDemo(f *fixture) {
	t, s := f.t, f.a.Store
	now := time.Now().UTC().Truncate(time.Minute)
	clock := now.Add(-40 * 24 * time.Hour)
	s.Now = func() time.Time { return clock }
	defer func() { s.Now = time.Now }()
	today := keepwatch.DateOf(now)
	seq := map[string]uint64{}
	send := func(id string, at time.Time, status bool, conds ...string) {
		seq[id]++
		r := keepwatch.Report{ServerID: id, Seq: seq[id], ReceivedAt: at, Interval: time.Minute, Status: status, AgentVersion: "1.4.2", Conditions: []keepwatch.Condition{}}
		for _, c := range conds {
			kind, subject, _ := strings.Cut(c, ":")
			r.Conditions = append(r.Conditions, keepwatch.Condition{Kind: kind, Subject: subject, Severity: keepwatch.SeverityOf(kind), Since: at})
		}
		_, err := s.ApplyReport(ctx, r)
		must(t, err)
	}
	type site struct {
		customer, product string
		servers           int
		until             int // Care Plus days from today
		scenario          string
	}
	sites := []site{
		{"Harbor Logistics", "XProtect Corporate 2016", 2, 400, "storage_full"},
		{"Northgate Mall", "XProtect Expert 2016", 3, 200, "site"},
		{"City of Ashford", "XProtect Corporate 2016", 2, 90, "camera"},
		{"Riverside Hospital", "XProtect Enterprise 2013", 1, 310, "unavailable"},
		{"Blue Lake Casino", "Husky M50", 1, 21, "media_db"},
		{"Metro Transit Depot 4", "XProtect Professional 2013", 2, 150, "storage_low"},
		{"Oakwood School District", "Husky M30", 1, 75, "license"},
		{"Summit Data Center", "XProtect Corporate 2016", 3, 500, "archive"},
		{"Greenfield Farms", "Husky M10", 1, -3, "paused"},
		{"Pinecrest Hotel", "XProtect Expert 2016", 1, 12, "never"},
		{"Sterling Bank HQ", "XProtect Corporate 2016", 2, 260, "consent"},
		{"Westbrook Airport P3", "XProtect Expert 2016", 2, 45, "maintenance"},
		{"Cedar Valley Prison", "XProtect Corporate 2016", 3, 330, ""},
		{"Lakeside Stadium", "Husky M50", 2, 120, ""},
		{"Iron Works Foundry", "Husky M30", 1, 18, ""},
		{"Maple Street Pharmacy", "Husky M10", 1, 230, ""},
		{"Coastal Port Authority", "XProtect Corporate 2016", 3, 410, ""},
		{"Elm Grove Retail Park", "XProtect Professional 2013", 1, 95, ""},
		{"Union Rail Yard", "XProtect Expert 2016", 2, 170, ""},
		{"Silver Creek Mine", "Husky M30", 1, 60, ""},
		{"Crown Plaza Offices", "XProtect Enterprise 2013", 1, 280, ""},
		{"Redwood University", "XProtect Corporate 2016", 3, 365, ""},
	}
	// The fixture's own installations are not part of the picture.
	for _, slc := range []string{aliceSLC, aliceIdleSLC, aliceOKSLC} {
		must(t, s.Release(ctx, f.alice, slc))
	}
	for i, st := range sites {
		clock = now.Add(-40 * 24 * time.Hour)
		slc := fmt.Sprintf("DEMO-%04d", 1001+i)
		instID, err := s.CreateInstallation(ctx, keepwatch.Installation{SLC: slc, Customer: st.customer, Product: st.product, Cameras: 16 + 8*(i%5),
			CarePlusUntil: today.AddDays(st.until)}, secret.Hash("k"))
		must(t, err)
		must(t, s.Register(ctx, f.alice, slc))
		var ids []string
		for n := 1; n <= st.servers; n++ {
			id := fmt.Sprintf("de%022x%08x", instID, n)
			_, err := s.Enroll(ctx, keepwatch.Enrollment{InstallationID: instID, ID: id, Name: fmt.Sprintf("RS-%02d", n), Key: make([]byte, 32), Interval: time.Minute, AgentVersion: "1.4.2"})
			must(t, err)
			ids = append(ids, id)
		}
		if st.scenario == "never" {
			continue
		}
		for _, id := range ids {
			send(id, clock, true)
		}
		first := ids[0]
		ago := func(d time.Duration) time.Time { return now.Add(-d) }
		switch st.scenario {
		case "storage_full":
			// Ten days ago RS-01 was down for three hours.
			clock = ago(10 * 24 * time.Hour)
			_, err := s.MarkUnavailable(ctx, clock, []keepwatch.Expiry{{ID: first, LastSeen: clock.UnixMilli()}})
			must(t, err)
			send(first, ago(10*24*time.Hour-3*time.Hour), true)
			send(first, ago(26*time.Hour), true, "storage_low:E:\\Recordings")
			send(first, ago(2*time.Hour), true, `storage_full:E:\Recordings`)
			send(ids[1], ago(50*time.Minute), true, "camera_unreachable:cam-07 Gate North")
		case "camera":
			send(first, ago(35*time.Minute), true, "camera_unreachable:cam-03 Entrance", "camera_unreachable:cam-11 Car park")
		case "media_db":
			send(first, ago(5*time.Hour), true, `media_db_write_failed:D:\MediaDatabase`)
		case "storage_low":
			send(first, ago(3*time.Hour), true, `storage_low:F:\Archive`)
		case "license":
			send(first, ago(4*24*time.Hour), true, "license_exceeded")
		case "archive":
			r := keepwatch.Report{ServerID: first, ReceivedAt: ago(7 * time.Hour), Interval: time.Minute, Events: []keepwatch.Event{
				{Kind: "archive_move_failed", Subject: "Archive 2026-11-24", Severity: keepwatch.SeverityError, At: ago(7 * time.Hour)}}}
			seq[first]++
			r.Seq = seq[first]
			_, err := s.ApplyReport(ctx, r)
			must(t, err)
		case "consent":
			off := false
			for _, id := range ids {
				seq[id]++
				_, err := s.ApplyReport(ctx, keepwatch.Report{ServerID: id, Seq: seq[id], ReceivedAt: ago(2 * 24 * time.Hour), Interval: time.Minute, Consent: &off})
				must(t, err)
			}
		case "maintenance":
			send(first, ago(20*time.Minute), true, "camera_unreachable:cam-02 Lobby")
			clock = ago(30 * time.Minute)
			_, err := setMaintenance(ctx, s, f.alice, slc, clock, now.Add(3*time.Hour), "replacing switches", "user:"+f.emails["alice-technician"])
			must(t, err)
		}
		// Everyone alive is heard from now; the silent ones stop earlier.
		for _, id := range ids {
			switch {
			case st.scenario == "site":
				send(id, ago(79*time.Minute), false)
				_, err := s.MarkUnavailable(ctx, ago(75*time.Minute), []keepwatch.Expiry{{ID: id, LastSeen: ago(79 * time.Minute).UnixMilli(), Window: time.Minute}})
				must(t, err)
			case st.scenario == "unavailable":
				send(id, ago(22*time.Minute), false)
				_, err := s.MarkUnavailable(ctx, ago(18*time.Minute), []keepwatch.Expiry{{ID: id, LastSeen: ago(22 * time.Minute).UnixMilli(), Window: 0}})
				must(t, err)
			case st.scenario == "consent":
			default:
				send(id, now, false)
			}
		}
	}
	seedDrives(f, now)
	// Some work already done by the team.
	clock = now.Add(-time.Hour)
	ins, err := s.Incidents(ctx, f.alice, "", 100)
	must(t, err)
	for _, n := range ins {
		switch n.Kind {
		case "media_db_write_failed":
			_, err := s.AckIncident(ctx, f.alice, n.ID, "user:"+f.emails["alice-technician"], "Called the site, DB disk is failing; replacement ordered")
			must(t, err)
			_, err = s.AssignIncident(ctx, f.alice, n.ID, f.users["alice-technician"], "user:"+f.emails["alice-owner"])
			must(t, err)
		case "license_exceeded":
			_, err := s.AssignIncident(ctx, f.alice, n.ID, f.users["alice-owner"], "user:"+f.emails["alice-owner"])
			must(t, err)
		}
	}
	for i, e := range []keepwatch.AuditEntry{
		{Action: "session.login", Actor: "user:" + f.emails["alice-technician"], Target: f.emails["alice-technician"], Source: "web"},
		{Action: "incident.ack", Actor: "user:" + f.emails["alice-technician"], Target: "incident 7", Detail: "Media database write failed on DEMO-1005: Called the site", Source: "web"},
		{Action: "maintenance.set", Actor: "user:" + f.emails["alice-technician"], Target: "DEMO-1012", Detail: "3 h: replacing switches", Source: "web"},
		{Action: "registration.add", Actor: "token:crm-sync", Target: "DEMO-1022", Source: "api"},
		{Action: "token.create", Actor: "user:" + f.emails["alice-owner"], Target: "crm-sync", Detail: "role owner", Source: "web"},
	} {
		e.IntegratorID, e.At, e.RemoteAddr = f.alice, now.Add(-time.Duration(5-i)*17*time.Minute), "203.0.113.24"
		must(t, s.Audit(ctx, e))
	}
	_, err = s.CreateToken(ctx, f.alice, "crm-sync", keepwatch.RoleOwner, secret.Hash(secret.New("kw_")))
	must(t, err)
}

// setMaintenance validates and stores a window, as the API and the
// dashboard do.
func setMaintenance(ctx context.Context, s *store.Store, integratorID int64, slc string, start, end time.Time, reason, by string) (keepwatch.MaintenanceWindow, error) {
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	m, err := keepwatch.NewMaintenance(slc, start, end, reason, by, now)
	if err != nil {
		return m, err
	}
	return s.SetMaintenance(ctx, integratorID, m)
}

// seedDrives gives Harbor Logistics (DEMO-1001) 40 days of drive samples,
// hourly: on RS-01 a recording drive filling towards full in about 9
// days and keeping 19 days of footage where 30 are required, and an
// archive drive filling slowly; on RS-02 a recording drive the recorder
// holds at about 95 %.
func seedDrives(f *fixture, now time.Time) {
	t, s := f.t, f.a.Store
	const tib = uint64(1) << 40
	srv, err := s.Servers(ctx, f.alice, "DEMO-1001")
	must(t, err)
	_, err = s.SetDriveSettings(ctx, f.alice, "DEMO-1001", keepwatch.DriveSettings{RequiredRetentionDays: 30})
	must(t, err)
	var rs1, rs2 []keepwatch.DriveReading
	for h := 40 * 24; h >= 0; h-- {
		at := now.Add(-time.Duration(h) * time.Hour)
		days := float64(40*24-h) / 24
		used := uint64(float64(8*tib) * (0.45 + 0.012*days))
		rs1 = append(rs1, keepwatch.DriveReading{Path: `E:\Recordings`, Role: keepwatch.DriveRecording,
			DriveSample: keepwatch.DriveSample{At: at, Capacity: 8 * tib, Free: 8*tib - used, OldestRecording: at.Add(-19 * 24 * time.Hour)}},
			keepwatch.DriveReading{Path: `F:\Archive`, Role: keepwatch.DriveArchive,
				DriveSample: keepwatch.DriveSample{At: at, Capacity: 16 * tib, Free: 16*tib - uint64(float64(16*tib)*(0.3+0.002*days))}})
		level := 0.945 + float64((40*24-h)%50)/5000
		rs2 = append(rs2, keepwatch.DriveReading{Path: `D:\Recordings`, Role: keepwatch.DriveRecording,
			DriveSample: keepwatch.DriveSample{At: at, Capacity: 12 * tib, Free: 12*tib - uint64(float64(12*tib)*level), OldestRecording: at.Add(-34 * 24 * time.Hour)}})
	}
	must(t, s.AddDriveSamples(ctx, srv[0].ID, rs1))
	must(t, s.AddDriveSamples(ctx, srv[1].ID, rs2))
	_, err = s.CompactDrives(ctx, now, 100)
	must(t, err)
	for _, x := range srv {
		_, err := keepwatch.JudgeDrives(ctx, s, x.ID, now)
		must(t, err)
	}
}
