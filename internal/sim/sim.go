// Package sim is keepwatch's fleet simulator: it enrolls thousands of
// recording servers through the real ingest protocol and runs them, with
// the faults real sites suffer (drives filling, cameras flapping, media
// database errors, archive failures, crashes, sites losing their Internet
// link), so that keepwatch can be demonstrated, tested and measured
// against something that behaves like a fleet.
//
// Each simulated server behaves as protocol.md asks of an agent: it
// sends a status report when it starts and whenever its conditions
// change, heartbeats at the interval keepwatch dictates, events with the
// time they happened, and while its site is offline it records its
// reports and uploads them in order once the link is back, each with
// sent_at set to when it was recorded. What one process cannot afford
// per server is left out: reports go over one shared pool of keep-alive
// connections (heartbeats by datagram first, as the agent's), and
// sequence numbers are not written to disk before each report but
// seeded from the clock (in microseconds) at every start, so they still
// only ever grow, across reruns and crashes of the simulator.
// The offline record lives in memory: what a site recorded while its link
// was down is lost if the simulator itself stops before the link is back.
//
// Every refusal is counted by its code. A refusal the simulator caused on
// purpose (a crash that restored an old counter, a licence whose Care Plus
// it ended) is "injected"; any other refusal is a bug, in keepwatch or
// here, and the summary shows it as unexpected.
package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"keepwatch"
	"keepwatch/internal/protocol"
	"keepwatch/internal/store"
)

// Scenario pins what happens to one installation, so that a demo can
// show every kind of state at once. The zero Scenario leaves the site to
// random faults.
type Scenario struct {
	// Conditions are raised on the site's first server from the start and
	// held for the whole run.
	Conditions []Item
	// Events are sent by the first server with its first report.
	Events []Item
	// Flap names a camera of the first server that keeps losing and
	// regaining its connection.
	Flap string
	// Offline cuts the site's Internet link after its first reports, for
	// the rest of the run.
	Offline bool
	// Silent servers are enrolled but never report (a firewall in the way).
	Silent bool
	// WithdrawConsent: the customer withdraws consent after the first
	// reports; the servers tell keepwatch once, then send nothing.
	WithdrawConsent bool
	// EndCarePlus: after the first reports the operator ends the
	// licence's Care Plus (Config.Store is needed); keepwatch then refuses
	// the site's reports with care_plus_inactive.
	EndCarePlus bool
	// Steady keeps random faults away from the site.
	Steady bool
}

// Config configures a fleet.
type Config struct {
	URL    string // keepwatch's base URL
	CAFile string // extra CA to trust (a self-signed keepwatch's cert.pem)
	// Installations are the sites to run, with their servers' credentials
	// where known; servers without credentials are enrolled by Start,
	// which fills in their Creds.
	Installations []*Installation
	// Interval overrides the heartbeat interval keepwatch dictates (zero:
	// follow keepwatch, as agents must).
	Interval time.Duration
	// FaultRate is the probability that a fault starts on a server during
	// one heartbeat interval.
	FaultRate float64
	Mix       Mix // nil: DefaultMix
	// Ramp spreads the servers' first reports (zero: over one interval).
	Ramp time.Duration
	// Cache and StateDir: enrollments are written to Cache and Cache is
	// saved in StateDir as they complete, so a rerun reuses them. Both
	// optional.
	Cache    *Cache
	StateDir string
	// Store gives the operator's access to keepwatch's database, needed by
	// Scenario.EndCarePlus.
	Store *store.Store
	// Concurrency bounds the enrollments in flight (default 8); Conns the
	// connections to keepwatch (default 32).
	Concurrency, Conns int
	// Drives: each server measures its drives (DrivesFor) and sends
	// their samples every SampleEvery, as the agent does.
	Drives bool
	// Seed makes the faults reproducible (zero: random).
	Seed   uint64
	Logger *slog.Logger
}

// Fleet is a running simulated fleet.
type Fleet struct {
	cfg    Config
	log    *slog.Logger
	client *client
	mix    Mix

	sites   []*site
	servers []*server
	total   int

	cacheMu  sync.Mutex // guards cfg.Cache and the Creds in it
	enrolled atomic.Int64
	started  atomic.Bool

	accepted, heartbeats, statuses atomic.Uint64
	refusedMu                      sync.Mutex
	refused                        map[string]*Refused
	warned                         map[string]bool
	archiveEvents                  atomic.Int64
	runStart                       time.Time
}

// Refused counts refusals of one code.
type Refused struct {
	Injected   uint64 // caused on purpose by an injected fault or scenario
	Unexpected uint64 // anything else: a bug to look into
}

// New prepares a fleet; nothing is sent before Start.
func New(cfg Config) (*Fleet, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Conns <= 0 {
		cfg.Conns = 32
	}
	if cfg.FaultRate < 0 || cfg.FaultRate > 1 {
		return nil, keepwatch.Errorf(keepwatch.EINVALID, "the fault rate is a probability, from 0 to 1")
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	c, err := newClient(cfg.URL, cfg.CAFile, cfg.Conns)
	if err != nil {
		return nil, err
	}
	f := &Fleet{cfg: cfg, log: cfg.Logger, client: c, mix: cfg.Mix, refused: map[string]*Refused{}, warned: map[string]bool{}}
	if f.mix == nil {
		f.mix = DefaultMix
	}
	for i, in := range cfg.Installations {
		st := &site{inst: in}
		for j, cr := range in.Servers {
			f.total++
			if cr.ID != "" {
				f.enrolled.Add(1)
			}
			s := &server{
				f: f, site: st, first: j == 0, creds: cr,
				rnd:   rand.New(rand.NewPCG(cfg.Seed, uint64(i)<<16|uint64(j))),
				acked: map[string]Item{}, ackedEvents: map[string]Item{}, needStatus: true,
			}
			if cfg.Drives {
				s.drives = &driveSet{drives: DrivesFor(s.rnd, time.Now())}
				if j == 0 && len(in.Drives) > 0 {
					s.drives.drives = in.Drives
				}
			}
			st.servers = append(st.servers, s)
			f.servers = append(f.servers, s)
		}
		f.sites = append(f.sites, st)
	}
	return f, nil
}

// Start enrolls every server that has no credentials yet, at most
// Concurrency at a time, saving the cache as it goes. Failed enrollments
// are retried while retrying makes sense; if some still fail, Start
// returns an error naming how many and why (the others stay enrolled and
// cached).
func (f *Fleet) Start(ctx context.Context) error {
	type job struct {
		site *site
		s    *server
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	var failMu sync.Mutex
	fails := map[string]int{}
	var firstErr error
	saveDone := make(chan struct{})
	saveStop := make(chan struct{})
	go func() {
		defer close(saveDone)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-saveStop:
				return
			case <-t.C:
				f.saveCache()
			}
		}
	}()
	for w := 0; w < f.cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				err := f.enroll(ctx, j.site, j.s)
				if err != nil && ctx.Err() == nil {
					failMu.Lock()
					fails[codeOf(err)]++
					if firstErr == nil {
						firstErr = fmt.Errorf("enroll %s %s: %w", j.site.inst.SLC, j.s.creds.Name, err)
					}
					failMu.Unlock()
				}
			}
		}()
	}
feed:
	for _, st := range f.sites {
		for _, s := range st.servers {
			if s.creds.ID != "" {
				continue
			}
			select {
			case jobs <- job{st, s}:
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	close(saveStop)
	<-saveDone
	if err := f.saveCache(); err != nil {
		return fmt.Errorf("save %s: %w", CacheFile, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if n := len(fails); n > 0 {
		total := 0
		for _, c := range fails {
			total += c
		}
		return fmt.Errorf("%d of %d servers could not be enrolled (%s); first: %w", total, f.total, countList(fails), firstErr)
	}
	f.started.Store(true)
	return nil
}

func (f *Fleet) enroll(ctx context.Context, st *site, s *server) error {
	wait := time.Second
	for attempt := 1; ; attempt++ {
		f.cacheMu.Lock()
		prev := *s.creds
		f.cacheMu.Unlock()
		creds, interval, pending, err := f.client.enroll(ctx, st.inst.SLC, st.inst.EnrollmentKey, prev)
		if err == nil && pending {
			err = f.approve(ctx, st.inst.SLC, creds.ID)
		}
		if err == nil {
			f.cacheMu.Lock()
			*s.creds = creds
			if f.cfg.Cache != nil && interval > 0 {
				f.cfg.Cache.IntervalSeconds = int64(interval / time.Second)
			}
			f.cacheMu.Unlock()
			s.mu.Lock()
			s.dictated = interval
			s.mu.Unlock()
			f.enrolled.Add(1)
			return nil
		}
		if !retryable(codeOf(err)) || attempt == 5 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func (f *Fleet) saveCache() error {
	if f.cfg.Cache == nil || f.cfg.StateDir == "" {
		return nil
	}
	f.cacheMu.Lock()
	defer f.cacheMu.Unlock()
	return f.cfg.Cache.Save(f.cfg.StateDir)
}

// Run runs the enrolled fleet until ctx ends. Reports already on their way
// when it ends are finished, not cut off, so that what the fleet counts as
// acknowledged is what keepwatch stored.
func (f *Fleet) Run(ctx context.Context) error {
	if !f.started.Load() {
		return errors.New("the fleet was not started")
	}
	f.runStart = time.Now()
	seed := uint64(f.runStart.UnixMicro())
	if f.cfg.Cache != nil {
		f.cacheMu.Lock()
		seed = max(seed, f.cfg.Cache.SeqFloor+1)
		f.cacheMu.Unlock()
	}
	rnd := rand.New(rand.NewPCG(f.cfg.Seed, 0))
	var wg sync.WaitGroup
	for _, s := range f.servers {
		id, err := protocol.ParseServerID(s.creds.ID)
		if err != nil {
			return fmt.Errorf("server %s of %s: %w", s.creds.Name, s.site.inst.SLC, err)
		}
		s.mu.Lock()
		s.id, s.seq = id, seed
		if s.site.inst.Scenario.Silent {
			s.dormant = dormantSilent
		}
		s.mu.Unlock()
		if s.dormant == dormantSilent {
			continue
		}
		delay := time.Duration(rnd.Float64() * float64(f.ramp(s)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(ctx, delay)
		}()
	}
	wg.Wait()
	f.client.close()
	if f.cfg.Cache != nil {
		// Remember the highest sequence number used, so that a rerun
		// within a second of a replay recovery still starts above it.
		f.cacheMu.Lock()
		for _, s := range f.servers {
			f.cfg.Cache.SeqFloor = max(f.cfg.Cache.SeqFloor, s.seqNow())
		}
		f.cacheMu.Unlock()
	}
	return f.saveCache()
}

// Interval is the heartbeat interval the fleet follows: Config.Interval,
// or else the one keepwatch dictated (at enrollment or in its answers).
func (f *Fleet) Interval() time.Duration {
	if len(f.servers) == 0 {
		return max(f.cfg.Interval, 0)
	}
	s := f.servers[0]
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.period()
}

func (f *Fleet) ramp(s *server) time.Duration {
	if f.cfg.Ramp > 0 {
		return f.cfg.Ramp
	}
	return s.period()
}

// count records the outcome of one report.
func (f *Fleet) count(p *protocol.Payload, code string, injected bool, message string) {
	if code == "" {
		f.accepted.Add(1)
		if p != nil && p.Conditions != nil {
			f.statuses.Add(1)
		} else {
			f.heartbeats.Add(1)
		}
		return
	}
	f.refusedMu.Lock()
	r := f.refused[code]
	if r == nil {
		r = &Refused{}
		f.refused[code] = r
	}
	warn := false
	if injected {
		r.Injected++
	} else {
		r.Unexpected++
		warn = !f.warned[code]
		f.warned[code] = true
	}
	f.refusedMu.Unlock()
	if warn {
		f.log.Warn("report refused unexpectedly", "code", code, "message", message)
	}
}

// site is one installation while the fleet runs.
type site struct {
	inst    *Installation
	servers []*server

	mu           sync.Mutex
	offlineUntil time.Time // zero while the link is up
	paused       bool      // Care Plus ended by the scenario
	reported     int       // servers whose first report was acknowledged
}

// forever is how long a scenario's lost link lasts.
const forever = 100 * 365 * 24 * time.Hour

// disconnect cuts the site's link from now for d, unless it is already cut.
func (st *site) disconnect(now time.Time, d time.Duration) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if now.Before(st.offlineUntil) {
		return false
	}
	st.offlineUntil = now.Add(d)
	return true
}

// offline reports whether the link is down at now, and until when.
func (st *site) offline(now time.Time) (bool, time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return now.Before(st.offlineUntil), st.offlineUntil
}

func (st *site) isPaused() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.paused
}

// Why a server stopped sending.
const (
	dormantSilent    = "silent"            // scenario: never reports
	dormantWithdrawn = "consent_withdrawn" // the customer withdrew consent
	dormantPaused    = "paused"            // Care Plus ended: a heartbeat a day to notice a renewal
	dormantRefused   = "refused"           // keepwatch refuses its reports for good (unauthorized)
)

// pausedRetry is how often a server whose Care Plus ended tries again
// (protocol.md section 9: one heartbeat a day).
const pausedRetry = 24 * time.Hour

// spoolLimit bounds what a server records while its site is offline;
// beyond it the oldest heartbeats go first, never events.
const spoolLimit = 1000

// server is one simulated recording server. Its goroutine owns it; mu
// guards what Stats and Check read while it runs.
type server struct {
	f     *Fleet
	site  *site
	first bool // the site's first server, which plays the scenario
	creds *Creds
	id    protocol.ServerID
	rnd   *rand.Rand
	// drives, when set, are the drives the server samples.
	drives *driveSet

	mu          sync.Mutex
	h           *health
	seq         uint64
	dictated    time.Duration
	nextBeat    time.Time
	nextRoll    time.Time
	needStatus  bool
	started     bool // its first status report was acknowledged
	withdrawing bool // consent withdrawn, keepwatch not yet told
	greeted     bool // consent: true sent since it (re)started
	backoff     time.Duration
	spool       []*protocol.Payload
	dormant     string
	stale       bool // restarted from an old copy of its state: the next replayed refusal is injected
	// The record of what keepwatch acknowledged.
	acked       map[string]Item
	ackedEvents map[string]Item
	lastAck     time.Time
	ackedSeq    uint64
}

func (s *server) period() time.Duration {
	if s.f.cfg.Interval > 0 {
		return s.f.cfg.Interval
	}
	if s.dictated > 0 {
		return s.dictated
	}
	if c := s.f.cfg.Cache; c != nil {
		s.f.cacheMu.Lock()
		iv := c.IntervalSeconds
		s.f.cacheMu.Unlock()
		if iv > 0 {
			return time.Duration(iv) * time.Second
		}
	}
	return 60 * time.Second
}

func (s *server) seqNow() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

func (s *server) run(ctx context.Context, delay time.Duration) {
	s.mu.Lock()
	s.h = newHealth(s.site.inst.Cameras / max(len(s.site.servers), 1))
	if s.first {
		for _, c := range s.site.inst.Scenario.Conditions {
			s.h.pin(c, time.Now())
		}
		for _, e := range s.site.inst.Scenario.Events {
			s.h.events = append(s.h.events, protocol.PayloadEvent{Kind: e.Kind, Subject: e.Subject, At: time.Now().UTC()})
		}
	}
	s.mu.Unlock()
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next, stop := s.tick(ctx, time.Now())
		if stop || ctx.Err() != nil {
			return
		}
		t.Reset(max(time.Until(next), 0))
	}
}

// tick does what is due at now and returns when to wake next; stop is
// true when the server will never send again.
func (s *server) tick(ctx context.Context, now time.Time) (next time.Time, stop bool) {
	sc := &s.site.inst.Scenario
	switch {
	case s.dormant == dormantPaused:
		return s.retryPaused(ctx, now)
	case s.withdrawing:
		return s.withdrawConsent(ctx, now)
	}
	period := s.period()

	s.mu.Lock()
	if s.h.advance(now) {
		s.needStatus = true
	}
	if s.h.down {
		s.mu.Unlock()
		t, _ := s.h.next()
		return t, false
	}
	if s.h.restarted {
		s.h.restarted, s.needStatus, s.greeted, s.nextBeat = false, true, false, now
		if back := 1 + uint64(s.rnd.IntN(50)); s.h.stale && s.ackedSeq > back {
			// Restored from an old copy: the counter is behind what
			// keepwatch accepted, and the first report will be refused.
			s.seq, s.stale = s.ackedSeq-back, true
		}
		s.h.stale = false
	}
	beat := !now.Before(s.nextBeat)
	if s.started && !now.Before(s.nextRoll) {
		s.nextRoll = now.Add(period)
		if !sc.Steady {
			if kind, ok := s.f.mix.pick(s.f.cfg.FaultRate, s.rnd); ok {
				if kind == FaultSiteOffline {
					s.site.disconnect(now, intervals(s.rnd, period, minSilence, maxSilence))
				} else if s.h.start(kind, now, period, s.rnd) && kind == FaultArchive {
					s.f.archiveEvents.Add(1)
				}
			}
		}
		if s.first && sc.Flap != "" {
			s.h.flapCamera(sc.Flap, now, period, 1, s.rnd)
		}
		if s.h.advance(now) {
			s.needStatus = true
		}
	}
	offline, back := s.site.offline(now)
	if offline {
		s.record(now, beat)
		if beat {
			s.nextBeat = now.Add(period)
		}
		s.mu.Unlock()
		return s.wake(back), false
	}
	s.mu.Unlock()

	if len(s.spool) > 0 {
		if code, ok := s.upload(ctx); !ok {
			return s.failed(now, code, nil, 0)
		}
		s.needStatus = true // a full status report after connectivity returns
	}
	var p *protocol.Payload
	var nEvents int
	switch {
	case s.needStatus || len(s.h.events) > 0:
		p, nEvents = s.status(now)
	case beat:
	default:
		return s.wake(time.Time{}), false
	}
	if ds := s.drives.due(now); len(ds) > 0 {
		// Samples ride in whatever report goes now, a heartbeat too.
		if p == nil {
			t := now.UTC()
			p = &protocol.Payload{SentAt: &t}
		}
		p.Drives = ds
	}
	if err := s.send(ctx, p); err != nil {
		return s.failed(now, codeOf(err), p, nEvents)
	}
	s.mu.Lock()
	s.h.events = s.h.events[nEvents:]
	s.needStatus, s.backoff = false, 0
	s.nextBeat = now.Add(period)
	first := !s.started
	if first {
		s.started, s.nextRoll = true, now.Add(period)
	}
	s.mu.Unlock()
	if first {
		s.afterFirstReport(ctx, now)
	}
	if s.withdrawing {
		return s.withdrawConsent(ctx, now)
	}
	return s.wake(time.Time{}), false
}

// wake returns the earliest of the next heartbeat, the next fault step
// and extra (if set).
func (s *server) wake(extra time.Time) time.Time {
	t := s.nextBeat
	if n, ok := s.h.next(); ok && n.Before(t) {
		t = n
	}
	if !extra.IsZero() && extra.Before(t) {
		t = extra
	}
	return t
}

// status builds a status report: the full set of active conditions and up
// to MaxEvents pending events. The caller removes the events once the
// report is acknowledged.
func (s *server) status(now time.Time) (*protocol.Payload, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	conds := s.h.conditions()
	t := now.UTC()
	p := &protocol.Payload{SentAt: &t, AgentVersion: agentVersion, Conditions: &conds}
	if !s.greeted {
		yes := true
		p.Consent = &yes
	}
	n := min(len(s.h.events), keepwatch.MaxEvents)
	p.Events = append([]protocol.PayloadEvent(nil), s.h.events[:n]...)
	return p, n
}

// agentVersion is what simulated servers report as their agent.
var agentVersion = "keepwatch-simulate/" + keepwatch.Version

// record keeps what the server would have sent while its site is
// offline: a status report when its conditions changed or events
// happened, else a heartbeat when one is due; each with sent_at now.
// The caller holds s.mu.
func (s *server) record(now time.Time, beat bool) {
	t := now.UTC()
	switch {
	case s.needStatus || len(s.h.events) > 0:
		conds := s.h.conditions()
		n := min(len(s.h.events), keepwatch.MaxEvents)
		p := &protocol.Payload{SentAt: &t, AgentVersion: agentVersion, Conditions: &conds, Events: append([]protocol.PayloadEvent(nil), s.h.events[:n]...)}
		s.h.events = s.h.events[n:]
		s.needStatus = false
		s.spool = append(s.spool, p)
	case beat:
		s.spool = append(s.spool, &protocol.Payload{SentAt: &t})
	default:
		return
	}
	if len(s.spool) <= spoolLimit {
		return
	}
	// Full: drop the oldest heartbeat, else the oldest status report
	// without events (a later one supersedes it); never an event.
	for _, heartbeat := range []bool{true, false} {
		for i, p := range s.spool {
			if len(p.Events) == 0 && (p.Conditions == nil) == heartbeat {
				s.spool = append(s.spool[:i], s.spool[i+1:]...)
				return
			}
		}
	}
}

// upload sends the recorded reports in order. It stops at the first
// failure that may be retried and returns its code.
func (s *server) upload(ctx context.Context) (string, bool) {
	for len(s.spool) > 0 {
		if ctx.Err() != nil {
			return codeNetwork, false
		}
		err := s.send(ctx, s.spool[0])
		if err != nil && retryable(codeOf(err)) {
			return codeOf(err), false
		}
		s.mu.Lock()
		s.spool[0] = nil
		s.spool = s.spool[1:]
		s.mu.Unlock()
		if err != nil {
			// Refused for good: dropping it is all a sender can do.
			if code := codeOf(err); code != keepwatch.EINVALID && code != keepwatch.ETOOLARGE && code != keepwatch.EREPLAYED {
				return code, false
			}
		}
	}
	return "", true
}

// send seals and posts one report and records its outcome. A replayed
// refusal is recovered as protocol.md section 9 says: move the counter
// well forward and send again.
func (s *server) send(ctx context.Context, p *protocol.Payload) error {
	var body []byte
	if p != nil {
		var err error
		if body, err = json.Marshal(p); err != nil {
			return err
		}
	}
	rctx := context.WithoutCancel(ctx)
	jump := uint64(1_000_000)
	for attempt := 0; ; attempt++ {
		s.mu.Lock()
		s.seq++
		seq := s.seq
		s.mu.Unlock()
		heartbeat := p == nil || p.Conditions == nil && len(p.Events) == 0 && p.Consent == nil
		resp, err := s.f.client.report(rctx, s.id, s.creds.Key, seq, body, heartbeat)
		if err == nil {
			s.f.count(p, "", false, "")
			s.ack(resp, seq, p)
			return nil
		}
		code := codeOf(err)
		s.f.count(p, code, s.injected(code), err.Error())
		if code != keepwatch.EREPLAYED || attempt == 3 {
			return err
		}
		s.mu.Lock()
		s.seq += jump
		s.mu.Unlock()
		jump *= 10
	}
}

// injected reports whether a refusal was caused on purpose.
func (s *server) injected(code string) bool {
	switch code {
	case keepwatch.EREPLAYED:
		s.mu.Lock()
		defer s.mu.Unlock()
		was := s.stale
		s.stale = false
		return was
	case keepwatch.ECAREPLUSINACTIVE:
		return s.site.isPaused()
	}
	return false
}

// ack records what keepwatch acknowledged.
func (s *server) ack(resp protocol.ReportResponse, seq uint64, p *protocol.Payload) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastAck, s.ackedSeq = time.Now(), seq
	if resp.HeartbeatIntervalSeconds > 0 {
		s.dictated = time.Duration(resp.HeartbeatIntervalSeconds) * time.Second
	}
	if p == nil {
		return
	}
	if p.Consent != nil && *p.Consent {
		s.greeted = true
	}
	if p.Conditions != nil {
		clear(s.acked)
		for _, c := range *p.Conditions {
			it := Item{c.Kind, c.Subject}
			s.acked[it.key()] = it
		}
	}
	for _, e := range p.Events {
		it := Item{e.Kind, e.Subject}
		s.ackedEvents[it.key()] = it
	}
}

// failed decides what to do after a report failed with code; p was the
// report and nEvents the pending events it carried.
func (s *server) failed(now time.Time, code string, p *protocol.Payload, nEvents int) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case retryable(code):
		// Back off from 1 s, doubling up to the interval, with ±20 %
		// jitter so a site that comes back does not return in lockstep.
		s.backoff = min(max(2*s.backoff, time.Second), s.period())
		d := time.Duration(float64(s.backoff) * (0.8 + 0.4*s.rnd.Float64()))
		s.nextBeat = now.Add(d)
		return s.nextBeat, false
	case code == keepwatch.ECAREPLUSINACTIVE:
		s.dormant = dormantPaused
		return now.Add(pausedRetry), false
	case code == keepwatch.EUNAUTHORIZED || code == keepwatch.ECONSENTREQUIRED:
		s.dormant = dormantRefused
		return time.Time{}, true
	}
	// invalid_request, too_large, a replay that could not be recovered:
	// a sender bug; drop the report and carry on (protocol.md section 9).
	s.h.events = s.h.events[nEvents:]
	s.needStatus = false
	s.nextBeat = now.Add(s.period())
	return s.wake(time.Time{}), false
}

// retryPaused sends one heartbeat to learn whether Care Plus was renewed.
func (s *server) retryPaused(ctx context.Context, now time.Time) (time.Time, bool) {
	if err := s.send(ctx, nil); err != nil {
		return now.Add(pausedRetry), false
	}
	s.mu.Lock()
	s.dormant, s.needStatus = "", true
	s.mu.Unlock()
	return now, false
}

// afterFirstReport plays the site's scenario once the server's first
// report was acknowledged: the site's link goes down for good once all
// its servers reported (so that keepwatch knows them all before they fall
// silent), Care Plus ends after the first one, consent is withdrawn by
// each.
func (s *server) afterFirstReport(ctx context.Context, now time.Time) {
	sc := &s.site.inst.Scenario
	s.site.mu.Lock()
	s.site.reported++
	all := s.site.reported == len(s.site.servers)
	s.site.mu.Unlock()
	if sc.Offline && all {
		s.site.disconnect(now, forever)
	}
	if sc.WithdrawConsent {
		s.mu.Lock()
		s.withdrawing = true
		s.mu.Unlock()
	}
	if sc.EndCarePlus && s.first && s.f.cfg.Store != nil {
		s.site.mu.Lock()
		s.site.paused = true
		s.site.mu.Unlock()
		ended := keepwatch.DateOf(now).AddDays(-3)
		if err := s.f.cfg.Store.SetCarePlus(context.WithoutCancel(ctx), s.site.inst.SLC, ended); err != nil {
			s.f.log.Error("end Care Plus", "slc", s.site.inst.SLC, "err", err)
		}
	}
}

// withdrawConsent tells keepwatch once that the customer withdrew
// consent; the server sends nothing after that.
func (s *server) withdrawConsent(ctx context.Context, now time.Time) (time.Time, bool) {
	no := false
	t := now.UTC()
	if err := s.send(ctx, &protocol.Payload{SentAt: &t, AgentVersion: agentVersion, Consent: &no}); err != nil && retryable(codeOf(err)) {
		return now.Add(time.Second), false
	}
	s.mu.Lock()
	s.withdrawing, s.dormant = false, dormantWithdrawn
	s.mu.Unlock()
	return time.Time{}, true
}

// approve approves, with the operator's access to the database, the
// re-enrollment of a known server name that the simulator could not prove
// (its keys were not kept): as the integrator would on the dashboard.
func (f *Fleet) approve(ctx context.Context, slc, serverID string) error {
	st := f.cfg.Store
	if st == nil {
		return &refusal{http.StatusAccepted, keepwatch.EREENROLLPENDING, "the re-enrollment waits for the integrator's approval"}
	}
	in, _, err := st.EnrollmentInfo(ctx, slc)
	if err != nil {
		return err
	}
	list, err := st.Reenrollments(ctx, in.IntegratorID, 1000)
	if err != nil {
		return err
	}
	for _, re := range list {
		if re.ServerID == serverID && re.State == keepwatch.ReenrollmentPending {
			_, err := st.DecideReenrollment(ctx, in.IntegratorID, re.ID, true, "operator:simulator")
			return err
		}
	}
	return &refusal{http.StatusAccepted, keepwatch.EREENROLLPENDING, "the re-enrollment waits for the integrator's approval"}
}
