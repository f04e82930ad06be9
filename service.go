package keepwatch

import (
	"context"
	"time"
)

// The interfaces below are what the integrators' two doors, the REST API
// and the dashboard, need of keepwatch's data. The store implements them;
// every method that reads or writes an integrator's data takes the
// integrator's id and answers "not found" for anything that is not its
// own, whether it exists or not.

// InstallationStore reads installations as their integrator sees them.
type InstallationStore interface {
	// Installations returns the views of all installations registered to
	// the integrator as of now, sorted by severity then age.
	Installations(ctx context.Context, integratorID int64, now time.Time) ([]InstallationView, error)
	Installation(ctx context.Context, integratorID int64, slc string, now time.Time) (InstallationView, error)
	Servers(ctx context.Context, integratorID int64, slc string) ([]Server, error)
	Timeline(ctx context.Context, integratorID int64, slc string, limit int) ([]TimelineEntry, error)
	AvailabilityHistory(ctx context.Context, integratorID int64, slc string) ([]Flip, error)
	// ConsentWithdrawn counts, per SLC, the servers whose customer
	// withdrew consent.
	ConsentWithdrawn(ctx context.Context, integratorID int64) (map[string]int, error)
	// RegisteredAt is when the integrator registered the installation:
	// its history, and uptime, start there.
	RegisteredAt(ctx context.Context, integratorID int64, slc string) (time.Time, error)
}

// RegistrationStore is the registration center: the first integrator to
// register an SLC sees its installation.
type RegistrationStore interface {
	Register(ctx context.Context, integratorID int64, slc string) error
	Release(ctx context.Context, integratorID int64, slc string) error
}

// TrustStore is what the integrator decides about enrollment: pending
// re-enrollments of known server names, and the installations'
// enrollment keys.
type TrustStore interface {
	Reenrollments(ctx context.Context, integratorID int64, limit int) ([]Reenrollment, error)
	DecideReenrollment(ctx context.Context, integratorID, id int64, approve bool, actor string) (Reenrollment, error)
	// SetIntegratorEnrollmentKey replaces (keyHash, the SHA-256 of the new
	// key) or revokes (nil) the enrollment key of one of its installations.
	SetIntegratorEnrollmentKey(ctx context.Context, integratorID int64, slc string, keyHash []byte) error
}

// IncidentStore reads incidents and records what people do with them.
type IncidentStore interface {
	Incidents(ctx context.Context, integratorID int64, state IncidentState, limit int) ([]Incident, error)
	Incident(ctx context.Context, integratorID, id int64) (Incident, error)
	AckIncident(ctx context.Context, integratorID, id int64, by, note string) (Incident, error)
	ResolveIncident(ctx context.Context, integratorID, id int64, by, note string) (Incident, error)
	// AssignIncident assigns an incident to one of the integrator's users
	// (0: nobody) and returns the assignee's e-mail.
	AssignIncident(ctx context.Context, integratorID, incidentID, userID int64, by string) (string, error)
	Assignees(ctx context.Context, integratorID int64, incidentIDs []int64) (map[int64]Assignee, error)
	IncidentHistory(ctx context.Context, integratorID, id int64) ([]Transition, error)
	// IncidentReported tells whether an unresolved incident's condition
	// is still reported (then only keepwatch resolves it).
	IncidentReported(ctx context.Context, integratorID, id int64) (bool, error)
	// IncidentNotifications lists what was sent about an incident.
	IncidentNotifications(ctx context.Context, integratorID, incidentID int64) ([]Notification, error)
}

// MaintenanceStore keeps maintenance windows.
type MaintenanceStore interface {
	SetMaintenance(ctx context.Context, integratorID int64, m MaintenanceWindow) (MaintenanceWindow, error)
	// EndMaintenance ends the running window of an installation at at and
	// cancels those scheduled later; it returns how many it changed.
	EndMaintenance(ctx context.Context, integratorID int64, slc string, at time.Time) (int, error)
	// Maintenance returns an installation's windows not ended by at.
	Maintenance(ctx context.Context, integratorID int64, slc string, at time.Time) ([]MaintenanceWindow, error)
	// ActiveMaintenance returns the installations in maintenance at at, by
	// SLC.
	ActiveMaintenance(ctx context.Context, integratorID int64, at time.Time) (map[string]MaintenanceWindow, error)
	// UpcomingMaintenance returns the next scheduled window of each
	// installation, by SLC.
	UpcomingMaintenance(ctx context.Context, integratorID int64, at time.Time) (map[string]MaintenanceWindow, error)
	// StopMaintenance cancels a scheduled window or ends a running one at
	// at (MaintenanceWindow.Stop).
	StopMaintenance(ctx context.Context, integratorID int64, slc string, id int64, at time.Time) (MaintenanceWindow, bool, error)
}

// ChannelStore keeps notification channels and rules, and shows the
// outbox.
type ChannelStore interface {
	Channels(ctx context.Context, integratorID int64) ([]Channel, error)
	Channel(ctx context.Context, integratorID, id int64) (Channel, error)
	CreateChannel(ctx context.Context, integratorID int64, c Channel) (Channel, error)
	DeleteChannel(ctx context.Context, integratorID, id int64) error
	Rules(ctx context.Context, integratorID int64) ([]Rule, error)
	CreateRule(ctx context.Context, integratorID int64, r Rule) (Rule, error)
	DeleteRule(ctx context.Context, integratorID, id int64) error
	// Notifications lists the integrator's recent notifications, newest
	// first.
	Notifications(ctx context.Context, integratorID int64, limit int) ([]Notification, error)
	// Enqueue adds a notification unless one with its dedup key exists.
	Enqueue(ctx context.Context, n Notification) (bool, error)
	// IncidentTicket returns the ticket a PSA channel opened for an
	// incident (not_found if none); SetIncidentTicket keeps it.
	IncidentTicket(ctx context.Context, integratorID, channelID, incidentID int64) (string, error)
	SetIncidentTicket(ctx context.Context, integratorID, channelID, incidentID int64, ticketID string) error
}

// AccountStore keeps an integrator's users, API tokens and audit log.
type AccountStore interface {
	Users(ctx context.Context, integratorID int64) ([]User, error)
	User(ctx context.Context, integratorID, userID int64) (User, error)
	CreateUser(ctx context.Context, integratorID int64, email, passwordHash string, role Role) (int64, error)
	SetUserRole(ctx context.Context, integratorID, userID int64, role Role) error
	DeleteUser(ctx context.Context, integratorID, userID int64) error
	Tokens(ctx context.Context, integratorID int64) ([]Token, error)
	CreateToken(ctx context.Context, integratorID int64, name string, role Role, hash []byte) (int64, error)
	// RevokeToken makes a token stop working and returns its name.
	RevokeToken(ctx context.Context, integratorID, tokenID int64) (string, error)
	AuditLog(ctx context.Context, integratorID int64, limit int) ([]AuditEntry, error)
}

// DriveStore reads an installation's drives and keeps its expectations of
// them.
type DriveStore interface {
	// InstallationDrives returns the installation's drive settings and
	// its drives with their samples of the forecast's window.
	InstallationDrives(ctx context.Context, integratorID int64, slc string, now time.Time) (DriveSettings, []DriveHistory, error)
	// DriveSeries returns the stored points of a drive that end at or
	// after from: of the server named, or of the first (by name) with
	// the path when server is "".
	DriveSeries(ctx context.Context, integratorID int64, slc, server, path string, from time.Time) ([]SeriesPoint, error)
	DriveSettings(ctx context.Context, integratorID int64, slc string) (DriveSettings, error)
	// SetDriveSettings replaces the settings and returns the servers
	// whose drives are to be judged again.
	SetDriveSettings(ctx context.Context, integratorID int64, slc string, s DriveSettings) ([]string, error)
	DriveJudgeStore
}
