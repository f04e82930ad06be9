package ratelimit

import (
	"testing"
	"time"
)

func TestBucketAllowsBurstThenRate(t *testing.T) {
	var b Bucket
	now := time.Unix(1000, 0)
	for i := 0; i < 5; i++ {
		if d := b.Allow(now, 2, 5); d != 0 {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	d := b.Allow(now, 2, 5)
	if d <= 0 || d > 500*time.Millisecond {
		t.Fatalf("after the burst: wait %s, want ≤ 0.5 s", d)
	}
	if d := b.Allow(now.Add(500*time.Millisecond), 2, 5); d != 0 {
		t.Fatal("a token did not refill at 2/s")
	}
}

func TestKeyedForgetsIdleKeys(t *testing.T) {
	k := NewKeyed(10, 10)
	now := time.Unix(1000, 0)
	for i := 0; i < 100; i++ {
		k.Allow(string(rune('a'+i)), now)
	}
	if k.Allow("a", now) != 0 {
		t.Fatal("second request of a key refused within its burst")
	}
	k.Allow("z", now.Add(2*time.Minute))
	if k.Len() != 1 {
		t.Fatalf("%d keys kept after they went idle", k.Len())
	}
}
