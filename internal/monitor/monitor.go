// Package monitor keeps every recording server's liveness in memory and
// declares a server unavailable when it missed three heartbeats.
//
// Heartbeats are acknowledged from memory: the deadline heap is updated and
// the new last_seen is persisted write-behind, once a second, in one sorted
// batch. The sweeper pops only what expired, so its cost follows the
// number of expiring servers, not the fleet size. State changes are
// compare-and-set in the store, which writes the history row.
package monitor

import (
	"container/heap"
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"keepwatch"
	"keepwatch/internal/protocol"
	"keepwatch/internal/ratelimit"
)

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
	// OnChange receives every state change the monitor causes.
	OnChange func(keepwatch.Change)
	// FlushEvery, SweepEvery and ReloadEvery pace the background loops
	// (defaults 1 s, 100 ms, 2 s).
	FlushEvery, SweepEvery, ReloadEvery time.Duration
	// Grace is how long past a deadline the sweeper waits before it acts.
	// With several nodes, a heartbeat another node received reaches the
	// store only with that node's next flush: the grace covers it.
	Grace time.Duration
}

// Entry is the in-memory record of one server. Its fields are guarded by
// mu, which also serializes the reports of that server.
type Entry struct {
	mu sync.Mutex

	ID             protocol.ServerID
	InstallationID int64
	IntegratorID   int64
	Key            [32]byte // inline: no separate allocation per server
	LastSeq        uint64
	LastSeen       int64 // Unix ms
	IntervalMS     int64
	State          keepwatch.ServerState
	Revoked        bool
	CarePlusUntil  keepwatch.Date
	// ClockOffsetMS is how far the server's clock is ahead, as stored.
	ClockOffsetMS int64
	// Limit paces this server's reports (a misbehaving agent cannot
	// monopolize ingest).
	Limit ratelimit.Bucket

	// guarded by Monitor.mu
	deadline int64
	heapPos  int // position in the deadline heap + 1; 0 when not in it
	dirty    bool
}

// Lock serializes work on the entry (one report of a server at a time).
func (e *Entry) Lock()   { e.mu.Lock() }
func (e *Entry) Unlock() { e.mu.Unlock() }

// Monitor is the in-memory liveness table with its sweeper and flusher.
type Monitor struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	servers map[protocol.ServerID]*Entry
	heap    deadlineHeap
	dirty   []*Entry
	// guardStart is when keepwatch (re)started watching or resumed after a
	// stall: no server is declared unavailable before it had three
	// intervals after guardStart to report.
	guardStart int64
	lastSweep  int64
	lag        time.Duration
	rev        int64

	stop chan struct{}
	done sync.WaitGroup
}

// New returns a monitor; call Start to load the servers and run it.
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
	if cfg.FlushEvery == 0 {
		cfg.FlushEvery = time.Second
	}
	if cfg.SweepEvery == 0 {
		cfg.SweepEvery = 100 * time.Millisecond
	}
	if cfg.ReloadEvery == 0 {
		cfg.ReloadEvery = 2 * time.Second
	}
	return &Monitor{cfg: cfg, log: cfg.Logger, servers: map[protocol.ServerID]*Entry{}, stop: make(chan struct{})}
}

// Interval is the heartbeat interval agents are told to use.
func (m *Monitor) Interval() time.Duration { return m.cfg.Interval }

// window is how long a server may stay silent: three intervals plus the
// tolerance.
func (m *Monitor) window(intervalMS int64) int64 {
	return 3*intervalMS + int64(float64(intervalMS)*m.cfg.Tolerance)
}

// Load reads every server from the store and arms its deadline, applying
// the own-outage guard from now. Start calls it; tests that drive the
// monitor by hand call Load and then Sweep/Flush themselves.
func (m *Monitor) Load(ctx context.Context) error {
	recs, rev, err := m.cfg.Store.ChangedServers(ctx, 0)
	if err != nil {
		return err
	}
	now := m.cfg.Now().UnixMilli()
	m.mu.Lock()
	m.guardStart, m.lastSweep, m.rev = now, now, rev
	m.mu.Unlock()
	for _, r := range recs {
		m.apply(r)
	}
	m.log.Info("monitor loaded", "servers", len(recs), "guard_until_at_least", time.UnixMilli(now+m.window(m.cfg.Interval.Milliseconds())).UTC())
	return nil
}

// Start loads the servers and runs the sweeper, flusher and reloader until
// Stop.
func (m *Monitor) Start(ctx context.Context) error {
	if err := m.Load(ctx); err != nil {
		return err
	}
	m.loop(m.cfg.SweepEvery, func() { m.Sweep(context.Background()) })
	m.loop(m.cfg.FlushEvery, func() {
		if err := m.Flush(context.Background()); err != nil {
			m.log.Error("flush last_seen", "err", err)
		}
	})
	m.loop(m.cfg.ReloadEvery, func() {
		if err := m.Reload(context.Background()); err != nil {
			m.log.Warn("reload servers", "err", err)
		}
	})
	return nil
}

func (m *Monitor) loop(every time.Duration, fn func()) {
	m.done.Add(1)
	go func() {
		defer m.done.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				fn()
			}
		}
	}()
}

// Stop ends the loops and persists what is still unflushed.
func (m *Monitor) Stop(ctx context.Context) error {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	m.done.Wait()
	return m.Flush(ctx)
}

// apply merges a stored record into memory. Memory keeps the newer
// liveness; the store's key, revocation and Care Plus win.
func (m *Monitor) apply(r keepwatch.ServerRecord) *Entry {
	id, err := protocol.ParseServerID(r.ID)
	if err != nil {
		m.log.Error("bad server id in store", "id", r.ID)
		return nil
	}
	m.mu.Lock()
	e, ok := m.servers[id]
	if !ok {
		e = &Entry{ID: id}
		m.servers[id] = e
	}
	m.mu.Unlock()

	e.mu.Lock()
	rekeyed := ok && string(e.Key[:]) != string(r.Key)
	e.InstallationID, e.IntegratorID = r.InstallationID, r.IntegratorID
	copy(e.Key[:], r.Key)
	e.Revoked, e.CarePlusUntil, e.ClockOffsetMS = r.Revoked, r.CarePlusUntil, r.ClockOffsetMS
	if !ok || rekeyed {
		e.LastSeq = r.LastSeq
	} else if r.LastSeq > e.LastSeq {
		e.LastSeq = r.LastSeq
	}
	if r.LastSeen > e.LastSeen {
		e.LastSeen = r.LastSeen
	}
	// The store is the authority on state: every local state change is
	// written there first, and other nodes' changes arrive this way.
	e.State = r.State
	if !ok {
		e.IntervalMS = r.IntervalMS
	}
	watch := e.State == keepwatch.ServerOK && !e.Revoked
	deadline := e.LastSeen + m.window(e.IntervalMS)
	e.mu.Unlock()

	m.mu.Lock()
	if watch {
		m.schedule(e, deadline)
	} else if e.heapPos > 0 {
		heap.Remove(&m.heap, e.heapPos-1)
	}
	m.mu.Unlock()
	return e
}

// Lookup returns the entry of a server, loading it from the store when
// this node has not seen it (enrolled elsewhere or since start).
// Unknown servers are unauthorized.
func (m *Monitor) Lookup(ctx context.Context, id protocol.ServerID) (*Entry, error) {
	m.mu.Lock()
	e, ok := m.servers[id]
	m.mu.Unlock()
	if ok {
		return e, nil
	}
	return m.Refresh(ctx, id)
}

// Refresh reloads one server from the store, as after its enrollment.
func (m *Monitor) Refresh(ctx context.Context, id protocol.ServerID) (*Entry, error) {
	r, err := m.cfg.Store.ServerRecord(ctx, id.String())
	if keepwatch.ErrorCode(err) == keepwatch.ENOTFOUND {
		return nil, keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "the report does not authenticate")
	}
	if err != nil {
		return nil, err
	}
	if e := m.apply(r); e != nil {
		return e, nil
	}
	return nil, keepwatch.Errorf(keepwatch.EUNAUTHORIZED, "the report does not authenticate")
}

// Reload applies what changed in the store since the last reload:
// revocations, re-enrollments, Care Plus dates and registrations made by
// admin commands or other nodes.
func (m *Monitor) Reload(ctx context.Context) error {
	m.mu.Lock()
	since := m.rev
	m.mu.Unlock()
	recs, rev, err := m.cfg.Store.ChangedServers(ctx, since)
	if err != nil {
		return err
	}
	for _, r := range recs {
		m.apply(r)
	}
	m.mu.Lock()
	if rev > m.rev {
		m.rev = rev
	}
	m.mu.Unlock()
	return nil
}

// Seen records a heartbeat or an accepted report. The caller holds e's
// lock. persisted says whether the store already has this last_seen (a
// status report); otherwise it is flushed write-behind.
func (m *Monitor) Seen(e *Entry, seq uint64, at time.Time, state keepwatch.ServerState, persisted bool) {
	ms := at.UnixMilli()
	e.LastSeq = seq
	if ms > e.LastSeen {
		e.LastSeen = ms
	}
	e.IntervalMS = m.cfg.Interval.Milliseconds()
	e.State = state
	deadline := e.LastSeen + m.window(e.IntervalMS)
	m.mu.Lock()
	if state == keepwatch.ServerOK {
		m.schedule(e, deadline)
	} else if e.heapPos > 0 {
		heap.Remove(&m.heap, e.heapPos-1)
	}
	if !persisted && !e.dirty {
		e.dirty = true
		m.dirty = append(m.dirty, e)
	}
	m.mu.Unlock()
}

// schedule sets e's deadline; m.mu must be held.
func (m *Monitor) schedule(e *Entry, deadline int64) {
	e.deadline = deadline
	if e.heapPos > 0 {
		heap.Fix(&m.heap, e.heapPos-1)
	} else {
		heap.Push(&m.heap, e)
	}
}

// Flush persists the last_seen of servers that sent heartbeats since the
// previous flush, in one transaction sorted by id.
func (m *Monitor) Flush(ctx context.Context) error {
	m.mu.Lock()
	dirty := m.dirty
	m.dirty = nil
	for _, e := range dirty {
		e.dirty = false
	}
	m.mu.Unlock()
	if len(dirty) == 0 {
		return nil
	}
	batch := make([]keepwatch.Seen, len(dirty))
	for i, e := range dirty {
		e.mu.Lock()
		batch[i] = keepwatch.Seen{ID: e.ID.String(), LastSeen: e.LastSeen, LastSeq: e.LastSeq, IntervalMS: e.IntervalMS}
		e.mu.Unlock()
	}
	sort.Slice(batch, func(i, j int) bool { return batch[i].ID < batch[j].ID })
	if err := m.cfg.Store.FlushSeen(ctx, batch); err != nil {
		// Put them back so the next flush retries.
		m.mu.Lock()
		for _, e := range dirty {
			if !e.dirty {
				e.dirty = true
				m.dirty = append(m.dirty, e)
			}
		}
		m.mu.Unlock()
		return err
	}
	return nil
}

// Sweep declares unavailable every watched server whose deadline passed.
// It pops only expired entries.
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
	var expired []*Entry
	m.lag = 0
	for m.heap.Len() > 0 && m.heap[0].deadline+m.cfg.Grace.Milliseconds() < now { // unavailable when now > deadline
		e := m.heap[0]
		if floor := m.guardStart + m.window(e.IntervalMS); floor > now {
			m.schedule(e, floor)
			continue
		}
		if l := time.Duration(now-e.deadline) * time.Millisecond; l > m.lag {
			m.lag = l
		}
		heap.Pop(&m.heap)
		expired = append(expired, e)
	}
	m.mu.Unlock()

	at := time.UnixMilli(now).UTC()
	for len(expired) > 0 {
		n := min(len(expired), 256)
		changes := m.expire(ctx, expired[:n], now, at)
		expired = expired[n:]
		if m.cfg.OnChange != nil {
			for _, c := range changes { // published with no entry locked
				m.cfg.OnChange(c)
			}
		}
	}
}

// expire declares a batch of expired servers unavailable in one store
// transaction. The entries stay locked meanwhile, so a report arriving in
// that instant waits and then sees the new state.
func (m *Monitor) expire(ctx context.Context, batch []*Entry, now int64, at time.Time) (changes []keepwatch.Change) {
	var locked []*Entry
	var xs []keepwatch.Expiry
	defer func() {
		for _, e := range locked {
			e.mu.Unlock()
		}
	}()
	for _, e := range batch {
		e.mu.Lock()
		if e.State != keepwatch.ServerOK || e.Revoked {
			e.mu.Unlock()
			continue
		}
		if d := e.LastSeen + m.window(e.IntervalMS); d+m.cfg.Grace.Milliseconds() >= now { // a report arrived meanwhile
			m.mu.Lock()
			if e.heapPos == 0 {
				m.schedule(e, d)
			}
			m.mu.Unlock()
			e.mu.Unlock()
			continue
		}
		if e.CarePlusUntil.Before(keepwatch.DateOf(at)) {
			e.mu.Unlock()
			continue // paused, never unavailable; re-armed by its next accepted report
		}
		locked = append(locked, e)
		xs = append(xs, keepwatch.Expiry{ID: e.ID.String(), LastSeen: e.LastSeen, Window: time.Duration(e.IntervalMS) * time.Millisecond})
	}
	if len(xs) == 0 {
		return nil
	}
	marks, err := m.cfg.Store.MarkUnavailableBatch(ctx, at, xs)
	if err != nil {
		m.log.Error("mark unavailable", "servers", len(xs), "err", err)
		m.mu.Lock()
		for _, e := range locked {
			if e.heapPos == 0 {
				m.schedule(e, now+1000) // retry in a second
			}
		}
		m.mu.Unlock()
		return nil
	}
	for i, e := range locked {
		if !marks[i].OK {
			// Another node recorded a newer report, or declared the server
			// first: take the stored state once this entry is unlocked.
			go m.resync(e.ID)
			continue
		}
		e.State = keepwatch.ServerUnavailable
		m.log.Info("server unavailable", "server", e.ID.String(), "last_seen", time.UnixMilli(e.LastSeen).UTC())
		changes = append(changes, marks[i].Change)
	}
	return changes
}

// resync replaces an entry's state by the stored one after a lost
// compare-and-set.
func (m *Monitor) resync(id protocol.ServerID) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := m.cfg.Store.ServerRecord(ctx, id.String())
	if err != nil {
		m.log.Warn("resync server", "server", id.String(), "err", err)
		return
	}
	m.mu.Lock()
	e := m.servers[id]
	m.mu.Unlock()
	if e != nil {
		e.mu.Lock()
		e.State = r.State
		e.mu.Unlock()
	}
	m.apply(r)
}

// Stats is a snapshot for metrics.
type Stats struct {
	Tracked int
	Watched int
	Dirty   int
	Lag     time.Duration
	States  map[keepwatch.ServerState]int
}

// Stats counts servers by state. It walks the table, so it is for scrapes,
// not hot paths.
func (m *Monitor) Stats() Stats {
	m.mu.Lock()
	entries := make([]*Entry, 0, len(m.servers))
	for _, e := range m.servers {
		entries = append(entries, e)
	}
	st := Stats{Tracked: len(m.servers), Watched: m.heap.Len(), Dirty: len(m.dirty), Lag: m.lag, States: map[keepwatch.ServerState]int{}}
	m.mu.Unlock()
	for _, e := range entries {
		e.mu.Lock()
		if !e.Revoked {
			st.States[e.State]++
		}
		e.mu.Unlock()
	}
	return st
}

// deadlineHeap is a min-heap of entries by deadline.
type deadlineHeap []*Entry

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h deadlineHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapPos = i + 1
	h[j].heapPos = j + 1
}
func (h *deadlineHeap) Push(x any) {
	e := x.(*Entry)
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

// Store is what the monitor reads and writes.
type Store interface {
	ChangedServers(ctx context.Context, since int64) ([]keepwatch.ServerRecord, int64, error)
	ServerRecord(ctx context.Context, id string) (keepwatch.ServerRecord, error)
	FlushSeen(ctx context.Context, batch []keepwatch.Seen) error
	MarkUnavailableBatch(ctx context.Context, at time.Time, batch []keepwatch.Expiry) ([]keepwatch.Marked, error)
}
