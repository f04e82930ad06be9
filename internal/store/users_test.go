package store_test

import (
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

// TestEmailIsUniquePerIntegrator upgrades a database with users and live
// sessions: the sessions survive, one address may then have an account
// with each of two integrators, but not two with one.
func TestEmailIsUniquePerIntegrator(t *testing.T) {
	for _, d := range testutil.Dialects {
		t.Run(d, func(t *testing.T) {
			s, err := store.OpenNoMigrate(ctx, testutil.DSN(t, d))
			must(t, err)
			defer s.Close()
			must(t, s.Migrate(ctx, 8))
			a, err := s.CreateIntegrator(ctx, "Alice Security")
			must(t, err)
			b, err := s.CreateIntegrator(ctx, "Bob Alarms")
			must(t, err)
			ann, err := s.CreateUser(ctx, a.ID, "ann@example.com", secret.HashPassword("x"), keepwatch.RoleOwner)
			must(t, err)
			_, err = s.CreateUser(ctx, b.ID, "ann@example.com", "h", keepwatch.RoleViewer)
			wantCode(t, err, keepwatch.ECONFLICT) // before the upgrade: one address, one account
			hash := secret.Hash("cookie")
			must(t, s.CreateSession(ctx, keepwatch.NewSession{IDHash: hash, UserID: ann, IntegratorID: a.ID, CSRF: "c", ExpiresAt: time.Now().Add(time.Hour)}))

			must(t, s.Migrate(ctx, 0))
			ss, err := s.SessionByHash(ctx, hash, time.Now().Add(-time.Hour))
			if err != nil || ss.UserID != ann || ss.Email != "ann@example.com" {
				t.Fatalf("session after the upgrade: %+v %v", ss, err)
			}
			bobAnn, err := s.CreateUser(ctx, b.ID, "ann@example.com", "h", keepwatch.RoleViewer)
			must(t, err)
			_, err = s.CreateUser(ctx, a.ID, "ann@example.com", "h", keepwatch.RoleViewer)
			wantCode(t, err, keepwatch.ECONFLICT)
			us, err := s.UsersForLogin(ctx, "ann@example.com")
			must(t, err)
			if len(us) != 2 || us[0].ID != ann || us[1].ID != bobAnn || us[1].IntegratorID != b.ID {
				t.Fatalf("accounts of ann: %+v", us)
			}
			// Removing one leaves the other alone.
			must(t, s.SetPassword(ctx, b.ID, "ann@example.com", "h2"))
			must(t, s.DeleteUser(ctx, b.ID, bobAnn))
			if us, _ := s.UsersForLogin(ctx, "ann@example.com"); len(us) != 1 || us[0].ID != ann {
				t.Fatalf("after removing bob's ann: %+v", us)
			}
		})
	}
}
