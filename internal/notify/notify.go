// Package notify turns incident transitions into notifications and
// delivers them by e-mail and webhook from a durable outbox, in stages
// that any number of nodes share:
//
//   - Evaluate: every incident transition is a row (keepwatch.Transition),
//     processed once. The notifier takes unprocessed ones (rows other
//     nodes hold are skipped), turns each into notifications for the
//     matching rules, and marks it processed in the same transaction; a
//     dedup key per notification keeps the step idempotent. The store
//     tells the notifier when a commit wrote transitions (Poke), and a
//     slow safety poll catches what another node left behind.
//   - Timers: a sent opening whose rule repeats starts a reminder timer on
//     the incident and rule, due every repeat counted from the opening;
//     the notifier wakes at the next due time.
//   - Deliver: due notifications are claimed per channel, by lease, and
//     sent by a bounded number of deliveries per channel under the
//     channel's rate limit, so a slow relay or receiver delays only its
//     own channel. Just before sending, an opening or reminder is checked
//     again: resolved meanwhile, part of a site outage, acknowledged — it
//     is suppressed; in a maintenance window — it is held until the window
//     ends. Failures are retried with exponential backoff and jitter and
//     given up after a limit; every outcome is visible to the integrator
//     and recorded only by the holder of the claim.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"keepwatch"
	"keepwatch/internal/outbound"
	"keepwatch/internal/ratelimit"
)

// Notification types.
const (
	TypeOpened   = keepwatch.NotifyOpened
	TypeResolved = keepwatch.NotifyResolved
	TypeReminder = keepwatch.NotifyReminder
	TypeCarePlus = keepwatch.NotifyCarePlus
	TypeDigest   = keepwatch.NotifyDigest
	TypeTest     = keepwatch.NotifyTest
)

// KindCarePlusEnding is the pseudo condition kind rules use to select Care
// Plus reminders (rules without kinds include it).
const KindCarePlusEnding = keepwatch.KindCarePlusEnding

// Config configures a Notifier.
type Config struct {
	Store  Store
	Now    func() time.Time
	Logger *slog.Logger
	// Interval is the heartbeat interval: server outages wait at least this
	// long before notifying, so a site outage becomes one notification.
	Interval time.Duration
	// PublicURL is the dashboard's base URL, for links in messages.
	PublicURL string
	SMTP      SMTPConfig
	// HTTP sends webhooks (default: the guarded outbound client with no
	// allowed internal destinations).
	HTTP *http.Client
	// Every is the safety poll (default 5 s): besides it the notifier runs
	// when poked, at the next due time, and when a delivery ends.
	Every time.Duration
	// QuietPeriod resolves event incidents that did not recur (default 24 h).
	QuietPeriod time.Duration
	// MaxAttempts before a delivery is given up (default 8); backoff starts
	// at RetryBase (default 10 s) and doubles, with jitter, up to 1 h.
	MaxAttempts int
	RetryBase   time.Duration
	// DigestHour is the UTC hour daily digests go out (default 7).
	DigestHour int
	// PerChannel bounds one channel's deliveries in flight on this node
	// (default 4); ChannelRate and ChannelBurst are its token bucket
	// (default 20 a second, bursts of 100).
	PerChannel   int
	ChannelRate  float64
	ChannelBurst int
	// Timeout bounds one delivery (default 30 s); a claim lasts Timeout
	// plus 15 s, after which another node may deliver it.
	Timeout time.Duration
	// MaintenanceEnd, when set, returns when the maintenance window an
	// installation is in at a time ends (zero if none): its openings wait
	// until then.
	MaintenanceEnd func(ctx context.Context, installationID int64, at time.Time) (time.Time, error)
}

// Notifier runs the pipeline.
type Notifier struct {
	cfg    Config
	log    *slog.Logger
	poke   chan struct{}
	stop   chan struct{}
	done   sync.WaitGroup // the loop
	flight sync.WaitGroup // deliveries in flight
	limits *ratelimit.Keyed

	mu          sync.Mutex
	busy        map[int64]int       // channel → deliveries in flight here
	limited     map[int64]time.Time // channel → waits for its rate limit until
	lastPeriod  time.Time
	lastCare    time.Time
	lastDigests time.Time
}

// New returns a notifier; Start runs it.
func New(cfg Config) *Notifier {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTP == nil {
		cfg.HTTP = outbound.MustNew(outbound.Config{})
	}
	if cfg.Every == 0 {
		cfg.Every = 5 * time.Second
	}
	if cfg.QuietPeriod == 0 {
		cfg.QuietPeriod = 24 * time.Hour
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 8
	}
	if cfg.RetryBase == 0 {
		cfg.RetryBase = 10 * time.Second
	}
	if cfg.DigestHour == 0 {
		cfg.DigestHour = 7
	}
	if cfg.PerChannel == 0 {
		cfg.PerChannel = 4
	}
	if cfg.ChannelRate == 0 {
		cfg.ChannelRate = 20
	}
	if cfg.ChannelBurst == 0 {
		cfg.ChannelBurst = 100
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	return &Notifier{cfg: cfg, log: cfg.Logger, poke: make(chan struct{}, 1), stop: make(chan struct{}),
		limits: ratelimit.NewKeyed(cfg.ChannelRate, cfg.ChannelBurst), busy: map[int64]int{}, limited: map[int64]time.Time{}}
}

// SetPublicURL sets the base URL of links (before Start).
func (n *Notifier) SetPublicURL(u string) { n.cfg.PublicURL = u }

// Poke tells the notifier it has work (transitions committed, held
// notifications released); it never blocks.
func (n *Notifier) Poke() {
	select {
	case n.poke <- struct{}{}:
	default:
	}
}

// Start runs the loop until Stop.
func (n *Notifier) Start() {
	n.done.Add(1)
	go func() {
		defer n.done.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			<-n.stop
			cancel()
		}()
		timer := time.NewTimer(0)
		defer timer.Stop()
		for {
			select {
			case <-n.stop:
				return
			case <-n.poke:
			case <-timer.C:
			}
			next := n.step(ctx, false)
			wait := n.cfg.Every
			if !next.IsZero() {
				if d := next.Sub(n.cfg.Now()); d < wait {
					wait = max(d, 5*time.Millisecond)
				}
			}
			timer.Reset(wait)
		}
	}()
}

// Stop ends the loop; deliveries in progress finish first.
func (n *Notifier) Stop() {
	select {
	case <-n.stop:
	default:
		close(n.stop)
	}
	n.done.Wait()
	n.flight.Wait()
}

// RunOnce runs every stage once and waits for the deliveries it started
// (and for those their channels had queued behind them).
func (n *Notifier) RunOnce(ctx context.Context) error {
	if err := n.Evaluate(ctx); err != nil {
		return fmt.Errorf("evaluate: %w", err)
	}
	n.periodic(ctx)
	if err := n.Timers(ctx); err != nil {
		return fmt.Errorf("reminder timers: %w", err)
	}
	return n.Deliver(ctx)
}

// step runs the stages and returns when the notifier has something to do
// next (zero: nothing known).
func (n *Notifier) step(ctx context.Context, wait bool) time.Time {
	if err := n.Evaluate(ctx); err != nil {
		n.log.Error("evaluate transitions", "err", err)
	}
	n.periodic(ctx)
	if err := n.Timers(ctx); err != nil {
		n.log.Error("reminder timers", "err", err)
	}
	if _, err := n.dispatch(ctx); err != nil {
		n.log.Error("claim notifications", "err", err)
	}
	now := n.cfg.Now()
	next, err := n.cfg.Store.NextDue(ctx)
	if err != nil {
		n.log.Error("next due notification", "err", err)
	}
	if !next.After(now) {
		next = time.Time{} // due now: waits for its channel, which pokes when free
	}
	n.mu.Lock()
	for ch, until := range n.limited {
		if !until.After(now) {
			delete(n.limited, ch)
		} else if next.IsZero() || until.Before(next) {
			next = until
		}
	}
	n.mu.Unlock()
	return next
}

const batch = 100

// Evaluate turns every unprocessed incident transition into
// notifications.
func (n *Notifier) Evaluate(ctx context.Context) error {
	rules := map[int64][]keepwatch.Rule{}
	for {
		k, err := n.cfg.Store.ProcessTransitions(ctx, batch, func(tr keepwatch.Transition) (keepwatch.Evaluation, error) {
			return n.evaluate(ctx, tr, rules)
		})
		if err != nil || k < batch {
			return err
		}
	}
}

func (n *Notifier) evaluate(ctx context.Context, tr keepwatch.Transition, cache map[int64][]keepwatch.Rule) (keepwatch.Evaluation, error) {
	var ev keepwatch.Evaluation
	switch tr.Type {
	case keepwatch.TransitionOpened, keepwatch.TransitionReopened, keepwatch.TransitionResolved:
	case keepwatch.TransitionAcknowledged:
		return n.acknowledged(ctx, tr)
	default:
		return ev, nil // recurrences and annotations ride on other messages
	}
	ic, err := n.cfg.Store.IncidentForNotify(ctx, tr.IncidentID)
	if err != nil || ic.IntegratorID == 0 {
		return ev, err
	}
	rules, ok := cache[ic.IntegratorID]
	if !ok {
		if rules, err = n.cfg.Store.Rules(ctx, ic.IntegratorID); err != nil {
			return ev, err
		}
		cache[ic.IntegratorID] = rules
	}
	kind := ic.Kind
	if kind == keepwatch.KindSiteUnreachable {
		kind = keepwatch.KindServerUnavailable // rules about unavailability cover site outages
	}
	if tr.Type == keepwatch.TransitionResolved {
		return n.resolved(ctx, tr, ic)
	}
	for _, r := range rules {
		if !r.Matches(kind, ic.Severity, ic.SLC) && !(ic.Kind == keepwatch.KindSiteUnreachable && r.Matches(ic.Kind, ic.Severity, ic.SLC)) {
			continue
		}
		wait := time.Duration(r.MinDuration)
		if ic.Kind == keepwatch.KindServerUnavailable && wait < n.cfg.Interval {
			wait = n.cfg.Interval
		}
		ev.Enqueue = append(ev.Enqueue, keepwatch.Notification{
			IntegratorID: ic.IntegratorID, ChannelID: r.ChannelID, RuleID: r.ID, IncidentID: ic.ID, InstallationID: ic.InstallationID,
			Type: TypeOpened, DedupKey: fmt.Sprintf("t%d:r%d", tr.ID, r.ID), NotBefore: tr.At.Add(wait),
		})
	}
	return ev, nil
}

// resolved notifies a resolution only on channels that were told of the
// opening (or are being told right now); an opening still waiting for its
// minimum duration is dropped instead (the flap never reaches anyone).
func (n *Notifier) resolved(ctx context.Context, tr keepwatch.Transition, ic keepwatch.IncidentContext) (keepwatch.Evaluation, error) {
	ev := keepwatch.Evaluation{Cancel: []keepwatch.Cancellation{{IncidentID: ic.ID, Type: TypeOpened, Why: "resolved before the minimum duration"}}}
	sent, err := n.cfg.Store.NotificationsFor(ctx, ic.ID)
	if err != nil {
		return ev, err
	}
	now := n.cfg.Now()
	told := map[int64]bool{} // channel → the latest opening was delivered
	var order []int64
	for _, s := range sent {
		if s.Type == TypeOpened {
			if _, seen := told[s.ChannelID]; !seen {
				order = append(order, s.ChannelID)
			}
			told[s.ChannelID] = s.State == keepwatch.NotificationSent || (s.State == keepwatch.NotificationPending && s.LeaseUntil.After(now))
		}
	}
	for _, ch := range order {
		if !told[ch] {
			continue
		}
		ev.Enqueue = append(ev.Enqueue, keepwatch.Notification{
			IntegratorID: ic.IntegratorID, ChannelID: ch, IncidentID: ic.ID, InstallationID: ic.InstallationID,
			Type: TypeResolved, DedupKey: fmt.Sprintf("t%d:c%d", tr.ID, ch), NotBefore: tr.At,
		})
	}
	return ev, nil
}

// Timers turns due reminder timers into reminders.
func (n *Notifier) Timers(ctx context.Context) error {
	for {
		k, err := n.cfg.Store.FireReminders(ctx, n.cfg.Now(), batch)
		if err != nil || k < batch {
			return err
		}
	}
}

// periodic runs the jobs that are not driven by transitions: quiet-period
// resolution of events, Care Plus warnings and digests.
func (n *Notifier) periodic(ctx context.Context) {
	now := n.cfg.Now()
	n.mu.Lock()
	runMinute := now.Sub(n.lastPeriod) >= 30*time.Second
	if runMinute {
		n.lastPeriod = now
	}
	runHourly := now.Sub(n.lastCare) >= time.Hour
	if runHourly {
		n.lastCare = now
	}
	n.mu.Unlock()
	if !runMinute {
		return
	}
	if k, err := n.cfg.Store.ResolveQuietEvents(ctx, n.cfg.QuietPeriod, now); err != nil {
		n.log.Error("resolve quiet events", "err", err)
	} else if k > 0 {
		n.log.Info("event incidents resolved after their quiet period", "count", k)
		if err := n.Evaluate(ctx); err != nil {
			n.log.Error("evaluate", "err", err)
		}
	}
	ids, err := n.cfg.Store.IntegratorIDs(ctx)
	if err != nil {
		n.log.Error("list integrators", "err", err)
		return
	}
	for _, id := range ids {
		if runHourly {
			if err := n.carePlus(ctx, id, now); err != nil {
				n.log.Error("care plus warnings", "integrator", id, "err", err)
			}
		}
		if err := n.digests(ctx, id, now); err != nil {
			n.log.Error("digests", "integrator", id, "err", err)
		}
	}
}

// carePlus warns 30 and 7 days before an installation's Care Plus ends.
func (n *Notifier) carePlus(ctx context.Context, integratorID int64, now time.Time) error {
	today := keepwatch.DateOf(now)
	ending, err := n.cfg.Store.CarePlusEnding(ctx, integratorID, today, today.AddDays(30))
	if err != nil || len(ending) == 0 {
		return err
	}
	rules, err := n.cfg.Store.Rules(ctx, integratorID)
	if err != nil {
		return err
	}
	for _, in := range ending {
		days := int(in.CarePlusUntil.Time().Sub(today.Time()).Hours() / 24)
		mark := 30
		if days <= 7 {
			mark = 7
		}
		for _, ch := range channelsFor(rules, KindCarePlusEnding, keepwatch.SeverityWarning, in.SLC) {
			if _, err := n.cfg.Store.Enqueue(ctx, keepwatch.Notification{
				IntegratorID: integratorID, ChannelID: ch, InstallationID: in.ID, Type: TypeCarePlus,
				DedupKey: fmt.Sprintf("careplus:i%d:%s:%d:c%d", in.ID, in.CarePlusUntil, mark, ch), NotBefore: now,
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// digests sends each digest channel one summary of open incidents a day.
func (n *Notifier) digests(ctx context.Context, integratorID int64, now time.Time) error {
	if now.UTC().Hour() < n.cfg.DigestHour {
		return nil
	}
	chans, err := n.cfg.Store.Channels(ctx, integratorID)
	if err != nil {
		return err
	}
	for _, c := range chans {
		if !c.Enabled || !c.Digest || c.Type != keepwatch.ChannelEmail {
			continue
		}
		if _, err := n.cfg.Store.Enqueue(ctx, keepwatch.Notification{
			IntegratorID: integratorID, ChannelID: c.ID, Type: TypeDigest,
			DedupKey: fmt.Sprintf("digest:c%d:%s", c.ID, keepwatch.DateOf(now)), NotBefore: now,
		}); err != nil {
			return err
		}
	}
	return nil
}

func channelsFor(rules []keepwatch.Rule, kind string, sev keepwatch.Severity, slc string) []int64 {
	seen := map[int64]bool{}
	var out []int64
	for _, r := range rules {
		if r.Matches(kind, sev, slc) && !seen[r.ChannelID] {
			seen[r.ChannelID] = true
			out = append(out, r.ChannelID)
		}
	}
	return out
}

// Deliver sends every due notification and waits for the deliveries.
func (n *Notifier) Deliver(ctx context.Context) error {
	for {
		k, err := n.dispatch(ctx)
		n.flight.Wait()
		if err != nil || k == 0 {
			return err
		}
	}
}

// dispatch claims due notifications of every channel that has room on
// this node and is within its rate limit, and starts their deliveries;
// it returns how many it started.
func (n *Notifier) dispatch(ctx context.Context) (int, error) {
	now := n.cfg.Now()
	chans, err := n.cfg.Store.DueChannels(ctx, now)
	if err != nil {
		return 0, err
	}
	started := 0
	for _, ch := range chans {
		n.mu.Lock()
		room := n.cfg.PerChannel - n.busy[ch]
		if until, ok := n.limited[ch]; ok && until.After(now) {
			room = 0
		}
		n.mu.Unlock()
		if room <= 0 {
			continue
		}
		due, err := n.cfg.Store.ClaimDue(ctx, ch, now, n.cfg.Timeout+15*time.Second, room)
		if err != nil {
			return started, err
		}
		for i, d := range due {
			if wait := n.limits.Allow(strconv.FormatInt(ch, 10), now); wait > 0 {
				n.mu.Lock()
				n.limited[ch] = now.Add(wait)
				n.mu.Unlock()
				for _, r := range due[i:] {
					if err := n.cfg.Store.ReleaseClaim(ctx, r); err != nil {
						n.log.Error("release claim", "notification", r.ID, "err", err)
					}
				}
				break
			}
			n.mu.Lock()
			n.busy[ch]++
			n.mu.Unlock()
			n.flight.Add(1)
			started++
			go func() {
				defer n.flight.Done()
				n.deliverOne(d, now)
				n.mu.Lock()
				if n.busy[ch]--; n.busy[ch] == 0 {
					delete(n.busy, ch)
				}
				n.mu.Unlock()
				n.Poke() // the channel has room again
			}()
		}
	}
	return started, nil
}

// deliverOne sends one claimed notification to its channel and records
// the outcome. It runs on its own, bounded by the delivery timeout, so
// that stopping the notifier lets it finish.
func (n *Notifier) deliverOne(d keepwatch.Notification, now time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Timeout)
	defer cancel()
	finish := func(o keepwatch.Outcome) {
		if o.At.IsZero() {
			o.At = n.cfg.Now()
		}
		n.record(d, o)
	}
	msg, hold, err := n.compose(ctx, d, now)
	if err != nil {
		finish(keepwatch.Outcome{State: keepwatch.NotificationPending, LastError: outbound.Class(err), RetryAt: now.Add(n.cfg.RetryBase)})
		return
	}
	if hold.Suppress != "" {
		finish(keepwatch.Outcome{State: keepwatch.NotificationSuppressed, LastError: hold.Suppress})
		return
	}
	if !hold.Until.IsZero() {
		n.log.Info("notification held", "notification", d.ID, "until", hold.Until)
		finish(keepwatch.Outcome{State: keepwatch.NotificationPending, LastError: hold.Why, RetryAt: hold.Until, Held: true})
		return
	}
	ch, err := n.cfg.Store.Channel(ctx, d.IntegratorID, d.ChannelID)
	if err != nil || !ch.Enabled {
		finish(keepwatch.Outcome{State: keepwatch.NotificationCancelled, LastError: "the channel was removed"})
		return
	}
	switch ch.Type {
	case keepwatch.ChannelWebhook:
		err = n.sendWebhook(ctx, ch, msg)
	case keepwatch.ChannelEmail:
		err = n.sendEmail(ctx, ch, msg)
	case keepwatch.ChannelSlack:
		err = n.sendSlack(ctx, ch, msg)
	case keepwatch.ChannelTeams:
		err = n.sendTeams(ctx, ch, msg)
	case keepwatch.ChannelPagerDuty:
		err = n.sendPagerDuty(ctx, ch, msg)
	case keepwatch.ChannelOpsgenie:
		err = n.sendOpsgenie(ctx, ch, msg)
	case keepwatch.ChannelPushover:
		err = n.sendPushover(ctx, ch, msg)
	case keepwatch.ChannelHaloPSA:
		err = n.sendHaloPSA(ctx, ch, msg, d)
	default:
		err = fmt.Errorf("unknown channel type %q", ch.Type)
	}
	if err == nil {
		n.log.Info("notification sent", "notification", d.ID, "type", d.Type, "channel", ch.Type, "incident", d.IncidentID)
		finish(keepwatch.Outcome{State: keepwatch.NotificationSent, Attempted: true})
		return
	}
	attempt := d.Attempts + 1
	if attempt >= n.cfg.MaxAttempts {
		n.log.Warn("notification given up", "notification", d.ID, "attempts", attempt, "err", err)
		finish(keepwatch.Outcome{State: keepwatch.NotificationFailed, Attempted: true, LastError: outbound.Class(err)})
		return
	}
	backoff := keepwatch.Backoff(n.cfg.RetryBase, attempt, rand.Float64())
	n.log.Warn("notification failed, will retry", "notification", d.ID, "attempt", attempt, "in", backoff, "err", err)
	finish(keepwatch.Outcome{State: keepwatch.NotificationPending, Attempted: true, LastError: outbound.Class(err), RetryAt: retryAt(err, n.cfg.Now().Add(backoff))})
}

// record writes a delivery's outcome, retrying for a while if the
// database is away (a restart): an outcome not recorded means the
// notification is delivered again, with the same id, once the claim ends.
func (n *Notifier) record(d keepwatch.Notification, o keepwatch.Outcome) {
	wait := 250 * time.Millisecond
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ok, err := n.cfg.Store.RecordDelivery(ctx, d, o)
		cancel()
		switch {
		case err == nil && !ok:
			n.log.Warn("delivery outcome not recorded: the claim ran out", "notification", d.ID, "state", o.State)
			return
		case err == nil:
			return
		case try >= 8 || errors.Is(err, context.Canceled):
			n.log.Error("record delivery", "notification", d.ID, "state", o.State, "err", err)
			return
		}
		time.Sleep(wait)
		wait = min(2*wait, 4*time.Second)
	}
}

// Store is what the notifier reads and writes.
type Store interface {
	keepwatch.ChannelStore
	IncidentForNotify(ctx context.Context, id int64) (keepwatch.IncidentContext, error)
	ProcessTransitions(ctx context.Context, limit int, evaluate func(keepwatch.Transition) (keepwatch.Evaluation, error)) (int, error)
	NotificationsFor(ctx context.Context, incidentID int64) ([]keepwatch.Notification, error)
	DueChannels(ctx context.Context, now time.Time) ([]int64, error)
	ClaimDue(ctx context.Context, channelID int64, now time.Time, lease time.Duration, limit int) ([]keepwatch.Notification, error)
	ReleaseClaim(ctx context.Context, n keepwatch.Notification) error
	RecordDelivery(ctx context.Context, n keepwatch.Notification, o keepwatch.Outcome) (bool, error)
	FireReminders(ctx context.Context, now time.Time, limit int) (int, error)
	NextDue(ctx context.Context) (time.Time, error)
	ResolveQuietEvents(ctx context.Context, quiet time.Duration, now time.Time) (int, error)
	IntegratorIDs(ctx context.Context) ([]int64, error)
	OpenIncidents(ctx context.Context, integratorID int64) ([]keepwatch.Incident, error)
	CarePlusEnding(ctx context.Context, integratorID int64, from, to keepwatch.Date) ([]keepwatch.Installation, error)
	InstallationByID(ctx context.Context, integratorID, id int64) (keepwatch.Installation, error)
}
