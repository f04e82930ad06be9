// Package live fans state changes out to the integrator's open dashboards
// and API event streams. Slow subscribers lose messages rather than slow
// down ingest; a client that reconnects reloads the current state.
package live

import (
	"sync"

	"keepwatch"
)

// Broker delivers changes to the subscribers of the change's integrator.
type Broker struct {
	mu   sync.Mutex
	subs map[int64]map[chan keepwatch.Change]struct{}
}

// NewBroker returns an empty broker.
func NewBroker() *Broker { return &Broker{subs: map[int64]map[chan keepwatch.Change]struct{}{}} }

// Subscribe returns a channel of the integrator's changes and a function
// that ends the subscription.
func (b *Broker) Subscribe(integratorID int64) (<-chan keepwatch.Change, func()) {
	ch := make(chan keepwatch.Change, 256)
	b.mu.Lock()
	if b.subs[integratorID] == nil {
		b.subs[integratorID] = map[chan keepwatch.Change]struct{}{}
	}
	b.subs[integratorID][ch] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs[integratorID], ch)
			if len(b.subs[integratorID]) == 0 {
				delete(b.subs, integratorID)
			}
			b.mu.Unlock()
		})
	}
}

// Publish sends c to its integrator's subscribers without blocking.
// Changes of unregistered installations (integrator 0) go nowhere.
func (b *Broker) Publish(c keepwatch.Change) {
	if c.IntegratorID == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs[c.IntegratorID] {
		select {
		case ch <- c:
		default:
		}
	}
}

// Subscribers counts open subscriptions (for metrics).
func (b *Broker) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, s := range b.subs {
		n += len(s)
	}
	return n
}
