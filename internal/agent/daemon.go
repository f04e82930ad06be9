package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"keepwatch"
	"keepwatch/internal/protocol"
)

// refreshEvery is how many heartbeat intervals may pass without a status
// report: a full-state refresh now and then lets keepwatch heal from any
// loss on its side.
const refreshEvery = 10

// Daemon is the agent that runs next to a Recording Server (`keepwatch
// agent run`). It runs the built-in checks on their schedules, takes
// events and conditions from the VMS on its local API, records every
// report in the durable spool and delivers the spool to keepwatch in
// order.
type Daemon struct {
	Dir    string
	Config Config // normalized (LoadConfig or ParseConfig)
	Logger *slog.Logger
	Now    func() time.Time
	Probes Probes
	// PauseRetry is how long delivery waits after care_plus_inactive or
	// consent_required before trying again (default one hour).
	PauseRetry time.Duration
	// LockWait is how long Run waits for the state directory's lock, held
	// for a moment by one-shot commands (default 15 s).
	LockWait time.Duration

	state   *State
	spool   *Spool
	courier *courier
	rot     *rotation // an in-band key rotation in progress (sender only)
	checks  []check
	sampler *driveSampler
	addr    string

	mu         sync.Mutex
	results    map[string]checkResult
	vms        []protocol.PayloadCondition
	since      map[string]time.Time
	reported   map[string]bool // keys of the last recorded status report
	started    bool            // the first status report was recorded
	lastRec    time.Time       // when the last report of any kind was recorded
	lastStatus time.Time
	delivery   deliveryState
	skewWarned time.Time
	drives     []protocol.PayloadDrive // sampled, not yet in a recorded report

	wake    chan struct{} // a report was recorded
	nudge   chan struct{} // consent changed: stop waiting out a pause
	resched chan struct{} // the interval changed
	ready   chan struct{}
}

type checkResult struct {
	conds []protocol.PayloadCondition
	at    time.Time
	err   string
}

type deliveryState struct {
	State string    `json:"state"` // idle, delivering, retrying, paused, stopped
	Since time.Time `json:"since,omitzero"`
	Next  time.Time `json:"next_attempt,omitzero"`
}

// Ready is closed once the daemon listens and has recorded its first
// status report.
func (d *Daemon) Ready() <-chan struct{} {
	d.init()
	return d.ready
}

// Addr is the local API's address once Ready.
func (d *Daemon) Addr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addr
}

func (d *Daemon) init() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ready == nil {
		d.ready = make(chan struct{})
	}
}

// Run runs the daemon until ctx ends.
func (d *Daemon) Run(ctx context.Context) error {
	d.init()
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.PauseRetry == 0 {
		d.PauseRetry = time.Hour
	}
	if d.LockWait == 0 {
		d.LockWait = 15 * time.Second
	}
	if d.Config.LocalAPI == "" {
		if err := d.Config.normalize(); err != nil {
			return err
		}
	}
	d.Probes = d.Probes.withDefaults()
	d.wake, d.nudge, d.resched = make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{}, 1)
	d.results, d.since = map[string]checkResult{}, map[string]time.Time{}

	lock, err := lockWithin(ctx, d.Dir, d.LockWait)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if d.state, err = Load(d.Dir); err != nil {
		return err
	}
	client, err := NewClient(d.state.Server, d.state.CAFile)
	if err != nil {
		return err
	}
	if d.spool, err = OpenSpool(d.Dir, d.state, d.Config.Spool.MaxReports); err != nil {
		return err
	}
	defer d.spool.Close()
	if d.courier, err = newCourier(d.spool, client, d.state, d.Now); err != nil {
		return err
	}
	if d.vms, err = d.spool.VMSConditions(); err != nil {
		return err
	}
	d.checks = buildChecks(d.Config, d.Probes)
	if d.sampler = newDriveSampler(d.Config, d.Probes); d.sampler != nil {
		d.checks = append(d.checks, d.samplerCheck())
	}
	ln, err := net.Listen("tcp", d.Config.LocalAPI)
	if err != nil {
		return fmt.Errorf("local API: %w", err)
	}
	srv := &http.Server{Handler: d.localAPI(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10, ErrorLog: slog.NewLogLogger(d.Logger.Handler(), slog.LevelDebug)}
	go srv.Serve(ln)
	d.mu.Lock()
	d.addr = ln.Addr().String()
	d.mu.Unlock()
	if err := writeAddr(d.Dir, d.addr); err != nil {
		srv.Close()
		return err
	}
	defer os.Remove(filepath.Join(d.Dir, AddrFile))
	d.Logger.Info("agent running", "server", d.state.Server, "slc", d.state.SLC, "name", d.state.Name,
		"local_api", d.addr, "consent", d.state.Consent, "checks", len(d.checks))

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	first := make(chan struct{}, len(d.checks))
	for _, c := range d.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.runCheck(ctx, c, first)
		}()
	}
	// The first status report waits for the first round of every check
	// (bounded), so that it does not say "all clear" a moment before the
	// checks find what is wrong.
	deadline := time.NewTimer(20 * time.Second)
wait:
	for range d.checks {
		select {
		case <-first:
		case <-deadline.C:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	deadline.Stop()
	d.mu.Lock()
	d.started = true
	if d.state.Consent {
		if _, err := d.recordStatusLocked(nil, false); err != nil {
			d.Logger.Error("record the first status report", "err", err)
		}
	}
	d.mu.Unlock()
	close(d.ready)

	wg.Add(2)
	go func() { defer wg.Done(); d.recorder(ctx) }()
	go func() { defer wg.Done(); d.sender(ctx) }()
	<-ctx.Done()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	srv.Shutdown(sctx)
	scancel()
	cancel()
	wg.Wait()
	d.mu.Lock()
	err = d.saveStateLocked()
	d.mu.Unlock()
	d.Logger.Info("agent stopped")
	return err
}

// lockWithin takes the directory lock, waiting up to wait for a one-shot
// command that holds it for a moment.
func lockWithin(ctx context.Context, dir string, wait time.Duration) (*DirLock, error) {
	deadline := time.Now().Add(wait)
	for {
		l, err := LockDir(dir)
		if !errors.Is(err, ErrDaemonRunning) || time.Now().After(deadline) {
			if errors.Is(err, ErrDaemonRunning) {
				return nil, fmt.Errorf("%s: another agent is running on this state directory", dir)
			}
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// addrInfo is the content of AddrFile.
type addrInfo struct {
	Addr string `json:"addr"`
	PID  int    `json:"pid"`
}

func writeAddr(dir, addr string) error {
	b, _ := json.Marshal(addrInfo{Addr: addr, PID: os.Getpid()})
	tmp := filepath.Join(dir, AddrFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, AddrFile))
}

// saveStateLocked writes agent.json, carrying the spool's sequence counter
// so that the file never lags far behind it.
func (d *Daemon) saveStateLocked() error {
	if st, err := d.spool.Stats(); err == nil && st.LastSeq > d.state.Seq {
		d.state.Seq = st.LastSeq
	}
	return d.state.Save(d.Dir)
}

func (d *Daemon) interval() time.Duration {
	if d.state.Interval <= 0 {
		return 60 * time.Second
	}
	return time.Duration(d.state.Interval) * time.Second
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// runCheck runs one check at once and then on its schedule.
func (d *Daemon) runCheck(ctx context.Context, c check, first chan<- struct{}) {
	t := time.NewTimer(0)
	defer t.Stop()
	once := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		conds, err := c.run(ctx, d.Now())
		if ctx.Err() != nil {
			return
		}
		d.setCheck(c.name, conds, err)
		if once {
			first <- struct{}{}
			once = false
		}
		t.Reset(c.every)
	}
}

// setCheck stores a check's conditions and records a status report if
// the set of active conditions changed.
func (d *Daemon) setCheck(name string, conds []protocol.PayloadCondition, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := checkResult{conds: conds, at: d.Now()}
	if err != nil {
		r.err = err.Error()
		d.Logger.Warn("check could not look", "check", name, "err", err)
	}
	d.results[name] = r
	if d.started && d.state.Consent {
		if _, err := d.recordStatusLocked(nil, false); err != nil {
			d.Logger.Error("record status report", "err", err)
		}
	}
}

// activeLocked is the union of the checks' conditions and the VMS's, each
// with the time it was first seen, sorted, at most MaxConditions.
func (d *Daemon) activeLocked() []protocol.PayloadCondition {
	now := d.Now().UTC()
	seen := map[string]bool{}
	// Never nil: "conditions": null would make a heartbeat of a status
	// report.
	out := []protocol.PayloadCondition{}
	add := func(c protocol.PayloadCondition) {
		k := c.Kind + "\x00" + c.Subject
		if seen[k] {
			return
		}
		seen[k] = true
		since, ok := d.since[k]
		if !ok {
			since = now
			if c.Since != nil && c.Since.Before(now) {
				since = c.Since.UTC()
			}
			d.since[k] = since
		}
		c.Since = &since
		out = append(out, c)
	}
	names := make([]string, 0, len(d.results))
	for n := range d.results {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, c := range d.results[n].conds {
			add(c)
		}
	}
	for _, c := range d.vms {
		add(c)
	}
	for k := range d.since {
		if !seen[k] {
			delete(d.since, k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Subject < out[j].Subject
	})
	if len(out) > keepwatch.MaxConditions {
		d.Logger.Warn("more active conditions than a report may carry; the rest wait", "active", len(out), "max", keepwatch.MaxConditions)
		out = out[:keepwatch.MaxConditions]
	}
	return out
}

// recordStatusLocked records a status report when the set of active
// conditions differs from the last one recorded, or always when force or
// events are given. It returns the sequence number, 0 when nothing was
// recorded.
func (d *Daemon) recordStatusLocked(events []protocol.PayloadEvent, force bool) (uint64, error) {
	active := d.activeLocked()
	keys := make(map[string]bool, len(active))
	for _, c := range active {
		keys[c.Kind+"\x00"+c.Subject] = true
	}
	if !force && len(events) == 0 && d.reported != nil && sameKeys(keys, d.reported) {
		return 0, nil
	}
	now := d.Now().UTC()
	on := true
	p := &protocol.Payload{SentAt: &now, AgentVersion: agentVersion(), Consent: &on, Conditions: &active, Events: events, Drives: d.drives}
	seq, err := d.spool.Record(KindStatus, now, p)
	if err != nil {
		return 0, err
	}
	d.reported, d.lastRec, d.lastStatus, d.drives = keys, now, now, nil
	poke(d.wake)
	return seq, nil
}

func sameKeys(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func agentVersion() string { return "keepwatch-agent/" + keepwatch.Version }

// recorder records a heartbeat when an interval passed without any report,
// and a full status report every refreshEvery intervals.
func (d *Daemon) recorder(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		d.mu.Lock()
		iv := d.interval()
		now := d.Now()
		wait := min(d.lastRec.Add(iv).Sub(now), d.lastStatus.Add(refreshEvery*iv).Sub(now))
		if wait <= 0 && d.state.Consent {
			now := now.UTC()
			var err error
			if !now.Before(d.lastStatus.Add(refreshEvery * iv)) {
				_, err = d.recordStatusLocked(nil, true)
			} else {
				_, err = d.spool.Record(KindHeartbeat, now, &protocol.Payload{SentAt: &now})
				d.lastRec = now
				poke(d.wake)
			}
			if err != nil {
				d.Logger.Error("record report", "err", err)
				d.lastRec = now // try again an interval later, not in a loop
			}
			wait = iv
		} else if wait <= 0 {
			wait = iv // consent off: nothing to record
		}
		d.mu.Unlock()
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-d.resched:
		case <-t.C:
		}
	}
}

// sender delivers the spool in order, for as long as the daemon runs.
func (d *Daemon) sender(ctx context.Context) {
	fails := 0
	for ctx.Err() == nil {
		d.mu.Lock()
		consent := d.state.Consent
		d.mu.Unlock()
		// Without consent only the withdrawal itself may leave, and it is
		// then all the spool holds.
		e, ok, err := d.spool.Claim()
		if err != nil {
			d.Logger.Error("read spool", "err", err)
			d.sleep(ctx, time.Second, nil)
			continue
		}
		if !ok || (!consent && e.Kind != KindConsent) {
			d.setDelivery("idle", time.Time{})
			select {
			case <-ctx.Done():
			case <-d.wake:
			case <-d.nudge:
			}
			continue
		}
		res, resp, err := d.courier.attempt(ctx, e, consent)
		if ctx.Err() != nil {
			return
		}
		switch res {
		case resDelivered:
			if err != nil {
				// Sent again later, keepwatch will answer replayed, and
				// the spool settles then.
				d.Logger.Error("note delivery in the spool", "seq", e.Seq, "err", err)
			}
			fails = 0
			d.setDelivery("delivering", time.Time{})
			d.Logger.Debug("delivered", "seq", e.Seq, "kind", e.Kind, "events", e.Events, "recorded", e.RecordedAt, "server_time", resp.ServerTime)
			d.checkSkew(resp.ServerTime)
			d.adopt(resp)
			d.rotateIfAsked(e, resp)
			if resp.Refresh {
				// keepwatch missed a status report: send the full state now.
				d.Logger.Warn("keepwatch missed a status report; sending the full state again", "seq", e.Seq)
				d.refresh()
			}
		case resRenumbered, resAgain:
			d.Logger.Warn("sending again at once", "seq", e.Seq, "reason", err)
		case resRefused:
			d.Logger.Error("keepwatch refused a report; it was dropped", "seq", e.Seq, "err", err)
		case resRetry:
			fails++
			wait := backoff(fails, d.interval(), err)
			d.setDelivery("retrying", d.Now().Add(wait))
			d.Logger.Debug("delivery failed; retrying", "seq", e.Seq, "in", wait, "err", err)
			d.sleep(ctx, wait, d.nudge)
		case resPaused:
			d.setDelivery("paused", d.Now().Add(d.PauseRetry))
			d.Logger.Warn("delivery paused", "seq", e.Seq, "err", err, "retry_in", d.PauseRetry)
			d.sleep(ctx, d.PauseRetry, d.nudge)
		case resStopped:
			d.setDelivery("stopped", time.Time{})
			d.Logger.Error("keepwatch refuses this server; delivery stopped until the agent is enrolled again and restarted", "err", err)
			<-ctx.Done()
		}
	}
}

func (d *Daemon) sleep(ctx context.Context, wait time.Duration, interrupt <-chan struct{}) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-interrupt:
	}
}

func (d *Daemon) setDelivery(state string, next time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.delivery.State != state {
		d.delivery.State, d.delivery.Since = state, d.Now().UTC()
	}
	d.delivery.Next = next
}

// checkSkew warns, at most once an hour, when this machine's clock is
// more than a minute away from keepwatch's: events would then appear at
// the wrong time on the dashboard.
func (d *Daemon) checkSkew(serverTime string) {
	st, err := time.Parse(time.RFC3339Nano, serverTime)
	if err != nil {
		return
	}
	skew := d.Now().Sub(st)
	if skew > -time.Minute && skew < time.Minute {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if now := d.Now(); now.Sub(d.skewWarned) > time.Hour {
		d.skewWarned = now
		d.Logger.Warn("this machine's clock differs from keepwatch's; fix its time synchronization (NTP)", "skew", skew.Round(time.Second))
	}
}

// adopt takes the heartbeat interval keepwatch dictates.
func (d *Daemon) adopt(resp protocol.ReportResponse) {
	// Answers reach here authenticated; still, an interval outside
	// 1 s – 1 h is never adopted.
	if !protocol.ValidInterval(resp.HeartbeatIntervalSeconds) {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state.Pending {
		// An accepted report: the re-enrollment was approved.
		d.state.Pending = false
		if err := d.saveStateLocked(); err != nil {
			d.Logger.Error("save agent state", "err", err)
		}
	}
	if resp.HeartbeatIntervalSeconds == d.state.Interval {
		return
	}
	d.Logger.Info("heartbeat interval changed", "from_s", d.state.Interval, "to_s", resp.HeartbeatIntervalSeconds)
	d.state.Interval = resp.HeartbeatIntervalSeconds
	if err := d.saveStateLocked(); err != nil {
		d.Logger.Error("save agent state", "err", err)
	}
	poke(d.resched)
}

// SetConditions replaces the conditions the VMS reports, keeps them in the
// spool (a restarted agent reports them on), and records a status report
// if the active set changed (always with force or events).
func (d *Daemon) SetConditions(conds []protocol.PayloadCondition, events []protocol.PayloadEvent, force bool) (uint64, []protocol.PayloadCondition, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.state.Consent {
		return 0, nil, errConsentOff
	}
	if err := d.spool.SetVMSConditions(conds); err != nil {
		return 0, nil, err
	}
	d.vms = conds
	seq, err := d.recordStatusLocked(events, force)
	if err != nil {
		return 0, nil, err
	}
	return seq, d.activeLocked(), nil
}

// refresh records a status report with the full current state at once
// (keepwatch asked for it: a status report was lost on the way).
func (d *Daemon) refresh() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.state.Consent {
		return
	}
	if _, err := d.recordStatusLocked(nil, true); err != nil {
		d.Logger.Error("record a full status report", "err", err)
	}
}

var errConsentOff = keepwatch.Errorf(keepwatch.ECONSENTREQUIRED, "consent is off for this agent: nothing is recorded or sent (keepwatch agent consent on)")

// RecordEvents records events in a report of their own, at once.
func (d *Daemon) RecordEvents(events []protocol.PayloadEvent) (uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.state.Consent {
		return 0, errConsentOff
	}
	now := d.Now().UTC()
	seq, err := d.spool.Record(KindEvents, now, &protocol.Payload{SentAt: &now, AgentVersion: agentVersion(), Events: events})
	if err != nil {
		return 0, err
	}
	d.lastRec = now
	poke(d.wake)
	return seq, nil
}

// RecordHeartbeat records a heartbeat now.
func (d *Daemon) RecordHeartbeat() (uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.state.Consent {
		return 0, errConsentOff
	}
	now := d.Now().UTC()
	seq, err := d.spool.Record(KindHeartbeat, now, &protocol.Payload{SentAt: &now})
	if err != nil {
		return 0, err
	}
	d.lastRec = now
	poke(d.wake)
	return seq, nil
}

// SetConsent records the customer's choice. Withdrawing discards what the
// spool still holds (nothing recorded before may leave the machine now)
// and records the one report that tells keepwatch; granting records a
// status report with "consent": true.
func (d *Daemon) SetConsent(on bool) (uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if on == d.state.Consent {
		return 0, nil
	}
	d.state.Consent = on
	if err := d.saveStateLocked(); err != nil {
		d.state.Consent = !on
		return 0, err
	}
	var seq uint64
	var err error
	if on {
		d.reported = nil
		seq, err = d.recordStatusLocked(nil, true)
	} else {
		var n int64
		if n, err = d.spool.DiscardAll(); err == nil {
			if n > 0 {
				d.Logger.Info("consent withdrawn: undelivered reports discarded", "reports", n)
			}
			now := d.Now().UTC()
			off := false
			seq, err = d.spool.Record(KindConsent, now, &protocol.Payload{SentAt: &now, AgentVersion: agentVersion(), Consent: &off})
		}
	}
	d.Logger.Info("consent changed", "consent", on)
	poke(d.wake)
	poke(d.nudge)
	poke(d.resched)
	return seq, err
}

// Status describes the daemon for `agent status` and GET /v1/status.
func (d *Daemon) Status() (Status, error) {
	sp, err := d.spool.Stats()
	if err != nil {
		return Status{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s := statusOf(d.state, sp)
	s.Running, s.LocalAPI, s.Delivery = true, d.addr, d.delivery
	s.Conditions = d.activeLocked()
	s.Drives = d.sampler.latest()
	for _, c := range d.checks {
		r, ok := d.results[c.name]
		cs := CheckStatus{Name: c.name, Every: c.every.String(), Error: r.err}
		if ok {
			cs.LastRun = r.at.UTC()
		}
		s.Checks = append(s.Checks, cs)
	}
	return s, nil
}
