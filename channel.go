package keepwatch

import (
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"time"
)

// ChannelType names how a channel delivers.
type ChannelType string

// Channel types of the contract.
const (
	ChannelEmail   ChannelType = "email"
	ChannelWebhook ChannelType = "webhook"
)

// Channel is where an integrator's notifications go.
type Channel struct {
	ID        int64       `json:"id"`
	Name      string      `json:"name"`
	Type      ChannelType `json:"type"`
	Target    string      `json:"target"` // e-mail address or webhook URL
	Secret    string      `json:"-"`      // webhook signing secret, shown once at creation
	Digest    bool        `json:"digest"` // e-mail: also send a daily digest of open incidents
	Enabled   bool        `json:"enabled"`
	CreatedAt time.Time   `json:"created_at"`
}

// MaxNameLen bounds the names people give to channels, rules and tokens.
const MaxNameLen = 100

// NewChannel validates what a person asked for and returns the channel to
// store (without its secret: the caller draws one for webhooks).
func NewChannel(name string, typ ChannelType, target string, digest bool) (Channel, error) {
	c := Channel{Name: strings.TrimSpace(name), Type: typ, Target: strings.TrimSpace(target), Enabled: true}
	c.Digest = digest && typ == ChannelEmail
	return c, c.Validate()
}

// Validate checks a channel's name, type and target.
func (c Channel) Validate() error {
	if c.Name == "" || !ValidText(c.Name, MaxNameLen) {
		return Errorf(EINVALID, "name must be 1 to %d printable characters", MaxNameLen)
	}
	switch c.Type {
	case ChannelEmail:
		a, err := mail.ParseAddress(c.Target)
		if err != nil || a.Address != c.Target || len(c.Target) > 254 {
			return Errorf(EINVALID, "target must be an e-mail address")
		}
	case ChannelWebhook:
		u, err := url.Parse(c.Target)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(c.Target) > 2048 {
			return Errorf(EINVALID, "target must be an http(s) URL")
		}
	default:
		return Errorf(EINVALID, "type must be email or webhook")
	}
	return nil
}

// Rule decides which incidents notify which channel.
type Rule struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	ChannelID   int64     `json:"channel_id"`
	Kinds       []string  `json:"kinds"` // empty: every kind
	MinSeverity Severity  `json:"min_severity"`
	SLCs        []string  `json:"slcs"` // empty: every installation
	MinDuration Duration  `json:"min_duration"`
	Repeat      Duration  `json:"repeat"`
	UnackedOnly bool      `json:"unacked_only"` // escalation: only if still unacknowledged at notify time
	Enabled     bool      `json:"enabled"`
	CreatedAt   time.Time `json:"created_at"`
}

// Limits on one rule.
const (
	MaxRuleKinds = 50
	MaxRuleSLCs  = 1000
	maxRuleDelay = 7 * 24 * time.Hour
	minRepeat    = time.Minute
)

// Validate checks a rule as a person wrote it and puts its SLCs in their
// canonical form. The API and the dashboard both call it.
func (r *Rule) Validate() error {
	r.Name = strings.TrimSpace(r.Name)
	if r.Name == "" || !ValidText(r.Name, MaxNameLen) {
		return Errorf(EINVALID, "name the rule (1 to %d printable characters)", MaxNameLen)
	}
	switch r.MinSeverity {
	case "":
		r.MinSeverity = SeverityWarning
	case SeverityWarning, SeverityError:
	default:
		return Errorf(EINVALID, "min_severity must be warning or error")
	}
	if len(r.Kinds) > MaxRuleKinds || len(r.SLCs) > MaxRuleSLCs {
		return Errorf(EINVALID, "at most %d kinds and %d SLCs per rule", MaxRuleKinds, MaxRuleSLCs)
	}
	if r.Kinds == nil {
		r.Kinds = []string{}
	}
	for _, k := range r.Kinds {
		if !ValidKind(k) {
			return Errorf(EINVALID, "%q is not a condition kind", k)
		}
	}
	slcs := make([]string, 0, len(r.SLCs))
	for _, s := range r.SLCs {
		slc, err := NormalizeSLC(s)
		if err != nil {
			return err
		}
		slcs = append(slcs, slc)
	}
	r.SLCs = slcs
	d, rep := time.Duration(r.MinDuration), time.Duration(r.Repeat)
	if d < 0 || d > maxRuleDelay || rep < 0 || rep > maxRuleDelay || (rep > 0 && rep < minRepeat) {
		return Errorf(EINVALID, "the minimum duration is 0 to a week; reminders are off (0) or every 60 seconds to a week")
	}
	return nil
}

// Matches reports whether the rule applies to an incident of kind and
// severity on the installation slc.
func (r Rule) Matches(kind string, sev Severity, slc string) bool {
	if !r.Enabled {
		return false
	}
	if r.MinSeverity == SeverityError && sev != SeverityError {
		return false
	}
	if len(r.Kinds) > 0 && !slices.Contains(r.Kinds, kind) {
		return false
	}
	return len(r.SLCs) == 0 || slices.Contains(r.SLCs, slc)
}

// MatchesIncident reports whether the rule covers an incident. Rules about
// unavailability cover site outages, which speak for unavailable servers.
func (r Rule) MatchesIncident(kind string, sev Severity, slc string) bool {
	if r.Matches(kind, sev, slc) {
		return true
	}
	return kind == KindSiteUnreachable && r.Matches(KindServerUnavailable, sev, slc)
}

// ChannelsFor returns the distinct channels of the rules that match.
func ChannelsFor(rules []Rule, kind string, sev Severity, slc string) []int64 {
	var out []int64
	for _, r := range rules {
		if r.Matches(kind, sev, slc) && !slices.Contains(out, r.ChannelID) {
			out = append(out, r.ChannelID)
		}
	}
	return out
}
