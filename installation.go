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
	StatusSiteUnreachable  Status = "site_unreachable"
	StatusMaintenance      Status = "maintenance"
	StatusPaused           Status = "paused"
	StatusConsentWithdrawn Status = "consent_withdrawn"
	StatusNeverReported    Status = "never_reported"
)

// Statuses lists every display status, most urgent first.
var Statuses = []Status{
	StatusSiteUnreachable, StatusUnavailable, StatusError, StatusWarning,
	StatusConsentWithdrawn, StatusNeverReported, StatusMaintenance, StatusPaused, StatusOK,
}

// Rank orders statuses by how urgently they need attention; higher first.
// A muted installation (maintenance) or one that may not send (paused)
// sorts after every problem.
func (s Status) Rank() int {
	for i, st := range Statuses {
		if st == s {
			return len(Statuses) - i
		}
	}
	return 0
}

// NeedsAttention reports whether an installation with this status is shown
// by the default, errors-only overview.
func (s Status) NeedsAttention() bool {
	switch s {
	case StatusSiteUnreachable, StatusUnavailable, StatusError, StatusWarning:
		return true
	}
	return false
}

// CountStatuses counts views by status, with every status present.
func CountStatuses(vs []InstallationView) map[Status]int {
	out := make(map[Status]int, len(Statuses))
	for _, s := range Statuses {
		out[s] = 0
	}
	for _, v := range vs {
		out[v.Status]++
	}
	return out
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
	// EnrollmentKeyIssued is when the current enrollment key was issued;
	// it expires EnrollmentKeyLifetime (or the configured time) later.
	EnrollmentKeyIssued time.Time
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
	// Maintenance is the window the installation is in, if any.
	Maintenance *MaintenanceWindow `json:"maintenance,omitempty"`
}

// InstallationFacts is everything an installation's status is computed
// from.
type InstallationFacts struct {
	Installation Installation
	// Servers are the installation's recording servers with their active
	// conditions.
	Servers []Server
	// Maintenance holds the installation's windows that have not ended.
	Maintenance []MaintenanceWindow
	// SiteOutage is true while a site_unreachable incident is open: the
	// servers went silent together.
	SiteOutage bool
}

// Summarize computes what the integrator sees of an installation at now:
// its display status, counts and conditions. It is the one place the
// status is decided; the API, the dashboard, notifications and the
// simulator's comparison all see its result.
func Summarize(f InstallationFacts, now time.Time) InstallationView {
	in, servers, today := f.Installation, f.Servers, DateOf(now)
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
	for i, m := range f.Maintenance {
		if m.Active(now) && (v.Maintenance == nil || m.End.After(v.Maintenance.End)) {
			v.Maintenance = &f.Maintenance[i]
		}
	}
	switch {
	case in.CarePlusUntil.Before(today):
		// Nothing is monitored: no server is known to be ok.
		v.Status, since, v.ServersOK = StatusPaused, in.CarePlusUntil.AddDays(1).Time(), 0
	case v.Maintenance != nil:
		v.Status, since = StatusMaintenance, v.Maintenance.Start
	case unavailable > 0 && (f.SiteOutage || len(servers) > 1 && unavailable == len(servers)):
		// One server alone cannot tell a dead server from a dead link.
		v.Status = StatusSiteUnreachable
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
	if v.Status.NeedsAttention() || v.Status == StatusPaused || v.Status == StatusMaintenance {
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
