package store_test

import (
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

// TestOldDeliveryErrorsAreScrubbedOnUpgrade: failure texts stored before
// errors were classified could quote a webhook URL and its key; the
// upgrade replaces them, keeping the reasons keepwatch itself wrote.
func TestOldDeliveryErrorsAreScrubbedOnUpgrade(t *testing.T) {
	for _, d := range testutil.Dialects {
		t.Run(d, func(t *testing.T) {
			s, err := store.OpenNoMigrate(ctx, testutil.DSN(t, d))
			must(t, err)
			defer s.Close()
			must(t, s.Migrate(ctx, 6))
			in, err := s.CreateIntegrator(ctx, "Alice")
			must(t, err)
			chID, err := s.InsertOldChannelForTest(ctx, in.ID, "h", "https://hooks.example/h?key=k")
			must(t, err)
			now := time.Now()
			for i, fin := range []struct{ state, err string }{
				{"failed", `Post "https://hooks.example/h?key=k": dial tcp 10.1.2.3:443: connect: connection refused`},
				{"pending", `webhook answered 500 Internal Server Error`},
				{"suppressed", "maintenance window"},
				{"sent", ""},
			} {
				_, err := s.Enqueue(ctx, keepwatch.Notification{IntegratorID: in.ID, ChannelID: chID, Type: "test", DedupKey: "k" + string(rune('a'+i)), NotBefore: now})
				must(t, err)
				ns, err := s.Notifications(ctx, in.ID, 1)
				must(t, err)
				must(t, s.FinishNotificationForTest(ctx, ns[0].ID, fin.state, fin.state != "suppressed", fin.err, now))
			}
			must(t, s.Migrate(ctx, 0))
			ns, err := s.Notifications(ctx, in.ID, 10)
			must(t, err)
			want := map[keepwatch.NotificationState]string{"failed": "delivery failed", "pending": "delivery failed", "suppressed": "maintenance window", "sent": ""}
			for _, n := range ns {
				if n.LastError != want[n.State] {
					t.Errorf("%s: last_error %q, want %q", n.State, n.LastError, want[n.State])
				}
			}
		})
	}
}
