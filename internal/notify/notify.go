// Package notify turns incident transitions into notifications and
// delivers them by e-mail and webhook from a durable outbox.
//
// The pipeline: every incident transition is a row (keepwatch.Transition).
// The notifier reads them in order and, for each matching rule, enqueues
// a notification whose dedup key makes the step idempotent (a crash or a
// second node evaluating the same transition adds nothing). A notification
// waits until its rule's minimum duration has passed — and for a server
// outage at least one heartbeat interval, so that a site outage is
// reported once — and is re-checked just before delivery: an incident that
// resolved meanwhile, that a site incident speaks for, or whose
// installation is in maintenance is not notified. Deliveries are leased,
// retried with exponential backoff and jitter, and given up after a limit;
// every attempt's outcome is visible to the integrator.
package notify

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"keepwatch"
	"keepwatch/internal/outbound"
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
	// Every paces the loop (default 1 s).
	Every time.Duration
	// QuietPeriod resolves event incidents that did not recur (default 24 h).
	QuietPeriod time.Duration
	// MaxAttempts before a delivery is given up (default 8); backoff starts
	// at RetryBase (default 10 s) and doubles, with jitter, up to 1 h.
	MaxAttempts int
	RetryBase   time.Duration
	// DigestHour is the UTC hour daily digests go out (default 7).
	DigestHour int
	// InMaintenance, when set, tells whether an installation is in a
	// maintenance window at a time: its notifications are suppressed.
	InMaintenance func(ctx context.Context, installationID int64, at time.Time) (bool, error)
}

// Notifier runs the pipeline.
type Notifier struct {
	cfg  Config
	log  *slog.Logger
	stop chan struct{}
	done sync.WaitGroup

	mu          sync.Mutex
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
		cfg.Every = time.Second
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
	return &Notifier{cfg: cfg, log: cfg.Logger, stop: make(chan struct{})}
}

// SetPublicURL sets the base URL of links (before Start).
func (n *Notifier) SetPublicURL(u string) { n.cfg.PublicURL = u }

// Start runs the loop until Stop.
func (n *Notifier) Start() {
	n.done.Add(1)
	go func() {
		defer n.done.Done()
		t := time.NewTicker(n.cfg.Every)
		defer t.Stop()
		for {
			select {
			case <-n.stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				if err := n.RunOnce(ctx); err != nil {
					n.log.Error("notifier", "err", err)
				}
				cancel()
			}
		}
	}()
}

// Stop ends the loop; a delivery in progress finishes first.
func (n *Notifier) Stop() {
	select {
	case <-n.stop:
	default:
		close(n.stop)
	}
	n.done.Wait()
}

// RunOnce evaluates new transitions, runs the periodic jobs that are due,
// and delivers what is due.
func (n *Notifier) RunOnce(ctx context.Context) error {
	if err := n.Evaluate(ctx); err != nil {
		return fmt.Errorf("evaluate: %w", err)
	}
	n.periodic(ctx)
	return n.Deliver(ctx)
}

const cursorKey = "notify_cursor"

// Evaluate turns incident transitions after the cursor into notifications.
func (n *Notifier) Evaluate(ctx context.Context) error {
	cursor, err := n.cfg.Store.Cursor(ctx, cursorKey)
	if err != nil {
		return err
	}
	rules := map[int64][]keepwatch.Rule{}
	for {
		trs, err := n.cfg.Store.TransitionsAfter(ctx, cursor, 500)
		if err != nil {
			return err
		}
		if len(trs) == 0 {
			return nil
		}
		for _, tr := range trs {
			if err := n.evaluate(ctx, tr, rules); err != nil {
				return err
			}
			cursor = tr.ID
		}
		if err := n.cfg.Store.SetCursor(ctx, cursorKey, cursor); err != nil {
			return err
		}
	}
}

func (n *Notifier) evaluate(ctx context.Context, tr keepwatch.Transition, cache map[int64][]keepwatch.Rule) error {
	switch tr.Type {
	case keepwatch.TransitionOpened, keepwatch.TransitionReopened, keepwatch.TransitionResolved:
	case keepwatch.TransitionAcknowledged:
		return n.acknowledged(ctx, tr)
	default:
		return nil // recurrences and annotations ride on other messages
	}
	ic, err := n.cfg.Store.IncidentForNotify(ctx, tr.IncidentID)
	if err != nil || ic.IntegratorID == 0 {
		return err
	}
	rules, ok := cache[ic.IntegratorID]
	if !ok {
		if rules, err = n.cfg.Store.Rules(ctx, ic.IntegratorID); err != nil {
			return err
		}
		cache[ic.IntegratorID] = rules
	}
	kind := ic.Kind
	if kind == keepwatch.KindSiteUnreachable {
		kind = keepwatch.KindServerUnavailable // rules about unavailability cover site outages
	}
	if tr.Type == keepwatch.TransitionResolved {
		return n.resolved(ctx, tr, ic, rules, kind)
	}
	for _, r := range rules {
		if !r.Matches(kind, ic.Severity, ic.SLC) && !(ic.Kind == keepwatch.KindSiteUnreachable && r.Matches(ic.Kind, ic.Severity, ic.SLC)) {
			continue
		}
		wait := time.Duration(r.MinDuration)
		if ic.Kind == keepwatch.KindServerUnavailable && wait < n.cfg.Interval {
			wait = n.cfg.Interval
		}
		if _, err := n.cfg.Store.Enqueue(ctx, keepwatch.Notification{
			IntegratorID: ic.IntegratorID, ChannelID: r.ChannelID, RuleID: r.ID, IncidentID: ic.ID, InstallationID: ic.InstallationID,
			Type: TypeOpened, DedupKey: fmt.Sprintf("t%d:r%d", tr.ID, r.ID), NotBefore: tr.At.Add(wait),
		}); err != nil {
			return err
		}
	}
	return nil
}

// resolved notifies a resolution only on channels that were told of the
// opening; an opening still waiting for its minimum duration is dropped
// instead (the flap never reaches anyone).
func (n *Notifier) resolved(ctx context.Context, tr keepwatch.Transition, ic keepwatch.IncidentContext, rules []keepwatch.Rule, kind string) error {
	if _, err := n.cfg.Store.CancelPending(ctx, ic.ID, TypeOpened); err != nil {
		return err
	}
	sent, err := n.cfg.Store.NotificationsFor(ctx, ic.ID)
	if err != nil {
		return err
	}
	told := map[int64]bool{} // channel → the latest opening was delivered
	for _, s := range sent {
		if s.Type == TypeOpened {
			told[s.ChannelID] = s.State == "sent"
		}
	}
	for ch, ok := range told {
		if !ok {
			continue
		}
		if _, err := n.cfg.Store.Enqueue(ctx, keepwatch.Notification{
			IntegratorID: ic.IntegratorID, ChannelID: ch, IncidentID: ic.ID, InstallationID: ic.InstallationID,
			Type: TypeResolved, DedupKey: fmt.Sprintf("t%d:c%d", tr.ID, ch), NotBefore: tr.At,
		}); err != nil {
			return err
		}
	}
	return nil
}

// periodic runs the jobs that are not driven by transitions: quiet-period
// resolution of events, reminders, Care Plus warnings and digests.
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
		if err := n.reminders(ctx, id, now); err != nil {
			n.log.Error("reminders", "integrator", id, "err", err)
		}
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

// reminders repeats an opening every rule.Repeat while the incident is
// open and unacknowledged.
func (n *Notifier) reminders(ctx context.Context, integratorID int64, now time.Time) error {
	rules, err := n.cfg.Store.Rules(ctx, integratorID)
	if err != nil {
		return err
	}
	repeating := map[int64]keepwatch.Rule{}
	for _, r := range rules {
		if r.Enabled && r.Repeat > 0 {
			repeating[r.ID] = r
		}
	}
	if len(repeating) == 0 {
		return nil
	}
	open, err := n.cfg.Store.OpenIncidents(ctx, integratorID)
	if err != nil {
		return err
	}
	for _, inc := range open {
		if inc.State != keepwatch.IncidentOpen {
			continue
		}
		ns, err := n.cfg.Store.NotificationsFor(ctx, inc.ID)
		if err != nil {
			return err
		}
		for _, s := range ns {
			r, ok := repeating[s.RuleID]
			if !ok || s.Type != TypeOpened || s.State != "sent" {
				continue
			}
			k := int(now.Sub(s.SentAt) / time.Duration(r.Repeat))
			if k < 1 {
				continue
			}
			if _, err := n.cfg.Store.Enqueue(ctx, keepwatch.Notification{
				IntegratorID: integratorID, ChannelID: r.ChannelID, RuleID: r.ID, IncidentID: inc.ID, InstallationID: s.InstallationID,
				Type: TypeReminder, DedupKey: fmt.Sprintf("rem:n%d:%d", s.ID, k), NotBefore: now,
			}); err != nil {
				return err
			}
		}
	}
	return nil
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

// Deliver sends every due notification.
func (n *Notifier) Deliver(ctx context.Context) error {
	for {
		now := n.cfg.Now()
		due, err := n.cfg.Store.ClaimDue(ctx, now, 2*time.Minute, 20)
		if err != nil || len(due) == 0 {
			return err
		}
		for _, d := range due {
			n.deliverOne(ctx, d, now)
		}
	}
}

func (n *Notifier) deliverOne(ctx context.Context, d keepwatch.Notification, now time.Time) {
	finish := func(state string, attempted bool, msg string, retry time.Time) {
		if err := n.cfg.Store.FinishNotification(ctx, d.ID, state, attempted, msg, retry); err != nil {
			n.log.Error("record delivery", "notification", d.ID, "err", err)
		}
	}
	msg, why, err := n.compose(ctx, d, now)
	if err != nil {
		finish("pending", false, outbound.Class(err), now.Add(n.cfg.RetryBase))
		return
	}
	if why != "" {
		finish("suppressed", false, why, now)
		return
	}
	ch, err := n.cfg.Store.Channel(ctx, d.IntegratorID, d.ChannelID)
	if err != nil || !ch.Enabled {
		finish("cancelled", false, "the channel was removed", now)
		return
	}
	switch ch.Type {
	case keepwatch.ChannelWebhook:
		err = n.sendWebhook(ctx, ch, msg)
	case keepwatch.ChannelEmail:
		err = n.sendEmail(ch, msg)
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
		finish("sent", true, "", now)
		return
	}
	attempt := d.Attempts + 1
	if attempt >= n.cfg.MaxAttempts {
		n.log.Warn("notification given up", "notification", d.ID, "attempts", attempt, "err", err)
		finish("failed", true, outbound.Class(err), now)
		return
	}
	backoff := n.cfg.RetryBase << (attempt - 1)
	if backoff > time.Hour || backoff <= 0 {
		backoff = time.Hour
	}
	backoff += time.Duration(rand.Int64N(int64(backoff)/5 + 1)) // up to +20 % jitter
	n.log.Warn("notification failed, will retry", "notification", d.ID, "attempt", attempt, "in", backoff, "err", err)
	finish("pending", true, outbound.Class(err), retryAt(err, now.Add(backoff)))
}

// Store is what the notifier reads and writes.
type Store interface {
	keepwatch.ChannelStore
	IncidentForNotify(ctx context.Context, id int64) (keepwatch.IncidentContext, error)
	TransitionsAfter(ctx context.Context, after int64, limit int) ([]keepwatch.Transition, error)
	Cursor(ctx context.Context, name string) (int64, error)
	SetCursor(ctx context.Context, name string, v int64) error
	NotificationsFor(ctx context.Context, incidentID int64) ([]keepwatch.Notification, error)
	CancelPending(ctx context.Context, incidentID int64, typ keepwatch.NotificationType) (int, error)
	ClaimDue(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]keepwatch.Notification, error)
	FinishNotification(ctx context.Context, id int64, state string, attempted bool, lastError string, retryAt time.Time) error
	ResolveQuietEvents(ctx context.Context, quiet time.Duration, now time.Time) (int, error)
	IntegratorIDs(ctx context.Context) ([]int64, error)
	OpenIncidents(ctx context.Context, integratorID int64) ([]keepwatch.Incident, error)
	CarePlusEnding(ctx context.Context, integratorID int64, from, to keepwatch.Date) ([]keepwatch.Installation, error)
	InstallationByID(ctx context.Context, integratorID, id int64) (keepwatch.Installation, error)
}
