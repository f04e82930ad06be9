package web_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"keepwatch/internal/app"
	"keepwatch/internal/mail/mailtest"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// signInWith fills the sign-in form; the caller waits for what follows.
func signInWith(t *testing.T, b context.Context, base, email, pw string) {
	t.Helper()
	run(t, b,
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.CSS("#email")),
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), pw),
		chromedp.Click(chromedp.CSS("#login-submit")),
	)
}

func flash(t *testing.T, b context.Context) string {
	t.Helper()
	run(t, b, chromedp.WaitVisible(chromedp.CSS(".flash.ok")))
	return text(t, b, ".flash.ok")
}

// TestAccountsInChromium drives the account features in a real browser:
// keepwatch at http://localhost (WebAuthn needs a host name), a real SMTP
// server for reset mail, Chromium's virtual authenticator for passkeys and
// zitadel's OpenID provider for company sign-in.
func TestAccountsInChromium(t *testing.T) {
	chromiumPath(t)
	clock := testutil.NewClock(time.Now())
	mails := mailtest.NewServer(t)
	port := freePort(t)
	public := fmt.Sprintf("http://localhost:%d", port)
	var dir string
	f := newFixture(t, fixtureOptions{dialect: store.SQLite, passwords: true, listen: true, configure: func(c *app.Config) {
		c.Addr, c.PublicURL = fmt.Sprintf("127.0.0.1:%d", port), public
		c.SMTP, c.Now = mails.Config(), clock.Now
		c.AllowOutbound = []string{"127.0.0.1/32", "localhost"}
		dir = c.DataDir
	}})
	dataDirs.Store(f, dir)
	f.base = public
	b := newBrowser(t, 4*time.Minute)
	signOut := func(t *testing.T) {
		run(t, b, chromedp.Navigate(public+"/"), chromedp.WaitVisible(chromedp.CSS("#logout")))
		f.signOut(t, b)
	}

	t.Run("PasswordChange", func(t *testing.T) {
		email := f.emails["alice-technician"]
		elsewhere := f.visitor(t)
		elsewhere.login(email, password)
		signInWith(t, b, public, email, password)
		next := "bright copper kettles"
		run(t, b,
			chromedp.WaitVisible(chromedp.CSS("header.top")),
			chromedp.Click(chromedp.CSS("#account-link")),
			chromedp.WaitVisible(chromedp.CSS("#password-form")),
			chromedp.SendKeys(chromedp.CSS("#current-password"), password),
			chromedp.SendKeys(chromedp.CSS("#new-password"), next),
			chromedp.SendKeys(chromedp.CSS("#confirm-password"), next),
			chromedp.Click(chromedp.CSS("#change-password")),
		)
		if msg := flash(t, b); !strings.Contains(msg, "Password changed") {
			t.Fatalf("after the change: %q", msg)
		}
		if elsewhere.signedIn() {
			t.Fatal("the session elsewhere outlived the change")
		}
		signOut(t)
		signInWith(t, b, public, email, next)
		run(t, b, chromedp.WaitVisible(chromedp.CSS("header.top")))
		signOut(t)
	})

	t.Run("PasswordReset", func(t *testing.T) {
		email := "spare@alice.example"
		run(t, b,
			chromedp.Navigate(public+"/login"),
			chromedp.WaitVisible(chromedp.CSS("#forgot-password")),
			chromedp.Click(chromedp.CSS("#forgot-password")),
			chromedp.WaitVisible(chromedp.CSS("#reset-request-form #email")),
			chromedp.SendKeys(chromedp.CSS("#email"), email),
			chromedp.Click(chromedp.CSS("#reset-request-submit")),
			chromedp.WaitVisible(chromedp.CSS("#reset-sent")),
		)
		m, ok := mails.Wait(email, 0, 15*time.Second)
		if !ok {
			t.Fatal("no reset mail arrived")
		}
		link := resetLink.FindString(m.Text)
		if !strings.HasPrefix(link, public+"/password-reset/") {
			t.Fatalf("link %q", link)
		}
		next := "seven quiet harbour lights"
		run(t, b,
			chromedp.Navigate(link),
			chromedp.WaitVisible(chromedp.CSS("#reset-form")),
			chromedp.SendKeys(chromedp.CSS("#password"), next),
			chromedp.SendKeys(chromedp.CSS("#confirm"), next),
			chromedp.Click(chromedp.CSS("#reset-submit")),
			chromedp.WaitVisible(chromedp.CSS("#login-form")),
		)
		if msg := flash(t, b); !strings.Contains(msg, "Your password is set") {
			t.Fatalf("after the reset: %q", msg)
		}
		// The link was spent.
		run(t, b, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#form-error")))
		if msg := text(t, b, "#form-error"); !strings.Contains(msg, "not valid any more") {
			t.Fatalf("the link a second time: %q", msg)
		}
		signInWith(t, b, public, email, next)
		run(t, b, chromedp.WaitVisible(chromedp.CSS("header.top")))
		signOut(t)
	})

	t.Run("TOTPEnrolmentAndSignIn", func(t *testing.T) {
		email := f.emails["alice-viewer"]
		signInWith(t, b, public, email, password)
		run(t, b,
			chromedp.WaitVisible(chromedp.CSS("header.top")),
			chromedp.Navigate(public+"/account"),
			chromedp.WaitVisible(chromedp.CSS("#add-totp")),
			chromedp.Click(chromedp.CSS("#add-totp")),
			chromedp.WaitVisible(chromedp.CSS("#totp-secret")),
		)
		if ok := eval[bool](t, b, `(() => { const i = document.querySelector('#totp-setup img.qr'); return i.complete && i.naturalWidth > 100 })()`); !ok {
			t.Fatal("the QR code did not render")
		}
		seed := eval[string](t, b, `document.getElementById('totp-secret').value`)
		code, err := totp.GenerateCode(seed, clock.Now())
		must(t, err)
		run(t, b,
			chromedp.SendKeys(chromedp.CSS("#totp-code"), code),
			chromedp.Click(chromedp.CSS("#totp-confirm")),
			chromedp.WaitVisible(chromedp.CSS("#recovery-code-list")),
		)
		if n := count(t, b, "#recovery-code-list li"); n != 10 {
			t.Fatalf("%d recovery codes shown", n)
		}
		signOut(t)
		clock.Advance(30 * time.Second)
		signInWith(t, b, public, email, password)
		run(t, b, chromedp.WaitVisible(chromedp.CSS("#second-factor")))
		code, _ = totp.GenerateCode(seed, clock.Now())
		run(t, b,
			chromedp.SendKeys(chromedp.CSS("#code"), code),
			chromedp.Click(chromedp.CSS("#verify-submit")),
			chromedp.WaitVisible(chromedp.CSS("header.top")),
		)
		signOut(t)
	})

	t.Run("CompanySignIn", func(t *testing.T) {
		issuer := newOpenIDProvider(t, public+"/login/oidc/alice/callback")
		configureOIDC(t, f, issuer)
		run(t, b,
			chromedp.Navigate(public+"/login"),
			chromedp.WaitVisible(chromedp.CSS("#integrator")),
			chromedp.SendKeys(chromedp.CSS("#integrator"), "alice"),
			chromedp.Click(chromedp.CSS("#company-signin button")),
			// zitadel's login page, on the provider's own address
			chromedp.WaitVisible(chromedp.CSS("#username")),
		)
		if loc, _ := chromedp.Run(b, chromedp.Location()); !strings.HasPrefix(loc, issuer+"/login/username") {
			t.Fatalf("company sign-in went to %s", loc)
		}
		run(t, b,
			chromedp.SendKeys(chromedp.CSS("#username"), "tom"),
			chromedp.SendKeys(chromedp.CSS("#password"), opPassword),
			chromedp.Click(chromedp.CSS("button[type=submit]")),
			chromedp.WaitVisible(chromedp.CSS("header.top")),
		)
		if who := text(t, b, "#account-link"); !strings.Contains(who, "tom@alice.example") {
			t.Fatalf("signed in as %q", who)
		}
		run(t, b, chromedp.Navigate(public+"/account"), chromedp.WaitVisible(chromedp.CSS("tr.session.current")))
		if how := text(t, b, `tr.session.current td[data-label="How"]`); how != "company sign-in" {
			t.Fatalf("session signed in by %q", how)
		}
		signOut(t)
	})

	t.Run("PasskeyRegistrationAndSignIn", func(t *testing.T) {
		must(t, chromedp.Do(b, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
				return err
			}
			_, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
				Options: &webauthn.VirtualAuthenticatorOptions{Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportInternal,
					HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true}})
			return err
		})))
		email := f.emails["alice-owner"]
		signInWith(t, b, public, email, password)
		run(t, b,
			chromedp.WaitVisible(chromedp.CSS("header.top")),
			chromedp.Navigate(public+"/account"),
			chromedp.WaitVisible(chromedp.CSS("#add-passkey")),
			chromedp.SendKeys(chromedp.CSS("#passkey-name"), "virtual key"),
			chromedp.Click(chromedp.CSS("#add-passkey")),
		)
		if msg := flash(t, b); msg != "Passkey added." {
			t.Fatalf("after registering: %q (%s)", msg, text(t, b, "main"))
		}
		if row := text(t, b, `tr.factor[data-kind="passkey"]`); !strings.Contains(row, "virtual key") {
			t.Fatalf("factor row %q", row)
		}
		signOut(t)

		// A passkey alone signs in.
		run(t, b,
			chromedp.Navigate(public+"/login"),
			chromedp.WaitVisible(chromedp.CSS("#passkey-signin")),
			chromedp.Click(chromedp.CSS("#passkey-signin")),
			chromedp.WaitVisible(chromedp.CSS("header.top")),
			chromedp.Navigate(public+"/account"),
			chromedp.WaitVisible(chromedp.CSS("tr.session.current")),
		)
		if how := text(t, b, `tr.session.current td[data-label="How"]`); how != "passkey" {
			t.Fatalf("session signed in by %q", how)
		}
		signOut(t)

		// After a password, the passkey is the second factor.
		signInWith(t, b, public, email, password)
		run(t, b,
			chromedp.WaitVisible(chromedp.CSS("#passkey-verify")),
			chromedp.Click(chromedp.CSS("#passkey-verify")),
			chromedp.WaitVisible(chromedp.CSS("header.top")),
		)
		if !audited(t, f, f.alice, "factor.add", email) {
			t.Fatal("the passkey is not audited")
		}
	})

	t.Run("RequiredSecondFactorRefusesAPasswordOnlySignIn", func(t *testing.T) {
		// The owner, signed in with password and passkey, requires a
		// second factor of everyone.
		run(t, b,
			chromedp.Navigate(public+"/settings"),
			chromedp.WaitVisible(chromedp.CSS("#signin-settings-link")),
			chromedp.Click(chromedp.CSS("#signin-settings-link")),
			chromedp.WaitVisible(chromedp.CSS("#policy-toggle")),
			chromedp.Click(chromedp.CSS("#policy-toggle")),
		)
		if msg := flash(t, b); !strings.Contains(msg, "requirement saved") {
			t.Fatalf("after requiring: %q", msg)
		}
		signOut(t)
		// The technician has no second factor: the right password leads
		// to enrolment, not to the dashboard.
		email := f.emails["alice-technician"]
		signInWith(t, b, public, email, "bright copper kettles")
		run(t, b, chromedp.WaitVisible(chromedp.CSS("#enrol")))
		run(t, b, chromedp.Navigate(public+"/incidents"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
		run(t, b, chromedp.Navigate(public+"/login/verify"), chromedp.WaitVisible(chromedp.CSS("#enrol #totp-secret")))
		seed := eval[string](t, b, `document.getElementById('totp-secret').value`)
		code, err := totp.GenerateCode(seed, clock.Now())
		must(t, err)
		run(t, b,
			chromedp.SendKeys(chromedp.CSS("#code"), code),
			chromedp.Click(chromedp.CSS("#verify-submit")),
			chromedp.WaitVisible(chromedp.CSS("#recovery-code-list")),
			chromedp.Click(chromedp.CSS("#continue")),
			chromedp.WaitVisible(chromedp.CSS("header.top")),
		)
		signOut(t)
	})

}
