package auth_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"keepwatch"
	"keepwatch/internal/auth"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

var ctx = context.Background()

// countingStore is the real store, counting the password checks sign-in
// asks it for.
type countingStore struct {
	*store.Store
	lookups atomic.Int64
}

func (c *countingStore) UsersForLogin(ctx context.Context, email string) ([]keepwatch.LoginUser, error) {
	c.lookups.Add(1)
	return c.Store.UsersForLogin(ctx, email)
}

func newService(t *testing.T) (*auth.Service, *countingStore, int64) {
	s := testutil.Open(t, store.SQLite)
	in, err := s.CreateIntegrator(ctx, "Alice Security")
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: s}
	return auth.New(auth.Config{Store: cs}), cs, in.ID
}

// parallel runs n sign-ins at once and counts the outcomes by code.
func parallel(n int, login func(i int) error) map[string]int {
	var mu sync.Mutex
	out := map[string]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			err := login(i)
			var lim *auth.Limited
			c := keepwatch.ErrorCode(err)
			if errors.As(err, &lim) {
				c = "limited"
			}
			mu.Lock()
			out[c]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return out
}

func TestParallelWrongPasswordsForOneAccountAreCheckedAtMostFiveTimes(t *testing.T) {
	svc, cs, in := newService(t)
	if _, err := cs.CreateUser(ctx, in, "ann@alice.example", secret.HashPassword("right password"), keepwatch.RoleOwner); err != nil {
		t.Fatal(err)
	}
	got := parallel(20, func(i int) error {
		_, _, err := svc.Login(ctx, "ann@alice.example", fmt.Sprintf("guess %d", i), "198.51.100.7", "test")
		return err
	})
	if n := cs.lookups.Load(); n > 5 || got[keepwatch.EUNAUTHORIZED] > 5 || got["limited"] < 15 || got["limited"]+got[keepwatch.EUNAUTHORIZED] != 20 {
		t.Fatalf("20 parallel guesses: %d password checks, outcomes %v", n, got)
	}
	// The right password is refused too while the account is limited.
	if _, _, err := svc.Login(ctx, "ann@alice.example", "right password", "198.51.100.8", "test"); keepwatch.ErrorCode(err) != keepwatch.ERATELIMITED {
		t.Fatalf("right password under the limit: %v", err)
	}
}

func TestParallelWrongPasswordsFromOneAddressAreCheckedAtMostTwentyTimes(t *testing.T) {
	svc, cs, _ := newService(t)
	got := parallel(40, func(i int) error {
		_, _, err := svc.Login(ctx, fmt.Sprintf("user%d@alice.example", i), "guess", "198.51.100.9", "test")
		return err
	})
	if n := cs.lookups.Load(); n > 20 || got["limited"] < 20 || got["limited"]+got[keepwatch.EUNAUTHORIZED] != 40 {
		t.Fatalf("40 parallel guesses from one address: %d password checks, outcomes %v", n, got)
	}
}

func TestOneAddressWithTwoIntegratorsSignsInOnlyWhenThePasswordTellsWhich(t *testing.T) {
	svc, cs, alice := newService(t)
	bob, err := cs.CreateIntegrator(ctx, "Bob Alarms")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CreateUser(ctx, alice, "tech@example.com", secret.HashPassword("alice side password"), keepwatch.RoleTechnician); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CreateUser(ctx, bob.ID, "tech@example.com", secret.HashPassword("bob side password"), keepwatch.RoleViewer); err != nil {
		t.Fatal(err)
	}
	for pw, want := range map[string]int64{"alice side password": alice, "bob side password": bob.ID} {
		_, u, err := svc.Login(ctx, "tech@example.com", pw, "198.51.100.10", "test")
		if err != nil || u.IntegratorID != want {
			t.Fatalf("%q signed in to %d (%v), want %d", pw, u.IntegratorID, err, want)
		}
	}
	if _, _, err := svc.Login(ctx, "tech@example.com", "neither", "198.51.100.10", "test"); keepwatch.ErrorCode(err) != keepwatch.EUNAUTHORIZED {
		t.Fatalf("wrong password: %v", err)
	}
	// The same password for both: nobody is signed in to a guessed tenant.
	if _, err := cs.CreateUser(ctx, bob.ID, "dual@example.com", secret.HashPassword("shared password"), keepwatch.RoleOwner); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CreateUser(ctx, alice, "dual@example.com", secret.HashPassword("shared password"), keepwatch.RoleOwner); err != nil {
		t.Fatal(err)
	}
	if v, _, err := svc.Login(ctx, "dual@example.com", "shared password", "198.51.100.10", "test"); err == nil || v != "" || keepwatch.ErrorCode(err) != keepwatch.EUNAUTHORIZED {
		t.Fatalf("ambiguous sign-in: %q %v", v, err)
	}
}
