package web_test

import (
	"database/sql"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"keepwatch"
	"keepwatch/internal/app"
	"keepwatch/internal/auth"
	"keepwatch/internal/mail/mailtest"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

// accountsFixture is a listening keepwatch with real passwords, a real SMTP
// relay on loopback and, when clock is set, keepwatch's time under the
// test's control.
func accountsFixture(t *testing.T, clock *testutil.Clock) (*fixture, *mailtest.Server) {
	t.Helper()
	mails := mailtest.NewServer(t)
	var dir string
	f := newFixture(t, fixtureOptions{dialect: store.SQLite, listen: true, passwords: true, configure: func(c *app.Config) {
		dir = c.DataDir
		c.SMTP = mails.Config()
		if clock != nil {
			c.Now = clock.Now
		}
		// The identity provider of these tests is on loopback.
		c.AllowOutbound = []string{"127.0.0.1/32", "localhost"}
	}})
	dataDirs.Store(f, dir)
	return f, mails
}

// dataDirs remembers each accounts fixture's SQLite data directory.
var dataDirs sync.Map

// visitor is one browser without a browser: its own cookies, redirects not
// followed.
type visitor struct {
	t      *testing.T
	f      *fixture
	client *http.Client
}

func (f *fixture) visitor(t *testing.T) *visitor {
	jar, _ := cookiejar.New(nil)
	return &visitor{t: t, f: f, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request; a form gets the CSRF token of the visitor's
// session when it has none (read from /account).
func (v *visitor) do(method, path string, form url.Values) (int, string, string) {
	v.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, v.f.base+path, body)
	must(v.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := v.client.Do(req)
	must(v.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// post sends a form with the session's CSRF token.
func (v *visitor) post(path string, form url.Values) (int, string, string) {
	v.t.Helper()
	_, _, page := v.do("GET", "/account", nil)
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		v.t.Fatalf("no CSRF token on /account:\n%s", snippet(page))
	}
	form.Set("csrf", html.UnescapeString(m[1]))
	return v.do("POST", path, form)
}

func (v *visitor) login(email, pw string) (int, string) {
	v.t.Helper()
	status, loc, _ := v.do("POST", "/login", url.Values{"email": {email}, "password": {pw}})
	return status, loc
}

func (v *visitor) signedIn() bool {
	v.t.Helper()
	status, _, _ := v.do("GET", "/account", nil)
	return status == http.StatusOK
}

func (v *visitor) hasCookie(name string) bool {
	u, _ := url.Parse(v.f.base + "/login")
	for _, c := range v.client.Jar.Cookies(u) {
		if c.Name == name && c.Value != "" {
			return true
		}
	}
	return false
}

var resetLink = regexp.MustCompile(`https?://\S+/password-reset/[A-Za-z0-9_-]+`)

func audited(t *testing.T, f *fixture, integrator int64, action, target string) bool {
	t.Helper()
	log, err := f.a.Store.AuditLog(ctx, integrator, 500)
	must(t, err)
	return slices.ContainsFunc(log, func(e keepwatch.AuditEntry) bool { return e.Action == action && (target == "" || e.Target == target) })
}

func TestPasswordResetAnswersAlikeForUnknownAddressesAndMailsALinkThatWorksOnce(t *testing.T) {
	clock := testutil.NewClock(time.Now())
	f, mails := accountsFixture(t, clock)
	owner, tech := f.emails["alice-owner"], f.emails["alice-technician"]
	unknown := "nobody@alice.example"
	signedIn := f.visitor(t)
	if status, _ := signedIn.login(owner, password); status != 303 || !signedIn.signedIn() {
		t.Fatal("the owner cannot sign in")
	}

	v := f.visitor(t)
	s1, _, b1 := v.do("POST", "/password-reset", url.Values{"email": {owner}})
	s2, _, b2 := v.do("POST", "/password-reset", url.Values{"email": {unknown}})
	if s1 != 303 || s1 != s2 || strings.ReplaceAll(b1, owner, "X") != strings.ReplaceAll(b2, unknown, "X") {
		t.Fatalf("known and unknown addresses answered differently: %d vs %d", s1, s2)
	}
	// The worker handles requests in order: once the technician's mail is
	// there, the unknown address was dealt with too.
	v.do("POST", "/password-reset", url.Values{"email": {tech}})
	m, ok := mails.Wait(owner, 0, 10*time.Second)
	if !ok {
		t.Fatal("no reset mail for the owner")
	}
	if _, ok := mails.Wait(tech, 0, 10*time.Second); !ok {
		t.Fatal("no reset mail for the technician")
	}
	for _, msg := range mails.Messages() {
		if msg.To == unknown {
			t.Fatal("a mail went to an address without an account")
		}
	}
	link := resetLink.FindString(m.Text)
	if !strings.HasPrefix(link, f.base+"/password-reset/") {
		t.Fatalf("link %q is not on the public URL %s:\n%s", link, f.base, m.Text)
	}
	path := strings.TrimPrefix(link, f.base)
	if status, _, body := v.do("GET", path, nil); status != 200 || !strings.Contains(body, owner) {
		t.Fatalf("reset page: %d", status)
	}
	newPassword := "a new and long password"
	if status, _, body := v.do("POST", path, url.Values{"password": {"short"}, "confirm": {"short"}}); status != 400 || !strings.Contains(body, "at least 12") {
		t.Fatalf("a weak password: %d", status)
	}
	if status, loc, _ := v.do("POST", path, url.Values{"password": {newPassword}, "confirm": {newPassword}}); status != 303 || loc != "/login?done=passwordReset" {
		t.Fatalf("reset: %d → %s", status, loc)
	}
	if status, _, _ := v.do("POST", path, url.Values{"password": {"another long password"}, "confirm": {"another long password"}}); status != 401 {
		t.Fatalf("the link worked twice: %d", status)
	}
	if signedIn.signedIn() {
		t.Fatal("a session outlived the reset")
	}
	if status, _ := f.visitor(t).login(owner, password); status != 401 {
		t.Fatalf("the old password still works: %d", status)
	}
	if status, loc := f.visitor(t).login(owner, newPassword); status != 303 || loc != "/" {
		t.Fatalf("the new password: %d → %s", status, loc)
	}
	if !audited(t, f, f.alice, "password.reset_request", owner) || !audited(t, f, f.alice, "password.reset", owner) {
		t.Fatal("the reset is not in the audit log")
	}

	// The technician's link expires after 30 minutes.
	tm, _ := mails.Wait(tech, 0, time.Second)
	clock.Advance(31 * time.Minute)
	if status, _, _ := v.do("GET", strings.TrimPrefix(resetLink.FindString(tm.Text), f.base), nil); status != 401 {
		t.Fatalf("an expired link: %d", status)
	}
}

func TestPasswordResetIsRateLimitedAlikeForEveryAddress(t *testing.T) {
	clock := testutil.NewClock(time.Now())
	f, mails := accountsFixture(t, clock)
	owner, unknown := f.emails["alice-owner"], "nobody@alice.example"
	v := f.visitor(t)
	answers := map[string][]int{}
	var limited []string
	for _, email := range []string{owner, unknown} {
		for i := 0; i < 4; i++ {
			status, _, body := v.do("POST", "/password-reset", url.Values{"email": {email}})
			answers[email] = append(answers[email], status)
			if status == 429 {
				limited = append(limited, strings.ReplaceAll(body, email, "X"))
			}
		}
	}
	if !slices.Equal(answers[owner], []int{303, 303, 303, 429}) || !slices.Equal(answers[owner], answers[unknown]) {
		t.Fatalf("answers %v", answers)
	}
	if len(limited) != 2 || limited[0] != limited[1] || !strings.Contains(limited[0], "Too many reset requests") {
		t.Fatal("the limited answers differ or say nothing")
	}
	// Ten minutes on, the address may ask again, but the account has had
	// its three links this hour: no fourth mail.
	clock.Advance(11 * time.Minute)
	if status, _, _ := v.do("POST", "/password-reset", url.Values{"email": {owner}}); status != 303 {
		t.Fatalf("after the wait: %d", status)
	}
	tech := f.emails["alice-technician"]
	v.do("POST", "/password-reset", url.Values{"email": {tech}})
	if _, ok := mails.Wait(tech, 0, 10*time.Second); !ok {
		t.Fatal("no mail for the technician")
	}
	n := 0
	for _, m := range mails.Messages() {
		if m.To == owner {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d reset mails for one account within the hour, want 3", n)
	}
	if !audited(t, f, f.alice, "password.reset_limited", owner) {
		t.Fatal("the limited reset is not audited")
	}
	// One source address may not ask for links for ever more addresses.
	statuses := []int{}
	for i := 0; i < 12; i++ {
		status, _, _ := v.do("POST", "/password-reset", url.Values{"email": {"x" + string(rune('a'+i)) + "@example.com"}})
		statuses = append(statuses, status)
	}
	if !slices.Contains(statuses, 429) {
		t.Fatalf("no limit per source address: %v", statuses)
	}
}

func TestChangingThePasswordNeedsTheCurrentOneAndEndsTheOtherSessions(t *testing.T) {
	f, _ := accountsFixture(t, nil)
	email := f.emails["alice-technician"]
	here, there := f.visitor(t), f.visitor(t)
	here.login(email, password)
	there.login(email, password)
	if !here.signedIn() || !there.signedIn() {
		t.Fatal("not signed in")
	}
	newPassword := "pale blue river stones"
	for _, c := range []struct {
		current, next, confirm string
		status                 int
	}{
		{"wrong password", newPassword, newPassword, 401},
		{password, "short", "short", 400},
		{password, newPassword, newPassword + "x", 400},
		{password, password, password, 400},
	} {
		if status, _, _ := here.post("/account/password", url.Values{"current": {c.current}, "password": {c.next}, "confirm": {c.confirm}}); status != c.status {
			t.Fatalf("change %+v: %d", c, status)
		}
	}
	if !there.signedIn() {
		t.Fatal("a refused change ended a session")
	}
	status, loc, _ := here.post("/account/password", url.Values{"current": {password}, "password": {newPassword}, "confirm": {newPassword}})
	if status != 303 || loc != "/account?done=passwordChanged" {
		t.Fatalf("change: %d → %s", status, loc)
	}
	if !here.signedIn() || there.signedIn() {
		t.Fatalf("after the change: this session %v, the other %v", here.signedIn(), there.signedIn())
	}
	if status, _ := f.visitor(t).login(email, newPassword); status != 303 {
		t.Fatalf("the new password: %d", status)
	}
	if !audited(t, f, f.alice, "password.change", email) || !audited(t, f, f.alice, "password.change_failed", email) {
		t.Fatal("the change is not in the audit log")
	}
}

var (
	totpSecret  = regexp.MustCompile(`id="totp-secret" readonly value="([A-Z2-7]+)"`)
	setupToken  = regexp.MustCompile(`name="setup" value="([^"]+)"`)
	recoveryRow = regexp.MustCompile(`<li>([0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4})</li>`)
)

// enrolTOTP adds an authenticator app to v's account from the account page
// and returns its secret and the recovery codes shown.
func enrolTOTP(t *testing.T, v *visitor, clock *testutil.Clock) (string, []string) {
	t.Helper()
	_, _, page := v.do("GET", "/account?setup=totp", nil)
	sm, tm := totpSecret.FindStringSubmatch(page), setupToken.FindStringSubmatch(page)
	if sm == nil || tm == nil {
		t.Fatalf("no TOTP set-up on the page:\n%s", snippet(page))
	}
	if !strings.Contains(page, `src="data:image/png;base64,`) {
		t.Fatal("no QR code")
	}
	code, err := totp.GenerateCode(sm[1], clock.Now())
	must(t, err)
	status, loc, body := v.post("/account/totp", url.Values{"setup": {html.UnescapeString(tm[1])}, "code": {code}})
	if status != 303 || !strings.HasPrefix(loc, "/account?done=totpAdded") {
		t.Fatalf("confirm TOTP: %d %s %s", status, loc, snippet(body))
	}
	// The codes are shown once, after the redirect.
	_, _, body = v.do("GET", loc, nil)
	if _, _, again := v.do("GET", "/account", nil); recoveryRow.MatchString(again) {
		t.Fatal("recovery codes shown twice")
	}
	var codes []string
	for _, m := range recoveryRow.FindAllStringSubmatch(body, -1) {
		codes = append(codes, m[1])
	}
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes shown", len(codes))
	}
	return sm[1], codes
}

func TestSecondFactorCodesAndRecoveryCodesWorkOnce(t *testing.T) {
	clock := testutil.NewClock(time.Now())
	f, _ := accountsFixture(t, clock)
	email := f.emails["alice-viewer"]
	v := f.visitor(t)
	v.login(email, password)
	seed, codes := enrolTOTP(t, v, clock)
	// Only hashes of the recovery codes are stored.
	if rows := dumpTable(t, f, "recovery_codes"); strings.Count(rows, "\n") != 10 || inClear(rows, codes[0]) || inClear(rows, strings.ReplaceAll(codes[0], "-", "")) {
		t.Fatal("recovery codes are stored in clear")
	}
	if rows := dumpTable(t, f, "user_factors"); !strings.Contains(rows, "totp") || inClear(rows, seed) {
		t.Fatal("the TOTP seed is stored in clear")
	}

	// The password alone opens no session now.
	w := f.visitor(t)
	if status, loc := w.login(email, password); status != 303 || loc != "/login/verify" {
		t.Fatalf("password step: %d → %s", status, loc)
	}
	if w.hasCookie(auth.SessionCookie) || w.signedIn() {
		t.Fatal("a session opened before the second factor")
	}
	// The code that confirmed the app was spent.
	used, _ := totp.GenerateCode(seed, clock.Now())
	if status, _, body := w.do("POST", "/login/verify", url.Values{"code": {used}}); status != 401 || !strings.Contains(body, "not right") {
		t.Fatalf("a spent code: %d", status)
	}
	clock.Advance(30 * time.Second)
	next, _ := totp.GenerateCode(seed, clock.Now())
	if status, loc, _ := w.do("POST", "/login/verify", url.Values{"code": {next}}); status != 303 || loc != "/" || !w.signedIn() {
		t.Fatalf("the next code: %d → %s", status, loc)
	}
	if !audited(t, f, f.alice, "session.second_factor_failed", email) {
		t.Fatal("the wrong code is not audited")
	}

	// A recovery code works once, typed any way.
	x := f.visitor(t)
	x.login(email, password)
	if status, _, _ := x.do("POST", "/login/verify", url.Values{"code": {strings.ToUpper(strings.ReplaceAll(codes[0], "-", " "))}}); status != 303 || !x.signedIn() {
		t.Fatalf("a recovery code: %d", status)
	}
	y := f.visitor(t)
	y.login(email, password)
	if status, _, _ := y.do("POST", "/login/verify", url.Values{"code": {codes[0]}}); status != 401 || y.signedIn() {
		t.Fatalf("a used recovery code: %d", status)
	}

	// Five wrong codes end the sign-in.
	clock.Advance(5 * time.Minute)
	z := f.visitor(t)
	z.login(email, password)
	var last string
	for i := 0; i < 5; i++ {
		_, _, last = z.do("POST", "/login/verify", url.Values{"code": {"000000"}})
	}
	if !strings.Contains(last, "Too many wrong codes") || !strings.Contains(last, `id="login-form"`) {
		t.Fatalf("after five wrong codes:\n%s", snippet(last))
	}
	code, _ := totp.GenerateCode(seed, clock.Now())
	if status, _, _ := z.do("POST", "/login/verify", url.Values{"code": {code}}); status != 401 || z.signedIn() {
		t.Fatalf("the ended sign-in went on: %d", status)
	}
}

func TestARequiredSecondFactorRefusesAPasswordOnlySignIn(t *testing.T) {
	clock := testutil.NewClock(time.Now())
	f, _ := accountsFixture(t, clock)
	owner, tech := f.emails["alice-owner"], f.emails["alice-technician"]
	techBefore := f.visitor(t)
	techBefore.login(tech, password)

	o := f.visitor(t)
	o.login(owner, password)
	if status, _, body := o.post("/settings/sign-in/second-factor", url.Values{"required": {"on"}}); status != 409 || !strings.Contains(body, "your own account first") {
		t.Fatalf("an owner without a second factor required one: %d", status)
	}
	enrolTOTP(t, o, clock)
	if status, loc, _ := o.post("/settings/sign-in/second-factor", url.Values{"required": {"on"}}); status != 303 || loc != "/settings/sign-in?done=policySaved" {
		t.Fatalf("require: %d → %s", status, loc)
	}
	if !o.signedIn() {
		t.Fatal("the owner's own session ended")
	}
	if techBefore.signedIn() {
		t.Fatal("a password-only session outlived the requirement")
	}
	// The owner's last factor stays.
	_, _, page := o.do("GET", "/account", nil)
	id := regexp.MustCompile(`/account/factors/(\d+)/remove`).FindStringSubmatch(page)
	if status, _, _ := o.post("/account/factors/"+id[1]+"/remove", url.Values{}); status != 409 {
		t.Fatalf("removing the last factor under the requirement: %d", status)
	}

	// The technician's password is right, but it opens no session: the
	// next step is enrolling a second factor, and nothing else.
	v := f.visitor(t)
	if status, loc := v.login(tech, password); status != 303 || loc != "/login/verify" {
		t.Fatalf("password-only sign-in: %d → %s", status, loc)
	}
	if v.hasCookie(auth.SessionCookie) || v.signedIn() {
		t.Fatal("a password-only sign-in opened a session")
	}
	if status, loc, _ := v.do("GET", "/", nil); status != 303 || !strings.HasPrefix(loc, "/login") {
		t.Fatalf("the overview without a second factor: %d → %s", status, loc)
	}
	if status, _, _ := v.do("GET", "/api/v1/installations", nil); status != 401 {
		t.Fatalf("the API without a second factor: %d", status)
	}
	_, _, enrol := v.do("GET", "/login/verify", nil)
	sm, tm := totpSecret.FindStringSubmatch(enrol), setupToken.FindStringSubmatch(enrol)
	if !strings.Contains(enrol, `id="enrol"`) || sm == nil || tm == nil {
		t.Fatalf("no enrolment page:\n%s", snippet(enrol))
	}
	code, _ := totp.GenerateCode(sm[1], clock.Now())
	status, _, body := v.do("POST", "/login/verify", url.Values{"setup": {html.UnescapeString(tm[1])}, "code": {code}})
	if status != 201 || len(recoveryRow.FindAllString(body, -1)) != 10 || !v.signedIn() {
		t.Fatalf("enrolling at sign-in: %d", status)
	}
	if !audited(t, f, f.alice, "policy.second_factor", "") {
		t.Fatal("the policy change is not audited")
	}
}

func TestAPITokensShowTheirLastUseToTheMinute(t *testing.T) {
	clock := testutil.NewClock(time.Now().Truncate(time.Second))
	f, _ := accountsFixture(t, clock)
	token := secret.New("kw_")
	id, err := f.a.Store.CreateToken(ctx, f.alice, "export", keepwatch.RoleViewer, secret.Hash(token))
	must(t, err)
	call := func() {
		req, _ := http.NewRequest("GET", f.base+"/api/v1/installations", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("API: %d", resp.StatusCode)
		}
	}
	lastUsed := func() time.Time {
		tokens, err := f.a.Store.Tokens(ctx, f.alice)
		must(t, err)
		for _, tk := range tokens {
			if tk.ID == id {
				return tk.LastUsedAt
			}
		}
		t.Fatal("token gone")
		return time.Time{}
	}
	if !lastUsed().IsZero() {
		t.Fatal("an unused token has a last use")
	}
	first := clock.Now()
	call()
	if !lastUsed().Equal(first) {
		t.Fatalf("last use %v, want %v", lastUsed(), first)
	}
	clock.Advance(30 * time.Second)
	call()
	if !lastUsed().Equal(first) {
		t.Fatal("a use within the minute was written")
	}
	clock.Advance(31 * time.Second)
	call()
	if !lastUsed().Equal(clock.Now()) {
		t.Fatalf("last use %v, want %v", lastUsed(), clock.Now())
	}
	o := f.visitor(t)
	o.login(f.emails["alice-owner"], password)
	if _, _, page := o.do("GET", "/settings", nil); !strings.Contains(page, `data-label="Last used" class="when"><time class="at"`) {
		t.Fatal("the settings page does not show the token's last use")
	}
}

func TestSessionsPageListsAndEndsSessions(t *testing.T) {
	f, _ := accountsFixture(t, nil)
	email := f.emails["alice-viewer"]
	here, there := f.visitor(t), f.visitor(t)
	here.login(email, password)
	req, _ := http.NewRequest("POST", f.base+"/login", strings.NewReader(url.Values{"email": {email}, "password": {password}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0")
	resp, err := there.client.Do(req)
	must(t, err)
	resp.Body.Close()
	_, _, page := here.do("GET", "/account", nil)
	handles := regexp.MustCompile(`data-handle="([0-9a-f]+)"`).FindAllStringSubmatch(page, -1)
	if len(handles) != 2 || !strings.Contains(page, "Firefox on Windows") || !strings.Contains(page, "127.0.0.1") || !strings.Contains(page, "this one") {
		t.Fatalf("sessions page:\n%s", snippet(page[strings.Index(page, `id="sessions"`):]))
	}
	other := handles[0][1]
	if strings.Contains(page, `class="session current" data-handle="`+other+`"`) {
		other = handles[1][1]
	}
	if status, loc, _ := here.post("/account/sessions/"+other+"/end", url.Values{}); status != 303 || loc != "/account?done=sessionEnded" {
		t.Fatalf("end: %d → %s", status, loc)
	}
	if !here.signedIn() || there.signedIn() {
		t.Fatal("the wrong session ended")
	}
	if !audited(t, f, f.alice, "session.end", email) {
		t.Fatal("ending a session is not audited")
	}
}

// inClear reports whether a dump holds s, as text or as bytes.
func inClear(dump, s string) bool {
	return strings.Contains(dump, s) || strings.Contains(dump, hex.EncodeToString([]byte(s)))
}

// dumpTable returns a table's rows as text, read straight from the
// database file, to look for secrets in clear.
func dumpTable(t *testing.T, f *fixture, table string) string {
	t.Helper()
	dir, _ := dataDirs.Load(f)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir.(string), store.DBFile)+"?mode=ro")
	must(t, err)
	defer db.Close()
	rows, err := db.Query("SELECT * FROM " + table)
	must(t, err)
	defer rows.Close()
	cols, _ := rows.Columns()
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		must(t, rows.Scan(ptrs...))
		for _, v := range vals {
			if raw, ok := v.([]byte); ok {
				fmt.Fprintf(&b, "%x|", raw)
			} else {
				fmt.Fprintf(&b, "%v|", v)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestAccountPagesCarryTheStrictContentSecurityPolicy(t *testing.T) {
	clock := testutil.NewClock(time.Now())
	f, _ := accountsFixture(t, clock)
	v := f.visitor(t)
	v.login(f.emails["alice-owner"], password)
	enrolTOTP(t, v, clock)
	w := f.visitor(t)
	w.login(f.emails["alice-owner"], password)
	check := func(who *visitor, path string) {
		req, _ := http.NewRequest("GET", f.base+path, nil)
		resp, err := who.client.Do(req)
		must(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body := string(b)
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: CSP %q, Cache-Control %q", path, csp, resp.Header.Get("Cache-Control"))
		}
		for _, bad := range []string{"<script>", "style=", " onclick=", " onload=", " onsubmit=", "javascript:", "ZgotmplZ"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s contains %q", path, bad)
			}
		}
	}
	for _, path := range []string{"/account", "/account?setup=totp", "/settings/sign-in", "/settings"} {
		check(v, path)
	}
	anon := f.visitor(t)
	for _, path := range []string{"/login", "/password-reset"} {
		check(anon, path)
	}
	check(w, "/login/verify")
}
