package notify_test

import (
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/notify"
	"keepwatch/internal/protocol"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

// TestTransitionCommittedOutOfIdOrderIsNotified: on PostgreSQL an id is
// taken when a transaction inserts and seen when it commits. A storage
// incident whose transaction took the lower id but committed after
// another incident's is notified all the same.
func TestTransitionCommittedOutOfIdOrderIsNotified(t *testing.T) {
	dsn := testutil.DSN(t, store.Postgres)
	s, err := store.Open(ctx, dsn)
	must(t, err)
	t.Cleanup(func() { s.Close() })
	x := newSiteOn(t, s, 2, 0)
	raw, err := sql.Open("pgx", dsn)
	must(t, err)
	defer raw.Close()

	// A second installation of the integrator, whose storage incident is
	// written by a transaction that takes its ids first and commits last
	// (the installations' own writes do not wait on each other).
	until, _ := keepwatch.ParseDate("2099-01-01")
	other, err := s.CreateInstallation(ctx, keepwatch.Installation{SLC: "SITE-0002", Customer: "Pier Storage", Product: "XProtect", CarePlusUntil: until}, secret.Hash("k2"))
	must(t, err)
	must(t, s.Register(ctx, x.integ, "SITE-0002"))
	srv := protocol.NewServerID()
	_, err = s.Enroll(ctx, keepwatch.Enrollment{InstallationID: other, ID: srv.String(), Name: "RS-01", Key: make([]byte, 32), Interval: interval})
	must(t, err)

	slow, err := raw.Begin()
	must(t, err)
	defer slow.Rollback()
	at := x.clock.Now().UnixMilli()
	var incident, low int64
	must(t, slow.QueryRow(`INSERT INTO incidents (installation_id, integrator_id, server_id, kind, subject, severity, is_event, state, opened_at, last_at)
		VALUES ($1, $2, $3, 'storage_full', 'E:\Recordings', 'error', 0, 'open', $4, $4) RETURNING id`, other, x.integ, srv.String(), at).Scan(&incident))
	must(t, slow.QueryRow(`INSERT INTO incident_events (incident_id, installation_id, type, at) VALUES ($1, $2, 'opened', $3) RETURNING id`,
		incident, other, at).Scan(&low))

	// Meanwhile a server of the first installation reports a problem,
	// committed first.
	x.report(x.servers[1], x.clock.Now(), []string{"media_db_write_failed"})
	x.run(time.Second, nil)
	got := x.hook.delivered()
	if len(got) != 1 || got[0]["incident"].(map[string]any)["kind"] != keepwatch.KindMediaDBWriteFailed {
		t.Fatalf("before the slow transaction committed: %v", got)
	}
	var high int64
	must(t, raw.QueryRow(`SELECT MAX(id) FROM incident_events WHERE processed_at IS NOT NULL`).Scan(&high))
	if high <= low {
		t.Fatalf("processed transition %d, the slow one has %d: not out of order", high, low)
	}
	must(t, slow.Commit())
	x.n.Poke()
	x.run(2*time.Second, nil)
	got = x.hook.delivered()
	if len(got) != 2 || got[1]["incident"].(map[string]any)["kind"] != keepwatch.KindStorageFull {
		t.Fatalf("the transition committed out of id order was not notified: %v", got)
	}
}

// TestRemindersEveryRepeatFromTheOpening: two incidents opened 20 s apart
// under a rule repeating every minute are each reminded a minute, two
// minutes, three minutes after their own opening notification, to the
// second.
func TestRemindersEveryRepeatFromTheOpening(t *testing.T) {
	for _, d := range testutil.Dialects {
		t.Run(d, func(t *testing.T) {
			x := newSite(t, d, 2, 0)
			rules, err := x.s.Rules(ctx, x.integ)
			must(t, err)
			must(t, x.s.DeleteRule(ctx, x.integ, rules[0].ID))
			_, err = x.s.CreateRule(ctx, x.integ, keepwatch.Rule{Name: "page", ChannelID: x.hookCh, MinSeverity: keepwatch.SeverityError,
				Repeat: keepwatch.Duration(time.Minute), Enabled: true})
			must(t, err)
			beat := func(int) {
				for _, id := range x.servers {
					x.report(id, x.clock.Now(), nil)
				}
			}
			x.report(x.servers[0], x.clock.Now(), []string{`storage_full:E:\Recordings`})
			x.run(20*time.Second, beat)
			x.report(x.servers[1], x.clock.Now(), []string{"media_db_write_failed"})
			x.run(200*time.Second, beat)
			end := x.clock.Now()

			opened := map[float64]time.Time{}
			reminders := map[float64][]time.Time{}
			for _, b := range x.hook.delivered() {
				id := b["incident"].(map[string]any)["id"].(float64)
				switch b["type"] {
				case "opened":
					opened[id] = sentAt(t, b)
				case "reminder":
					reminders[id] = append(reminders[id], sentAt(t, b))
				}
			}
			if len(opened) != 2 {
				t.Fatalf("%d openings, want 2", len(opened))
			}
			for id, o := range opened {
				want := int(end.Sub(o) / time.Minute)
				if len(reminders[id]) != want {
					t.Errorf("incident %v: %d reminders, want %d", id, len(reminders[id]), want)
				}
				for k, r := range reminders[id] {
					due := keepwatch.ReminderAt(o, time.Minute, k+1)
					if off := r.Sub(due); off < -time.Second || off > time.Second {
						t.Errorf("incident %v: reminder %d at %s, due %s (%s off)", id, k+1, r.Format("15:04:05.000"), due.Format("15:04:05.000"), off)
					}
				}
			}
		})
	}
}

// blockingReceiver answers nothing until released, counting requests in
// flight.
type blockingReceiver struct {
	srv     *httptest.Server
	release chan struct{}

	mu       sync.Mutex
	inFlight int
	most     int
}

func newBlockingReceiver(t *testing.T) *blockingReceiver {
	b := &blockingReceiver{release: make(chan struct{})}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		b.mu.Lock()
		b.inFlight++
		b.most = max(b.most, b.inFlight)
		b.mu.Unlock()
		<-b.release
		b.mu.Lock()
		b.inFlight--
		b.mu.Unlock()
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *blockingReceiver) counts() (inFlight, most int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inFlight, b.most
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
	}
}

// TestSlowChannelDoesNotDelayAnother: a receiver that does not answer
// holds its own channel's deliveries (at most four at a time) while
// another channel's go out, evaluated as soon as the report commits.
func TestSlowChannelDoesNotDelayAnother(t *testing.T) {
	x := newSite(t, store.SQLite, 1, 0)
	slow := newBlockingReceiver(t)
	ch, err := x.s.CreateChannel(ctx, x.integ, keepwatch.Channel{Name: "slow", Type: keepwatch.ChannelWebhook, Target: slow.srv.URL, Secret: "whsec_slow", Enabled: true})
	must(t, err)
	_, err = x.s.CreateRule(ctx, x.integ, keepwatch.Rule{Name: "slow", ChannelID: ch.ID, MinSeverity: keepwatch.SeverityWarning, Enabled: true})
	must(t, err)
	// No safety poll within the test: the commit's poke, and each ended
	// delivery's, drive the notifier.
	x.n = notify.New(notify.Config{Store: x.s, Now: x.clock.Now, Logger: quiet(), Interval: interval, HTTP: loopbackClient, Every: time.Hour})
	x.s.OnOutbox = x.n.Poke
	x.n.Start()
	released := false
	defer func() {
		if !released {
			close(slow.release)
		}
		x.n.Stop()
	}()

	var conds []string
	for i := 0; i < 6; i++ {
		conds = append(conds, fmt.Sprintf("camera_unreachable:cam-%02d", i))
	}
	x.report(x.servers[0], x.clock.Now(), conds)
	waitFor(t, "six notifications on the fast channel", func() bool { return len(x.hook.delivered()) == 6 })
	waitFor(t, "the slow channel's deliveries to start", func() bool { n, _ := slow.counts(); return n == 4 })
	if n, most := slow.counts(); n != 4 || most != 4 {
		t.Fatalf("slow channel: %d deliveries in flight (at most %d), want 4 (its bound)", n, most)
	}
	close(slow.release)
	released = true
	waitFor(t, "every notification sent", func() bool {
		ns, err := x.s.Notifications(ctx, x.integ, 20)
		must(t, err)
		sent := 0
		for _, n := range ns {
			if n.State == keepwatch.NotificationSent {
				sent++
			}
		}
		return sent == 12
	})
}

// TestTwoNodesDeliverEachNotificationOnce: two notifiers, as two nodes
// on one PostgreSQL, each evaluating what its own node commits and both
// claiming from one outbox, deliver every notification exactly once.
func TestTwoNodesDeliverEachNotificationOnce(t *testing.T) {
	dsn := testutil.DSN(t, store.Postgres)
	var stores [2]*store.Store
	for i := range stores {
		s, err := store.Open(ctx, dsn)
		must(t, err)
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	x := newSiteOn(t, stores[0], 20, 0)
	stores[1].Now = x.clock.Now
	var nodes [2]*notify.Notifier
	for i, s := range stores {
		nodes[i] = notify.New(notify.Config{Store: s, Now: x.clock.Now, Logger: quiet(), Interval: interval, HTTP: loopbackClient, Every: 50 * time.Millisecond})
		s.OnOutbox = nodes[i].Poke
		nodes[i].Start()
		defer nodes[i].Stop()
	}
	// Each server's reports reach one node or the other: conditions
	// raised, some cleared, raised again.
	for round := 0; round < 3; round++ {
		for i, id := range x.servers {
			x.seq[id]++
			conds := []keepwatch.Condition{{Kind: "camera_unreachable", Subject: fmt.Sprint("cam-", round%2), Severity: keepwatch.SeverityWarning}}
			_, err := stores[(i+round)%2].ApplyReport(ctx, keepwatch.Report{ServerID: id.String(), Seq: x.seq[id], ReceivedAt: x.clock.Now(), Interval: interval,
				RecordedAt: x.clock.Now(), Status: true, Conditions: conds})
			must(t, err)
		}
		x.clock.Advance(time.Second)
		time.Sleep(200 * time.Millisecond)
	}
	sent := 0
	waitFor(t, "the outbox to drain", func() bool {
		ns, err := x.s.Notifications(ctx, x.integ, 1000)
		must(t, err)
		sent = 0
		for _, n := range ns {
			switch n.State {
			case keepwatch.NotificationPending:
				return false
			case keepwatch.NotificationSent:
				sent++
			}
		}
		return true
	})
	got := x.hook.delivered()
	if sent < 60 || len(got) != sent || x.hook.duplicates() != 0 || x.hook.badSig != 0 {
		t.Fatalf("%d recorded sent, %d received, %d twice, %d bad signatures", sent, len(got), x.hook.duplicates(), x.hook.badSig)
	}
}
