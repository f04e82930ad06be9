package web_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// TestSignInRedirectStaysOnThisSite: a crafted ?next= must not send a
// signed-in user to another site once the browser has normalised it
// (tabs and newlines dropped, backslashes read as slashes).
func TestSignInRedirectStaysOnThisSite(t *testing.T) {
	f := newFixture(t, fixtureOptions{dialect: "sqlite"})
	s := f.session("alice-viewer")
	for next, want := range map[string]string{
		"/\t/evil.example":              "/",
		"/\n/evil.example":              "/",
		"/\r\n/evil.example":            "/",
		"//evil.example":                "/",
		"/\\evil.example":               "/",
		"\\/evil.example":               "/",
		"/%2F/evil.example":             "/",
		"/%2f%2fevil.example":           "/",
		"/%5Cevil.example":              "/",
		"/%09/evil.example":             "/",
		" /evil":                        "/",
		"https://evil.example/":         "/",
		"http:/evil.example":            "/",
		"javascript:alert(1)":           "/",
		"/%0d%0aSet-Cookie:%20x=y":      "/",
		"/\x00/evil":                    "/",
		"/é":                            "/",
		"":                              "/",
		"/incidents?state=open":         "/incidents?state=open",
		"/installations/" + aliceSLC:    "/installations/" + aliceSLC,
		"/?filter=all&q=harbor%20house": "/?filter=all&q=harbor%20house",
	} {
		status, hdr, _ := f.do(s, "GET", "/login?next="+url.QueryEscape(next), nil)
		if status != 303 || hdr.Get("Location") != want {
			t.Errorf("next=%q: %d → %q, want %q", next, status, hdr.Get("Location"), want)
		}
	}
}

// TestStaticFilesAreServedButNotListed.
func TestStaticFilesAreServedButNotListed(t *testing.T) {
	f := newFixture(t, fixtureOptions{dialect: "sqlite"})
	for path, want := range map[string]int{
		"/static/":                          404,
		"/static/app.css":                   200,
		"/static/nothing.css":               404,
		"/static/..%2ftemplates/login.html": 404,
	} {
		status, _, body := f.do(session{}, "GET", path, nil)
		if status != want {
			t.Errorf("GET %s: %d, want %d", path, status, want)
		}
		if strings.Contains(body, `href="app.css"`) {
			t.Errorf("GET %s lists the directory", path)
		}
	}
}

// TestRegistrationFormIsRateLimited: the dashboard's registration form
// shares the API's limit per integrator and address.
func TestRegistrationFormIsRateLimited(t *testing.T) {
	f := newFixture(t, fixtureOptions{dialect: "sqlite"})
	s := f.session("alice-owner")
	var last int
	var body string
	// A burst of 100 goes through; the limit then holds (a slow run lets
	// the bucket refill a little, so the refusal may come a few attempts
	// later than the 101st).
	for i := 0; i < 150; i++ {
		last, _, body = f.do(s, "POST", "/registrations", url.Values{"slc": {fmt.Sprintf("GUESS-%04d", i)}})
		if i < 100 && last != 409 {
			t.Fatalf("attempt %d: %d", i+1, last)
		}
		if last == 429 {
			break
		}
	}
	if last != 429 || !strings.Contains(body, "Too many registration attempts") {
		t.Fatalf("after 150 attempts: %d %s", last, snippet(body))
	}
}
