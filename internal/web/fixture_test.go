package web_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/app"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

var ctx = context.Background()

const (
	aliceSLC      = "ALICE-0001" // registered to alice, one server with a full disk
	aliceIdleSLC  = "ALICE-0002" // registered to alice, never reported
	aliceOKSLC    = "ALICE-0003" // registered to alice, healthy
	aliceCustomer = "Alice's Secret Customer"
	bobSLC        = "BOB-0001"
	freeSLC       = "FREE-0001" // licensed, registered to nobody
	password      = "correct horse battery"
	hookKey       = "alice-web-hook-key-41c9" // in alice's webhook URL: for her owners' eyes only
	hookSecret    = "whsec_alice_web_7e02"    // the webhook's signing secret: nobody's eyes
)

// fixture is two integrators' worth of data in a running keepwatch.
type fixture struct {
	t        testing.TB
	a        *app.App
	base     string // URL of the server
	client   *http.Client
	alice    int64
	bob      int64
	users    map[string]int64 // alice-owner, alice-technician, alice-viewer, bob-owner, alice-spare
	emails   map[string]string
	incident int64 // alice's storage_full incident
	tokenID  int64 // a spare token of alice's, for revocation
	channel  int64 // alice's webhook channel
	rule     int64 // alice's rule on it
	window   int64 // a maintenance window alice scheduled for tomorrow
}

type fixtureOptions struct {
	dialect   string
	passwords bool // real argon2id hashes (only the browser signs in with them)
	listen    bool // a real listener (browser, agents) rather than httptest over TLS
	seed      func(*fixture)
	configure func(*app.Config) // changes to the server's configuration
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newFixture(t testing.TB, o fixtureOptions) *fixture {
	t.Helper()
	cfg := app.Config{Interval: time.Minute, InsecureHTTP: true, DataDir: t.TempDir(), Logger: quiet(), Addr: "127.0.0.1:0",
		SweepEvery: 50 * time.Millisecond}
	if o.dialect == store.Postgres {
		cfg.DB, cfg.SecretKey = testutil.DSN(t, o.dialect), testutil.SecretKey
	}
	if o.configure != nil {
		o.configure(&cfg)
	}
	a, err := app.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, a: a, users: map[string]int64{}, emails: map[string]string{}}
	s := a.Store
	until, _ := keepwatch.ParseDate("2099-01-01")
	hash := "not-a-password-hash"
	if o.passwords {
		hash = secret.HashPassword(password)
	}
	type inst struct {
		slc, customer string
		conds         []string
		servers       int
	}
	for _, who := range []struct {
		name  string
		roles []keepwatch.Role
		insts []inst
	}{
		{"alice", []keepwatch.Role{keepwatch.RoleOwner, keepwatch.RoleTechnician, keepwatch.RoleViewer},
			[]inst{{aliceSLC, aliceCustomer, []string{"storage_full:E:\\Recordings"}, 1}, {aliceIdleSLC, "Idle Mill", nil, 0}, {aliceOKSLC, "Calm Harbour", nil, 1}}},
		{"bob", []keepwatch.Role{keepwatch.RoleOwner}, []inst{{bobSLC, "Bob's Customer", []string{"camera_unreachable:cam-01"}, 1}}},
	} {
		in, err := s.CreateIntegrator(ctx, who.name)
		must(t, err)
		if who.name == "alice" {
			f.alice = in.ID
		} else {
			f.bob = in.ID
		}
		for _, r := range who.roles {
			key := who.name + "-" + string(r)
			email := fmt.Sprintf("%s.%s@%s.example", r, who.name, who.name)
			f.users[key], err = s.CreateUser(ctx, in.ID, email, hash, r)
			must(t, err)
			f.emails[key] = email
		}
		for _, ins := range who.insts {
			instID, err := s.CreateInstallation(ctx, keepwatch.Installation{SLC: ins.slc, Customer: ins.customer, Product: "XProtect Corporate 2016", Cameras: 16, CarePlusUntil: until}, secret.Hash("k"))
			must(t, err)
			must(t, s.Register(ctx, in.ID, ins.slc))
			for n := 1; n <= ins.servers; n++ {
				id := fmt.Sprintf("%024x%08x", instID, n)
				_, err := s.Enroll(ctx, keepwatch.Enrollment{InstallationID: instID, ID: id, Name: fmt.Sprintf("RS-%02d", n), Key: make([]byte, 32), Interval: time.Minute, AgentVersion: "1.0.0"})
				must(t, err)
				r := keepwatch.Report{ServerID: id, Seq: 1, ReceivedAt: time.Now(), Interval: time.Minute, Status: true, AgentVersion: "1.0.0", Conditions: []keepwatch.Condition{}}
				for _, c := range ins.conds {
					kind, subject, _ := strings.Cut(c, ":")
					r.Conditions = append(r.Conditions, keepwatch.Condition{Kind: kind, Subject: subject, Severity: keepwatch.SeverityOf(kind)})
				}
				_, err = s.ApplyReport(ctx, r)
				must(t, err)
			}
		}
	}
	_, err = s.CreateInstallation(ctx, keepwatch.Installation{SLC: freeSLC, Customer: "Nobody's", Product: "Husky M30", Cameras: 4, CarePlusUntil: until}, secret.Hash("k"))
	must(t, err)
	f.users["alice-spare"], err = s.CreateUser(ctx, f.alice, "spare@alice.example", hash, keepwatch.RoleViewer)
	must(t, err)
	f.tokenID, err = s.CreateToken(ctx, f.alice, "spare", keepwatch.RoleViewer, secret.Hash(secret.New("kw_")))
	must(t, err)
	ins, err := s.Incidents(ctx, f.alice, "", 10)
	must(t, err)
	if len(ins) != 1 {
		t.Fatalf("alice's incidents: %+v", ins)
	}
	f.incident = ins[0].ID
	ch, err := s.CreateChannel(ctx, f.alice, keepwatch.Channel{Name: "alice hook", Type: keepwatch.ChannelWebhook, Target: "https://127.0.0.1:9/hook?key=" + hookKey, Secret: hookSecret, Enabled: true})
	must(t, err)
	f.channel = ch.ID
	rl, err := s.CreateRule(ctx, f.alice, keepwatch.Rule{Name: "alice all", ChannelID: ch.ID, MinSeverity: keepwatch.SeverityWarning, Enabled: true})
	must(t, err)
	f.rule = rl.ID
	win, err := s.SetMaintenance(ctx, f.alice, keepwatch.MaintenanceWindow{SLC: aliceSLC, Start: time.Now().Add(24 * time.Hour), End: time.Now().Add(26 * time.Hour),
		Reason: "firmware", CreatedBy: "user:" + f.emails["alice-technician"]})
	must(t, err)
	f.window = win.ID

	if o.seed != nil {
		o.seed(f)
	}
	if o.listen {
		must(t, a.Start(ctx))
		f.base = a.URL()
		f.client = &http.Client{}
		t.Cleanup(func() {
			c, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			a.Shutdown(c)
		})
	} else {
		srv := newTLSServer(t, a.Handler())
		f.base, f.client = srv.URL, srv.Client()
		t.Cleanup(func() { a.Store.Close() })
	}
	f.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return f
}

func newTLSServer(t testing.TB, h http.Handler) *httptest.Server {
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func newPlainServer(t testing.TB, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// session is a signed-in dashboard user.
type session struct {
	cookie, csrf string
}

// session signs a user in directly in the store (the login form is tested
// on its own; argon2id per test user would only slow the suite down).
func (f *fixture) session(who string) session {
	f.t.Helper()
	if who == "" {
		return session{}
	}
	integrator := f.alice
	if strings.HasPrefix(who, "bob") {
		integrator = f.bob
	}
	value, csrf := secret.New(""), secret.New("")
	must(f.t, f.a.Store.CreateSession(ctx, keepwatch.NewSession{IDHash: secret.Hash(value), UserID: f.users[who], IntegratorID: integrator,
		CSRF: csrf, ExpiresAt: time.Now().Add(time.Hour)}))
	return session{cookie: value, csrf: csrf}
}

// do sends a request as s. A form gets s's CSRF token unless it has one.
func (f *fixture) do(s session, method, path string, form url.Values) (int, http.Header, string) {
	f.t.Helper()
	var body io.Reader
	if form != nil {
		if !form.Has("csrf") && s.csrf != "" {
			form.Set("csrf", s.csrf)
		}
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, f.base+path, body)
	must(f.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if s.cookie != "" {
		req.AddCookie(&http.Cookie{Name: "kw_session", Value: s.cookie})
	}
	resp, err := f.client.Do(req)
	must(f.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}
