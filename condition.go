package keepwatch

import (
	"sort"
	"time"
	"unicode/utf8"
)

// Severity of a condition.
type Severity string

const (
	SeverityWarning Severity = "warning"
	SeverityError   Severity = "error"
)

// Condition kinds of the contract. The list is open: any other kind from a
// newer agent is kept with severity error.
const (
	KindCameraUnreachable      = "camera_unreachable"
	KindStorageFull            = "storage_full"
	KindStorageLow             = "storage_low"
	KindMediaDBWriteFailed     = "media_db_write_failed"
	KindLicenseExceeded        = "license_exceeded"
	KindServerUnavailable      = "server_unavailable"
	KindArchiveDeleteFailed    = "archive_delete_failed"
	KindFileDeleteFailed       = "file_delete_failed"
	KindArchiveFatalError      = "archive_fatal_error"
	KindArchiveOperationFailed = "archive_operation_failed"
	KindArchiveMoveFailed      = "archive_move_failed"
	// KindSiteUnreachable is the incident that speaks for every server of
	// an installation going silent together (the Internet link, most
	// likely).
	KindSiteUnreachable = "site_unreachable"
	// KindStorageForecast and KindRetentionShort are keepwatch's verdicts
	// on a drive's samples (drive.go); their subject is the drive's path.
	KindStorageForecast = "storage_forecast"
	KindRetentionShort  = "retention_short"
	// KindFlood says a server exceeded its caps on open incidents or
	// events: the excess is summarised, not notified one by one.
	KindFlood = "flood"
	// KindStatusReportLost and KindHeartbeatDelayed are events keepwatch
	// records when the path to a server loses its reports: a status
	// report that never arrived (a gap in status_seq), a heartbeat held
	// back on the way (its transmitted_at far behind).
	KindStatusReportLost = "status_report_lost"
	KindHeartbeatDelayed = "heartbeat_delayed"
)

// setByKeepwatch are the kinds keepwatch itself decides; an agent never
// reports them.
var setByKeepwatch = map[string]bool{
	KindServerUnavailable: true, KindSiteUnreachable: true, KindFlood: true,
	KindStorageForecast: true, KindRetentionShort: true,
	KindStatusReportLost: true, KindHeartbeatDelayed: true,
}

// SetByKeepwatch reports whether keepwatch, not an agent, decides a kind.
func SetByKeepwatch(kind string) bool { return setByKeepwatch[kind] }

var knownSeverity = map[string]Severity{
	KindCameraUnreachable:      SeverityError,
	KindStorageFull:            SeverityError,
	KindStorageLow:             SeverityWarning,
	KindMediaDBWriteFailed:     SeverityError,
	KindLicenseExceeded:        SeverityError,
	KindServerUnavailable:      SeverityError,
	KindArchiveDeleteFailed:    SeverityError,
	KindFileDeleteFailed:       SeverityError,
	KindArchiveFatalError:      SeverityError,
	KindArchiveOperationFailed: SeverityError,
	KindArchiveMoveFailed:      SeverityError,
	KindSiteUnreachable:        SeverityError,
	KindStorageForecast:        SeverityWarning,
	// An error when under half the required days: RetentionSeverity
	// decides for each instance.
	KindRetentionShort:   SeverityWarning,
	KindFlood:            SeverityWarning,
	KindStatusReportLost: SeverityWarning,
	KindHeartbeatDelayed: SeverityWarning,
}

// SeverityOf returns the severity of a kind; unknown kinds are errors.
func SeverityOf(kind string) Severity {
	if s, ok := knownSeverity[kind]; ok {
		return s
	}
	return SeverityError
}

// Limits on what one report may carry. They keep a single sender from
// exhausting memory or storage; exceeding them is invalid_request.
const (
	MaxKindLen       = 64
	MaxSubjectLen    = 256
	MaxMessageLen    = 1024
	MaxConditions    = 1000
	MaxEvents        = 1000
	MaxServerNameLen = 128
)

// Condition is an active state condition on a recording server. In the
// views of servers and installations an event whose incident is still
// unresolved is listed too, with Event set: it stays a problem of its
// server until a person resolves it or it has been quiet for the quiet
// period, whatever the server's status reports say.
type Condition struct {
	Kind     string    `json:"kind"`
	Subject  string    `json:"subject"`
	Severity Severity  `json:"severity"`
	Since    time.Time `json:"since"`
	Message  string    `json:"message,omitempty"`
	Server   string    `json:"server,omitempty"` // server name, filled for views
	Event    bool      `json:"event,omitempty"`
}

// Key identifies a condition on one server.
func (c Condition) Key() string { return c.Kind + "\x00" + c.Subject }

// Event is something that happened once on a recording server, at its own
// time (which may be long before keepwatch received it).
type Event struct {
	Kind     string    `json:"kind"`
	Subject  string    `json:"subject"`
	Severity Severity  `json:"severity"`
	At       time.Time `json:"at"`
	Message  string    `json:"message,omitempty"`
}

// ValidKind reports whether s is a well-formed condition kind: lower-case
// ASCII letters, digits and underscores, starting with a letter.
func ValidKind(s string) bool {
	if s == "" || len(s) > MaxKindLen || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// ValidText reports whether s is valid UTF-8 without control characters and
// at most max bytes long.
func ValidText(s string, max int) bool {
	if len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// Diff compares the active conditions of a server with the full set a
// status report carries. It returns the conditions newly raised and those
// cleared; conditions present in both keep their original Since.
func Diff(active, reported []Condition) (raised, cleared []Condition) {
	old := make(map[string]Condition, len(active))
	for _, c := range active {
		old[c.Key()] = c
	}
	seen := make(map[string]bool, len(reported))
	for _, c := range reported {
		k := c.Key()
		if seen[k] {
			continue
		}
		seen[k] = true
		if _, ok := old[k]; !ok {
			raised = append(raised, c)
		}
	}
	for _, c := range active {
		if !seen[c.Key()] {
			cleared = append(cleared, c)
		}
	}
	sortConditions(raised)
	sortConditions(cleared)
	return raised, cleared
}

func sortConditions(cs []Condition) {
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].Kind != cs[j].Kind {
			return cs[i].Kind < cs[j].Kind
		}
		return cs[i].Subject < cs[j].Subject
	})
}
