package store_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the schema golden files")

// forEachStore runs a test against SQLite and PostgreSQL.
func forEachStore(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	for _, d := range testutil.Dialects {
		t.Run(d, func(t *testing.T) { fn(t, testutil.Open(t, d)) })
	}
}

var ctx = context.Background()

var day = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// fixture is two integrators, each with a licensed, registered
// installation and an enrolled server.
type fixture struct {
	s            *store.Store
	alice, bob   int64
	aliceSLC     string
	bobSLC       string
	aliceSrv     string
	bobSrv       string
	aliceInstID  int64
	unregistered string
}

func newFixture(t *testing.T, s *store.Store) *fixture {
	t.Helper()
	f := &fixture{s: s, aliceSLC: "SLC-ALICE-1", bobSLC: "SLC-BOB-1", unregistered: "SLC-NOBODY-1"}
	a, err := s.CreateIntegrator(ctx, "Alice Security")
	must(t, err)
	b, err := s.CreateIntegrator(ctx, "Bob Alarms")
	must(t, err)
	f.alice, f.bob = a.ID, b.ID
	until, _ := keepwatch.ParseDate("2027-12-31")
	for _, slc := range []string{f.aliceSLC, f.bobSLC, f.unregistered} {
		id, err := s.CreateInstallation(ctx, keepwatch.Installation{SLC: slc, Customer: "Customer " + slc, Product: "XProtect Corporate 2016", Cameras: 10, CarePlusUntil: until}, secret.Hash("key-"+slc))
		must(t, err)
		if slc == f.aliceSLC {
			f.aliceInstID = id
		}
	}
	// Registered the day before the tests' reports: a holder's history
	// starts at its registration.
	s.Now = func() time.Time { return day.Add(-24 * time.Hour) }
	must(t, s.Register(ctx, f.alice, f.aliceSLC))
	must(t, s.Register(ctx, f.bob, f.bobSLC))
	s.Now = nil
	f.aliceSrv = f.enroll(t, f.aliceSLC, "RS-01")
	f.bobSrv = f.enroll(t, f.bobSLC, "RS-01")
	return f
}

func (f *fixture) enroll(t *testing.T, slc, name string) string {
	t.Helper()
	in, _, err := f.s.EnrollmentInfo(ctx, slc)
	must(t, err)
	id := strings.Repeat("0", 32-len(slc+name)) + strings.ToLower(strings.NewReplacer("-", "0", "_", "0").Replace(slc+name))
	id = hexOnly(id)
	got, err := f.s.Enroll(ctx, keepwatch.Enrollment{InstallationID: in.ID, ID: id, Name: name, Key: make([]byte, 32), Interval: time.Minute})
	must(t, err)
	return got
}

// hexOnly maps any non-hex letter to 'a' so fixture ids are valid.
func hexOnly(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			b[i] = 'a'
		}
	}
	return string(b)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := keepwatch.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func report(id string, seq uint64, at time.Time, conds ...string) keepwatch.Report {
	r := keepwatch.Report{ServerID: id, Seq: seq, ReceivedAt: at, Interval: time.Minute, Status: true, Conditions: []keepwatch.Condition{}}
	for _, c := range conds {
		kind, subject, _ := strings.Cut(c, ":")
		r.Conditions = append(r.Conditions, keepwatch.Condition{Kind: kind, Subject: subject, Severity: keepwatch.SeverityOf(kind)})
	}
	return r
}

func TestMigrationsStepwiseEqualFreshAndGolden(t *testing.T) {
	for _, d := range testutil.Dialects {
		t.Run(d, func(t *testing.T) {
			fresh := testutil.Open(t, d)
			dsn := testutil.DSN(t, d)
			// Migrate one version at a time, reopening in between, as
			// successive releases would.
			for _, v := range store.MigrationVersionsForTest(d) {
				s, err := store.OpenNoMigrate(ctx, dsn)
				must(t, err)
				must(t, s.Migrate(ctx, v))
				got, err := s.SchemaVersion(ctx)
				must(t, err)
				s.Close()
				if got != v {
					t.Fatalf("migrated to %d, schema version %d", v, got)
				}
			}
			stepped, err := store.Open(ctx, dsn)
			must(t, err)
			defer stepped.Close()
			a, err := fresh.DumpSchema(ctx)
			must(t, err)
			b, err := stepped.DumpSchema(ctx)
			must(t, err)
			if a != b {
				t.Fatalf("fresh and stepwise-migrated schemas differ:\n--- fresh\n%s\n--- stepwise\n%s", a, b)
			}
			// Migrating again changes nothing.
			must(t, stepped.Migrate(ctx, 0))
			c, err := stepped.DumpSchema(ctx)
			must(t, err)
			if c != a {
				t.Fatal("a second Migrate changed the schema")
			}
			golden := filepath.Join("testdata", "schema_"+d+".golden")
			if *update {
				must(t, os.WriteFile(golden, []byte(a), 0o644))
			}
			want, err := os.ReadFile(golden)
			must(t, err)
			if string(want) != a {
				t.Fatalf("schema differs from %s (run go test ./internal/store -update after reviewing):\n%s", golden, a)
			}
		})
	}
}

func TestRegistrationFirstIntegratorWinsWithNeutralConflict(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		errHeld := s.Register(ctx, f.bob, f.aliceSLC)
		wantCode(t, errHeld, keepwatch.ECONFLICT)
		errUnknown := s.Register(ctx, f.bob, "SLC-DOES-NOT-EXIST")
		wantCode(t, errUnknown, keepwatch.ECONFLICT)
		if errHeld.Error() != errUnknown.Error() {
			t.Fatalf("held and unknown SLCs answer differently: %q vs %q", errHeld, errUnknown)
		}
		must(t, s.Register(ctx, f.alice, f.aliceSLC)) // idempotent for the holder
		wantCode(t, s.Release(ctx, f.bob, f.aliceSLC), keepwatch.ENOTFOUND)
		must(t, s.Release(ctx, f.alice, f.aliceSLC))
		must(t, s.Register(ctx, f.bob, f.aliceSLC))
		if _, err := s.Installation(ctx, f.bob, f.aliceSLC, day); err != nil {
			t.Fatalf("new holder cannot read: %v", err)
		}
		_, err := s.Installation(ctx, f.alice, f.aliceSLC, day)
		wantCode(t, err, keepwatch.ENOTFOUND)
	})
}

func TestReadsAreTenantScoped(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		_, err := s.ApplyReport(ctx, report(f.aliceSrv, 1, day, "storage_full:E:"))
		must(t, err)
		today := day
		_, err = s.Installation(ctx, f.bob, f.aliceSLC, today)
		wantCode(t, err, keepwatch.ENOTFOUND)
		_, err = s.Servers(ctx, f.bob, f.aliceSLC)
		wantCode(t, err, keepwatch.ENOTFOUND)
		_, err = s.Installation(ctx, f.alice, f.unregistered, today)
		wantCode(t, err, keepwatch.ENOTFOUND)
		views, err := s.Installations(ctx, f.bob, today)
		must(t, err)
		if len(views) != 1 || views[0].SLC != f.bobSLC {
			t.Fatalf("bob sees %+v", views)
		}
		ins, err := s.Incidents(ctx, f.bob, "", 100)
		must(t, err)
		if len(ins) != 0 {
			t.Fatalf("bob sees alice's incidents: %+v", ins)
		}
		ins, err = s.Incidents(ctx, f.alice, "", 100)
		must(t, err)
		if len(ins) != 1 {
			t.Fatalf("alice has %d incidents, want 1", len(ins))
		}
		_, err = s.Incident(ctx, f.bob, ins[0].ID)
		wantCode(t, err, keepwatch.ENOTFOUND)
		_, err = s.AckIncident(ctx, f.bob, ins[0].ID, "user:mallory", "")
		wantCode(t, err, keepwatch.ENOTFOUND)
		_, err = s.ResolveIncident(ctx, f.bob, ins[0].ID, "user:mallory", "")
		wantCode(t, err, keepwatch.ENOTFOUND)
	})
}

func TestStatusReportRaisesAndClearsConditions(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		today := day
		v, err := s.Installation(ctx, f.alice, f.aliceSLC, today)
		must(t, err)
		if v.Status != keepwatch.StatusNeverReported {
			t.Fatalf("before any report status = %s", v.Status)
		}
		app, err := s.ApplyReport(ctx, report(f.aliceSrv, 1, day, "storage_full:E:", "camera_unreachable:cam-1", "camera_unreachable:cam-2", "brand_new_kind:x"))
		must(t, err)
		if len(app.Changes) != 4 {
			t.Fatalf("changes = %d, want 4", len(app.Changes))
		}
		v, err = s.Installation(ctx, f.alice, f.aliceSLC, today)
		must(t, err)
		if v.Status != keepwatch.StatusError || len(v.Conditions) != 4 || v.ServersOK != 0 || v.ServersTotal != 1 {
			t.Fatalf("view = %+v", v)
		}
		for _, c := range v.Conditions {
			if c.Kind == "brand_new_kind" && c.Severity != keepwatch.SeverityError {
				t.Fatalf("unknown kind severity = %s", c.Severity)
			}
		}
		// Same set again: nothing changes, Since is kept.
		app, err = s.ApplyReport(ctx, report(f.aliceSrv, 2, day.Add(time.Minute), "storage_full:E:", "camera_unreachable:cam-1", "camera_unreachable:cam-2", "brand_new_kind:x"))
		must(t, err)
		if len(app.Changes) != 0 {
			t.Fatalf("repeated set produced changes %+v", app.Changes)
		}
		_, err = s.ApplyReport(ctx, report(f.aliceSrv, 2, day.Add(2*time.Minute)))
		wantCode(t, err, keepwatch.EREPLAYED)
		// One camera back: one clear.
		app, err = s.ApplyReport(ctx, report(f.aliceSrv, 3, day.Add(3*time.Minute), "storage_full:E:", "camera_unreachable:cam-2", "brand_new_kind:x"))
		must(t, err)
		if len(app.Changes) != 1 || app.Changes[0].Active || app.Changes[0].Subject != "cam-1" {
			t.Fatalf("changes = %+v", app.Changes)
		}
		// All clear.
		_, err = s.ApplyReport(ctx, report(f.aliceSrv, 4, day.Add(4*time.Minute)))
		must(t, err)
		v, err = s.Installation(ctx, f.alice, f.aliceSLC, today)
		must(t, err)
		if v.Status != keepwatch.StatusOK || len(v.Conditions) != 0 || v.ServersOK != 1 {
			t.Fatalf("after all clear view = %+v", v)
		}
		open, err := s.Incidents(ctx, f.alice, "", 100)
		must(t, err)
		if len(open) != 0 {
			t.Fatalf("open incidents after all clear: %+v", open)
		}
		resolved, err := s.Incidents(ctx, f.alice, keepwatch.IncidentResolved, 100)
		must(t, err)
		if len(resolved) != 4 {
			t.Fatalf("resolved incidents = %d, want 4", len(resolved))
		}
	})
}

func TestWarningOnlyInstallationIsWarning(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		_, err := s.ApplyReport(ctx, report(f.aliceSrv, 1, day, "storage_low:F:"))
		must(t, err)
		v, err := s.Installation(ctx, f.alice, f.aliceSLC, day)
		must(t, err)
		if v.Status != keepwatch.StatusWarning || v.ServersOK != 1 {
			t.Fatalf("view = %+v", v)
		}
	})
}

func TestEventOpensIncidentUntilResolvedByHand(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		occurred := day.Add(-2 * time.Hour) // happened while offline
		r := keepwatch.Report{ServerID: f.aliceSrv, Seq: 1, ReceivedAt: day, Interval: time.Minute,
			Events: []keepwatch.Event{{Kind: "archive_move_failed", Subject: "Archive 1", Severity: keepwatch.SeverityError, At: occurred}}}
		_, err := s.ApplyReport(ctx, r)
		must(t, err)
		r.Seq = 2
		_, err = s.ApplyReport(ctx, r) // recurrence counts on the open incident
		must(t, err)
		ins, err := s.Incidents(ctx, f.alice, keepwatch.IncidentOpen, 10)
		must(t, err)
		if len(ins) != 1 || !ins[0].Event || ins[0].Count != 2 || !ins[0].OpenedAt.Equal(occurred) {
			t.Fatalf("incidents = %+v", ins)
		}
		v, err := s.Installation(ctx, f.alice, f.aliceSLC, day)
		must(t, err)
		if v.Status != keepwatch.StatusError {
			t.Fatalf("status with open event = %s", v.Status)
		}
		n, err := s.AckIncident(ctx, f.alice, ins[0].ID, "user:tech@alice", "replacing the disk")
		must(t, err)
		if n.State != keepwatch.IncidentAcknowledged || n.AckedBy != "user:tech@alice" || n.AckNote != "replacing the disk" || n.AckedAt == nil {
			t.Fatalf("acked = %+v", n)
		}
		_, err = s.AckIncident(ctx, f.alice, ins[0].ID, "user:tech@alice", "")
		wantCode(t, err, keepwatch.ECONFLICT)
		n, err = s.ResolveIncident(ctx, f.alice, ins[0].ID, "user:tech@alice", "disk replaced")
		must(t, err)
		if n.State != keepwatch.IncidentResolved || n.ResolvedAt == nil || n.ResolveNote != "disk replaced" {
			t.Fatalf("resolved = %+v", n)
		}
		_, err = s.ResolveIncident(ctx, f.alice, ins[0].ID, "user:tech@alice", "")
		wantCode(t, err, keepwatch.ECONFLICT)
		v, err = s.Installation(ctx, f.alice, f.aliceSLC, day)
		must(t, err)
		if v.Status != keepwatch.StatusOK {
			t.Fatalf("status after resolve = %s", v.Status)
		}
	})
}

func TestMarkUnavailableIsCompareAndSet(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		_, err := s.ApplyReport(ctx, report(f.aliceSrv, 1, day))
		must(t, err)
		seen := day.UnixMilli()
		// A report newer than what the sweeper saw wins.
		_, ok, err := markOne(s, f.aliceSrv, seen-1, day.Add(4*time.Minute), time.Minute)
		must(t, err)
		if ok {
			t.Fatal("marked unavailable although a newer report is stored")
		}
		ch, ok, err := markOne(s, f.aliceSrv, seen, day.Add(4*time.Minute), time.Minute)
		must(t, err)
		if !ok || ch.Kind != keepwatch.KindServerUnavailable || !ch.Active || ch.IntegratorID != f.alice || ch.SLC != f.aliceSLC {
			t.Fatalf("first mark: ok=%v change=%+v", ok, ch)
		}
		_, ok, err = markOne(s, f.aliceSrv, seen, day.Add(5*time.Minute), time.Minute)
		must(t, err)
		if ok {
			t.Fatal("second mark fired again")
		}
		v, err := s.Installation(ctx, f.alice, f.aliceSLC, day)
		must(t, err)
		if v.Status != keepwatch.StatusUnavailable || v.ServersOK != 0 {
			t.Fatalf("view = %+v", v)
		}
		ins, err := s.Incidents(ctx, f.alice, keepwatch.IncidentOpen, 10)
		must(t, err)
		if len(ins) != 1 || ins[0].Kind != keepwatch.KindServerUnavailable {
			t.Fatalf("incidents = %+v", ins)
		}
		// It reports again: ok, incident resolved.
		app, err := s.ApplyReport(ctx, keepwatch.Report{ServerID: f.aliceSrv, Seq: 2, ReceivedAt: day.Add(6 * time.Minute), Interval: time.Minute})
		must(t, err)
		if app.State != keepwatch.ServerOK || len(app.Changes) != 1 || app.Changes[0].Active {
			t.Fatalf("back: %+v", app)
		}
		ins, err = s.Incidents(ctx, f.alice, keepwatch.IncidentResolved, 10)
		must(t, err)
		if len(ins) != 1 {
			t.Fatalf("resolved incidents = %+v", ins)
		}
	})
}

func TestCommitHeartbeatsSpendsEachSequenceNumberOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		_, err := s.ApplyReport(ctx, report(f.aliceSrv, 10, day))
		must(t, err)
		_, err = s.ApplyReport(ctx, report(f.bobSrv, 1, day))
		must(t, err)
		beat := func(id string, seq uint64, at time.Time) keepwatch.Beat {
			return keepwatch.Beat{ID: id, Seq: seq, At: at, IntervalMS: 30000}
		}
		out, err := s.CommitHeartbeats(ctx, []keepwatch.Beat{
			beat(f.aliceSrv, 11, day.Add(time.Minute)),
			beat(f.bobSrv, 1, day.Add(time.Minute)),  // already spent
			beat(f.aliceSrv, 5, day.Add(-time.Hour)), // an old number in the same batch
		})
		must(t, err)
		if out[0] != keepwatch.BeatAccepted || out[1] != keepwatch.BeatReplayed || out[2] != keepwatch.BeatReplayed {
			t.Fatalf("outcomes %v", out)
		}
		a, err := s.ServerRecord(ctx, f.aliceSrv)
		must(t, err)
		if a.LastSeq != 11 || a.LastSeen != day.Add(time.Minute).UnixMilli() || a.IntervalMS != 30000 {
			t.Fatalf("alice = %+v", a)
		}
		// The same number again, as another node would see a replay.
		out, err = s.CommitHeartbeats(ctx, []keepwatch.Beat{beat(f.aliceSrv, 11, day.Add(2*time.Minute))})
		must(t, err)
		if out[0] != keepwatch.BeatReplayed {
			t.Fatalf("replay: %v", out)
		}
		// A server declared unavailable meanwhile needs the full report.
		_, ok, err := markOne(s, f.bobSrv, day.UnixMilli(), day.Add(5*time.Minute), time.Minute)
		must(t, err)
		if !ok {
			t.Fatal("bob not marked")
		}
		out, err = s.CommitHeartbeats(ctx, []keepwatch.Beat{beat(f.bobSrv, 2, day.Add(6*time.Minute))})
		must(t, err)
		if out[0] != keepwatch.BeatNeedsReport {
			t.Fatalf("unavailable server: %v", out)
		}
		b, err := s.ServerRecord(ctx, f.bobSrv)
		must(t, err)
		if b.LastSeq != 1 || b.State != keepwatch.ServerUnavailable {
			t.Fatalf("bob changed by a refused heartbeat: %+v", b)
		}
	})
}

func TestChangedServersFollowsRevisions(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		all, rev, err := s.ChangedServers(ctx, 0)
		must(t, err)
		if len(all) != 2 {
			t.Fatalf("servers = %d", len(all))
		}
		none, rev2, err := s.ChangedServers(ctx, rev)
		must(t, err)
		if len(none) != 0 || rev2 != rev {
			t.Fatalf("nothing changed but got %d", len(none))
		}
		// Heartbeats and reports do not bump revisions.
		_, err = s.ApplyReport(ctx, report(f.aliceSrv, 1, day))
		must(t, err)
		must(t, s.RevokeServer(ctx, f.bobSrv))
		past, _ := keepwatch.ParseDate("2026-01-01")
		must(t, s.SetCarePlus(ctx, f.aliceSLC, past))
		changed, _, err := s.ChangedServers(ctx, rev)
		must(t, err)
		if len(changed) != 2 {
			t.Fatalf("changed = %+v", changed)
		}
		for _, c := range changed {
			if c.ID == f.bobSrv && !c.Revoked {
				t.Fatal("revocation not visible")
			}
			if c.ID == f.aliceSrv && c.CarePlusUntil != past {
				t.Fatal("care plus change not visible")
			}
		}
		wantCode(t, s.RevokeServer(ctx, f.bobSrv), keepwatch.ENOTFOUND)
		_, err = s.ApplyReport(ctx, report(f.bobSrv, 1, day))
		wantCode(t, err, keepwatch.EUNAUTHORIZED)
	})
}

func TestPausedInstallationIsNeverUnavailable(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		_, err := s.ApplyReport(ctx, report(f.aliceSrv, 1, day, "storage_full:E:"))
		must(t, err)
		past, _ := keepwatch.ParseDate("2026-11-01")
		must(t, s.SetCarePlus(ctx, f.aliceSLC, past))
		v, err := s.Installation(ctx, f.alice, f.aliceSLC, day)
		must(t, err)
		if v.Status != keepwatch.StatusPaused {
			t.Fatalf("status = %s, want paused", v.Status)
		}
	})
}

func TestTokensAndPasswordsAreStoredHashed(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		tok := secret.New("kw_")
		_, err := s.CreateToken(ctx, f.alice, "ci", keepwatch.RoleViewer, secret.Hash(tok))
		must(t, err)
		p, err := s.PrincipalByTokenHash(ctx, secret.Hash(tok))
		must(t, err)
		if p.IntegratorID != f.alice || p.Role != keepwatch.RoleViewer || p.Actor != "token:ci" {
			t.Fatalf("principal = %+v", p)
		}
		_, err = s.PrincipalByTokenHash(ctx, secret.Hash(tok+"x"))
		wantCode(t, err, keepwatch.EUNAUTHORIZED)
		_, err = s.CreateUser(ctx, f.alice, "owner@alice.example", secret.HashPassword("correct horse"), keepwatch.RoleOwner)
		must(t, err)
		_, hash, err := s.UserPasswordHash(ctx, "owner@alice.example")
		must(t, err)
		if strings.Contains(hash, "correct horse") || !secret.CheckPassword(hash, "correct horse") || secret.CheckPassword(hash, "wrong") {
			t.Fatalf("password hash %q does not behave", hash)
		}
		_, err = s.CreateUser(ctx, f.alice, "owner@alice.example", "x", keepwatch.RoleOwner)
		wantCode(t, err, keepwatch.ECONFLICT)
	})
}

// BenchmarkCommitHeartbeats measures the group commit of heartbeats on
// each engine: groups of 100 (what 25,000 heartbeats/s give in 4 ms) over
// a fleet of 10,000 servers.
func BenchmarkCommitHeartbeats(b *testing.B) {
	for _, d := range testutil.Dialects {
		b.Run(d, func(b *testing.B) {
			s := testutil.Open(b, d)
			until, _ := keepwatch.ParseDate("2099-01-01")
			inst, err := s.CreateInstallation(ctx, keepwatch.Installation{SLC: "BENCH-1", Customer: "c", Product: "p", CarePlusUntil: until}, []byte("k"))
			if err != nil {
				b.Fatal(err)
			}
			const n, group = 10000, 100
			servers := make([]store.ImportedServer, n)
			for i := range servers {
				id := fmt.Sprintf("%032x", i)
				servers[i] = store.ImportedServer{ID: id, Name: id, Key: make([]byte, 32)}
			}
			if err := s.ImportServers(ctx, inst, servers, time.Minute, day); err != nil {
				b.Fatal(err)
			}
			seq := make([]uint64, n)
			batch := make([]keepwatch.Beat, group)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range batch {
					k := (i*group + j*97) % n
					seq[k]++
					batch[j] = keepwatch.Beat{ID: servers[k].ID, Seq: seq[k], At: day.Add(time.Duration(i) * time.Millisecond), IntervalMS: 60000}
				}
				out, err := s.CommitHeartbeats(ctx, batch)
				if err != nil {
					b.Fatal(err)
				}
				if out[0] != keepwatch.BeatAccepted {
					b.Fatalf("outcome %v", out[0])
				}
			}
			b.ReportMetric(float64(group*b.N)/b.Elapsed().Seconds(), "heartbeats/s")
		})
	}
}

func TestANewHolderOfAnSLCDoesNotSeeThePreviousHoldersNotes(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		// Alice had a problem, resolved with a note, and another still
		// open that she acknowledged with a note.
		r := report(f.aliceSrv, 1, day, "storage_full:E:")
		r.Events = []keepwatch.Event{{Kind: "archive_move_failed", Subject: "Archive 1", Severity: keepwatch.SeverityError, At: day}}
		_, err := s.ApplyReport(ctx, r)
		must(t, err)
		ins, err := s.Incidents(ctx, f.alice, "", 10)
		must(t, err)
		for _, n := range ins {
			if n.Kind == "archive_move_failed" {
				_, err = s.ResolveIncident(ctx, f.alice, n.ID, "user:alice", "alice's private note")
			} else {
				_, err = s.AckIncident(ctx, f.alice, n.ID, "user:alice", "alice's private note")
			}
			must(t, err)
		}
		must(t, s.Release(ctx, f.alice, f.aliceSLC))
		must(t, s.Register(ctx, f.bob, f.aliceSLC))
		seen, err := s.Incidents(ctx, f.bob, "", 100)
		must(t, err)
		resolved, err := s.Incidents(ctx, f.bob, keepwatch.IncidentResolved, 100)
		must(t, err)
		var open keepwatch.Incident
		for _, n := range seen {
			if n.SLC == f.aliceSLC {
				open = n
			}
		}
		if open.Kind != keepwatch.KindStorageFull || open.State != keepwatch.IncidentOpen || open.AckNote != "" || open.AckedBy != "" {
			t.Fatalf("bob's view of the open incident: %+v", open)
		}
		for _, n := range resolved {
			if n.SLC == f.aliceSLC {
				t.Fatalf("bob sees alice's resolved incident %+v", n)
			}
		}
		hist, err := s.IncidentHistory(ctx, f.bob, open.ID)
		must(t, err)
		for _, h := range hist {
			if strings.Contains(h.Note, "alice") || strings.Contains(h.Actor, "alice") {
				t.Fatalf("bob sees alice's history: %+v", hist)
			}
		}
		if len(hist) != 1 || hist[0].Type != keepwatch.TransitionTransferred {
			t.Fatalf("bob's history: %+v", hist)
		}
		// Alice no longer sees any of it.
		gone, err := s.Incidents(ctx, f.alice, "", 100)
		must(t, err)
		if len(gone) != 0 {
			t.Fatalf("alice still sees %+v", gone)
		}
		// The condition clearing resolves bob's incident.
		_, err = s.ApplyReport(ctx, report(f.aliceSrv, 2, day.Add(time.Minute)))
		must(t, err)
		if n, err := s.Incident(ctx, f.bob, open.ID); err != nil || n.State != keepwatch.IncidentResolved {
			t.Fatalf("after clearing: %+v %v", n, err)
		}
	})
}

// markOne declares one server unavailable as the sweeper does.
func markOne(s *store.Store, id string, lastSeen int64, at time.Time, window time.Duration) (keepwatch.Change, bool, error) {
	m, err := s.MarkUnavailable(ctx, at, []keepwatch.Expiry{{ID: id, LastSeen: lastSeen, Window: window}})
	if err != nil {
		return keepwatch.Change{}, false, err
	}
	return m[0].Change, m[0].OK, nil
}

func TestKeepwatchConditionsOutliveTheAgentsReports(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		_, err := s.ApplyReport(ctx, report(f.aliceSrv, 1, day, "storage_low:E:"))
		must(t, err)
		kinds := []string{keepwatch.KindStorageForecast, keepwatch.KindRetentionShort}
		forecast := keepwatch.Condition{Kind: keepwatch.KindStorageForecast, Subject: "E:", Severity: keepwatch.SeverityWarning, Message: "E: full in ~6 days"}
		ch, err := s.SetKeepwatchConditions(ctx, f.aliceSrv, kinds, []keepwatch.Condition{forecast}, day.Add(time.Minute))
		must(t, err)
		if len(ch) != 1 || !ch[0].Active || ch[0].Kind != keepwatch.KindStorageForecast {
			t.Fatalf("changes %+v", ch)
		}
		// The agent's all-clear clears its own condition, not keepwatch's.
		_, err = s.ApplyReport(ctx, report(f.aliceSrv, 2, day.Add(2*time.Minute)))
		must(t, err)
		v, err := s.Installation(ctx, f.alice, f.aliceSLC, day.Add(2*time.Minute))
		must(t, err)
		if len(v.Conditions) != 1 || v.Conditions[0].Kind != keepwatch.KindStorageForecast || v.Status != keepwatch.StatusWarning {
			t.Fatalf("after the agent's all-clear: %+v", v)
		}
		// A new verdict updates the message without a new incident.
		forecast.Message = "E: full in ~4 days"
		ch, err = s.SetKeepwatchConditions(ctx, f.aliceSrv, kinds, []keepwatch.Condition{forecast}, day.Add(3*time.Minute))
		must(t, err)
		v, err = s.Installation(ctx, f.alice, f.aliceSLC, day.Add(3*time.Minute))
		must(t, err)
		if len(ch) != 0 || v.Conditions[0].Message != "E: full in ~4 days" {
			t.Fatalf("update: %+v %+v", ch, v.Conditions)
		}
		ins, err := s.Incidents(ctx, f.alice, "", 10)
		must(t, err)
		if len(ins) != 1 || ins[0].Kind != keepwatch.KindStorageForecast {
			t.Fatalf("incidents %+v", ins)
		}
		// Cleared by keepwatch: the incident resolves.
		ch, err = s.SetKeepwatchConditions(ctx, f.aliceSrv, kinds, nil, day.Add(4*time.Minute))
		must(t, err)
		if len(ch) != 1 || ch[0].Active {
			t.Fatalf("clear: %+v", ch)
		}
		if _, err := s.SetKeepwatchConditions(ctx, f.aliceSrv, kinds, []keepwatch.Condition{{Kind: keepwatch.KindFlood}}, day); err == nil {
			t.Fatal("a condition of another kind was accepted")
		}
	})
}
