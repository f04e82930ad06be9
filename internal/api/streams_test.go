package api_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
)

// stream is an open /api/v1/events response.
type stream struct {
	status int
	body   string // the body of a refusal
	ended  chan time.Time
	cancel func()
}

// openStream opens the event stream with a bearer token or a session
// cookie and waits until it is subscribed.
func (tn *tenants) openStream(t *testing.T, token, cookie string) *stream {
	t.Helper()
	c, cancel := context.WithCancel(ctx)
	req, _ := http.NewRequestWithContext(c, "GET", tn.srv.URL+"/api/v1/events", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: "kw_session", Value: cookie})
	}
	resp, err := tn.srv.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &stream{status: resp.StatusCode, ended: make(chan time.Time, 1), cancel: func() { cancel(); resp.Body.Close() }}
	t.Cleanup(s.cancel)
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		s.body = string(b)
		return s
	}
	r := bufio.NewReader(resp.Body)
	if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "retry:") {
		t.Fatalf("stream starts with %q", l)
	}
	go func() {
		io.Copy(io.Discard, r)
		s.ended <- time.Now()
	}()
	return s
}

// closedWithin waits for the stream to end; it returns how long that took
// after from.
func (s *stream) closedWithin(t *testing.T, from time.Time, what string) time.Duration {
	t.Helper()
	select {
	case at := <-s.ended:
		d := at.Sub(from)
		t.Logf("%s: stream closed %v after", what, d.Round(time.Millisecond))
		return d
	case <-time.After(3 * time.Second):
		t.Fatalf("%s: the stream is still open 3 s later", what)
	}
	return 0
}

// login signs a new user of alice's in and returns its cookie value.
func (tn *tenants) login(t *testing.T, email string, role keepwatch.Role) (int64, string) {
	t.Helper()
	const pw = "correct horse battery"
	id, err := tn.a.Store.CreateUser(ctx, tn.aliceID, email, secret.HashPassword(pw), role)
	if err != nil {
		t.Fatal(err)
	}
	value, _, err := tn.a.Auth.Login(ctx, email, pw, "192.0.2.1", "test")
	if err != nil {
		t.Fatal(err)
	}
	return id, value
}

func TestStreamsEndWhenTheirCredentialEnds(t *testing.T) {
	tn := setup(t, store.SQLite)
	s := tn.a.Store

	// A token revoked elsewhere (another node, the admin tool): found by
	// the periodic re-check.
	tok := secret.New("kw_")
	tokID, err := s.CreateToken(ctx, tn.aliceID, "dashboard-tv", keepwatch.RoleViewer, secret.Hash(tok))
	if err != nil {
		t.Fatal(err)
	}
	st := tn.openStream(t, tok, "")
	at := time.Now()
	if _, err := s.RevokeToken(ctx, tn.aliceID, tokID); err != nil {
		t.Fatal(err)
	}
	st.closedWithin(t, at, "token revoked")
	if re := tn.openStream(t, tok, ""); re.status != 401 {
		t.Fatalf("revoked token reopened the stream: %d", re.status)
	}

	// A user removed.
	uid, cookie := tn.login(t, "gone@alice.example", keepwatch.RoleViewer)
	st = tn.openStream(t, "", cookie)
	at = time.Now()
	if err := s.DeleteUser(ctx, tn.aliceID, uid); err != nil {
		t.Fatal(err)
	}
	st.closedWithin(t, at, "user removed")

	// A user demoted: the stream closes, and the client reconnects with
	// its new role.
	uid, cookie = tn.login(t, "tech@alice.example", keepwatch.RoleTechnician)
	st = tn.openStream(t, "", cookie)
	at = time.Now()
	if err := s.SetUserRole(ctx, tn.aliceID, uid, keepwatch.RoleViewer); err != nil {
		t.Fatal(err)
	}
	st.closedWithin(t, at, "user demoted")
	if re := tn.openStream(t, "", cookie); re.status != 200 {
		t.Fatalf("the demoted user could not reconnect: %d %s", re.status, re.body)
	}

	// Signed out through keepwatch: the change wakes the stream at once.
	_, cookie = tn.login(t, "leaving@alice.example", keepwatch.RoleViewer)
	st = tn.openStream(t, "", cookie)
	at = time.Now()
	if err := tn.a.Auth.Logout(ctx, secret.Hash(cookie)); err != nil {
		t.Fatal(err)
	}
	st.closedWithin(t, at, "signed out")
}

func TestStreamsPerPrincipalAreCapped(t *testing.T) {
	tn := setup(t, store.SQLite)
	tok := tn.tokens["alice-viewer"]
	var open []*stream
	for i := 0; i < 10; i++ {
		st := tn.openStream(t, tok, "")
		if st.status != 200 {
			t.Fatalf("stream %d refused: %d %s", i+1, st.status, st.body)
		}
		open = append(open, st)
	}
	st := tn.openStream(t, tok, "")
	if st.status != 429 || code(st.body) != "rate_limited" {
		t.Fatalf("11th stream: %d %s", st.status, st.body)
	}
	// Other principals are not affected.
	if other := tn.openStream(t, tn.tokens["alice-owner"], ""); other.status != 200 {
		t.Fatalf("another token's stream: %d", other.status)
	}
	// Closing one makes room.
	open[0].cancel()
	deadline := time.Now().Add(3 * time.Second)
	for {
		st := tn.openStream(t, tok, "")
		if st.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed stream's place was not given back: %d", st.status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
