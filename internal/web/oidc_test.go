package web_test

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"keepwatch"
)

// configureOIDC has alice's owner set up company sign-in with the
// provider at issuer, through the settings page.
func configureOIDC(t *testing.T, f *fixture, issuer string) {
	t.Helper()
	o := f.visitor(t)
	o.login(f.emails["alice-owner"], password)
	form := url.Values{"issuer": {issuer}, "client_id": {opClientID}, "client_secret": {opClientSecret}, "domains": {"alice.example"},
		"role_claim": {"groups"}, "role_map": {"kw-owners=owner"}, "default_role": {"technician"}}
	if status, loc, body := o.post("/settings/sign-in/oidc", form); status != 303 || loc != "/settings/sign-in?done=oidcSaved" {
		t.Fatalf("configure OIDC: %d → %s %s", status, loc, snippet(body))
	}
	_, _, page := o.do("GET", "/settings/sign-in", nil)
	if strings.Contains(page, opClientSecret) {
		t.Fatal("the client secret is shown again")
	}
	if !strings.Contains(page, f.base+"/login/oidc/alice/callback") {
		t.Fatal("the settings page does not show the redirect URI")
	}
	if inClear(dumpTable(t, f, "oidc_providers"), opClientSecret) {
		t.Fatal("the client secret is stored in clear")
	}
}

// companySignIn goes from keepwatch's company sign-in to the provider's
// login page, signs in there as username, and follows the redirects back.
// It returns the last response's status, URL and body.
func companySignIn(t *testing.T, f *fixture, issuer, username string) (int, string, string, *http.Client) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(f.base + "/login/oidc/alice?next=%2Fincidents")
	must(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// keepwatch's page moves on to the provider by itself (Refresh).
	target, ok := strings.CutPrefix(resp.Header.Get("Refresh"), "0; url=")
	if resp.StatusCode != 200 || !ok {
		t.Fatalf("company sign-in start: %d, Refresh %q", resp.StatusCode, resp.Header.Get("Refresh"))
	}
	resp, err = c.Get(target)
	must(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Request.URL.String(), issuer+"/login/username") {
		t.Fatalf("company sign-in went to %d %s", resp.StatusCode, resp.Request.URL)
	}
	id := resp.Request.URL.Query().Get("authRequestID")
	resp, err = c.PostForm(issuer+"/login/username", url.Values{"id": {id}, "username": {username}, "password": {opPassword}})
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Request.URL.String(), string(b), c
}

func TestCompanySignInThroughARealOpenIDProvider(t *testing.T) {
	f, _ := accountsFixture(t, nil)
	issuer := newOpenIDProvider(t, f.base+"/login/oidc/alice/callback")
	configureOIDC(t, f, issuer)

	// Olga is new: created from her verified address, an owner by her
	// group, and signed in where she was going.
	status, at, body, _ := companySignIn(t, f, issuer, "olga")
	if status != 200 || at != f.base+"/incidents" || !strings.Contains(body, "olga@alice.example") {
		t.Fatalf("olga: %d at %s\n%s", status, at, snippet(body))
	}
	users, err := f.a.Store.Users(ctx, f.alice)
	must(t, err)
	byEmail := map[string]keepwatch.User{}
	for _, u := range users {
		byEmail[u.Email] = u
	}
	if byEmail["olga@alice.example"].Role != keepwatch.RoleOwner {
		t.Fatalf("olga's account: %+v", byEmail["olga@alice.example"])
	}
	// Tom has no mapped group: the default role.
	if status, _, _, _ := companySignIn(t, f, issuer, "tom"); status != 200 {
		t.Fatalf("tom: %d", status)
	}
	toms, err := f.a.Store.UsersForLogin(ctx, "tom@alice.example")
	must(t, err)
	if len(toms) != 1 {
		t.Fatalf("tom's accounts: %+v", toms)
	}
	tom := toms[0]
	if tom.Role != keepwatch.RoleTechnician || tom.IntegratorID != f.alice || tom.PasswordHash != "" {
		t.Fatalf("tom's account: %+v", tom)
	}
	// Olga again: the same user, found by her subject.
	companySignIn(t, f, issuer, "olga")
	users2, _ := f.a.Store.Users(ctx, f.alice)
	if len(users2) != len(users)+1 {
		t.Fatalf("users %d → %d", len(users), len(users2))
	}
	// An address the provider did not verify, a domain alice does not
	// allow: refused, nobody created.
	for _, who := range []string{"vic", "mal"} {
		status, _, body, c := companySignIn(t, f, issuer, who)
		if status != 403 {
			t.Fatalf("%s: %d\n%s", who, status, snippet(body))
		}
		resp, err := c.Get(f.base + "/account")
		must(t, err)
		resp.Body.Close()
		if resp.Request.URL.Path != "/login" {
			t.Fatalf("%s is signed in", who)
		}
	}
	if vics, err := f.a.Store.UsersForLogin(ctx, "vic@alice.example"); err != nil || len(vics) != 0 {
		t.Fatal("an unverified address got an account")
	}
	if !audited(t, f, f.alice, "session.login", "olga@alice.example") || !audited(t, f, f.alice, "oidc.configure", "") {
		t.Fatal("company sign-in is not audited")
	}
}

func TestCompanySignInRefusesAForgedOrReplayedCallback(t *testing.T) {
	f, _ := accountsFixture(t, nil)
	issuer := newOpenIDProvider(t, f.base+"/login/oidc/alice/callback")
	configureOIDC(t, f, issuer)
	v := f.visitor(t)
	// A round trip begun, then a callback with another state.
	status, _, page := v.do("GET", "/login/oidc/alice", nil)
	loc := html.UnescapeString(regexp.MustCompile(`href="([^"]+)" id="oidc-continue"`).FindStringSubmatch(page)[1])
	if status != 200 || !strings.HasPrefix(loc, issuer) {
		t.Fatalf("start: %d → %s", status, loc)
	}
	if status, _, _ := v.do("GET", "/login/oidc/alice/callback?state=forged&code=forged", nil); status != 401 {
		t.Fatalf("forged state: %d", status)
	}
	// The flow is used up: even the right state is refused now.
	u, _ := url.Parse(loc)
	if status, _, _ := v.do("GET", "/login/oidc/alice/callback?state="+url.QueryEscape(u.Query().Get("state"))+"&code=x", nil); status != 401 {
		t.Fatalf("a second callback: %d", status)
	}
	// Bob's integrator has no company sign-in; neither has a name nobody
	// uses: the same answer.
	s1, _, b1 := v.do("GET", "/login/oidc/bob", nil)
	s2, _, b2 := v.do("GET", "/login/oidc/nobody-at-all", nil)
	if s1 != 404 || s1 != s2 || b1 != b2 {
		t.Fatalf("bob %d, unknown %d", s1, s2)
	}
}
