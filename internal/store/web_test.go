package store_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
)

func TestSessionsExpireIdleAbsoluteAndOnRevocation(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		uid, err := s.CreateUser(ctx, f.alice, "ann@alice.example", secret.HashPassword("correct horse"), keepwatch.RoleTechnician)
		must(t, err)
		now := day
		s.Now = func() time.Time { return now }
		us, err := s.UsersForLogin(ctx, "ann@alice.example")
		must(t, err)
		if len(us) != 1 || us[0].ID != uid || us[0].IntegratorID != f.alice || us[0].Role != keepwatch.RoleTechnician {
			t.Fatalf("login users %+v", us)
		}
		if us, err = s.UsersForLogin(ctx, "nobody@alice.example"); err != nil || len(us) != 0 {
			t.Fatalf("unknown e-mail: %+v %v", us, err)
		}

		hash := secret.Hash("session-1")
		must(t, s.CreateSession(ctx, keepwatch.NewSession{IDHash: hash, UserID: uid, IntegratorID: f.alice, CSRF: "c", ExpiresAt: now.Add(48 * time.Hour)}))
		idle := func() time.Time { return now.Add(-time.Hour) }
		ss, err := s.SessionByHash(ctx, hash, idle())
		must(t, err)
		if p := ss.Principal(); p.IntegratorID != f.alice || p.Role != keepwatch.RoleTechnician || p.Actor != "user:ann@alice.example" || ss.CSRF != "c" {
			t.Fatalf("session %+v", ss)
		}
		// A role change applies to the live session.
		must(t, s.SetUserRole(ctx, f.alice, uid, keepwatch.RoleViewer))
		if ss, _ = s.SessionByHash(ctx, hash, idle()); ss.Role != keepwatch.RoleViewer {
			t.Fatalf("role after change: %s", ss.Role)
		}
		// Idle for more than an hour: gone; touched in time: alive.
		now = now.Add(50 * time.Minute)
		must(t, s.TouchSession(ctx, hash, now))
		now = now.Add(50 * time.Minute)
		_, err = s.SessionByHash(ctx, hash, idle())
		must(t, err)
		now = now.Add(61 * time.Minute)
		_, err = s.SessionByHash(ctx, hash, idle())
		wantCode(t, err, keepwatch.EUNAUTHORIZED)

		// Absolute expiry holds even for a session in constant use.
		h2 := secret.Hash("session-2")
		must(t, s.CreateSession(ctx, keepwatch.NewSession{IDHash: h2, UserID: uid, IntegratorID: f.alice, CSRF: "d", ExpiresAt: now.Add(30 * time.Minute)}))
		now = now.Add(29 * time.Minute)
		must(t, s.TouchSession(ctx, h2, now))
		_, err = s.SessionByHash(ctx, h2, idle())
		must(t, err)
		now = now.Add(2 * time.Minute)
		_, err = s.SessionByHash(ctx, h2, idle())
		wantCode(t, err, keepwatch.EUNAUTHORIZED)

		// Revocation and user removal end sessions at once.
		h3, h4 := secret.Hash("session-3"), secret.Hash("session-4")
		for _, h := range [][]byte{h3, h4} {
			must(t, s.CreateSession(ctx, keepwatch.NewSession{IDHash: h, UserID: uid, IntegratorID: f.alice, CSRF: "e", ExpiresAt: now.Add(time.Hour)}))
		}
		must(t, s.RevokeSession(ctx, h3))
		_, err = s.SessionByHash(ctx, h3, idle())
		wantCode(t, err, keepwatch.EUNAUTHORIZED)
		wantCode(t, s.DeleteUser(ctx, f.bob, uid), keepwatch.ENOTFOUND) // not bob's to remove
		must(t, s.DeleteUser(ctx, f.alice, uid))
		_, err = s.SessionByHash(ctx, h4, idle())
		wantCode(t, err, keepwatch.EUNAUTHORIZED)
		must(t, s.DeleteEndedSessions(ctx, now.Add(time.Hour)))
	})
}

func TestLastOwnerCannotBeDemotedOrRemoved(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		owner, err := s.CreateUser(ctx, f.alice, "owner@alice.example", "x", keepwatch.RoleOwner)
		must(t, err)
		wantCode(t, s.SetUserRole(ctx, f.alice, owner, keepwatch.RoleViewer), keepwatch.ECONFLICT)
		wantCode(t, s.DeleteUser(ctx, f.alice, owner), keepwatch.ECONFLICT)
		second, err := s.CreateUser(ctx, f.alice, "second@alice.example", "x", keepwatch.RoleViewer)
		must(t, err)
		wantCode(t, s.SetUserRole(ctx, f.bob, second, keepwatch.RoleOwner), keepwatch.ENOTFOUND)
		must(t, s.SetUserRole(ctx, f.alice, second, keepwatch.RoleOwner))
		must(t, s.SetUserRole(ctx, f.alice, owner, keepwatch.RoleViewer))
		users, err := s.Users(ctx, f.alice)
		must(t, err)
		if len(users) != 2 || users[0].Email != "owner@alice.example" || users[0].Role != keepwatch.RoleViewer {
			t.Fatalf("users %+v", users)
		}
		if bobs, _ := s.Users(ctx, f.bob); len(bobs) != 0 {
			t.Fatalf("bob sees %+v", bobs)
		}
	})
}

func TestTokensAreListedAndRevokedWithinTheirIntegrator(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		id, err := s.CreateToken(ctx, f.alice, "export", keepwatch.RoleViewer, secret.Hash("tok"))
		must(t, err)
		_, err = s.RevokeToken(ctx, f.bob, id)
		wantCode(t, err, keepwatch.ENOTFOUND)
		if _, err := s.PrincipalByTokenHash(ctx, secret.Hash("tok")); err != nil {
			t.Fatal(err)
		}
		name, err := s.RevokeToken(ctx, f.alice, id)
		must(t, err)
		if name != "export" {
			t.Fatalf("revoked %q", name)
		}
		_, err = s.PrincipalByTokenHash(ctx, secret.Hash("tok"))
		wantCode(t, err, keepwatch.EUNAUTHORIZED)
		_, err = s.RevokeToken(ctx, f.alice, id)
		wantCode(t, err, keepwatch.ECONFLICT)
		tks, err := s.Tokens(ctx, f.alice)
		must(t, err)
		if len(tks) != 1 || tks[0].RevokedAt.IsZero() {
			t.Fatalf("tokens %+v", tks)
		}
	})
}

func TestMaintenanceWindowsAreScopedAndEndEarly(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		s.Now = func() time.Time { return day }
		_, err := setMaintenance(ctx, s, f.bob, f.aliceSLC, day, day.Add(time.Hour), "", "user:bob")
		wantCode(t, err, keepwatch.ENOTFOUND)
		_, err = setMaintenance(ctx, s, f.alice, f.aliceSLC, day, day.Add(-time.Hour), "", "user:alice")
		wantCode(t, err, keepwatch.EINVALID)
		m, err := setMaintenance(ctx, s, f.alice, f.aliceSLC, day, day.Add(2*time.Hour), "disk swap", "user:alice")
		must(t, err)
		_, err = setMaintenance(ctx, s, f.alice, f.aliceSLC, day.Add(24*time.Hour), day.Add(26*time.Hour), "firmware", "user:alice")
		must(t, err)
		for _, c := range []struct {
			at   time.Time
			want bool
		}{{day.Add(-time.Minute), false}, {day, true}, {day.Add(time.Hour), true}, {day.Add(2 * time.Hour), false}, {day.Add(25 * time.Hour), true}} {
			got, err := s.InMaintenance(ctx, f.aliceInstID, c.at)
			must(t, err)
			if got != c.want {
				t.Errorf("InMaintenance at %s = %v, want %v", c.at, got, c.want)
			}
		}
		active, err := s.ActiveMaintenance(ctx, f.alice, day.Add(time.Minute))
		must(t, err)
		if got := active[f.aliceSLC]; got.ID != m.ID || got.Reason != "disk swap" {
			t.Fatalf("active %+v", active)
		}
		if other, _ := s.ActiveMaintenance(ctx, f.bob, day.Add(time.Minute)); len(other) != 0 {
			t.Fatalf("bob sees %+v", other)
		}
		ws, err := s.Maintenance(ctx, f.alice, f.aliceSLC, day)
		must(t, err)
		if len(ws) != 2 {
			t.Fatalf("windows %+v", ws)
		}
		n, err := s.EndMaintenance(ctx, f.alice, f.aliceSLC, day.Add(30*time.Minute))
		must(t, err)
		if n != 2 {
			t.Fatalf("ended %d windows", n)
		}
		if in, _ := s.InMaintenance(ctx, f.aliceInstID, day.Add(31*time.Minute)); in {
			t.Fatal("still in maintenance after ending it")
		}
		if in, _ := s.InMaintenance(ctx, f.aliceInstID, day.Add(25*time.Hour)); in {
			t.Fatal("the scheduled window survived")
		}
		// A released installation's old window no longer mutes it.
		_, err = setMaintenance(ctx, s, f.alice, f.aliceSLC, day, day.Add(2*time.Hour), "", "user:alice")
		must(t, err)
		must(t, s.Release(ctx, f.alice, f.aliceSLC))
		if in, _ := s.InMaintenance(ctx, f.aliceInstID, day.Add(time.Minute)); in {
			t.Fatal("a released installation stays muted by its old holder's window")
		}
	})
}

func TestIncidentAssignmentAndTimelineAreScoped(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		s.Now = func() time.Time { return day.Add(5 * time.Minute) }
		_, err := s.ApplyReport(ctx, report(f.aliceSrv, 1, day, "storage_full:E:"))
		must(t, err)
		ins, err := s.Incidents(ctx, f.alice, "", 10)
		must(t, err)
		if len(ins) != 1 {
			t.Fatalf("incidents %+v", ins)
		}
		inc := ins[0].ID
		ann, err := s.CreateUser(ctx, f.alice, "ann@alice.example", "x", keepwatch.RoleTechnician)
		must(t, err)
		bobUser, err := s.CreateUser(ctx, f.bob, "bo@bob.example", "x", keepwatch.RoleTechnician)
		must(t, err)
		_, err = s.AssignIncident(ctx, f.bob, inc, bobUser, "user:bo")
		wantCode(t, err, keepwatch.ENOTFOUND)
		_, err = s.AssignIncident(ctx, f.alice, inc, bobUser, "user:alice")
		wantCode(t, err, keepwatch.EINVALID)
		email, err := s.AssignIncident(ctx, f.alice, inc, ann, "user:alice")
		must(t, err)
		if email != "ann@alice.example" {
			t.Fatalf("assigned to %q", email)
		}
		as, err := s.Assignees(ctx, f.alice, []int64{inc, 999})
		must(t, err)
		if as[inc].Email != "ann@alice.example" || len(as) != 1 {
			t.Fatalf("assignees %+v", as)
		}
		if bs, _ := s.Assignees(ctx, f.bob, []int64{inc}); len(bs) != 0 {
			t.Fatalf("bob sees assignees %+v", bs)
		}
		_, err = s.AckIncident(ctx, f.alice, inc, "user:ann@alice.example", "replacing the disk")
		must(t, err)
		_, err = s.ApplyReport(ctx, report(f.aliceSrv, 2, day.Add(40*time.Minute)))
		must(t, err)
		// Availability history holds only server_unavailable changes.
		flips, err := s.AvailabilityHistory(ctx, f.alice, f.aliceSLC)
		must(t, err)
		if len(flips) != 0 {
			t.Fatalf("flips %+v", flips)
		}
		tl, err := s.Timeline(ctx, f.alice, f.aliceSLC, 50)
		must(t, err)
		var types []string
		for _, e := range tl {
			types = append(types, e.Type+" "+e.Kind)
		}
		want := []string{"cleared storage_full", "acknowledged storage_full", "raised storage_full"}
		if len(types) != len(want) {
			t.Fatalf("timeline %v, want %v", types, want)
		}
		for i := range want {
			if types[i] != want[i] {
				t.Fatalf("timeline %v, want %v", types, want)
			}
		}
		if other, _ := s.Timeline(ctx, f.bob, f.aliceSLC, 50); len(other) != 0 {
			t.Fatalf("bob sees timeline %+v", other)
		}
	})
}

func TestAuditLogIsPerIntegrator(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		must(t, s.Audit(ctx, keepwatch.AuditEntry{IntegratorID: f.alice, Actor: "user:a", Action: "incident.ack", Target: "incident 1", Source: "web"}))
		must(t, s.Audit(ctx, keepwatch.AuditEntry{IntegratorID: f.bob, Actor: "token:b", Action: "registration.add", Target: f.bobSLC, Source: "api"}))
		log, err := s.AuditLog(ctx, f.alice, 10)
		must(t, err)
		if len(log) != 1 || log[0].Action != "incident.ack" || log[0].Actor != "user:a" {
			t.Fatalf("alice's audit log %+v", log)
		}
	})
}

func TestOverviewAgreesWithEachInstallation(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		second := f.enroll(t, f.aliceSLC, "RS-02")
		_, err := s.ApplyReport(ctx, report(f.aliceSrv, 1, day, "storage_full:E:", "camera_unreachable:cam-2"))
		must(t, err)
		r := report(second, 1, day.Add(time.Minute), "storage_low:F:")
		r.Events = []keepwatch.Event{{Kind: "archive_move_failed", Subject: "A1", Severity: keepwatch.SeverityError, At: day}}
		_, err = s.ApplyReport(ctx, r)
		must(t, err)
		today := day
		// The list (one ordered join) and the single-installation read (its
		// own queries) must agree on every installation.
		for _, id := range []int64{f.alice, f.bob} {
			list, err := s.Overview(ctx, id, today)
			must(t, err)
			for _, got := range list {
				want, err := s.Installation(ctx, id, got.SLC, today)
				must(t, err)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("integrator %d:\noverview     %+v\ninstallation %+v", id, got, want)
				}
			}
		}
		if v, _ := s.Overview(ctx, f.alice, today); len(v) != 1 || len(v[0].Conditions) != 4 {
			t.Fatalf("alice's overview %+v", v)
		}
	})
}

// setMaintenance validates and stores a window, as the API and the
// dashboard do.
func setMaintenance(ctx context.Context, s *store.Store, integratorID int64, slc string, start, end time.Time, reason, by string) (keepwatch.MaintenanceWindow, error) {
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	m, err := keepwatch.NewMaintenance(slc, start, end, reason, by, now)
	if err != nil {
		return m, err
	}
	return s.SetMaintenance(ctx, integratorID, m)
}
