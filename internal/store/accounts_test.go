package store_test

import (
	"sync"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
)

// session opens a session for a user and returns its hash.
func openSession(t *testing.T, s *store.Store, integratorID, userID int64, method string) []byte {
	t.Helper()
	h := secret.Hash(secret.New(""))
	must(t, s.CreateSession(ctx, keepwatch.NewSession{IDHash: h, UserID: userID, IntegratorID: integratorID, CSRF: "c",
		ExpiresAt: time.Now().Add(time.Hour), Method: method}))
	return h
}

func live(t *testing.T, s *store.Store, h []byte) bool {
	_, err := s.SessionByHash(ctx, h, time.Now().Add(-time.Hour))
	return err == nil
}

func TestPasswordChangeEndsOtherSessionsAndVoidsResetLinks(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		u, err := s.CreateUser(ctx, f.alice, "ann@alice.example", "old", keepwatch.RoleViewer)
		must(t, err)
		keep, other := openSession(t, s, f.alice, u, keepwatch.MethodPassword), openSession(t, s, f.alice, u, keepwatch.MethodPassword)
		token := secret.Hash("reset-token")
		now := time.Now()
		must(t, s.CreatePasswordReset(ctx, keepwatch.PasswordReset{TokenHash: token, UserID: u, IntegratorID: f.alice, CreatedAt: now, ExpiresAt: now.Add(30 * time.Minute)}))
		// Another integrator cannot change alice's user's password.
		_, err = s.SetUserPassword(ctx, f.bob, u, "bob's", nil)
		wantCode(t, err, keepwatch.ENOTFOUND)
		ended, err := s.SetUserPassword(ctx, f.alice, u, "new", keep)
		must(t, err)
		if ended != 1 || !live(t, s, keep) || live(t, s, other) {
			t.Fatalf("ended %d; kept session live %v; other live %v", ended, live(t, s, keep), live(t, s, other))
		}
		_, err = s.PasswordReset(ctx, token, now)
		wantCode(t, err, keepwatch.EUNAUTHORIZED)
		lu, err := s.LoginUserByID(ctx, f.alice, u)
		must(t, err)
		if lu.PasswordHash != "new" {
			t.Fatalf("hash %q", lu.PasswordHash)
		}
	})
}

func TestResetLinkWorksOnceBeforeItExpiresAndEndsEverySession(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		u, err := s.CreateUser(ctx, f.alice, "ann@alice.example", "old", keepwatch.RoleViewer)
		must(t, err)
		sess := openSession(t, s, f.alice, u, keepwatch.MethodPassword)
		now := time.Now()
		fresh, stale := secret.Hash("fresh"), secret.Hash("stale")
		must(t, s.CreatePasswordReset(ctx, keepwatch.PasswordReset{TokenHash: fresh, UserID: u, IntegratorID: f.alice, CreatedAt: now, ExpiresAt: now.Add(30 * time.Minute)}))
		must(t, s.CreatePasswordReset(ctx, keepwatch.PasswordReset{TokenHash: stale, UserID: u, IntegratorID: f.alice, CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(-30 * time.Minute)}))
		if n, _ := s.PasswordResetsSince(ctx, u, now.Add(-2*time.Hour)); n != 2 {
			t.Fatalf("resets counted: %d", n)
		}
		_, err = s.UsePasswordReset(ctx, stale, now, "x")
		wantCode(t, err, keepwatch.EUNAUTHORIZED)
		// Eight at once: one wins.
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.UsePasswordReset(ctx, fresh, now, "new"); err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				} else if keepwatch.ErrorCode(err) != keepwatch.EUNAUTHORIZED {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d uses of one reset link succeeded", wins)
		}
		if live(t, s, sess) {
			t.Fatal("a session survived the reset")
		}
	})
}

func TestRecoveryCodesAndTOTPStepsWorkOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		u, err := s.CreateUser(ctx, f.alice, "ann@alice.example", "h", keepwatch.RoleViewer)
		must(t, err)
		id, err := s.AddTOTP(ctx, f.alice, u, "app", []byte("sealed"), 100)
		must(t, err)
		_, err = s.AddTOTP(ctx, f.alice, u, "app", []byte("sealed"), 100)
		wantCode(t, err, keepwatch.ECONFLICT)
		_, err = s.AddTOTP(ctx, f.bob, u, "app", []byte("sealed"), 100)
		wantCode(t, err, keepwatch.ENOTFOUND)
		for _, c := range []struct {
			step int64
			ok   bool
		}{{100, false}, {101, true}, {101, false}, {99, false}, {102, true}} {
			ok, err := s.UseTOTPStep(ctx, f.alice, id, c.step, time.Now())
			must(t, err)
			if ok != c.ok {
				t.Fatalf("step %d accepted %v", c.step, ok)
			}
		}
		if ok, _ := s.UseTOTPStep(ctx, f.bob, id, 200, time.Now()); ok {
			t.Fatal("another integrator spent a step")
		}
		a, b := secret.Hash("code-a"), secret.Hash("code-b")
		must(t, s.ReplaceRecoveryCodes(ctx, f.alice, u, [][]byte{a, b}))
		left, err := s.UseRecoveryCode(ctx, f.alice, u, a, time.Now())
		must(t, err)
		if left != 1 {
			t.Fatalf("left %d", left)
		}
		_, err = s.UseRecoveryCode(ctx, f.alice, u, a, time.Now())
		wantCode(t, err, keepwatch.EUNAUTHORIZED)
		_, err = s.UseRecoveryCode(ctx, f.bob, u, b, time.Now())
		wantCode(t, err, keepwatch.EUNAUTHORIZED)
		// New codes replace the old.
		must(t, s.ReplaceRecoveryCodes(ctx, f.alice, u, [][]byte{secret.Hash("code-c")}))
		_, err = s.UseRecoveryCode(ctx, f.alice, u, b, time.Now())
		wantCode(t, err, keepwatch.EUNAUTHORIZED)
	})
}

func TestRequiringASecondFactorEndsPasswordOnlySessionsAndKeepsTheLastFactor(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		ann, err := s.CreateUser(ctx, f.alice, "ann@alice.example", "h", keepwatch.RoleOwner)
		must(t, err)
		bea, err := s.CreateUser(ctx, f.alice, "bea@alice.example", "h", keepwatch.RoleViewer)
		must(t, err)
		bob, err := s.CreateUser(ctx, f.bob, "bob@bob.example", "h", keepwatch.RoleOwner)
		must(t, err)
		strong := openSession(t, s, f.alice, ann, keepwatch.MethodPasswordTOTP)
		enrolledSince := openSession(t, s, f.alice, ann, keepwatch.MethodPassword)
		weak := openSession(t, s, f.alice, bea, keepwatch.MethodPassword)
		oidc := openSession(t, s, f.alice, bea, keepwatch.MethodOIDC)
		bobs := openSession(t, s, f.bob, bob, keepwatch.MethodPassword)
		id, err := s.AddTOTP(ctx, f.alice, ann, "app", []byte("x"), 0)
		must(t, err)
		ended, err := s.SetSecondFactorRequired(ctx, f.alice, true)
		must(t, err)
		if ended != 1 || !live(t, s, strong) || !live(t, s, enrolledSince) || live(t, s, weak) || !live(t, s, oidc) || !live(t, s, bobs) {
			t.Fatalf("ended %d: strong %v enrolled since %v weak %v oidc %v bob %v", ended, live(t, s, strong), live(t, s, enrolledSince),
				live(t, s, weak), live(t, s, oidc), live(t, s, bobs))
		}
		if on, _ := s.SecondFactorRequired(ctx, f.bob); on {
			t.Fatal("bob's integrator requires a second factor too")
		}
		_, err = s.RemoveFactor(ctx, f.alice, ann, id)
		wantCode(t, err, keepwatch.ECONFLICT)
		_, err = s.RemoveFactor(ctx, f.bob, ann, id)
		wantCode(t, err, keepwatch.ENOTFOUND)
		must(t, s.ReplaceRecoveryCodes(ctx, f.alice, ann, [][]byte{secret.Hash("c")}))
		_, err = s.SetSecondFactorRequired(ctx, f.alice, false)
		must(t, err)
		fc, err := s.RemoveFactor(ctx, f.alice, ann, id)
		must(t, err)
		if fc.Kind != keepwatch.FactorTOTP {
			t.Fatalf("removed %+v", fc)
		}
		if n, _ := s.RecoveryCodesLeft(ctx, f.alice, ann); n != 0 {
			t.Fatalf("%d recovery codes outlived the last factor", n)
		}
	})
}

func TestSignInFlowsAreTakenOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		u, err := s.CreateUser(ctx, f.alice, "ann@alice.example", "h", keepwatch.RoleViewer)
		must(t, err)
		h := secret.Hash("flow")
		must(t, s.CreateAuthFlow(ctx, h, keepwatch.AuthFlow{Kind: keepwatch.FlowSecondFactor, UserID: u, IntegratorID: f.alice,
			Data: []byte(`{"a":1}`), ExpiresAt: time.Now().Add(time.Minute)}))
		_, err = s.AuthFlow(ctx, h, keepwatch.FlowOIDC)
		wantCode(t, err, keepwatch.EUNAUTHORIZED)
		for i := 1; i <= 2; i++ {
			n, err := s.AuthFlowFailed(ctx, h)
			must(t, err)
			if n != i {
				t.Fatalf("attempts %d, want %d", n, i)
			}
		}
		must(t, s.SetAuthFlowData(ctx, h, []byte(`{"b":2}`)))
		fl, err := s.TakeAuthFlow(ctx, h, keepwatch.FlowSecondFactor)
		must(t, err)
		if fl.UserID != u || fl.IntegratorID != f.alice || string(fl.Data) != `{"b":2}` || fl.Attempts != 2 {
			t.Fatalf("flow %+v", fl)
		}
		_, err = s.TakeAuthFlow(ctx, h, keepwatch.FlowSecondFactor)
		wantCode(t, err, keepwatch.EUNAUTHORIZED)
		// An expired flow is gone.
		old := secret.Hash("old")
		must(t, s.CreateAuthFlow(ctx, old, keepwatch.AuthFlow{Kind: keepwatch.FlowPasskey, ExpiresAt: time.Now().Add(-time.Second)}))
		_, err = s.TakeAuthFlow(ctx, old, keepwatch.FlowPasskey)
		wantCode(t, err, keepwatch.EUNAUTHORIZED)
	})
}

func TestSessionsListAndEndPerUser(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		ann, err := s.CreateUser(ctx, f.alice, "ann@alice.example", "h", keepwatch.RoleViewer)
		must(t, err)
		a1, a2 := openSession(t, s, f.alice, ann, keepwatch.MethodPassword), openSession(t, s, f.alice, ann, keepwatch.MethodPasskey)
		list, err := s.UserSessions(ctx, f.alice, ann, time.Now().Add(-time.Hour))
		must(t, err)
		if len(list) != 2 {
			t.Fatalf("sessions %+v", list)
		}
		if l, _ := s.UserSessions(ctx, f.bob, ann, time.Now().Add(-time.Hour)); len(l) != 0 {
			t.Fatal("bob lists alice's sessions")
		}
		wantCode(t, s.EndUserSession(ctx, f.bob, ann, a1), keepwatch.ENOTFOUND)
		must(t, s.EndUserSession(ctx, f.alice, ann, a1))
		wantCode(t, s.EndUserSession(ctx, f.alice, ann, a1), keepwatch.ENOTFOUND)
		if live(t, s, a1) || !live(t, s, a2) {
			t.Fatal("ended the wrong session")
		}
		n, err := s.EndOtherSessions(ctx, f.alice, ann, a2)
		must(t, err)
		if n != 0 || !live(t, s, a2) {
			t.Fatalf("ended %d, current live %v", n, live(t, s, a2))
		}
	})
}

func TestOIDCProviderIsPerIntegratorAndKeepsItsSecret(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		p := keepwatch.OIDCProvider{IntegratorID: f.alice, Issuer: "https://login.alice.example", ClientID: "kw", Domains: []string{"alice.example"},
			RoleClaim: "groups", RoleMap: map[string]keepwatch.Role{"kw-owners": keepwatch.RoleOwner}, DefaultRole: keepwatch.RoleViewer}
		wantCode(t, s.SetOIDCProvider(ctx, p, nil), keepwatch.EINVALID) // no secret yet
		must(t, s.SetOIDCProvider(ctx, p, []byte("sealed-1")))
		p.ClientID = "kw2"
		must(t, s.SetOIDCProvider(ctx, p, nil)) // the secret stays
		got, sealed, err := s.OIDCProviderByName(ctx, "Alice Security")
		must(t, err)
		if got.ClientID != "kw2" || string(sealed) != "sealed-1" || got.RoleMap["kw-owners"] != keepwatch.RoleOwner || got.Domains[0] != "alice.example" {
			t.Fatalf("provider %+v %q", got, sealed)
		}
		_, _, err = s.OIDCProviderByName(ctx, "Bob Alarms")
		wantCode(t, err, keepwatch.ENOTFOUND)
		_, _, errUnknown := s.OIDCProviderByName(ctx, "Nobody")
		if errUnknown.Error() != err.Error() {
			t.Fatal("an unknown integrator and one without a provider answer differently")
		}
		u, err := s.CreateUser(ctx, f.alice, "ann@alice.example", "", keepwatch.RoleViewer)
		must(t, err)
		wantCode(t, s.LinkOIDCUser(ctx, f.bob, p.Issuer, "sub-1", u), keepwatch.ENOTFOUND)
		must(t, s.LinkOIDCUser(ctx, f.alice, p.Issuer, "sub-1", u))
		lu, err := s.OIDCUser(ctx, f.alice, p.Issuer, "sub-1")
		must(t, err)
		if lu.ID != u {
			t.Fatalf("linked user %+v", lu)
		}
		_, err = s.OIDCUser(ctx, f.bob, p.Issuer, "sub-1")
		wantCode(t, err, keepwatch.ENOTFOUND)
		must(t, s.DeleteOIDCProvider(ctx, f.alice))
		_, err = s.OIDCUser(ctx, f.alice, p.Issuer, "sub-1")
		wantCode(t, err, keepwatch.ENOTFOUND)
	})
}

func TestDeletingAUserTakesItsCredentials(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		_, err := s.CreateUser(ctx, f.alice, "owner@alice.example", "h", keepwatch.RoleOwner)
		must(t, err)
		u, err := s.CreateUser(ctx, f.alice, "ann@alice.example", "h", keepwatch.RoleViewer)
		must(t, err)
		_, err = s.AddTOTP(ctx, f.alice, u, "app", []byte("x"), 0)
		must(t, err)
		_, err = s.AddPasskey(ctx, keepwatch.Passkey{IntegratorID: f.alice, UserID: u, Name: "k", CredentialID: []byte("id"), Handle: []byte("h"), Credential: []byte("{}")})
		must(t, err)
		must(t, s.ReplaceRecoveryCodes(ctx, f.alice, u, [][]byte{secret.Hash("c")}))
		must(t, s.CreatePasswordReset(ctx, keepwatch.PasswordReset{TokenHash: secret.Hash("t"), UserID: u, IntegratorID: f.alice, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Minute)}))
		must(t, s.CreateAuthFlow(ctx, secret.Hash("f"), keepwatch.AuthFlow{Kind: keepwatch.FlowSecondFactor, UserID: u, IntegratorID: f.alice, ExpiresAt: time.Now().Add(time.Minute)}))
		must(t, s.DeleteUser(ctx, f.alice, u))
		if _, err := s.PasskeysByHandle(ctx, []byte("h")); keepwatch.ErrorCode(err) != keepwatch.EUNAUTHORIZED {
			t.Fatalf("passkey of a deleted user: %v", err)
		}
	})
}
