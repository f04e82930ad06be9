// Package monitor keeps the deadlines of the recording servers this node
// watches and declares a server unavailable when it missed three
// heartbeats. It owns liveness only: credentials, sequence numbers and
// rate limits belong to ingest, which commits every heartbeat before it
// answers and then tells the monitor.
//
// The fleet is divided into parts (keepwatch.Partitions) leased to nodes
// through the database; a node watches only the servers of its parts. The
// deadlines live in memory (a map and a heap): the sweeper pops only what
// expired, so its cost follows the number of expiring servers, not the
// fleet size. A declaration is compare-and-set in the store: a heartbeat
// another node took, or a state another writer changed, wins.
package monitor

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	"keepwatch"
)

// Store is what the monitor reads and writes.
type Store interface {
	Leases(ctx context.Context, node string, now time.Time, ttl time.Duration) (keepwatch.Leases, error)
	ReleaseLeases(ctx context.Context, node string, now time.Time) error
	PartitionServers(ctx context.Context, parts []int) ([]keepwatch.ServerRecord, error)
	MarkUnavailable(ctx context.Context, at time.Time, batch []keepwatch.Expiry) ([]keepwatch.Marked, error)
	// LastSeen reads the stored liveness of servers (Unix ms; absent:
	// unknown), without a write: heartbeats taken by other nodes.
	LastSeen(ctx context.Context, ids []string) (map[string]int64, error)
}

// Config configures a Monitor.
type Config struct {
	Store Store
	// Interval is the heartbeat interval told to agents.
	Interval time.Duration
	// Tolerance is added to three intervals before a server is declared
	// unavailable, as a fraction of its interval (default 0.1).
	Tolerance float64
	Now       func() time.Time
	Logger    *slog.Logger
	// Publish receives the changes of each sweep, once they are committed.
	Publish func([]keepwatch.Change)
	// Node names this node in the leases (default: random).
	Node string
	// LeaseTTL is how long a lease lasts unrenewed (default two intervals,
	// at least two seconds): a node that dies loses its parts within it.
	LeaseTTL time.Duration
	// SweepEvery paces the sweeper (default 100 ms).
	SweepEvery time.Duration
}

// entry is the liveness of one watched server. Every field is guarded by
// Monitor.mu; nothing outside the package sees it.
type entry struct {
	id             string
	installationID int64
	lastSeen       int64 // Unix ms
	intervalMS     int64
	carePlusUntil  keepwatch.Date
	watched        bool  // reporting and not revoked: has a deadline
	floor          int64 // own-outage guard: not declared before (Unix ms)
	deadline       int64
	heapPos        int // position in the heap + 1; 0 when not in it
}

// Monitor is the liveness table of this node's parts, with its sweeper.
type Monitor struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	servers map[string]*entry
	held    [keepwatch.Partitions]bool
	heap    deadlineHeap
	// guardStart is when a stall of this node ended (or it started): no
	// server is declared unavailable before it had three intervals after
	// it to report.
	guardStart int64
	lastSweep  int64
	lag        time.Duration
}

// New returns a monitor; Load takes its first leases, Run keeps it going.
func New(cfg Config) *Monitor {
	if cfg.Tolerance == 0 {
		cfg.Tolerance = 0.1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Node == "" {
		b := make([]byte, 6)
		rand.Read(b)
		cfg.Node = hex.EncodeToString(b)
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = max(2*cfg.Interval, 2*time.Second)
	}
	if cfg.SweepEvery == 0 {
		cfg.SweepEvery = 100 * time.Millisecond
	}
	if cfg.Publish == nil {
		cfg.Publish = func([]keepwatch.Change) {}
	}
	return &Monitor{cfg: cfg, log: cfg.Logger, servers: map[string]*entry{}}
}

// Interval is the heartbeat interval agents are told to use.
func (m *Monitor) Interval() time.Duration { return m.cfg.Interval }

// Node is this node's name in the leases.
func (m *Monitor) Node() string { return m.cfg.Node }

// window is how long a server may stay silent: three intervals plus the
// tolerance.
func (m *Monitor) window(intervalMS int64) int64 {
	return 3*intervalMS + int64(float64(intervalMS)*m.cfg.Tolerance)
}

// Load takes this node's first leases and loads their servers, with the
// own-outage guard from now. Tests that drive the monitor by hand call Load
// and then Sweep themselves.
func (m *Monitor) Load(ctx context.Context) error {
	now := m.cfg.Now().UnixMilli()
	m.mu.Lock()
	m.guardStart, m.lastSweep = now, now
	m.mu.Unlock()
	if err := m.RenewLeases(ctx); err != nil {
		return err
	}
	st := m.Stats()
	m.log.Info("monitor loaded", "node", m.cfg.Node, "parts", st.Parts, "servers", st.Tracked,
		"guard_until_at_least", time.UnixMilli(now+m.window(m.cfg.Interval.Milliseconds())).UTC())
	return nil
}

// Run sweeps and renews the leases until ctx ends, then hands the leases
// back so that other nodes take over at once. Leases are renewed by a loop
// of their own: a slow sweep (a dark site being declared) must never let
// this node's leases run out while it is alive.
func (m *Monitor) Run(ctx context.Context) {
	var leases sync.WaitGroup
	leases.Add(1)
	go func() {
		defer leases.Done()
		t := time.NewTicker(m.cfg.LeaseTTL / 4)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := m.RenewLeases(ctx); err != nil && ctx.Err() == nil {
					m.log.Warn("renew leases", "err", err)
					m.storeTrouble()
				}
			}
		}
	}()
	sweep := time.NewTicker(m.cfg.SweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			leases.Wait()
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := m.cfg.Store.ReleaseLeases(rctx, m.cfg.Node, m.cfg.Now()); err != nil {
				m.log.Warn("release leases", "err", err)
			}
			cancel()
			return
		case <-sweep.C:
			m.Sweep(ctx)
		}
	}
}

// RenewLeases runs one lease round: it loads the servers of parts newly
// taken (guarded when their previous holder died) and forgets those of
// parts lost.
func (m *Monitor) RenewLeases(ctx context.Context) error {
	now := m.cfg.Now()
	ls, err := m.cfg.Store.Leases(ctx, m.cfg.Node, now, m.cfg.LeaseTTL)
	if err != nil {
		return err
	}
	var held [keepwatch.Partitions]bool
	for _, p := range ls.Held {
		held[p] = true
	}
	m.mu.Lock()
	var taken, lost []int
	for p := range keepwatch.Partitions {
		switch {
		case held[p] && !m.held[p]:
			taken = append(taken, p)
		case !held[p] && m.held[p]:
			lost = append(lost, p)
		}
	}
	m.held = held
	if len(lost) > 0 {
		for id, e := range m.servers {
			if !held[keepwatch.PartitionOf(e.installationID)] {
				m.unwatch(e)
				delete(m.servers, id)
			}
		}
	}
	m.mu.Unlock()
	if len(taken) == 0 {
		return nil
	}
	recs, err := m.cfg.Store.PartitionServers(ctx, taken)
	if err != nil {
		// Give the parts up in memory; the next round loads them again.
		m.mu.Lock()
		for _, p := range taken {
			m.held[p] = false
		}
		m.mu.Unlock()
		return err
	}
	floor := now.UnixMilli() + m.window(m.cfg.Interval.Milliseconds())
	m.mu.Lock()
	for _, r := range recs {
		e := m.put(r)
		if e != nil && ls.Guarded[keepwatch.PartitionOf(r.InstallationID)] {
			e.floor = max(e.floor, floor)
			m.arm(e)
		}
	}
	m.mu.Unlock()
	if len(lost)+len(taken) > 0 {
		m.log.Info("monitor parts changed", "node", m.cfg.Node, "taken", taken, "lost", lost, "servers", len(recs))
	}
	return nil
}

// Apply merges a stored record: a server enrolled or changed (state,
// revocation, Care Plus), by this node or another. Servers of parts this
// node does not hold are ignored.
func (m *Monitor) Apply(r keepwatch.ServerRecord) {
	m.mu.Lock()
	m.put(r)
	m.mu.Unlock()
}

// put merges r into the table; m.mu is held. Memory keeps the newer
// liveness; the store's state, revocation and Care Plus win.
func (m *Monitor) put(r keepwatch.ServerRecord) *entry {
	if !m.held[keepwatch.PartitionOf(r.InstallationID)] {
		return nil
	}
	e, ok := m.servers[r.ID]
	if !ok {
		e = &entry{id: r.ID, intervalMS: r.IntervalMS}
		m.servers[r.ID] = e
	}
	e.installationID, e.carePlusUntil = r.InstallationID, r.CarePlusUntil
	e.lastSeen = max(e.lastSeen, r.LastSeen)
	if r.IntervalMS > 0 {
		e.intervalMS = r.IntervalMS
	}
	e.watched = r.Watched()
	m.arm(e)
	return e
}

// Seen records a committed heartbeat or report of a server that is
// reporting: its deadline moves.
func (m *Monitor) Seen(id string, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.servers[id]
	if !ok {
		return // another node's part
	}
	e.lastSeen = max(e.lastSeen, at.UnixMilli())
	e.intervalMS = m.cfg.Interval.Milliseconds()
	e.watched = true
	m.arm(e)
}

// arm sets e's deadline from its liveness, or takes it off the heap when
// it is not watched; m.mu is held.
func (m *Monitor) arm(e *entry) {
	if !e.watched {
		m.unwatch(e)
		return
	}
	e.deadline = e.lastSeen + m.window(e.intervalMS)
	if e.heapPos > 0 {
		heap.Fix(&m.heap, e.heapPos-1)
	} else {
		heap.Push(&m.heap, e)
	}
}

func (m *Monitor) unwatch(e *entry) {
	if e.heapPos > 0 {
		heap.Remove(&m.heap, e.heapPos-1)
	}
}

// Sweep declares unavailable every watched server whose deadline passed.
// It pops only expired entries and holds no lock while the store works.
func (m *Monitor) Sweep(ctx context.Context) {
	now := m.cfg.Now().UnixMilli()
	m.mu.Lock()
	// A sweeper that could not run for longer than an interval (process
	// stopped, machine suspended) must not turn its own gap into alarms.
	if gap := now - m.lastSweep; gap > m.cfg.Interval.Milliseconds() && gap > 2000 {
		m.log.Warn("sweeper resumed after a gap; giving servers three intervals to report", "gap", time.Duration(gap)*time.Millisecond)
		m.guardStart = now
	}
	m.lastSweep = now
	today := keepwatch.DateOf(time.UnixMilli(now))
	var batch []keepwatch.Expiry
	m.lag = 0
	for m.heap.Len() > 0 && m.heap[0].deadline < now { // unavailable when now > deadline
		e := m.heap[0]
		if floor := max(e.floor, m.guardStart+m.window(e.intervalMS)); floor > now {
			e.deadline = floor
			heap.Fix(&m.heap, 0)
			continue
		}
		heap.Pop(&m.heap)
		if e.carePlusUntil.Before(today) {
			continue // paused, never unavailable; armed again by its next report
		}
		m.lag = max(m.lag, time.Duration(now-e.deadline)*time.Millisecond)
		batch = append(batch, keepwatch.Expiry{ID: e.id, LastSeen: e.lastSeen, Window: time.Duration(e.intervalMS) * time.Millisecond})
	}
	m.mu.Unlock()

	batch = m.recheck(ctx, batch)
	at := time.UnixMilli(now).UTC()
	for len(batch) > 0 {
		n := min(len(batch), 1000)
		m.expire(ctx, batch[:n], at)
		batch = batch[n:]
	}
	// The gap that calls for the guard is between sweeps: a sweep that
	// took long declaring a dark site is this node working, not stalled.
	m.mu.Lock()
	m.lastSweep = max(m.lastSweep, m.cfg.Now().UnixMilli())
	m.mu.Unlock()
}

// recheck reads the stored liveness of expired servers and re-arms those
// that reported meanwhile — to another node, whose heartbeats this node
// does not see — so that only the silent ones take a write transaction. A
// read that fails leaves the batch whole: the declaration is
// compare-and-set anyway.
func (m *Monitor) recheck(ctx context.Context, batch []keepwatch.Expiry) []keepwatch.Expiry {
	if len(batch) == 0 {
		return batch
	}
	ids := make([]string, len(batch))
	for i, x := range batch {
		ids[i] = x.ID
	}
	seen, err := m.cfg.Store.LastSeen(ctx, ids)
	if err != nil {
		return batch
	}
	now := m.cfg.Now().UnixMilli()
	silent := batch[:0]
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range batch {
		last, ok := seen[x.ID]
		e, tracked := m.servers[x.ID]
		if !ok || last <= x.LastSeen || !tracked {
			silent = append(silent, x)
			continue
		}
		e.lastSeen = max(e.lastSeen, last)
		if e.lastSeen+m.window(e.intervalMS) < now {
			x.LastSeen = e.lastSeen
			silent = append(silent, x)
			continue
		}
		if e.watched {
			m.arm(e)
		}
	}
	return silent
}

// expire declares a batch of expired servers in one store transaction and
// applies the outcome.
func (m *Monitor) expire(ctx context.Context, batch []keepwatch.Expiry, at time.Time) {
	// A declaration that fails (a deadlock with a report, a database
	// going away) is tried again in a second. It does not start the
	// own-outage guard by itself: while the database is away the lease
	// loop fails too and starts it; a declaration that lost a deadlock
	// while heartbeats go through must not hold back every other one.
	marks, err := m.cfg.Store.MarkUnavailable(ctx, at, batch)
	m.mu.Lock()
	if err != nil {
		// What committed before the failure stands; the rest is tried
		// again in a second.
		m.log.Error("mark unavailable", "servers", len(batch), "err", err)
		var done []keepwatch.Change
		for i, x := range batch {
			e, ok := m.servers[x.ID]
			if i < len(marks) && marks[i].OK {
				done = append(done, marks[i].Change)
				if ok {
					e.watched = false
					m.arm(e)
				}
				continue
			}
			if ok && e.heapPos == 0 && e.watched {
				e.deadline = at.UnixMilli() + 1000
				heap.Push(&m.heap, e)
			}
		}
		m.mu.Unlock()
		if len(done) > 0 {
			m.cfg.Publish(done)
		}
		return
	}
	var changes []keepwatch.Change
	for i, x := range batch {
		mk := marks[i]
		e, ok := m.servers[x.ID]
		if mk.OK {
			changes = append(changes, mk.Change)
			m.log.Info("server unavailable", "server", x.ID, "last_seen", time.UnixMilli(x.LastSeen).UTC())
		}
		if !ok {
			continue
		}
		// A heartbeat taken meanwhile (here or on another node) re-arms
		// the deadline from the store's last_seen.
		e.lastSeen = max(e.lastSeen, mk.LastSeen)
		e.watched = !mk.OK && mk.Watched
		m.arm(e)
	}
	m.mu.Unlock()
	if len(changes) > 0 {
		m.cfg.Publish(changes)
	}
}

// storeTrouble applies the own-outage guard when the database fails: while
// it does, reports are refused (nothing is acknowledged that is not
// committed), so once it is back every server gets three intervals to
// report before it can be declared unavailable.
func (m *Monitor) storeTrouble() {
	now := m.cfg.Now().UnixMilli()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.guardStart = max(m.guardStart, now)
}

// Stats is a snapshot for metrics.
type Stats struct {
	Parts   int
	Tracked int
	Watched int
	Lag     time.Duration
}

// Stats counts what this node watches.
func (m *Monitor) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Stats{Tracked: len(m.servers), Watched: m.heap.Len(), Lag: m.lag}
	for _, h := range m.held {
		if h {
			st.Parts++
		}
	}
	return st
}

// deadlineHeap is a min-heap of entries by deadline.
type deadlineHeap []*entry

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h deadlineHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapPos = i + 1
	h[j].heapPos = j + 1
}
func (h *deadlineHeap) Push(x any) {
	e := x.(*entry)
	*h = append(*h, e)
	e.heapPos = len(*h)
}
func (h *deadlineHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.heapPos = 0
	return e
}
