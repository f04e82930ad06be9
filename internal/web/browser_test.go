package web_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"keepwatch"
	"keepwatch/internal/agent"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

// chromiumPath finds Debian's chromium (or KEEPWATCH_CHROMIUM). Without it
// the browser tests skip, unless every test must run.
func chromiumPath(t testing.TB) string {
	t.Helper()
	p := os.Getenv("KEEPWATCH_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err != nil {
		if testutil.RequireAll() {
			t.Fatalf("Chromium is required (KEEPWATCH_REQUIRE_ALL=1) at %s: %v; run scripts/ensure-chromium.sh", p, err)
		}
		t.Skipf("Chromium not found at %s", p)
	}
	return p
}

// newBrowser starts a headless Chromium with a fresh profile, closed when
// the test ends.
func newBrowser(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	base, cancelTimeout := context.WithTimeout(ctx, timeout)
	actx, cancelAlloc := chromedp.NewExecAllocator(base, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		cancelTimeout()
	})
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

func run(t *testing.T, b context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b, steps...); err != nil {
		t.Fatal(err)
	}
}

func text(t *testing.T, b context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(b, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func eval[T any](t *testing.T, b context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(b, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// count returns how many elements match a CSS selector right now.
func count(t *testing.T, b context.Context, sel string) int {
	t.Helper()
	return eval[int](t, b, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))
}

func (f *fixture) signIn(t *testing.T, b context.Context, email string) {
	t.Helper()
	run(t, b,
		chromedp.Navigate(f.base+"/login"),
		chromedp.WaitVisible(chromedp.CSS("#email")),
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("header.top")),
	)
}

func (f *fixture) signOut(t *testing.T, b context.Context) {
	t.Helper()
	run(t, b, chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-form")))
}

// TestDashboardInChromium drives the dashboard in a real browser, one
// browser for the whole story to keep the suite light.
func TestDashboardInChromium(t *testing.T) {
	chromiumPath(t)
	f := newFixture(t, fixtureOptions{dialect: store.SQLite, passwords: true, listen: true})
	b := newBrowser(t, 2*time.Minute)
	owner, viewer := f.emails["alice-owner"], f.emails["alice-viewer"]
	incPath := fmt.Sprintf("/incidents/%d", f.incident)

	t.Run("SignInAndOut", func(t *testing.T) {
		run(t, b, chromedp.Navigate(f.base+"/incidents"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
		if loc, _ := chromedp.Run(b, chromedp.Location()); !strings.Contains(loc, "/login?next=%2Fincidents") {
			t.Fatalf("an anonymous visit went to %s", loc)
		}
		// A wrong password is refused with a message.
		run(t, b,
			chromedp.SendKeys(chromedp.CSS("#email"), owner),
			chromedp.SendKeys(chromedp.CSS("#password"), "not the password"),
			chromedp.Click(chromedp.CSS("#login-submit")),
			chromedp.WaitVisible(chromedp.CSS("#form-error")),
		)
		if msg := text(t, b, "#form-error"); msg != "Wrong e-mail or password." {
			t.Fatalf("wrong password: %q", msg)
		}
		f.signIn(t, b, owner)
		// The session cookie is out of reach of scripts.
		if c := eval[string](t, b, `document.cookie`); strings.Contains(c, "kw_session") {
			t.Fatalf("session cookie readable by script: %q", c)
		}
		if h := text(t, b, "main h1"); h != "Overview" {
			t.Fatalf("after sign-in: %q", h)
		}
		f.signOut(t, b)
		if msg := text(t, b, ".flash.ok"); !strings.Contains(msg, "signed out") {
			t.Fatalf("after sign-out: %q", msg)
		}
		// The old session is gone: the overview asks to sign in again.
		run(t, b, chromedp.Navigate(f.base+"/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	})

	t.Run("ShowAllToggle", func(t *testing.T) {
		f.signIn(t, b, owner)
		if n := count(t, b, `tr[data-slc="`+aliceSLC+`"]`); n != 1 {
			t.Fatalf("the installation with an error is not shown by default (%d)", n)
		}
		if n := count(t, b, `tr[data-slc="`+aliceOKSLC+`"]`); n != 0 {
			t.Fatal("a healthy installation is shown by default")
		}
		run(t, b, chromedp.Click(chromedp.CSS("#show-all")), chromedp.WaitVisible(chromedp.CSS(`tr[data-slc="`+aliceOKSLC+`"]`)))
		if n := count(t, b, `tr[data-slc]`); n != 3 {
			t.Fatalf("show all lists %d installations, want 3", n)
		}
		run(t, b, chromedp.Click(chromedp.CSS("#show-errors")), chromedp.WaitNotPresent(chromedp.CSS(`tr[data-slc="`+aliceOKSLC+`"]`)))
	})

	t.Run("ReportAppearsLiveWithoutReload", func(t *testing.T) {
		// The overview is open (errors only) and its event stream connected.
		run(t, b, chromedp.Navigate(f.base+"/"), chromedp.WaitVisible(chromedp.CSS(`#live-status[data-state="on"]`)))
		eval[bool](t, b, `window.keepwatchMarker = true`)
		st, err := agent.Enroll(ctx, agent.EnrollOptions{Server: f.base, SLC: aliceOKSLC, Key: "k", Name: "RS-09", Consent: true})
		must(t, err)
		c, err := agent.NewClient(st.Server, "")
		must(t, err)
		p, err := agent.StatusPayload([]string{`media_db_write_failed:D:\MediaDB`}, nil, time.Now().UTC())
		must(t, err)
		sent := time.Now()
		if _, err := (&agent.Sender{State: st, Client: c}).Send(ctx, p); err != nil {
			t.Fatal(err)
		}
		for count(t, b, `tr[data-slc="`+aliceOKSLC+`"]`) == 0 {
			if time.Since(sent) > 2*time.Second {
				t.Fatal("the report did not appear on the open overview within 2 s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("report visible %s after it was sent", time.Since(sent).Round(time.Millisecond))
		if !eval[bool](t, b, `window.keepwatchMarker === true`) {
			t.Fatal("the page was reloaded")
		}
		if row := text(t, b, `tr[data-slc="`+aliceOKSLC+`"]`); !strings.Contains(row, "Media database write failed") {
			t.Fatalf("new row: %q", row)
		}
	})

	t.Run("AcknowledgeIncidentStaysInPlace", func(t *testing.T) {
		row := fmt.Sprintf("#incident-%d", f.incident)
		run(t, b,
			chromedp.Navigate(f.base+"/incidents"),
			chromedp.WaitVisible(chromedp.CSS(row+` button[formaction$="/ack"]`)),
			chromedp.SendKeys(chromedp.CSS("#bulk-note"), "replacing the disk today"),
			chromedp.Click(chromedp.CSS(row+` button[formaction$="/ack"]`)),
			chromedp.WaitVisible(chromedp.CSS("#flash")),
		)
		// Back on the same list, on the incident's row.
		if loc, _ := chromedp.Run(b, chromedp.Location()); !strings.HasSuffix(loc, "/incidents?done=acked"+row) {
			t.Fatalf("after acknowledging: %s", loc)
		}
		if got := text(t, b, row); !strings.Contains(got, "Acknowledged by "+owner) || strings.Contains(got, "user:") {
			t.Fatalf("incident after ack: %q", got)
		}
		n, err := f.a.Store.Incident(ctx, f.alice, f.incident)
		must(t, err)
		if n.State != keepwatch.IncidentAcknowledged || n.AckNote != "replacing the disk today" {
			t.Fatalf("stored incident %+v", n)
		}
	})

	t.Run("PostWithoutCSRFTokenIsRefused", func(t *testing.T) {
		// Same origin, signed in, but without the form's token.
		status := eval[int](t, b, `fetch('`+incPath+`/resolve', {method: 'POST', body: new URLSearchParams({note: 'forged'})}).then(r => r.status)`)
		if status != http.StatusForbidden {
			t.Fatalf("POST without a CSRF token: %d", status)
		}
		// Another site's page that posts a form to keepwatch.
		evil := newEvilSite(t, f.base+incPath+"/resolve")
		run(t, b, chromedp.Navigate(evil), chromedp.WaitVisible(chromedp.CSS("#error-message")))
		if msg := text(t, b, "#error-message"); !strings.Contains(msg, "another site") {
			t.Fatalf("cross-site form: %q", msg)
		}
		if n, _ := f.a.Store.Incident(ctx, f.alice, f.incident); n.State == keepwatch.IncidentResolved {
			t.Fatal("a forged request resolved the incident")
		}
	})

	t.Run("RegisteringAnotherIntegratorsSLCShowsNeutralConflict", func(t *testing.T) {
		register := func(slc string) string {
			run(t, b,
				chromedp.Navigate(f.base+"/registrations"),
				chromedp.WaitVisible(chromedp.CSS("#slc")),
				chromedp.SendKeys(chromedp.CSS("#slc"), slc),
				chromedp.Click(chromedp.CSS("#register")),
				chromedp.WaitVisible(chromedp.CSS("#register-slc-error")),
			)
			// The refusal is beside the field, which keeps what was typed.
			if v := eval[string](t, b, `document.getElementById('slc').value`); v != slc {
				t.Fatalf("the field says %q after the refusal, want %q", v, slc)
			}
			return text(t, b, "#register-slc-error")
		}
		held, unknown := register(bobSLC), register("NOBODY-0042")
		if held != unknown || !strings.Contains(held, "cannot be registered to your account") {
			t.Fatalf("held: %q, unknown: %q", held, unknown)
		}
	})

	t.Run("AnotherIntegratorsInstallationIsNotFound", func(t *testing.T) {
		run(t, b, chromedp.Navigate(f.base+"/installations/"+bobSLC), chromedp.WaitVisible(chromedp.CSS("#error-message")))
		if h := text(t, b, "main h1"); h != "Not found" {
			t.Fatalf("bob's installation by URL: %q", h)
		}
		if body := text(t, b, "main"); strings.Contains(body, "Bob's Customer") {
			t.Fatal("bob's customer shown to alice")
		}
		// Her own installation opens.
		run(t, b, chromedp.Navigate(f.base+"/installations/"+aliceSLC), chromedp.WaitVisible(chromedp.CSS("#conditions")))
		if h := text(t, b, "main h1"); h != aliceCustomer {
			t.Fatalf("own installation: %q", h)
		}
	})

	t.Run("ViewerSeesNoActionsAndCannotForgeThem", func(t *testing.T) {
		f.signOut(t, b)
		f.signIn(t, b, viewer)
		run(t, b, chromedp.Navigate(f.base+"/incidents?state=acknowledged"), chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf("#incident-%d", f.incident))))
		if n := count(t, b, "#bulk, #incident-list button, #incident-list input"); n != 0 {
			t.Fatalf("a viewer sees %d incident forms, buttons or boxes", n)
		}
		if n := count(t, b, `a[href="/settings"]`); n != 0 {
			t.Fatal("a viewer sees the settings link")
		}
		// A forged but well-formed POST, with the viewer's own CSRF token.
		status := eval[int](t, b, `fetch('`+incPath+`/resolve', {method: 'POST', body: new URLSearchParams({
			csrf: document.querySelector('input[name=csrf]').value, note: 'forged'})}).then(r => r.status)`)
		if status != http.StatusForbidden {
			t.Fatalf("viewer's forged resolve: %d", status)
		}
		// The same through the REST API with the session cookie.
		status = eval[int](t, b, `fetch('/api/v1`+incPath+`/resolve', {method: 'POST', headers: {'X-CSRF-Token':
			document.querySelector('input[name=csrf]').value}}).then(r => r.status)`)
		if status != http.StatusForbidden {
			t.Fatalf("viewer's resolve through the API: %d", status)
		}
		if n, _ := f.a.Store.Incident(ctx, f.alice, f.incident); n.State != keepwatch.IncidentAcknowledged {
			t.Fatalf("incident is %s after a viewer's forged requests", n.State)
		}
	})
}

// newEvilSite serves, on another origin, a page that posts a form to
// target as soon as it loads.
func newEvilSite(t *testing.T, target string) string {
	srv := newPlainServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><form id="f" method="post" action="%s"><input name="csrf" value="guess"><input name="note" value="pwned"></form>
<script>document.getElementById('f').submit()</script>`, target)
	}))
	return srv
}
