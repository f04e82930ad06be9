package keepwatch

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"
)

// DriveRole says what a drive holds. Only recording drives are expected
// to have footage whose age is measured; the role otherwise shapes
// messages and views.
type DriveRole string

// Drive roles.
const (
	DriveRecording DriveRole = "recording"
	DriveArchive   DriveRole = "archive"
	DriveOther     DriveRole = "other"
)

// ParseDriveRole validates a role; an empty role is DriveOther.
func ParseDriveRole(s string) (DriveRole, error) {
	switch r := DriveRole(s); r {
	case DriveRecording, DriveArchive, DriveOther:
		return r, nil
	case "":
		return DriveOther, nil
	}
	return "", Errorf(EINVALID, "a drive's role is recording, archive or other")
}

// Limits on the drive readings one report may carry. A drive's path is
// the subject of its conditions, so it obeys the subject's limit.
const (
	MaxDrives       = 64
	MaxDrivePathLen = MaxSubjectLen
)

// DriveSample is one measurement of a drive: its size and the space still
// usable, in bytes, and the time of the oldest footage on it (zero when
// not measured).
type DriveSample struct {
	At              time.Time
	Capacity        uint64
	Free            uint64
	OldestRecording time.Time
}

// Used is the space taken: Capacity − Free. Space reserved for the
// system counts as used, as it is not available to the recorder.
func (s DriveSample) Used() uint64 {
	if s.Free >= s.Capacity {
		return 0
	}
	return s.Capacity - s.Free
}

// Validate checks a sample's figures.
func (s DriveSample) Validate() error {
	switch {
	case s.At.IsZero():
		return Errorf(EINVALID, "a drive sample needs its time")
	case s.Capacity == 0:
		return Errorf(EINVALID, "a drive's capacity must be above 0")
	case s.Free > s.Capacity:
		return Errorf(EINVALID, "a drive's free space cannot exceed its capacity")
	case !s.OldestRecording.IsZero() && s.OldestRecording.After(s.At):
		return Errorf(EINVALID, "the oldest recording cannot be later than the measurement")
	}
	return nil
}

// DriveReading is a sample with the drive it was taken of, as a status
// report carries it.
type DriveReading struct {
	Path string
	Role DriveRole
	DriveSample
}

// ValidateDriveReadings checks the readings of one report: at most
// MaxDrives, each path printable, at most MaxDrivePathLen bytes and named
// once, each sample valid and not more than an hour ahead of now.
func ValidateDriveReadings(rs []DriveReading, now time.Time) error {
	if len(rs) > MaxDrives {
		return Errorf(EINVALID, "a report carries at most %d drives", MaxDrives)
	}
	seen := make(map[string]bool, len(rs))
	for i, r := range rs {
		if r.Path == "" || !ValidText(r.Path, MaxDrivePathLen) {
			return Errorf(EINVALID, "drives[%d]: path is required, printable, at most %d bytes", i, MaxDrivePathLen)
		}
		if seen[r.Path] {
			return Errorf(EINVALID, "drives[%d]: %s is listed twice", i, r.Path)
		}
		seen[r.Path] = true
		if _, err := ParseDriveRole(string(r.Role)); err != nil {
			return Errorf(EINVALID, "drives[%d]: %s", i, ErrorMessage(err))
		}
		if err := r.Validate(); err != nil {
			return Errorf(EINVALID, "drives[%d]: %s", i, ErrorMessage(err))
		}
		if r.At.After(now.Add(time.Hour)) {
			return Errorf(EINVALID, "drives[%d]: measured more than an hour in the future", i)
		}
	}
	return nil
}

// Drive settings and their bounds.
const (
	DefaultForecastHorizonDays = 14
	MaxForecastHorizonDays     = 365
	MaxRequiredRetentionDays   = 3650
)

// DriveSettings are an installation's expectations of its drives.
type DriveSettings struct {
	// HorizonDays: storage_forecast warns when a drive's trend reaches
	// full within this many days (0: DefaultForecastHorizonDays).
	HorizonDays int
	// RequiredRetentionDays is the footage the customer's contract asks
	// to keep, for every recording drive (0: none required).
	RequiredRetentionDays int
	// PerDrive overrides RequiredRetentionDays for the drives it names
	// by path; 0 there means none required for that drive.
	PerDrive map[string]int
}

// Validate checks the bounds of the settings.
func (s DriveSettings) Validate() error {
	if s.HorizonDays < 0 || s.HorizonDays > MaxForecastHorizonDays {
		return Errorf(EINVALID, "the forecast horizon is 1 to %d days", MaxForecastHorizonDays)
	}
	if s.RequiredRetentionDays < 0 || s.RequiredRetentionDays > MaxRequiredRetentionDays {
		return Errorf(EINVALID, "required retention is 0 to %d days", MaxRequiredRetentionDays)
	}
	for p, d := range s.PerDrive {
		if d < 0 || d > MaxRequiredRetentionDays {
			return Errorf(EINVALID, "required retention of %s is 0 to %d days", p, MaxRequiredRetentionDays)
		}
	}
	return nil
}

// Horizon is the forecast horizon in days.
func (s DriveSettings) Horizon() int {
	if s.HorizonDays <= 0 {
		return DefaultForecastHorizonDays
	}
	return s.HorizonDays
}

// RequiredFor is the retention required of a drive, in days (0: none).
// Only recording drives are held to the installation-wide requirement;
// a drive named in PerDrive is held to its own whatever its role.
func (s DriveSettings) RequiredFor(path string, role DriveRole) int {
	if d, ok := s.PerDrive[path]; ok {
		return d
	}
	if role != DriveRecording {
		return 0
	}
	return s.RequiredRetentionDays
}

// DriveHistory is what keepwatch knows of one drive: who has it and its
// recent samples (any order; the forecast looks at the last
// ForecastWindow).
type DriveHistory struct {
	Server  string
	Path    string
	Role    DriveRole
	Samples []DriveSample
}

// DriveStatus is a drive's current figures, as the drives API shows
// them. Pointers are null when there is nothing to say: days_until_full
// and full_at when the drive is not filling, oldest_recording_at and
// retention_days when the footage's age is not measured.
type DriveStatus struct {
	Server                string     `json:"server,omitempty"`
	Path                  string     `json:"path"`
	Role                  DriveRole  `json:"role"`
	CapacityBytes         uint64     `json:"capacity_bytes"`
	FreeBytes             uint64     `json:"free_bytes"`
	MeasuredAt            time.Time  `json:"measured_at"`
	Trend                 Trend      `json:"trend"`
	GrowthBytesPerDay     float64    `json:"growth_bytes_per_day"`
	DaysUntilFull         *float64   `json:"days_until_full"`
	FullAt                *time.Time `json:"full_at"`
	OldestRecordingAt     *time.Time `json:"oldest_recording_at"`
	RetentionDays         *float64   `json:"retention_days"`
	RequiredRetentionDays int        `json:"required_retention_days"`
}

// Status computes a drive's figures at now: the latest sample, the
// forecast over its history and the retention it is held to. A drive
// without samples has only its identity.
func (s DriveSettings) Status(h DriveHistory, now time.Time) DriveStatus {
	role := h.Role
	if role == "" {
		role = DriveOther
	}
	st := DriveStatus{Server: h.Server, Path: h.Path, Role: role, Trend: TrendUnknown,
		RequiredRetentionDays: s.RequiredFor(h.Path, role)}
	var last DriveSample
	for _, x := range h.Samples {
		if !x.At.After(now) && x.At.After(last.At) {
			last = x
		}
	}
	if last.At.IsZero() {
		return st
	}
	st.CapacityBytes, st.FreeBytes, st.MeasuredAt = last.Capacity, last.Free, last.At.UTC()
	if !last.OldestRecording.IsZero() {
		o := last.OldestRecording.UTC()
		kept := roundTo(last.At.Sub(o).Hours()/24, 10)
		st.OldestRecordingAt, st.RetentionDays = &o, &kept
	}
	f := ForecastFill(h.Samples, now)
	st.Trend = f.Trend
	st.GrowthBytesPerDay = math.Round(f.SlopeBytesPerDay)
	if f.Filling() {
		days := roundTo(f.DaysUntilFull, 10)
		at := f.FullAt.UTC().Truncate(time.Second)
		st.DaysUntilFull, st.FullAt = &days, &at
	}
	return st
}

func roundTo(x float64, per float64) float64 { return math.Round(x*per) / per }

// Conditions evaluates drives against the settings: storage_forecast
// (warning) for a drive whose trend reaches full within the horizon, and
// retention_short for one whose oldest footage is younger than required
// (warning; error under half). The result is the full set for these two
// kinds: a condition no longer produced has cleared. Drives whose latest
// sample is older than ForecastStaleAfter produce none: keepwatch does
// not judge a drive on what it no longer sees (an agent that stopped
// reporting is unavailable, a separate condition).
func (s DriveSettings) Conditions(drives []DriveStatus, now time.Time) []Condition {
	var out []Condition
	horizon := float64(s.Horizon())
	for _, d := range drives {
		if d.MeasuredAt.IsZero() || now.Sub(d.MeasuredAt) > ForecastStaleAfter {
			continue
		}
		if d.DaysUntilFull != nil && *d.DaysUntilFull < horizon {
			out = append(out, Condition{Kind: KindStorageForecast, Subject: d.Path, Severity: SeverityWarning,
				Since: now.UTC(), Server: d.Server, Message: forecastMessage(d)})
		}
		if d.RetentionDays != nil && d.RequiredRetentionDays > 0 {
			if sev, short := RetentionSeverity(*d.RetentionDays, d.RequiredRetentionDays); short {
				out = append(out, Condition{Kind: KindRetentionShort, Subject: d.Path, Severity: sev,
					Since: now.UTC(), Server: d.Server, Message: RetentionMessage(*d.RetentionDays, d.RequiredRetentionDays)})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Server != out[j].Server {
			return out[i].Server < out[j].Server
		}
		return out[i].Key() < out[j].Key()
	})
	return out
}

// RetentionSeverity judges footage kept for kept days against required
// days: short when kept < required; an error when kept is under half of
// it, else a warning.
func RetentionSeverity(kept float64, required int) (Severity, bool) {
	if required <= 0 || kept >= float64(required) {
		return "", false
	}
	if kept < float64(required)/2 {
		return SeverityError, true
	}
	return SeverityWarning, true
}

// RetentionMessage words a retention shortfall, counting whole days kept
// (29.9 days is not yet 30).
func RetentionMessage(kept float64, required int) string {
	if kept < 1 {
		return fmt.Sprintf("footage kept less than a day, %d required", required)
	}
	n := int(math.Floor(kept))
	return fmt.Sprintf("footage kept %d %s, %d required", n, plural(n, "day", "days"), required)
}

func forecastMessage(d DriveStatus) string {
	days := *d.DaysUntilFull
	var when string
	switch {
	case days < 1:
		when = "within a day"
	default:
		n := int(math.Round(days))
		when = fmt.Sprintf("in ~%d %s", n, plural(n, "day", "days"))
	}
	return fmt.Sprintf("%s full %s (grows %s a day, %s free)", d.Path, when, byteText(uint64(max(d.GrowthBytesPerDay, 0))), byteText(d.FreeBytes))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// ByteText formats a byte count in binary units, one decimal: 7.3 TiB.
func ByteText(n uint64) string { return byteText(n) }

// byteText formats a byte count in binary units, one decimal.
func byteText(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// DriveKinds are the kinds keepwatch decides from drive samples.
var DriveKinds = []string{KindStorageForecast, KindRetentionShort}

// DriveJudgeStore is what judging a server's drives needs: the drives'
// recent history with the installation's settings, and the place to put
// keepwatch's verdicts.
type DriveJudgeStore interface {
	// ServerDrives returns the settings of the server's installation and
	// the server's drives with their samples of the last ForecastWindow
	// before now.
	ServerDrives(ctx context.Context, serverID string, now time.Time) (DriveSettings, []DriveHistory, error)
	SetKeepwatchConditions(ctx context.Context, serverID string, kinds []string, conds []Condition, at time.Time) ([]Change, error)
}

// JudgeDrives re-evaluates a server's drives at now and replaces its
// storage_forecast and retention_short conditions by the verdict: raised
// when due, cleared when no longer due. It returns the changes made.
func JudgeDrives(ctx context.Context, s DriveJudgeStore, serverID string, now time.Time) ([]Change, error) {
	set, hs, err := s.ServerDrives(ctx, serverID, now)
	if err != nil {
		return nil, err
	}
	st := make([]DriveStatus, 0, len(hs))
	for _, h := range hs {
		st = append(st, set.Status(h, now))
	}
	return s.SetKeepwatchConditions(ctx, serverID, DriveKinds, set.Conditions(st, now), now)
}

// DriveSettingsStore is what ApplyDriveSettings reads and writes.
type DriveSettingsStore interface {
	DriveJudgeStore
	SetDriveSettings(ctx context.Context, integratorID int64, slc string, s DriveSettings) ([]string, error)
}

// ApplyDriveSettings stores an installation's drive settings and judges
// its servers' drives against them at once, handing each server's changes
// to publish (nil: none). A server whose drives cannot be judged now keeps
// its verdict until its next report; failed names it with its error.
func ApplyDriveSettings(ctx context.Context, s DriveSettingsStore, integratorID int64, slc string, set DriveSettings, now time.Time, publish func([]Change)) (failed map[string]error, err error) {
	servers, err := s.SetDriveSettings(ctx, integratorID, slc, set)
	if err != nil {
		return nil, err
	}
	for _, id := range servers {
		changes, err := JudgeDrives(ctx, s, id, now)
		if err != nil {
			if failed == nil {
				failed = map[string]error{}
			}
			failed[id] = err
			continue
		}
		if len(changes) > 0 && publish != nil {
			publish(changes)
		}
	}
	return failed, nil
}

// DriveRequirement is the retention required of one drive, by path.
type DriveRequirement struct {
	Path                  string
	RequiredRetentionDays int
}

// MaxDriveRequirements bounds the drives an installation names in its
// settings.
const MaxDriveRequirements = 256

// NewDriveSettings validates settings as a person gives them: a horizon
// (0: the default), the retention required of recording drives (0: none),
// and per-drive requirements, each path printable and named once.
func NewDriveSettings(horizon, required int, perDrive []DriveRequirement) (DriveSettings, error) {
	s := DriveSettings{HorizonDays: horizon, RequiredRetentionDays: required}
	if len(perDrive) > MaxDriveRequirements {
		return s, Errorf(EINVALID, "at most %d drives have a requirement of their own", MaxDriveRequirements)
	}
	for _, d := range perDrive {
		if d.Path == "" || !ValidText(d.Path, MaxDrivePathLen) {
			return s, Errorf(EINVALID, "a drive's path is required, printable, at most %d bytes", MaxDrivePathLen)
		}
		if _, dup := s.PerDrive[d.Path]; dup {
			return s, Errorf(EINVALID, "%s is listed twice", d.Path)
		}
		if s.PerDrive == nil {
			s.PerDrive = map[string]int{}
		}
		s.PerDrive[d.Path] = d.RequiredRetentionDays
	}
	return s, s.Validate()
}

// String words the settings for the audit log.
func (s DriveSettings) String() string {
	out := fmt.Sprintf("forecast horizon %d days, required retention %d days", s.Horizon(), s.RequiredRetentionDays)
	paths := make([]string, 0, len(s.PerDrive))
	for p := range s.PerDrive {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		out += fmt.Sprintf("; %s %d days", p, s.PerDrive[p])
	}
	return out
}
