package keepwatch

import (
	"fmt"
	"time"
)

// NotificationType says what a notification tells.
type NotificationType string

// Notification types.
const (
	NotifyOpened   NotificationType = "opened"
	NotifyResolved NotificationType = "resolved"
	// NotifyAcknowledged goes only to channels that track incidents
	// (ChannelType.Tracks): PagerDuty, PSA tickets.
	NotifyAcknowledged NotificationType = "acknowledged"
	NotifyReminder     NotificationType = "reminder"
	NotifyCarePlus     NotificationType = "care_plus_ending"
	NotifyDigest       NotificationType = "digest"
	NotifyTest         NotificationType = "test"
)

// KindCarePlusEnding is the pseudo condition kind rules use to select Care
// Plus reminders (rules without kinds include it).
const KindCarePlusEnding = "care_plus_ending"

// NotificationState is where a notification is in the outbox.
type NotificationState string

// Notification states. Pending ones wait for their time (or a retry);
// the others are final.
const (
	NotificationPending    NotificationState = "pending"
	NotificationSent       NotificationState = "sent"
	NotificationSuppressed NotificationState = "suppressed"
	NotificationFailed     NotificationState = "failed"
	NotificationCancelled  NotificationState = "cancelled"
)

// Final reports whether nothing more will happen to a notification.
func (s NotificationState) Final() bool { return s != NotificationPending }

// Notification is one message in the outbox: for one channel, about one
// incident (or installation, or digest), delivered at least once with a
// stable id.
type Notification struct {
	ID             int64             `json:"id"`
	IntegratorID   int64             `json:"-"`
	ChannelID      int64             `json:"channel_id"`
	RuleID         int64             `json:"rule_id,omitempty"`
	IncidentID     int64             `json:"incident_id,omitempty"`
	InstallationID int64             `json:"-"`
	Type           NotificationType  `json:"type"`
	DedupKey       string            `json:"-"`
	State          NotificationState `json:"state"`
	NotBefore      time.Time         `json:"not_before"`
	Attempts       int               `json:"attempts"`
	// LastError is a generic class of the last failure ("timeout", "HTTP
	// 500") or why the notification was suppressed.
	LastError string    `json:"last_error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	SentAt    time.Time `json:"sent_at,omitzero"`
	// LeaseUntil is the claim a node holds on it while delivering: the
	// outcome is recorded only by the holder of this very lease.
	LeaseUntil time.Time `json:"-"`
}

// Hold is why a due opening or reminder must not go out now: Suppress
// ends it for good; Until defers it to that time (a maintenance window's
// end), when it is checked again.
type Hold struct {
	Suppress string
	Until    time.Time
	Why      string
}

// HoldOpening decides, just before delivery, whether an opening or a
// reminder still has something to say. rule is the rule that asked for it
// (nil if gone); maintenanceEnd is the end of the maintenance window the
// installation is in at now (zero if none).
func HoldOpening(n Notification, in Incident, rule *Rule, maintenanceEnd, now time.Time) Hold {
	switch {
	case in.State == IncidentResolved:
		return Hold{Suppress: "resolved before it was notified"}
	case in.ParentID != nil:
		return Hold{Suppress: fmt.Sprintf("part of a site outage (incident %d)", *in.ParentID)}
	case in.State == IncidentAcknowledged && n.Type == NotifyReminder:
		return Hold{Suppress: "acknowledged"}
	case in.State == IncidentAcknowledged && rule != nil && rule.UnackedOnly:
		return Hold{Suppress: "acknowledged before escalation"}
	case n.Type == NotifyReminder && rule == nil:
		return Hold{Suppress: "the rule was removed"}
	case !maintenanceEnd.IsZero() && maintenanceEnd.After(now):
		return Hold{Until: maintenanceEnd, Why: "maintenance window until " + FormatTime(maintenanceEnd)}
	}
	return Hold{}
}

// ReminderAt is when the k-th reminder (k ≥ 1) of an opening sent at sent
// is due under a rule repeating every repeat.
func ReminderAt(sent time.Time, repeat time.Duration, k int) time.Time {
	return sent.Add(time.Duration(k) * repeat)
}

// Backoff is how long a failed delivery waits before attempt+1 (attempt
// counts from 1): base doubled per attempt, at most an hour. jitter is a
// fraction in [0, 1) that spreads retries (up to +20 %).
func Backoff(base time.Duration, attempt int, jitter float64) time.Duration {
	d := base << (attempt - 1)
	if d > time.Hour || d <= 0 {
		d = time.Hour
	}
	return d + time.Duration(float64(d)/5*jitter)
}

// Cancellation cancels an incident's pending notifications of one type,
// saying why (an opening that resolved before its minimum duration).
type Cancellation struct {
	IncidentID int64
	Type       NotificationType
	Why        string
}

// Evaluation is what one incident transition asks of the outbox:
// cancellations first, then notifications to add (each unless one with
// its dedup key exists).
type Evaluation struct {
	Cancel  []Cancellation
	Enqueue []Notification
}

// Outcome is what became of one claimed notification.
type Outcome struct {
	State     NotificationState
	Attempted bool      // a send was tried (counts in attempts)
	LastError string    // generic failure class, or why it was suppressed
	At        time.Time // when it was decided (the sent time of a sent one)
	RetryAt   time.Time // pending: when it is due again
	Held      bool      // pending: deferred to the end of a maintenance window
}
