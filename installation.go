package keepwatch

import (
	"regexp"
	"sort"
	"strings"
	"time"
)

// Status of an installation as the integrator sees it.
type Status string

const (
	StatusOK               Status = "ok"
	StatusWarning          Status = "warning"
	StatusError            Status = "error"
	StatusUnavailable      Status = "unavailable"
	StatusPaused           Status = "paused"
	StatusConsentWithdrawn Status = "consent_withdrawn"
	StatusNeverReported    Status = "never_reported"
)

// Rank orders statuses by how urgently they need attention; higher first.
func (s Status) Rank() int {
	switch s {
	case StatusUnavailable:
		return 6
	case StatusError:
		return 5
	case StatusWarning:
		return 4
	case StatusConsentWithdrawn:
		return 3
	case StatusNeverReported:
		return 2
	case StatusPaused:
		return 1
	}
	return 0
}

// NeedsAttention reports whether an installation with this status is shown
// by the default, errors-only overview.
func (s Status) NeedsAttention() bool {
	return s == StatusUnavailable || s == StatusError || s == StatusWarning
}

// ServerState is the monitoring state of one recording server.
type ServerState string

const (
	ServerPending          ServerState = "pending" // enrolled, never reported
	ServerOK               ServerState = "ok"
	ServerUnavailable      ServerState = "unavailable"
	ServerConsentWithdrawn ServerState = "consent_withdrawn"
)

// Installation is one customer's surveillance system, known by its SLC.
type Installation struct {
	ID            int64
	SLC           string
	Customer      string
	Product       string
	Cameras       int
	CarePlusUntil Date
	IntegratorID  int64 // 0 while no integrator registered the SLC
}

// Server is a recording server of an installation.
type Server struct {
	ID             string      `json:"id"`
	InstallationID int64       `json:"-"`
	Name           string      `json:"name"`
	State          ServerState `json:"state"`
	StateSince     time.Time   `json:"state_since"`
	LastSeen       time.Time   `json:"last_seen"`
	Interval       Duration    `json:"heartbeat_interval"`
	AgentVersion   string      `json:"agent_version"`
	// ClockOffset is how far the server's clock is ahead of keepwatch's
	// (negative: behind); keepwatch corrects the times it reports.
	ClockOffset Duration    `json:"clock_offset_seconds"`
	EnrolledAt  time.Time   `json:"enrolled_at"`
	Conditions  []Condition `json:"conditions"`
}

// InstallationView is what the overview and the API show of an installation.
type InstallationView struct {
	SLC           string      `json:"slc"`
	Customer      string      `json:"customer"`
	Product       string      `json:"product"`
	Cameras       int         `json:"cameras"`
	CarePlusUntil Date        `json:"care_plus_until"`
	Status        Status      `json:"status"`
	Since         time.Time   `json:"since"` // when the current worst problem began
	ServersTotal  int         `json:"servers_total"`
	ServersOK     int         `json:"servers_ok"`
	LastReport    *time.Time  `json:"last_report"`
	Conditions    []Condition `json:"conditions"`
}

// Summarize computes an installation's view from its servers (with their
// active conditions). today decides whether Care Plus is still active.
func Summarize(in Installation, servers []Server, today Date) InstallationView {
	v := InstallationView{
		SLC: in.SLC, Customer: in.Customer, Product: in.Product, Cameras: in.Cameras,
		CarePlusUntil: in.CarePlusUntil, Conditions: []Condition{},
	}
	var reported, withdrawn, unavailable, errs, warns int
	var since time.Time
	worst := 0
	note := func(rank int, t time.Time) {
		if rank > worst || rank == worst && !t.IsZero() && (since.IsZero() || t.Before(since)) {
			worst, since = rank, t
		}
	}
	for _, s := range servers {
		v.ServersTotal++
		if !s.LastSeen.IsZero() {
			reported++
			if v.LastReport == nil || s.LastSeen.After(*v.LastReport) {
				t := s.LastSeen
				v.LastReport = &t
			}
		}
		switch s.State {
		case ServerUnavailable:
			unavailable++
			note(StatusUnavailable.Rank(), s.StateSince)
			v.Conditions = append(v.Conditions, Condition{
				Kind: KindServerUnavailable, Severity: SeverityError, Since: s.StateSince, Server: s.Name,
			})
		case ServerConsentWithdrawn:
			withdrawn++
			continue // its old conditions are no longer current
		}
		ok := s.State == ServerOK
		for _, c := range s.Conditions {
			c.Server = s.Name
			v.Conditions = append(v.Conditions, c)
			if c.Severity == SeverityWarning {
				warns++
				note(StatusWarning.Rank(), c.Since)
			} else {
				errs++
				ok = false
				note(StatusError.Rank(), c.Since)
			}
		}
		if ok {
			v.ServersOK++
		}
	}
	switch {
	case in.CarePlusUntil.Before(today):
		v.Status, since = StatusPaused, in.CarePlusUntil.AddDays(1).Time()
	case unavailable > 0:
		v.Status = StatusUnavailable
	case errs > 0:
		v.Status = StatusError
	case warns > 0:
		v.Status = StatusWarning
	case withdrawn > 0 && withdrawn == len(servers):
		v.Status = StatusConsentWithdrawn
	case reported == 0:
		v.Status = StatusNeverReported
	default:
		v.Status = StatusOK
	}
	if v.Status.NeedsAttention() || v.Status == StatusPaused {
		v.Since = since
	}
	sort.SliceStable(v.Conditions, func(i, j int) bool {
		a, b := v.Conditions[i], v.Conditions[j]
		if a.Severity != b.Severity {
			return a.Severity == SeverityError
		}
		return a.Since.Before(b.Since)
	})
	return v
}

// SortViews orders installations by severity, then by how long the problem
// has lasted (oldest first), then by customer name.
func SortViews(vs []InstallationView) {
	sort.SliceStable(vs, func(i, j int) bool {
		a, b := vs[i], vs[j]
		if ra, rb := a.Status.Rank(), b.Status.Rank(); ra != rb {
			return ra > rb
		}
		if !a.Since.Equal(b.Since) {
			if a.Since.IsZero() || b.Since.IsZero() {
				return !a.Since.IsZero()
			}
			return a.Since.Before(b.Since)
		}
		if a.Customer != b.Customer {
			return strings.ToLower(a.Customer) < strings.ToLower(b.Customer)
		}
		return a.SLC < b.SLC
	})
}

var slcPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{2,63}$`)

// NormalizeSLC validates a Software License Code and returns its canonical
// (upper-case) form.
func NormalizeSLC(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !slcPattern.MatchString(s) {
		return "", Errorf(EINVALID, "an SLC is 3 to 64 letters, digits and dashes")
	}
	return strings.ToUpper(s), nil
}
