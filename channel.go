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

// Channel types of the contract. ConnectWise and Autotask are reserved
// names: channels of those types are refused until they exist.
const (
	ChannelEmail       ChannelType = "email"
	ChannelWebhook     ChannelType = "webhook"
	ChannelSlack       ChannelType = "slack"
	ChannelTeams       ChannelType = "teams"
	ChannelPagerDuty   ChannelType = "pagerduty"
	ChannelOpsgenie    ChannelType = "opsgenie"
	ChannelPushover    ChannelType = "pushover"
	ChannelConnectWise ChannelType = "connectwise"
	ChannelAutotask    ChannelType = "autotask"
	ChannelHaloPSA     ChannelType = "halopsa"
)

// Tracks reports whether a channel of this type follows an incident
// through its life (acknowledged, resolved) in a system of its own: a
// paging service or a ticket system. Such channels hear of
// acknowledgements and only of incidents.
func (t ChannelType) Tracks() bool {
	return t == ChannelPagerDuty || t == ChannelOpsgenie || t == ChannelHaloPSA
}

// Webhook signature formats.
const (
	SignatureKeepwatch = "keepwatch" // X-Keepwatch-Signature (the default)
	SignatureStandard  = "standard"  // Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature
)

// Channel is where an integrator's notifications go.
type Channel struct {
	ID   int64       `json:"id"`
	Name string      `json:"name"`
	Type ChannelType `json:"type"`
	// Target is what names the recipient without being a key: an e-mail
	// address, a webhook URL, a Pushover user key, a HaloPSA client id.
	Target string `json:"target"`
	// Secret is the webhook signing secret (shown once at creation) or the
	// vendor key: a Slack or Teams webhook URL, a PagerDuty routing key, a
	// Pushover application token, an Opsgenie API key, a HaloPSA client
	// secret. Sealed at rest,
	// never shown again.
	Secret string `json:"-"`
	// SecretHint ends a vendor key ("…a1b2"), for owners to tell keys
	// apart (KeyHint).
	SecretHint string `json:"secret_hint,omitempty"`
	// Endpoint replaces a vendor's service URL (an on-premise install, a
	// relay); HaloPSA needs it: the instance's URL.
	Endpoint string `json:"endpoint,omitempty"`
	// Signature is a webhook's signature format: keepwatch or standard.
	Signature string    `json:"signature,omitempty"`
	Digest    bool      `json:"digest"` // e-mail: also send a daily digest of open incidents
	Enabled   bool      `json:"enabled"`
	CreatedAt time.Time `json:"created_at"`
}

// MaxNameLen bounds the names people give to channels, rules and tokens.
const MaxNameLen = 100

// ChannelSpec is a channel as a person asks for it, in the field names of
// the API and of the dashboard form; Channel turns it into what is stored.
type ChannelSpec struct {
	Name         string `json:"name"`
	Type         string `json:"type"`
	Target       string `json:"target"`        // email: the address; webhook: the URL
	Digest       bool   `json:"digest"`        // email
	Signature    string `json:"signature"`     // webhook: keepwatch (default) or standard
	Endpoint     string `json:"endpoint"`      // vendor channels: instead of the vendor's service URL
	URL          string `json:"url"`           // slack, teams: the incoming webhook URL
	RoutingKey   string `json:"routing_key"`   // pagerduty: the integration's routing key
	APIKey       string `json:"api_key"`       // opsgenie: the API integration's key
	Token        string `json:"token"`         // pushover: the application token
	User         string `json:"user"`          // pushover: the user or group key
	ClientID     string `json:"client_id"`     // halopsa: the API application's client id
	ClientSecret string `json:"client_secret"` // halopsa: its client secret
}

// Channel validates the spec and returns the channel to store. A webhook
// has no secret yet: the caller draws one.
func (s ChannelSpec) Channel() (Channel, error) {
	c := Channel{Name: strings.TrimSpace(s.Name), Type: ChannelType(strings.TrimSpace(s.Type)), Enabled: true,
		Endpoint: strings.TrimSpace(s.Endpoint)}
	trim := strings.TrimSpace
	switch c.Type {
	case ChannelEmail:
		c.Target, c.Digest = trim(s.Target), s.Digest
	case ChannelWebhook:
		c.Target, c.Signature = trim(s.Target), trim(s.Signature)
		if c.Signature == "" {
			c.Signature = SignatureKeepwatch
		}
	case ChannelSlack, ChannelTeams:
		c.Secret = trim(s.URL)
	case ChannelPagerDuty:
		c.Secret = trim(s.RoutingKey)
	case ChannelOpsgenie:
		c.Secret = trim(s.APIKey)
	case ChannelPushover:
		c.Target, c.Secret = trim(s.User), trim(s.Token)
	case ChannelHaloPSA:
		c.Target, c.Secret = trim(s.ClientID), trim(s.ClientSecret)
	}
	return c, c.Validate()
}

// NewChannel validates an e-mail or webhook channel (see ChannelSpec for
// every type).
func NewChannel(name string, typ ChannelType, target string, digest bool) (Channel, error) {
	return ChannelSpec{Name: name, Type: string(typ), Target: target, Digest: digest}.Channel()
}

// Limits on channel fields.
const (
	maxURLLen = 2048
	maxKeyLen = 200
)

func validURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil && len(s) <= maxURLLen
}

// validKey accepts the keys vendors hand out: printable ASCII without
// spaces.
func validKey(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// Validate checks a channel's name, type and per-type fields.
func (c Channel) Validate() error {
	if c.Name == "" || !ValidText(c.Name, MaxNameLen) {
		return Errorf(EINVALID, "name must be 1 to %d printable characters", MaxNameLen)
	}
	if c.Endpoint != "" && !validURL(c.Endpoint) {
		return Errorf(EINVALID, "endpoint must be an http(s) URL")
	}
	if c.Endpoint != "" && (c.Type == ChannelEmail || c.Type == ChannelWebhook) {
		return Errorf(EINVALID, "endpoint is for vendor channels; an %s channel has a target", c.Type)
	}
	switch c.Type {
	case ChannelEmail:
		a, err := mail.ParseAddress(c.Target)
		if err != nil || a.Address != c.Target || len(c.Target) > 254 {
			return Errorf(EINVALID, "target must be an e-mail address")
		}
	case ChannelWebhook:
		if !validURL(c.Target) {
			return Errorf(EINVALID, "target must be an http(s) URL")
		}
		if c.Signature != SignatureKeepwatch && c.Signature != SignatureStandard {
			return Errorf(EINVALID, "signature must be keepwatch or standard")
		}
	case ChannelSlack, ChannelTeams:
		if !validURL(c.Secret) {
			return Errorf(EINVALID, "url must be the %s incoming webhook URL (http or https)", c.Type)
		}
	case ChannelPagerDuty:
		if !validKey(c.Secret, 32, 32) {
			return Errorf(EINVALID, "routing_key must be the 32-character integration key of a PagerDuty service (Events API v2)")
		}
	case ChannelPushover:
		if !validKey(c.Secret, 30, 30) || !validKey(c.Target, 30, 30) {
			return Errorf(EINVALID, "token (the application's API token) and user (a user or group key) are 30 characters each")
		}
	case ChannelHaloPSA:
		if c.Endpoint == "" {
			return Errorf(EINVALID, "endpoint must be the URL of the HaloPSA instance, e.g. https://example.halopsa.com")
		}
		if !validKey(c.Target, 1, maxKeyLen) || !validKey(c.Secret, 1, maxKeyLen) {
			return Errorf(EINVALID, "client_id and client_secret of a HaloPSA API application (client credentials) are required")
		}
	case ChannelOpsgenie:
		if !validKey(c.Secret, 20, maxKeyLen) {
			return Errorf(EINVALID, "api_key must be the key of an Opsgenie API integration")
		}
	case ChannelConnectWise, ChannelAutotask:
		return Errorf(EINVALID, "%s channels are not available yet; use halopsa or a webhook", c.Type)
	default:
		return Errorf(EINVALID, "type must be email, webhook, slack, teams, pagerduty, opsgenie, pushover or halopsa")
	}
	return nil
}

// KeyHint returns what a channel list shows of a vendor key: its last
// four characters (nothing for short keys, and nothing of a webhook's
// signing secret, which nobody sees again).
func (c Channel) KeyHint() string {
	if c.Type == ChannelWebhook || len(c.Secret) < 16 {
		return ""
	}
	return "…" + c.Secret[len(c.Secret)-4:]
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
