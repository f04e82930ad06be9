package web_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
)

func TestSignInSetsASecureSessionCookieAndStoresOnlyItsHash(t *testing.T) {
	f := newFixture(t, fixtureOptions{dialect: store.SQLite})
	email := "ann@alice.example"
	_, err := f.a.Store.CreateUser(ctx, f.alice, email, secret.HashPassword(password), keepwatch.RoleViewer)
	must(t, err)
	status, hdr, _ := f.do(session{}, "POST", "/login", url.Values{"email": {"Ann@Alice.example "}, "password": {password}, "next": {"/incidents"}})
	if status != 303 || hdr.Get("Location") != "/incidents" {
		t.Fatalf("sign-in: %d → %q", status, hdr.Get("Location"))
	}
	var c *http.Cookie
	for _, ck := range (&http.Response{Header: hdr}).Cookies() {
		if ck.Name == "kw_session" {
			c = ck
		}
	}
	if c == nil || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || len(c.Value) < 40 {
		t.Fatalf("session cookie %+v", c)
	}
	// The store knows the session by the cookie's hash only.
	if _, err := f.a.Store.SessionByHash(ctx, []byte(c.Value), timeZero); err == nil {
		t.Fatal("the session is found by its raw value")
	}
	ss, err := f.a.Store.SessionByHash(ctx, secret.Hash(c.Value), timeZero)
	must(t, err)
	if ss.Email != email {
		t.Fatalf("session of %q", ss.Email)
	}
	// An open redirect after sign-in is not followed.
	status, hdr, _ = f.do(session{}, "POST", "/login", url.Values{"email": {email}, "password": {password}, "next": {"//evil.example/"}})
	if status != 303 || hdr.Get("Location") != "/" {
		t.Fatalf("next=//evil.example: %d → %q", status, hdr.Get("Location"))
	}
}

func TestSignInIsRateLimitedPerAccountAndPerAddress(t *testing.T) {
	f := newFixture(t, fixtureOptions{dialect: store.SQLite})
	// Fixture users have no usable password, so every attempt fails fast.
	try := func(email string) (int, http.Header, string) {
		return f.do(session{}, "POST", "/login", url.Values{"email": {email}, "password": {"guess"}})
	}
	for i := 0; i < 5; i++ {
		if status, _, _ := try(f.emails["alice-owner"]); status != 401 {
			t.Fatalf("attempt %d: %d", i+1, status)
		}
	}
	status, hdr, body := try(f.emails["alice-owner"])
	if status != 429 || !strings.Contains(body, "Too many sign-in attempts") {
		t.Fatalf("sixth failed attempt on one account: %d", status)
	}
	if s, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("Retry-After %q", hdr.Get("Retry-After"))
	}
	// Other accounts from the same address may try, each below its own
	// limit, until the address has used its allowance (20, 5 used).
	attempts := 0
	for _, email := range []string{f.emails["alice-viewer"], f.emails["alice-technician"], "spare@alice.example", f.emails["bob-owner"]} {
		for i := 0; i < 4; i++ {
			attempts++
			status, _, _ := try(email)
			if status == 429 {
				if attempts != 16 {
					t.Fatalf("address limited after %d more attempts, want 16", attempts)
				}
				return
			}
		}
	}
	t.Fatal("an address may try without limit across accounts")
}

func TestPagesCarryAStrictContentSecurityPolicy(t *testing.T) {
	f := newFixture(t, fixtureOptions{dialect: store.SQLite})
	s := f.session("alice-owner")
	for _, path := range []string{"/login", "/", "/installations/" + aliceSLC, "/incidents", "/registrations", "/settings", "/nowhere"} {
		_, hdr, body := f.do(s, "GET", path, nil)
		csp := hdr.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if hdr.Get("X-Frame-Options") != "DENY" || hdr.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: security headers %v", path, hdr)
		}
		// Nothing the policy would block: no inline script, style or handler.
		for _, bad := range []string{"<script>", "style=", " onclick=", " onload=", " onsubmit=", "javascript:"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s contains %q", path, bad)
			}
		}
	}
}

var timeZero time.Time
