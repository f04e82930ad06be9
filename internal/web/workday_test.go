package web_test

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
)

// A technician's working day on the dashboard, over HTTP: what each form
// answers, what each page says. The browser's side is in
// workday_browser_test.go.

// addInstallation licenses and registers an installation of alice's with
// n servers that reported once, and returns their ids.
func (f *fixture) addInstallation(t *testing.T, slc, customer string, n int) []string {
	t.Helper()
	s := f.a.Store
	until, _ := keepwatch.ParseDate("2099-01-01")
	instID, err := s.CreateInstallation(ctx, keepwatch.Installation{SLC: slc, Customer: customer, Product: "XProtect Expert 2016", Cameras: 8, CarePlusUntil: until}, secret.Hash("k"))
	must(t, err)
	must(t, s.Register(ctx, f.alice, slc))
	var ids []string
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("%024x%08x", instID, i)
		_, err := s.Enroll(ctx, keepwatch.Enrollment{InstallationID: instID, ID: id, Name: fmt.Sprintf("RS-%02d", i), Key: make([]byte, 32), Interval: time.Minute, AgentVersion: "1.0.0"})
		must(t, err)
		f.report(t, id, 1, time.Now().Add(-10*time.Minute))
		ids = append(ids, id)
	}
	return ids
}

// report applies a status report with the given conditions ("kind:subject").
func (f *fixture) report(t *testing.T, id string, seq uint64, at time.Time, conds ...string) {
	t.Helper()
	r := keepwatch.Report{ServerID: id, Seq: seq, ReceivedAt: at, Interval: time.Minute, Status: true, AgentVersion: "1.0.0", Conditions: []keepwatch.Condition{}}
	for _, c := range conds {
		kind, subject, _ := strings.Cut(c, ":")
		r.Conditions = append(r.Conditions, keepwatch.Condition{Kind: kind, Subject: subject, Severity: keepwatch.SeverityOf(kind)})
	}
	_, err := f.a.Store.ApplyReport(ctx, r)
	must(t, err)
}

// siteOutage makes every server of ids go silent together.
func (f *fixture) siteOutage(t *testing.T, ids []string) {
	t.Helper()
	at := time.Now().Add(-5 * time.Minute)
	for _, id := range ids {
		_, err := f.a.Store.MarkUnavailable(ctx, at, []keepwatch.Expiry{{ID: id, LastSeen: at.Add(-4 * time.Minute).UnixMilli(), Window: time.Minute}})
		must(t, err)
	}
}

// incidentOf is the id of alice's unresolved incident of kind on slc.
func (f *fixture) incidentOf(t *testing.T, slc, kind string) keepwatch.Incident {
	t.Helper()
	ins, err := f.a.Store.Incidents(ctx, f.alice, "", 500)
	must(t, err)
	for _, n := range ins {
		if n.SLC == slc && n.Kind == kind {
			return n
		}
	}
	t.Fatalf("no %s incident on %s", kind, slc)
	return keepwatch.Incident{}
}

var (
	tags    = regexp.MustCompile(`(?s)<[^>]*>`)
	rfc3339 = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d`)
	exact   = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d UTC`)
)

// visible is a page's text as a person reads it: no tags, no attributes.
func visible(page string) string { return html.UnescapeString(tags.ReplaceAllString(page, " ")) }

// element returns the HTML of the element with this id (up to the next
// element with an id of the same tag).
func element(page, tag, id string) string {
	i := strings.Index(page, `id="`+id+`"`)
	if i < 0 {
		return ""
	}
	rest := page[i:]
	if j := strings.Index(rest, "</"+tag+">"); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// Finding 1: a form answers with a redirect; what it made once (a token,
// a password, a webhook secret) is shown once after it, from the
// session's flash, never in the URL; reloading makes nothing new.
func TestFormsRedirectAndShowSecretsOnce(t *testing.T) {
	f := newFixture(t, fixtureOptions{dialect: store.SQLite})
	owner, other := f.session("alice-owner"), f.session("alice-owner")
	tokens := func() int {
		ts, err := f.a.Store.Tokens(ctx, f.alice)
		must(t, err)
		return len(ts)
	}
	before := tokens()
	status, hdr, _ := f.do(owner, "POST", "/settings/tokens", url.Values{"name": {"ticketing"}, "role": {"viewer"}})
	loc := hdr.Get("Location")
	if status != 303 || loc != "/settings?done=tokenCreated#new-secret-card" {
		t.Fatalf("create token: %d → %q", status, loc)
	}
	if strings.Contains(loc, "kw_") {
		t.Fatal("the token is in the URL")
	}
	// Another session of the same user does not get it.
	if _, _, page := f.do(other, "GET", "/settings", nil); strings.Contains(page, `id="new-secret"`) {
		t.Fatal("another session sees the new token")
	}
	_, _, page := f.do(owner, "GET", loc, nil)
	token := regexp.MustCompile(`id="new-secret" readonly value="(kw_[^"]+)"`).FindStringSubmatch(page)
	if token == nil || !strings.Contains(page, "Copy the token now") || !strings.Contains(page, "API token created.") {
		t.Fatalf("the new token is not shown after the redirect: %s", snippet(page))
	}
	req, _ := http.NewRequest("GET", f.base+"/api/v1/installations", nil)
	req.Header.Set("Authorization", "Bearer "+html.UnescapeString(token[1]))
	resp, err := f.client.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the token shown does not work: %d", resp.StatusCode)
	}
	// A reload shows it no more and makes no second token.
	if _, _, again := f.do(owner, "GET", loc, nil); strings.Contains(again, token[1]) {
		t.Fatal("the token is shown twice")
	}
	if n := tokens(); n != before+1 {
		t.Fatalf("%d tokens after one creation and two reloads, want %d", n, before+1)
	}

	// A new user's password, and a webhook's signing secret, the same way.
	status, hdr, _ = f.do(owner, "POST", "/settings/users", url.Values{"email": {"new.tech@alice.example"}, "role": {"technician"}})
	if status != 303 {
		t.Fatalf("add user: %d", status)
	}
	if _, _, page := f.do(owner, "GET", hdr.Get("Location"), nil); !strings.Contains(page, "User new.tech@alice.example added") || !strings.Contains(page, `id="new-secret"`) {
		t.Fatalf("new password not shown: %s", snippet(page))
	}
	status, hdr, _ = f.do(owner, "POST", "/notifications/channels", url.Values{"name": {"pager"}, "type": {"webhook"}, "target": {"https://127.0.0.1:9/pager"}})
	if status != 303 || hdr.Get("Location") != "/notifications?done=channelCreated" {
		t.Fatalf("add channel: %d %q", status, hdr.Get("Location"))
	}
	if _, _, page := f.do(owner, "GET", hdr.Get("Location"), nil); !strings.Contains(page, `Webhook “pager” created`) {
		t.Fatalf("webhook secret not shown: %s", snippet(page))
	}
	if _, _, page := f.do(owner, "GET", "/notifications", nil); strings.Contains(page, `Webhook “pager” created`) {
		t.Fatal("webhook secret shown twice")
	}

	// Every other form redirects too.
	for _, c := range []struct {
		path string
		form url.Values
	}{
		{"/registrations", url.Values{"slc": {freeSLC}}},
		{"/installations/" + aliceSLC + "/maintenance", url.Values{"start": {"now"}, "duration": {"1h"}}},
		{fmt.Sprintf("/incidents/%d/ack", f.incident), url.Values{"back": {"/incidents?state=open"}}},
		{fmt.Sprintf("/incidents/%d/assign", f.incident), url.Values{"user": {fmt.Sprint(f.users["alice-owner"])}, "back": {"/incidents?state=open"}}},
	} {
		if status, hdr, body := f.do(owner, "POST", c.path, c.form); status != 303 {
			t.Errorf("POST %s: %d %q %s", c.path, status, hdr.Get("Location"), snippet(body))
		}
	}
}

// Finding 2: a refused form keeps what was typed and says why beside the
// field, focused so that the browser scrolls to it.
func TestRefusedFormsKeepValuesAndShowErrorsBesideTheField(t *testing.T) {
	f := newFixture(t, fixtureOptions{dialect: store.SQLite})
	owner := f.session("alice-owner")
	long := strings.Repeat("x", 101)
	status, _, page := f.do(owner, "POST", "/settings/tokens", url.Values{"name": {long}, "role": {"technician"}})
	if status != 400 {
		t.Fatalf("token with a long name: %d", status)
	}
	field := element(page, "div", "t-name")
	if !strings.Contains(field, `value="`+long+`"`) || !strings.Contains(field, `aria-invalid="true"`) || !strings.Contains(field, "autofocus") ||
		!strings.Contains(field, `id="token-name-error"`) {
		t.Fatalf("the name field after the refusal: %s", field)
	}
	if !strings.Contains(page, `<option value="technician" selected>`) {
		t.Fatal("the chosen role was lost")
	}
	status, _, page = f.do(owner, "POST", "/installations/"+aliceSLC+"/maintenance",
		url.Values{"start": {"at"}, "start_at": {"12/01/2030, 10:00 PM"}, "duration": {"4h"}, "reason": {"swap disks"}})
	if status != 400 {
		t.Fatalf("maintenance with a US date: %d", status)
	}
	for _, want := range []string{`value="12/01/2030, 10:00 PM"`, `id="maintenance-start_at-error"`, `value="swap disks"`, `<option value="4h" selected>`,
		`value="at" id="m-start-at-choice" checked`} {
		if !strings.Contains(page, want) {
			t.Errorf("maintenance form after the refusal lacks %s", want)
		}
	}
	if msg := element(page, "p", "maintenance-start_at-error"); !strings.Contains(msg, "like 2026-12-01 22:00") {
		t.Errorf("start error: %s", msg)
	}
	status, _, page = f.do(owner, "POST", "/installations/"+aliceSLC+"/maintenance",
		url.Values{"start": {"at"}, "start_at": {"2020-01-01 10:00"}, "duration": {"1h"}})
	if status != 400 || !strings.Contains(element(page, "p", "maintenance-start_at-error"), "must start in the future") {
		t.Fatalf("a start in the past: %d %s", status, element(page, "p", "maintenance-start_at-error"))
	}
	status, _, page = f.do(owner, "POST", "/registrations", url.Values{"slc": {"no"}})
	if status != 400 || !strings.Contains(page, `id="register-slc-error"`) || !strings.Contains(element(page, "div", "slc"), `value="no"`) {
		t.Fatalf("a malformed SLC: %d", status)
	}
}

// Finding 3: resolving means the problem is gone. A state incident whose
// condition is still reported offers acknowledge and assign and says why
// not resolve; an event is resolved by hand.
func TestResolveHasOneMeaning(t *testing.T) {
	f := newFixture(t, fixtureOptions{dialect: store.SQLite})
	tech := f.session("alice-technician")
	path := fmt.Sprintf("/incidents/%d", f.incident)
	_, _, page := f.do(tech, "GET", path, nil)
	if strings.Contains(page, `id="resolve-form"`) || !strings.Contains(page, `id="why-no-resolve"`) || !strings.Contains(visible(page), "resolves by itself when the server reports it cleared") {
		t.Fatalf("a reported condition's page: %s", snippet(element(page, "section", "actions")))
	}
	if !strings.Contains(page, `id="ack-form"`) || !strings.Contains(page, `id="assign-form"`) {
		t.Fatal("acknowledge and assign are not offered")
	}
	status, _, page := f.do(tech, "POST", path+"/resolve", url.Values{"note": {"done"}, "back": {path}})
	if status != 409 || !strings.Contains(element(page, "p", "resolve-note-error"), "acknowledge or assign it meanwhile") {
		t.Fatalf("resolving a reported condition: %d %s", status, snippet(page))
	}
	if n, _ := f.a.Store.Incident(ctx, f.alice, f.incident); n.State != keepwatch.IncidentOpen {
		t.Fatalf("incident is %s", n.State)
	}
	// An event: resolved by a person.
	srv, err := f.a.Store.Servers(ctx, f.alice, aliceSLC)
	must(t, err)
	_, err = f.a.Store.ApplyReport(ctx, keepwatch.Report{ServerID: srv[0].ID, Seq: 2, ReceivedAt: time.Now(), Interval: time.Minute,
		Events: []keepwatch.Event{{Kind: keepwatch.KindArchiveMoveFailed, Subject: "Archive 7", Severity: keepwatch.SeverityError, At: time.Now()}}})
	must(t, err)
	ev := f.incidentOf(t, aliceSLC, keepwatch.KindArchiveMoveFailed)
	evPath := fmt.Sprintf("/incidents/%d", ev.ID)
	if _, _, page := f.do(tech, "GET", evPath, nil); !strings.Contains(page, `id="resolve-form"`) {
		t.Fatal("an event's page offers no resolve")
	}
	status, hdr, _ := f.do(tech, "POST", evPath+"/resolve", url.Values{"note": {"rerun"}, "back": {evPath}})
	if status != 303 || hdr.Get("Location") != evPath+"?done=resolved#incident-"+fmt.Sprint(ev.ID) {
		t.Fatalf("resolve an event: %d %q", status, hdr.Get("Location"))
	}
}

// Finding 4: a server row shows its worst condition, never "OK" beside an
// error it reports.
func TestServerRowsShowTheirWorstCondition(t *testing.T) {
	f := newFixture(t, fixtureOptions{dialect: store.SQLite})
	_, _, page := f.do(f.session("alice-viewer"), "GET", "/installations/"+aliceSLC, nil)
	row := element(page, "tbody", "server-RS-01")
	state := visible(row[strings.Index(row, `class="server-state"`):])
	if !strings.Contains(state, "Error") || !strings.Contains(state, `Storage full  E:\Recordings`) || strings.Contains(state, "OK") {
		t.Fatalf("RS-01's state: %q", strings.Join(strings.Fields(state), " "))
	}
	if !strings.Contains(strings.Join(strings.Fields(visible(element(page, "div", "status"))), " "), "0/1 ok") {
		t.Fatalf("header: %s", visible(element(page, "div", "status")))
	}
}

// Finding 6: the overview says who is on each problem, with exact times.
func TestOverviewShowsWhoIsOnItWithExactTimes(t *testing.T) {
	f := newFixture(t, fixtureOptions{dialect: store.SQLite})
	_, err := f.a.Store.AckIncident(ctx, f.alice, f.incident, "user:"+f.emails["alice-technician"], "on my way")
	must(t, err)
	_, err = f.a.Store.AssignIncident(ctx, f.alice, f.incident, f.users["alice-owner"], "user:"+f.emails["alice-owner"])
	must(t, err)
	_, _, page := f.do(f.session("alice-viewer"), "GET", "/", nil)
	row := page[strings.Index(page, `data-slc="`+aliceSLC+`"`):]
	text := strings.Join(strings.Fields(visible(row[:strings.Index(row, "</tr>")])), " ")
	for _, want := range []string{"Acknowledged by " + f.emails["alice-technician"], "Assigned to " + f.emails["alice-owner"]} {
		if !strings.Contains(text, want) {
			t.Errorf("the overview row lacks %q: %s", want, text)
		}
	}
	if !exact.MatchString(text) {
		t.Errorf("no exact time on the row: %s", text)
	}
}

// Finding 7: a site outage is one row with its servers inside; counts
// say what they count; the installation page names each incident's
// server.
func TestSiteOutageIsOneRowWithItsServers(t *testing.T) {
	f := newFixture(t, fixtureOptions{dialect: store.SQLite})
	ids := f.addInstallation(t, "SITE-0001", "Northgate Mall", 3)
	f.siteOutage(t, ids)
	site := f.incidentOf(t, "SITE-0001", keepwatch.KindSiteUnreachable)
	_, _, page := f.do(f.session("alice-technician"), "GET", "/incidents", nil)
	row := element(page, "tr", fmt.Sprintf("incident-%d", site.ID))
	if !strings.Contains(row, "3 servers silent together") || !strings.Contains(row, `name="id"`) {
		t.Fatalf("the site's row: %s", row)
	}
	if n := strings.Count(page, fmt.Sprintf(`data-parent="%d"`, site.ID)); n != 3 {
		t.Fatalf("%d server rows inside the site's row, want 3", n)
	}
	top := regexp.MustCompile(`<tr class="incident [^"]*" id="incident-\d+" data-incident="\d+">`).FindAllString(page, -1)
	if len(top) != 2 { // the site, and alice's full disk
		t.Fatalf("%d top-level incident rows, want 2", len(top))
	}
	if !strings.Contains(page, `id="group-SITE-0001"`) || !strings.Contains(visible(element(page, "tr", "group-SITE-0001")), "4 incidents") {
		t.Fatal("no group for the installation")
	}
	_, _, page = f.do(f.session("alice-technician"), "GET", "/installations/SITE-0001", nil)
	list := visible(element(page, "ul", "installation-incidents"))
	for _, srv := range []string{"RS-01", "RS-02", "RS-03"} {
		if !strings.Contains(list, srv) {
			t.Errorf("the installation's incidents do not name %s: %s", srv, list)
		}
	}
	if _, _, page := f.do(f.session("alice-technician"), "GET", "/installations/"+aliceSLC, nil); !strings.Contains(visible(element(page, "ul", "installation-incidents")), "on RS-01") {
		t.Error("an incident on the installation page does not name its server")
	}
	// Acknowledging the site acknowledges the servers it speaks for.
	status, _, _ := f.do(f.session("alice-technician"), "POST", fmt.Sprintf("/incidents/%d/ack", site.ID), url.Values{"note": {"calling the ISP"}})
	if status != 303 {
		t.Fatalf("ack site: %d", status)
	}
	open, err := f.a.Store.Incidents(ctx, f.alice, keepwatch.IncidentOpen, 100)
	must(t, err)
	for _, n := range open {
		if n.SLC == "SITE-0001" {
			t.Errorf("still open after the site was acknowledged: %s on %s", n.Kind, n.Server)
		}
	}
}

// Finding 8: an incident has a page with its history, server, condition,
// notifications and actions; the list acts in bulk and stays in place.
func TestIncidentPageAndBulkActions(t *testing.T) {
	f := newFixture(t, fixtureOptions{dialect: store.SQLite})
	_, err := f.a.Store.Enqueue(ctx, keepwatch.Notification{IntegratorID: f.alice, ChannelID: f.channel, RuleID: f.rule, IncidentID: f.incident,
		Type: keepwatch.NotifyOpened, DedupKey: "web-test-1", State: keepwatch.NotificationPending, NotBefore: time.Now().Add(time.Minute), CreatedAt: time.Now()})
	must(t, err)
	path := fmt.Sprintf("/incidents/%d", f.incident)
	status, _, page := f.do(f.session("alice-viewer"), "GET", path, nil)
	text := strings.Join(strings.Fields(visible(page)), " ")
	for _, want := range []string{"Storage full", "server RS-01", aliceCustomer, "Reported now", "History (UTC)", "opened", "Opening", "alice hook (webhook)", "due "} {
		if !strings.Contains(text, want) {
			t.Errorf("the incident page lacks %q", want)
		}
	}
	if status != 200 || strings.Contains(page, `id="ack-form"`) {
		t.Fatalf("a viewer's incident page: %d, with actions: %v", status, strings.Contains(page, `id="ack-form"`))
	}
	if status, _, body := f.do(f.session("bob-owner"), "GET", path, nil); status != 404 || strings.Contains(body, aliceCustomer) {
		t.Fatalf("bob: %d", status)
	}

	// Two more incidents, acknowledged in one go from a filtered list.
	ids := f.addInstallation(t, "BULK-0001", "Harbor Logistics", 2)
	f.report(t, ids[0], 2, time.Now(), "camera_unreachable:cam-01")
	f.report(t, ids[1], 2, time.Now(), "camera_unreachable:cam-02")
	a, b := f.incidentOf(t, "BULK-0001", keepwatch.KindCameraUnreachable), keepwatch.Incident{}
	ins, _ := f.a.Store.Incidents(ctx, f.alice, "", 100)
	for _, n := range ins {
		if n.SLC == "BULK-0001" && n.ID != a.ID {
			b = n
		}
	}
	back := "/incidents?q=cam&severity=error"
	tech := f.session("alice-technician")
	status, hdr, _ := f.do(tech, "POST", "/incidents/bulk", url.Values{"id": {fmt.Sprint(a.ID), fmt.Sprint(b.ID)}, "action": {"ack"}, "note": {"on site at 3"}, "back": {back}})
	loc := hdr.Get("Location")
	if status != 303 || !strings.HasPrefix(loc, "/incidents?") || !strings.Contains(loc, "q=cam") || !strings.Contains(loc, "severity=error") || !strings.HasSuffix(loc, fmt.Sprintf("#incident-%d", a.ID)) {
		t.Fatalf("bulk ack: %d → %q", status, loc)
	}
	for _, id := range []int64{a.ID, b.ID} {
		if n, _ := f.a.Store.Incident(ctx, f.alice, id); n.State != keepwatch.IncidentAcknowledged || n.AckNote != "on site at 3" {
			t.Errorf("incident %d after bulk ack: %s %q", id, n.State, n.AckNote)
		}
	}
	if _, _, page := f.do(tech, "GET", loc, nil); !strings.Contains(element(page, "p", "flash"), "2 acknowledged.") {
		t.Fatalf("bulk notice: %s", element(page, "p", "flash"))
	}
	// Again: nothing left open, and it says so.
	f.do(tech, "POST", "/incidents/bulk", url.Values{"id": {fmt.Sprint(a.ID)}, "action": {"ack"}, "back": {back}})
	if _, _, page := f.do(tech, "GET", back+"&done=bulk", nil); !strings.Contains(element(page, "p", "flash"), "0 acknowledged. 1 was not open any more") {
		t.Fatalf("second bulk notice: %s", element(page, "p", "flash"))
	}
	status, _, _ = f.do(tech, "POST", "/incidents/bulk", url.Values{"id": {fmt.Sprint(a.ID), fmt.Sprint(b.ID)}, "action": {"assign"}, "user": {fmt.Sprint(f.users["alice-technician"])}, "back": {back}})
	as, err := f.a.Store.Assignees(ctx, f.alice, []int64{a.ID, b.ID})
	must(t, err)
	if status != 303 || len(as) != 2 || as[a.ID].Email != f.emails["alice-technician"] {
		t.Fatalf("bulk assign: %d %+v", status, as)
	}
	// The filters narrow the list.
	_, _, page = f.do(tech, "GET", "/incidents?q=cam&mine=1", nil)
	if !strings.Contains(page, fmt.Sprintf(`id="incident-%d"`, a.ID)) || strings.Contains(page, fmt.Sprintf(`id="incident-%d"`, f.incident)) {
		t.Fatal("the filters do not narrow the list")
	}
	// Bob cannot act on alice's incidents in bulk.
	if status, _, _ := f.do(f.session("bob-owner"), "POST", "/incidents/bulk", url.Values{"id": {fmt.Sprint(a.ID)}, "action": {"assign"}, "user": {""}}); status != 404 {
		t.Fatalf("bob's bulk: %d", status)
	}
}

// Finding 9: uptime covers the time watched, says how much, in one
// format, with a 90-day bar per server.
func TestUptimeShowsItsCoverageAndA90DayBar(t *testing.T) {
	f := newFixture(t, fixtureOptions{dialect: store.SQLite})
	_, _, page := f.do(f.session("alice-viewer"), "GET", "/installations/"+aliceSLC, nil)
	row := element(page, "tbody", "server-RS-01")
	if n := strings.Count(row, `<li class="d-`); n != 90 {
		t.Fatalf("%d day cells, want 90", n)
	}
	if strings.Count(row, "watched</span>") != 3 || !strings.Contains(row, "100.00 %") || strings.Contains(row, ">100 %<") {
		t.Fatalf("uptime cells: %s", visible(row))
	}
	if !strings.Contains(page, "since you registered this installation") {
		t.Fatal("the page does not say where uptime starts")
	}
}

// Finding 10: installations that send nothing say so, with honest counts.
func TestInstallationsThatSendNothingSaySo(t *testing.T) {
	f := newFixture(t, fixtureOptions{dialect: store.SQLite})
	f.addInstallation(t, "PAUSED-0001", "Greenfield Farms", 2)
	ended, _ := keepwatch.ParseDate("2020-01-01")
	must(t, f.a.Store.SetCarePlus(ctx, "PAUSED-0001", ended))
	cw := f.addInstallation(t, "CONSENT-0001", "Sterling Bank", 1)
	off := false
	_, err := f.a.Store.ApplyReport(ctx, keepwatch.Report{ServerID: cw[0], Seq: 5, ReceivedAt: time.Now(), Interval: time.Minute, Consent: &off})
	must(t, err)
	v := f.session("alice-viewer")
	for slc, want := range map[string][]string{
		"PAUSED-0001":  {"Monitoring is paused", "2 not monitored"},
		aliceIdleSLC:   {"No server has reported yet"},
		"CONSENT-0001": {"The customer withdrew consent", "1 without consent"},
	} {
		_, _, page := f.do(v, "GET", "/installations/"+slc, nil)
		text := strings.Join(strings.Fields(visible(page)), " ")
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%s lacks %q", slc, w)
			}
		}
		if strings.Contains(text, "Everything this installation reports is fine") || regexp.MustCompile(`\d/\d ok`).MatchString(text) {
			t.Errorf("%s claims all is fine", slc)
		}
	}
	view, err := f.a.Store.Installation(ctx, f.alice, "PAUSED-0001", time.Now())
	must(t, err)
	if view.Status != keepwatch.StatusPaused || view.ServersOK != 0 {
		t.Fatalf("paused view: %s %d/%d", view.Status, view.ServersOK, view.ServersTotal)
	}
}

// Finding 12 and 15: people by name, times in one format, on every page.
func TestPagesNamePeopleAndWriteTimesOneWay(t *testing.T) {
	f := newFixture(t, fixtureOptions{dialect: store.SQLite})
	_, err := f.a.Store.AckIncident(ctx, f.alice, f.incident, "user:"+f.emails["alice-technician"], "")
	must(t, err)
	must(t, f.a.Store.Audit(ctx, keepwatch.AuditEntry{IntegratorID: f.alice, At: time.Now(), Actor: "token:crm-sync", Action: "registration.add", Target: aliceOKSLC, Source: "api"}))
	owner := f.session("alice-owner")
	var pages []string
	for _, rt := range f.a.Web.Routes() {
		if rt.Method == "GET" && rt.Role != "" {
			pages = append(pages, strings.NewReplacer("{$}", "?filter=all", "{slc}", aliceSLC, "{id}", fmt.Sprint(f.incident)).Replace(rt.Pattern))
		}
	}
	for _, p := range pages {
		_, _, page := f.do(owner, "GET", p, nil)
		text := visible(page)
		if strings.Contains(text, "user:") || strings.Contains(text, "token:") {
			t.Errorf("%s names someone by their raw actor", p)
		}
		if m := rfc3339.FindString(text); m != "" {
			t.Errorf("%s writes a time as %s", p, m)
		}
	}
	if _, _, page := f.do(owner, "GET", "/settings", nil); !strings.Contains(visible(page), "API token crm-sync") {
		t.Error("the audit log does not name the token")
	}
}

// Finding 14: maintenance starts now or at a time given in UTC; a
// scheduled window can be cancelled, a running one ended, and the
// overview shows a scheduled one.
func TestMaintenanceWindowsScheduledCancelledEnded(t *testing.T) {
	f := newFixture(t, fixtureOptions{dialect: store.SQLite})
	tech := f.session("alice-technician")
	at := time.Now().UTC().Add(48 * time.Hour).Truncate(time.Minute)
	status, hdr, _ := f.do(tech, "POST", "/installations/"+aliceSLC+"/maintenance", url.Values{"start": {"at"}, "start_at": {at.Format("2006-01-02 15:04")}, "duration": {"2h"}, "reason": {"switches"}})
	if status != 303 || hdr.Get("Location") != "/installations/"+aliceSLC+"?done=maintenanceScheduled#maintenance" {
		t.Fatalf("schedule: %d %q", status, hdr.Get("Location"))
	}
	windows, err := f.a.Store.Maintenance(ctx, f.alice, aliceSLC, time.Now())
	must(t, err)
	var scheduled keepwatch.MaintenanceWindow
	for _, w := range windows {
		if w.Start.Equal(at) {
			scheduled = w
		}
	}
	if scheduled.ID == 0 || !scheduled.End.Equal(at.Add(2*time.Hour)) {
		t.Fatalf("windows: %+v", windows)
	}
	// The overview's row shows the next window (the fixture's own, tomorrow).
	_, _, page := f.do(tech, "GET", "/", nil)
	if row := page[strings.Index(page, `data-slc="`+aliceSLC+`"`):]; !strings.Contains(strings.Join(strings.Fields(visible(row[:strings.Index(row, "</tr>")])), " "), "Maintenance from "+keepwatch.FormatTime(time.Now().Add(24 * time.Hour))[:10]) {
		t.Fatalf("overview row: %s", visible(row[:strings.Index(row, "</tr>")]))
	}
	_, _, page = f.do(tech, "GET", "/installations/"+aliceSLC, nil)
	li := page[strings.Index(page, fmt.Sprintf(`data-window="%d"`, scheduled.ID)):]
	li = li[:strings.Index(li, "</li>")]
	if !strings.Contains(li, "data-cancel") || strings.Contains(li, "data-end-now") || !strings.Contains(visible(li), keepwatch.FormatTime(at)) {
		t.Fatalf("scheduled window: %s", li)
	}
	// Start one now: it runs, and offers "End now".
	status, _, _ = f.do(tech, "POST", "/installations/"+aliceSLC+"/maintenance", url.Values{"start": {"now"}, "duration": {"30m"}})
	if status != 303 {
		t.Fatalf("start now: %d", status)
	}
	active, err := f.a.Store.ActiveMaintenance(ctx, f.alice, time.Now())
	must(t, err)
	running := active[aliceSLC]
	_, _, page = f.do(tech, "GET", "/installations/"+aliceSLC, nil)
	if !strings.Contains(page[strings.Index(page, fmt.Sprintf(`data-window="%d"`, running.ID)):], "data-end-now") {
		t.Fatal("a running window offers no “End now”")
	}
	for _, w := range []keepwatch.MaintenanceWindow{running, scheduled} {
		if status, _, _ := f.do(tech, "POST", fmt.Sprintf("/installations/%s/maintenance/%d/stop", aliceSLC, w.ID), url.Values{}); status != 303 {
			t.Fatalf("stop %d: %d", w.ID, status)
		}
	}
	left, err := f.a.Store.Maintenance(ctx, f.alice, aliceSLC, time.Now().Add(time.Second))
	must(t, err)
	if len(left) != 1 || left[0].ID != f.window {
		t.Fatalf("windows left: %+v", left)
	}
	// Bob stops nothing of alice's.
	if status, _, _ := f.do(f.session("bob-owner"), "POST", fmt.Sprintf("/installations/%s/maintenance/%d/stop", aliceSLC, f.window), url.Values{}); status != 404 {
		t.Fatalf("bob: %d", status)
	}
}

// Finding 15: registering one's own SLC again says so and records
// nothing; "not found" is the same page for every address.
func TestReRegisteringAndNotFoundPages(t *testing.T) {
	f := newFixture(t, fixtureOptions{dialect: store.SQLite})
	owner := f.session("alice-owner")
	audit := func() int {
		es, err := f.a.Store.AuditLog(ctx, f.alice, 100)
		must(t, err)
		return len(es)
	}
	n := audit()
	status, hdr, _ := f.do(owner, "POST", "/registrations", url.Values{"slc": {strings.ToLower(aliceSLC)}})
	if status != 303 || hdr.Get("Location") != "/registrations?done=mine" {
		t.Fatalf("re-register: %d %q", status, hdr.Get("Location"))
	}
	if _, _, page := f.do(owner, "GET", hdr.Get("Location"), nil); !strings.Contains(page, "already registered to your account") {
		t.Fatal("no “already registered” message")
	}
	if audit() != n {
		t.Fatal("re-registering was audited")
	}
	for _, p := range []string{"/nothing-here", "/incidents/999999", "/installations/NOBODY-1", "/static/none.css"} {
		status, _, page := f.do(owner, "GET", p, nil)
		if status != 404 || !strings.Contains(page, `id="error-back" `) && !strings.Contains(page, `href="/" id="error-back"`) || !strings.Contains(page, "Back to the overview") ||
			!strings.Contains(page, `id="logout"`) || strings.Contains(page, ">Sign in<") {
			t.Errorf("%s signed in: %d, not the signed-in 404 page", p, status)
		}
	}
	if status, _, page := f.do(session{}, "GET", "/nothing-here", nil); status != 404 || !strings.Contains(page, ">Sign in<") {
		t.Errorf("anonymous 404: %d", status)
	}
}
