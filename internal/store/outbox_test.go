package store_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/store"
)

func TestConcurrentClaimersNeverClaimTheSameNotification(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		in, err := s.CreateIntegrator(ctx, "Alice Security")
		must(t, err)
		var chans []int64
		for i := 0; i < 3; i++ {
			c, err := s.CreateChannel(ctx, in.ID, keepwatch.Channel{Name: fmt.Sprint("hook ", i), Type: keepwatch.ChannelWebhook, Target: "https://hooks.example/h", Enabled: true})
			must(t, err)
			chans = append(chans, c.ID)
		}
		now := time.Now()
		const total = 1500
		var seed []keepwatch.Notification
		for i := 0; i < total; i++ {
			seed = append(seed, keepwatch.Notification{IntegratorID: in.ID, ChannelID: chans[i%3], Type: keepwatch.NotifyTest,
				DedupKey: fmt.Sprint("claim-", i), NotBefore: now.Add(-time.Duration(i) * time.Millisecond)})
		}
		must(t, s.EnqueueManyForTest(ctx, seed))
		var mu sync.Mutex
		claims := map[int64]int{}
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					due, err := s.DueChannels(ctx, now)
					if err != nil {
						t.Error(err)
						return
					}
					if len(due) == 0 {
						return
					}
					for _, ch := range due {
						ns, err := s.ClaimDue(ctx, ch, now, time.Minute, 20)
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						for _, n := range ns {
							claims[n.ID]++
							if n.ChannelID != ch {
								t.Errorf("claimed notification %d of channel %d for channel %d", n.ID, n.ChannelID, ch)
							}
						}
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		twice := 0
		for _, c := range claims {
			if c > 1 {
				twice++
			}
		}
		if len(claims) != total || twice > 0 {
			t.Fatalf("%d of %d notifications claimed, %d of them more than once", len(claims), total, twice)
		}
	})
}

func TestOnlyTheClaimHolderRecordsTheOutcome(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		in, err := s.CreateIntegrator(ctx, "Alice Security")
		must(t, err)
		c, err := s.CreateChannel(ctx, in.ID, keepwatch.Channel{Name: "hook", Type: keepwatch.ChannelWebhook, Target: "https://hooks.example/h", Enabled: true})
		must(t, err)
		now := time.Now()
		_, err = s.Enqueue(ctx, keepwatch.Notification{IntegratorID: in.ID, ChannelID: c.ID, Type: keepwatch.NotifyTest, DedupKey: "once", NotBefore: now})
		must(t, err)
		first, err := s.ClaimDue(ctx, c.ID, now, time.Minute, 10)
		must(t, err)
		if again, err := s.ClaimDue(ctx, c.ID, now.Add(30*time.Second), time.Minute, 10); err != nil || len(again) != 0 {
			t.Fatalf("claimed again during the lease: %v %v", again, err)
		}
		// The first claimer stalls past its lease; another takes over.
		second, err := s.ClaimDue(ctx, c.ID, now.Add(2*time.Minute), time.Minute, 10)
		must(t, err)
		if len(first) != 1 || len(second) != 1 {
			t.Fatalf("claims %d then %d, want 1 each", len(first), len(second))
		}
		ok, err := s.RecordDelivery(ctx, first[0], keepwatch.Outcome{State: keepwatch.NotificationSent, Attempted: true, At: now.Add(2 * time.Minute)})
		must(t, err)
		if ok {
			t.Fatal("an expired claim recorded an outcome")
		}
		ok, err = s.RecordDelivery(ctx, second[0], keepwatch.Outcome{State: keepwatch.NotificationSent, Attempted: true, At: now.Add(2 * time.Minute)})
		must(t, err)
		ns, err := s.Notifications(ctx, in.ID, 10)
		must(t, err)
		if !ok || len(ns) != 1 || ns[0].State != keepwatch.NotificationSent || ns[0].Attempts != 1 {
			t.Fatalf("recorded %v, outbox %+v", ok, ns)
		}
	})
}
