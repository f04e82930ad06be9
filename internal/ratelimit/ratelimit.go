// Package ratelimit holds keepwatch's one token bucket: embedded where a
// limited thing already lives (a server's credentials, a notification
// channel), or a keyed set for things that have no other state (source
// addresses, accounts signing in).
package ratelimit

import (
	"math"
	"sync"
	"time"
)

// Bucket is a token bucket. The zero value is full. It is not safe for
// concurrent use; callers hold the lock of what embeds it.
type Bucket struct {
	tokens float32
	last   int64 // Unix ms of the last refill; 0: never used (full)
}

// Allow takes one token from a bucket of size burst refilled at rate per
// second. It returns 0 if allowed, else how long until a token is there.
func (b *Bucket) Allow(now time.Time, rate float64, burst int) time.Duration {
	ms := now.UnixMilli()
	if b.last == 0 {
		b.tokens, b.last = float32(burst), ms
	}
	if el := ms - b.last; el > 0 {
		b.tokens = float32(math.Min(float64(burst), float64(b.tokens)+float64(el)/1000*rate))
		b.last = ms
	}
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - float64(b.tokens)) / rate * float64(time.Second))
}

// Keyed limits many keys, each with its own bucket. Idle keys are
// forgotten, so memory follows the number of recently active keys.
type Keyed struct {
	Rate  float64
	Burst int

	mu      sync.Mutex
	buckets map[string]*Bucket
	swept   time.Time
}

// NewKeyed returns a keyed limiter.
func NewKeyed(rate float64, burst int) *Keyed {
	return &Keyed{Rate: rate, Burst: burst, buckets: map[string]*Bucket{}}
}

// Allow takes a token for key; see Bucket.Allow.
func (k *Keyed) Allow(key string, now time.Time) time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	if now.Sub(k.swept) > time.Minute {
		k.sweep(now)
	}
	b, ok := k.buckets[key]
	if !ok {
		b = &Bucket{}
		k.buckets[key] = b
	}
	return b.Allow(now, k.Rate, k.Burst)
}

// sweep drops buckets that have refilled completely (idle keys).
func (k *Keyed) sweep(now time.Time) {
	k.swept = now
	full := float64(k.Burst) / k.Rate * 1000
	for key, b := range k.buckets {
		if float64(now.UnixMilli()-b.last) > full {
			delete(k.buckets, key)
		}
	}
}

// Reset forgets key's bucket: it is full again.
func (k *Keyed) Reset(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.buckets, key)
}

// Len is the number of tracked keys.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.buckets)
}

// Blocked reports how long key must wait for a token, without taking one
// (0: not blocked). With Allow called only on failures, it makes a penalty
// box: clients are refused only after many failures.
func (k *Keyed) Blocked(key string, now time.Time) time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	b, ok := k.buckets[key]
	if !ok {
		return 0
	}
	probe := *b
	if d := probe.Allow(now, k.Rate, k.Burst); d > 0 {
		return d
	}
	return 0
}
