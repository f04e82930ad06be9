package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/api"
	"keepwatch/internal/app"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

var ctx = context.Background()

const (
	aliceSLC      = "ALICE-0001"
	aliceCustomer = "Alice's Secret Customer"
	bobSLC        = "BOB-0001"
)

// A key in alice's webhook URLs, and their signing secret: only her
// owners may ever read the first, nobody the second.
const (
	hookKey    = "alice-hook-key-8d1f"
	hookSecret = "whsec_alice_secret_5c2e"
)

// tenants is three integrators' worth of data behind a real TLS server.
type tenants struct {
	srv      *httptest.Server
	a        *app.App
	tokens   map[string]string // alice-owner, alice-technician, alice-viewer, bob-owner
	incident int64             // one of alice's incidents
	aliceID  int64
	channel  int64 // alice's channels: one to test and delete, one for rules
	keepCh   int64
	rule     int64
	user     int64 // a user of alice's to change and remove
	token    int64 // a token of alice's to revoke
	window   int64 // a maintenance window alice scheduled
	// pending re-enrollments of two of alice's servers: one to approve,
	// one to reject
	approve, reject int64
}

func setup(t *testing.T, dialect string) *tenants {
	t.Helper()
	cfg := app.Config{Interval: time.Minute, InsecureHTTP: true, DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if dialect == store.Postgres {
		cfg.DB, cfg.SecretKey = testutil.DSN(t, dialect), testutil.SecretKey
	}
	a, err := app.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Store.Close() })
	s := a.Store
	tn := &tenants{a: a, tokens: map[string]string{}}
	until, _ := keepwatch.ParseDate("2099-01-01")
	for _, who := range []struct{ name, slc, customer string }{{"alice", aliceSLC, aliceCustomer}, {"bob", bobSLC, "Bob's Customer"}} {
		in, err := s.CreateIntegrator(ctx, who.name)
		if err != nil {
			t.Fatal(err)
		}
		if who.name == "alice" {
			tn.aliceID = in.ID
		}
		roles := []keepwatch.Role{keepwatch.RoleOwner}
		if who.name == "alice" {
			roles = append(roles, keepwatch.RoleTechnician, keepwatch.RoleViewer)
		}
		for _, r := range roles {
			tok := secret.New("kw_")
			if _, err := s.CreateToken(ctx, in.ID, string(r), r, secret.Hash(tok)); err != nil {
				t.Fatal(err)
			}
			tn.tokens[who.name+"-"+string(r)] = tok
		}
		instID, err := s.CreateInstallation(ctx, keepwatch.Installation{SLC: who.slc, Customer: who.customer, Product: "XProtect", Cameras: 4, CarePlusUntil: until}, secret.Hash("k"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Register(ctx, in.ID, who.slc); err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("%032x", instID)
		if _, err := s.Enroll(ctx, keepwatch.Enrollment{InstallationID: instID, ID: id, Name: "RS-01", Key: make([]byte, 32), Interval: time.Minute}); err != nil {
			t.Fatal(err)
		}
		r := keepwatch.Report{ServerID: id, Seq: 1, ReceivedAt: time.Now(), Interval: time.Minute, Status: true,
			Conditions: []keepwatch.Condition{{Kind: "storage_full", Subject: "E:", Severity: keepwatch.SeverityError}}}
		if _, err := s.ApplyReport(ctx, r); err != nil {
			t.Fatal(err)
		}
		// A day of hourly samples of a drive.
		var samples []keepwatch.DriveReading
		for h := 24; h >= 0; h-- {
			at := time.Now().Add(-time.Duration(h) * time.Hour)
			samples = append(samples, keepwatch.DriveReading{Path: `E:\Recordings`, Role: keepwatch.DriveRecording,
				DriveSample: keepwatch.DriveSample{At: at, Capacity: 8 << 40, Free: 4<<40 - uint64(24-h)<<34, OldestRecording: at.Add(-20 * 24 * time.Hour)}})
		}
		if err := s.AddDriveSamples(ctx, id, samples); err != nil {
			t.Fatal(err)
		}
		if who.name == "alice" {
			id2 := fmt.Sprintf("%032x", instID+1000)
			if _, err := s.Enroll(ctx, keepwatch.Enrollment{InstallationID: instID, ID: id2, Name: "RS-02", Key: make([]byte, 32), Interval: time.Minute}); err != nil {
				t.Fatal(err)
			}
			for i, sid := range []string{id, id2} {
				rid, err := s.RequestReenrollment(ctx, keepwatch.Enrollment{InstallationID: instID, ID: sid, Key: bytes.Repeat([]byte{1}, 32)}, "192.0.2.7")
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					tn.approve = rid
				} else {
					tn.reject = rid
				}
			}
			ins, err := s.Incidents(ctx, in.ID, "", 10)
			if err != nil || len(ins) != 1 {
				t.Fatalf("alice incidents: %v %v", ins, err)
			}
			tn.incident = ins[0].ID
		}
	}
	for i, name := range []string{"ops mail", "ops hook"} {
		c, err := s.CreateChannel(ctx, tn.aliceID, keepwatch.Channel{Name: name, Type: keepwatch.ChannelWebhook, Target: "https://127.0.0.1:9/hook?key=" + hookKey,
			Secret: hookSecret, Enabled: true})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			tn.channel = c.ID
		} else {
			tn.keepCh = c.ID
		}
	}
	if tn.user, err = s.CreateUser(ctx, tn.aliceID, "spare@alice.example", "x", keepwatch.RoleTechnician); err != nil {
		t.Fatal(err)
	}
	if tn.token, err = s.CreateToken(ctx, tn.aliceID, "spare", keepwatch.RoleViewer, secret.Hash(secret.New("kw_"))); err != nil {
		t.Fatal(err)
	}
	r, err := s.CreateRule(ctx, tn.aliceID, keepwatch.Rule{Name: "all", ChannelID: tn.keepCh, MinSeverity: keepwatch.SeverityWarning, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	tn.rule = r.ID
	m, err := s.SetMaintenance(ctx, tn.aliceID, keepwatch.MaintenanceWindow{SLC: aliceSLC, Start: time.Now().Add(24 * time.Hour), End: time.Now().Add(26 * time.Hour), CreatedBy: "user:owner"})
	if err != nil {
		t.Fatal(err)
	}
	tn.window = m.ID
	tn.srv = httptest.NewTLSServer(a.Handler())
	t.Cleanup(tn.srv.Close)
	return tn
}

func (tn *tenants) call(t *testing.T, who, method, path, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, tn.srv.URL+path, rd)
	if tok := tn.tokens[who]; tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if strings.HasSuffix(path, "/events") {
		c, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		req = req.WithContext(c)
	}
	resp, err := tn.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body) // an event stream ends with the request's timeout
	return resp.StatusCode, string(b)
}

func code(body string) string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	json.Unmarshal([]byte(body), &e)
	return e.Error.Code
}

// access is what each principal gets from one route.
type access struct {
	path, body string
	// alice is the status her owner gets; bob's answer must be bobStatus
	// with bobCode, and must not mention Alice's data.
	alice     int
	bobStatus int
	bobCode   string
}

// TestEveryRouteIsTenantIsolated checks every API route for anonymous
// callers, another integrator's owner, and the data's owner. A route
// added without an entry here fails the test.
func TestEveryRouteIsTenantIsolated(t *testing.T) {
	for _, dialect := range testutil.Dialects {
		t.Run(dialect, func(t *testing.T) {
			tn := setup(t, dialect)
			inc := fmt.Sprint(tn.incident)
			ch, keep, rule := fmt.Sprint(tn.channel), fmt.Sprint(tn.keepCh), fmt.Sprint(tn.rule)
			user, token := fmt.Sprint(tn.user), fmt.Sprint(tn.token)
			cases := map[string]access{
				"GET /api/v1/installations":               {"/api/v1/installations?filter=all", "", 200, 200, ""},
				"GET /api/v1/installations/{slc}":         {"/api/v1/installations/" + aliceSLC, "", 200, 404, "not_found"},
				"GET /api/v1/installations/{slc}/servers": {"/api/v1/installations/" + aliceSLC + "/servers", "", 200, 404, "not_found"},
				"GET /api/v1/incidents":                   {"/api/v1/incidents", "", 200, 200, ""},
				"GET /api/v1/incidents/{id}":              {"/api/v1/incidents/" + inc, "", 200, 404, "not_found"},
				"POST /api/v1/incidents/{id}/ack":         {"/api/v1/incidents/" + inc + "/ack", `{"note":"on it"}`, 200, 404, "not_found"},
				// Its storage is still full: it resolves when that clears.
				"POST /api/v1/incidents/{id}/resolve":                 {"/api/v1/incidents/" + inc + "/resolve", `{}`, 409, 404, "not_found"},
				"POST /api/v1/registrations":                          {"/api/v1/registrations", `{"slc":"` + aliceSLC + `"}`, 201, 409, "conflict"},
				"DELETE /api/v1/registrations/{slc}":                  {"/api/v1/registrations/" + aliceSLC, "", 204, 404, "not_found"},
				"GET /api/v1/events":                                  {"/api/v1/events", "", 200, 200, ""},
				"GET /api/v1/openapi.json":                            {"/api/v1/openapi.json", "", 200, 200, ""},
				"GET /api/v1/incidents/{id}/history":                  {"/api/v1/incidents/" + inc + "/history", "", 200, 404, "not_found"},
				"GET /api/v1/notifications":                           {"/api/v1/notifications", "", 200, 200, ""},
				"GET /api/v1/channels":                                {"/api/v1/channels", "", 200, 200, ""},
				"POST /api/v1/channels":                               {"/api/v1/channels", `{"name":"pager","type":"webhook","target":"https://127.0.0.1:9/pager"}`, 201, 201, ""},
				"POST /api/v1/channels/{id}/test":                     {"/api/v1/channels/" + ch + "/test", "", 202, 404, "not_found"},
				"DELETE /api/v1/channels/{id}":                        {"/api/v1/channels/" + ch, "", 204, 404, "not_found"},
				"GET /api/v1/rules":                                   {"/api/v1/rules", "", 200, 200, ""},
				"POST /api/v1/rules":                                  {"/api/v1/rules", `{"name":"errors","channel_id":` + keep + `,"min_severity":"error"}`, 201, 400, "invalid_request"},
				"DELETE /api/v1/rules/{id}":                           {"/api/v1/rules/" + rule, "", 204, 404, "not_found"},
				"POST /api/v1/incidents/{id}/assign":                  {"/api/v1/incidents/" + inc + "/assign", `{"user_id":` + user + `}`, 200, 404, "not_found"},
				"GET /api/v1/users":                                   {"/api/v1/users", "", 200, 200, ""},
				"POST /api/v1/users":                                  {"/api/v1/users", `{"email":"new@example.com","role":"viewer"}`, 201, 201, ""},
				"PATCH /api/v1/users/{id}":                            {"/api/v1/users/" + user, `{"role":"viewer"}`, 200, 404, "not_found"},
				"DELETE /api/v1/users/{id}":                           {"/api/v1/users/" + user, "", 204, 404, "not_found"},
				"GET /api/v1/tokens":                                  {"/api/v1/tokens", "", 200, 200, ""},
				"POST /api/v1/tokens":                                 {"/api/v1/tokens", `{"name":"export","role":"viewer"}`, 201, 201, ""},
				"DELETE /api/v1/tokens/{id}":                          {"/api/v1/tokens/" + token, "", 204, 404, "not_found"},
				"GET /api/v1/audit":                                   {"/api/v1/audit", "", 200, 200, ""},
				"GET /api/v1/installations/{slc}/maintenance":         {"/api/v1/installations/" + aliceSLC + "/maintenance", "", 200, 404, "not_found"},
				"POST /api/v1/installations/{slc}/maintenance":        {"/api/v1/installations/" + aliceSLC + "/maintenance", `{"duration_seconds":3600,"reason":"disk swap"}`, 201, 404, "not_found"},
				"DELETE /api/v1/installations/{slc}/maintenance/{id}": {"/api/v1/installations/" + aliceSLC + "/maintenance/" + fmt.Sprint(tn.window), "", 200, 404, "not_found"},
				"GET /api/v1/installations/{slc}/drives":              {"/api/v1/installations/" + aliceSLC + "/drives", "", 200, 404, "not_found"},
				"GET /api/v1/installations/{slc}/drives/series":       {"/api/v1/installations/" + aliceSLC + "/drives/series?path=E:%5CRecordings&range=90d", "", 200, 404, "not_found"},
				"GET /api/v1/installations/{slc}/drive-settings":      {"/api/v1/installations/" + aliceSLC + "/drive-settings", "", 200, 404, "not_found"},
				"PUT /api/v1/installations/{slc}/drive-settings":      {"/api/v1/installations/" + aliceSLC + "/drive-settings", `{"required_retention_days":30}`, 200, 404, "not_found"},
				"GET /api/v1/reenrollments":                           {"/api/v1/reenrollments", "", 200, 200, ""},
				"POST /api/v1/reenrollments/{id}/approve":             {"/api/v1/reenrollments/" + fmt.Sprint(tn.approve) + "/approve", "", 200, 404, "not_found"},
				"POST /api/v1/reenrollments/{id}/reject":              {"/api/v1/reenrollments/" + fmt.Sprint(tn.reject) + "/reject", "", 200, 404, "not_found"},
				"POST /api/v1/installations/{slc}/enrollment-key":     {"/api/v1/installations/" + aliceSLC + "/enrollment-key", "", 201, 404, "not_found"},
				"DELETE /api/v1/installations/{slc}/enrollment-key":   {"/api/v1/installations/" + aliceSLC + "/enrollment-key", "", 204, 404, "not_found"},
			}
			routes := tn.a.API.Routes()
			for _, rt := range routes {
				key := rt.Method + " " + rt.Pattern
				c, ok := cases[key]
				if !ok {
					t.Errorf("route %s has no access-control entry in this test", key)
					continue
				}
				// Anonymous.
				status, body := tn.call(t, "", rt.Method, c.path, c.body)
				if rt.Role == "" {
					if status != 200 {
						t.Errorf("%s anonymous: %d", key, status)
					}
				} else if status != 401 || code(body) != "unauthorized" {
					t.Errorf("%s anonymous: %d %s", key, status, body)
				}
				// A forged token is no better.
				tn.tokens["forged"] = "kw_" + strings.Repeat("A", 43)
				if status, _ := tn.call(t, "forged", rt.Method, c.path, c.body); rt.Role != "" && status != 401 {
					t.Errorf("%s forged token: %d", key, status)
				}
				// Another integrator's owner.
				status, body = tn.call(t, "bob-owner", rt.Method, c.path, c.body)
				if status != c.bobStatus || code(body) != c.bobCode {
					t.Errorf("%s as bob: %d %s, want %d %s", key, status, body, c.bobStatus, c.bobCode)
				}
				if rt.Role != "" && (strings.Contains(body, aliceSLC) || strings.Contains(body, aliceCustomer)) {
					t.Errorf("%s as bob leaks alice's data: %s", key, body)
				}
			}
			// Roles within Alice's integrator, before her owner changes
			// anything: viewers read, technicians act on incidents, owners
			// manage registrations.
			for _, rc := range []struct {
				who, method, path, body string
				want                    int
			}{
				{"alice-viewer", "GET", "/api/v1/installations", "", 200},
				{"alice-viewer", "POST", "/api/v1/incidents/" + inc + "/ack", `{}`, 403},
				{"alice-viewer", "POST", "/api/v1/incidents/" + inc + "/resolve", `{}`, 403},
				{"alice-technician", "POST", "/api/v1/registrations", `{"slc":"` + aliceSLC + `"}`, 403},
				{"alice-technician", "DELETE", "/api/v1/registrations/" + aliceSLC, "", 403},
				{"alice-viewer", "DELETE", "/api/v1/registrations/" + aliceSLC, "", 403},
				{"alice-technician", "GET", "/api/v1/channels", "", 403},
				{"alice-viewer", "POST", "/api/v1/installations/" + aliceSLC + "/maintenance", `{"duration_seconds":60}`, 403},
				{"alice-viewer", "DELETE", "/api/v1/installations/" + aliceSLC + "/maintenance/" + fmt.Sprint(tn.window), "", 403},
				{"alice-viewer", "GET", "/api/v1/channels", "", 403},
				{"alice-viewer", "POST", "/api/v1/incidents/" + inc + "/assign", `{"user_id":0}`, 403},
				{"alice-technician", "GET", "/api/v1/users", "", 403},
				{"alice-technician", "POST", "/api/v1/tokens", `{"name":"x","role":"owner"}`, 403},
				{"alice-technician", "GET", "/api/v1/audit", "", 403},
				{"alice-viewer", "GET", "/api/v1/installations/" + aliceSLC + "/drives", "", 200},
				{"alice-viewer", "GET", "/api/v1/installations/" + aliceSLC + "/drives/series?path=E:%5CRecordings", "", 200},
				{"alice-viewer", "PUT", "/api/v1/installations/" + aliceSLC + "/drive-settings", `{"required_retention_days":1}`, 403},
				{"alice-viewer", "GET", "/api/v1/reenrollments", "", 403},
				{"alice-viewer", "POST", "/api/v1/reenrollments/" + fmt.Sprint(tn.approve) + "/approve", "", 403},
				{"alice-technician", "POST", "/api/v1/installations/" + aliceSLC + "/enrollment-key", "", 403},
				{"alice-technician", "DELETE", "/api/v1/installations/" + aliceSLC + "/enrollment-key", "", 403},
			} {
				status, body := tn.call(t, rc.who, rc.method, rc.path, rc.body)
				if status != rc.want || (rc.want == 403 && code(body) != "forbidden") {
					t.Errorf("%s %s %s: %d %s, want %d", rc.who, rc.method, rc.path, status, body, rc.want)
				}
			}
			// The owner of the data, in route order (ack before resolve
			// before release).
			ordered := []api.Route{}
			var release api.Route
			for _, rt := range routes {
				if rt.Method == "DELETE" && rt.Pattern == "/api/v1/registrations/{slc}" {
					release = rt // giving the installation away comes last
					continue
				}
				ordered = append(ordered, rt)
			}
			for _, rt := range append(ordered, release) {
				c := cases[rt.Method+" "+rt.Pattern]
				status, body := tn.call(t, "alice-owner", rt.Method, c.path, c.body)
				if status != c.alice {
					t.Errorf("%s as alice: %d %s, want %d", rt.Method+" "+rt.Pattern, status, body, c.alice)
				}
			}
		})
	}
}

func TestRegistrationConflictRevealsNothing(t *testing.T) {
	tn := setup(t, store.SQLite)
	_, held := tn.call(t, "bob-owner", "POST", "/api/v1/registrations", `{"slc":"`+aliceSLC+`"}`)
	_, unknown := tn.call(t, "bob-owner", "POST", "/api/v1/registrations", `{"slc":"NOBODY-0001"}`)
	if held != unknown || code(held) != "conflict" {
		t.Fatalf("held: %s\nunknown: %s", held, unknown)
	}
}

func TestEventStreamCarriesOnlyOwnChanges(t *testing.T) {
	tn := setup(t, store.SQLite)
	open := func(who string) (*bufio.Reader, func()) {
		c, cancel := context.WithCancel(ctx)
		req, _ := http.NewRequestWithContext(c, "GET", tn.srv.URL+"/api/v1/events", nil)
		req.Header.Set("Authorization", "Bearer "+tn.tokens[who])
		resp, err := tn.srv.Client().Do(req)
		if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("open stream: %v %v", err, resp)
		}
		return bufio.NewReader(resp.Body), func() { cancel(); resp.Body.Close() }
	}
	alice, stopA := open("alice-viewer")
	defer stopA()
	bob, stopB := open("bob-owner")
	defer stopB()
	for _, r := range []*bufio.Reader{alice, bob} { // wait until both are subscribed
		if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "retry:") {
			t.Fatalf("stream starts with %q", l)
		}
	}
	tn.a.Broker.Publish(keepwatch.Change{IntegratorID: tn.aliceID, SLC: aliceSLC, Kind: "storage_full", Active: true, At: time.Now()})
	got := readEvent(t, alice, time.Second)
	if !strings.Contains(got, aliceSLC) {
		t.Fatalf("alice got %q", got)
	}
	if ev := readEvent(t, bob, 300*time.Millisecond); ev != "" {
		t.Fatalf("bob received alice's change: %q", ev)
	}
}

// readEvent returns the data line of the next event, or "" on timeout.
func readEvent(t *testing.T, r *bufio.Reader, timeout time.Duration) string {
	ch := make(chan string, 1)
	go func() {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				ch <- ""
				return
			}
			if d, ok := bytes.CutPrefix([]byte(l), []byte("data: ")); ok {
				ch <- string(d)
				return
			}
		}
	}()
	select {
	case s := <-ch:
		return s
	case <-time.After(timeout):
		return ""
	}
}

func TestBadRequestsGetCodedErrors(t *testing.T) {
	tn := setup(t, store.SQLite)
	for _, c := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"GET", "/api/v1/installations?filter=bogus", "", 400, "invalid_request"},
		{"GET", "/api/v1/incidents?state=bogus", "", 400, "invalid_request"},
		{"GET", "/api/v1/incidents?limit=0", "", 400, "invalid_request"},
		{"GET", "/api/v1/incidents/abc", "", 404, "not_found"},
		{"GET", "/api/v1/installations/..%2f..%2fetc", "", 404, "not_found"},
		{"POST", "/api/v1/registrations", `{"slc":`, 400, "invalid_request"},
		{"POST", "/api/v1/registrations", `{"slc":"A B"}`, 400, "invalid_request"},
		{"POST", "/api/v1/registrations", `{"slc":"` + strings.Repeat("A", 70<<10) + `"}`, 413, "too_large"},
		{"POST", "/api/v1/incidents/1/ack", `{"note":"` + strings.Repeat("x", 2000) + `"}`, 400, "invalid_request"},
		{"GET", "/api/v1/nothing-here", "", 404, "not_found"},
		{"GET", "/api/v1/installations/" + aliceSLC + "/drives/series?path=E:%5CRecordings&range=7d", "", 400, "invalid_request"},
		{"GET", "/api/v1/installations/" + aliceSLC + "/drives/series", "", 400, "invalid_request"},
		{"GET", "/api/v1/installations/" + aliceSLC + "/drives/series?path=Z:", "", 404, "not_found"},
		{"PUT", "/api/v1/installations/" + aliceSLC + "/drive-settings", `{"forecast_horizon_days":400}`, 400, "invalid_request"},
		{"PUT", "/api/v1/installations/" + aliceSLC + "/drive-settings", `{"required_retention_days":-1}`, 400, "invalid_request"},
		{"PUT", "/api/v1/installations/" + aliceSLC + "/drive-settings", `{"drives":[{"path":"E:","required_retention_days":3},{"path":"E:","required_retention_days":4}]}`, 400, "invalid_request"},
	} {
		status, body := tn.call(t, "alice-owner", c.method, c.path, c.body)
		if status != c.status || code(body) != c.code {
			t.Errorf("%s %s: %d %s, want %d %s", c.method, c.path, status, body, c.status, c.code)
		}
	}
}
