package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"keepwatch"
)

// DefaultLocalAPI is where the agent's local API listens unless the
// configuration says otherwise.
const DefaultLocalAPI = "127.0.0.1:8444"

// Config is the agent daemon's configuration file (JSON). Every field is
// optional: an agent without checks still sends heartbeats and relays
// what the VMS reports through its local API.
type Config struct {
	Drives []Drive `json:"drives,omitempty"`
	// MediaDatabase is the media database's directory (or a file in it);
	// its directory gets the write probe.
	MediaDatabase string   `json:"media_database,omitempty"`
	Cameras       []Camera `json:"cameras,omitempty"`
	// LicensedCameras is the installation's camera licence count; 0 turns
	// the licence check off.
	LicensedCameras int        `json:"licensed_cameras,omitempty"`
	Thresholds      Thresholds `json:"thresholds,omitzero"`
	Checks          Checks     `json:"checks,omitzero"`
	// LocalAPI is the loopback address of the local API.
	LocalAPI string      `json:"local_api,omitempty"`
	Spool    SpoolConfig `json:"spool,omitzero"`
}

// Drive is a recording or archive drive watched for free space, and
// sampled for keepwatch's forecasts.
type Drive struct {
	Path string `json:"path"`
	// Role is "recording", "archive" or "other"; it shapes the message
	// and tells keepwatch which drives are held to the required retention.
	Role string `json:"role,omitempty"`
	// Per-drive thresholds; zero takes Config.Thresholds.
	StorageLowPercent  float64 `json:"storage_low_percent,omitempty"`
	StorageFullPercent float64 `json:"storage_full_percent,omitempty"`
	// Recordings is the directory holding the recorder's footage on this
	// drive; with it, samples carry the time of the oldest recording.
	Recordings string `json:"recordings,omitempty"`
	// Layout says how that time is found: "oldest-file" (default) or
	// "dated-folders".
	Layout string `json:"layout,omitempty"`
	// Folders is the dated-folders pattern below Recordings (drivesample.go);
	// default "YYYY-MM-DD|YYYYMMDD".
	Folders string `json:"folders,omitempty"`
}

// Layouts of a recordings directory.
const (
	LayoutOldestFile   = "oldest-file"
	LayoutDatedFolders = "dated-folders"
)

// Camera is a camera whose reachability is checked.
type Camera struct {
	Name string `json:"name"`
	// Address is host:port for the TCP check. It may be omitted when RTSP
	// is given: the RTSP URL's host and port (default 554) are used.
	Address string `json:"address,omitempty"`
	// RTSP, when set, is asked OPTIONS after the TCP check succeeds.
	RTSP string `json:"rtsp,omitempty"`
}

// Thresholds are the default free-space limits, in percent of the drive.
type Thresholds struct {
	StorageLowPercent  float64 `json:"storage_low_percent,omitempty"`
	StorageFullPercent float64 `json:"storage_full_percent,omitempty"`
}

// Checks sets how often each built-in check runs.
type Checks struct {
	Drives        CheckSchedule `json:"drives,omitzero"`
	MediaDatabase CheckSchedule `json:"media_database,omitzero"`
	Cameras       CameraChecks  `json:"cameras,omitzero"`
	Licenses      CheckSchedule `json:"licenses,omitzero"`
	DriveSamples  SampleChecks  `json:"drive_samples,omitzero"`
}

// SampleChecks sets how often drives are sampled for keepwatch's
// forecasts, and how often an oldest-file layout is walked in full.
type SampleChecks struct {
	Every  Duration `json:"every,omitzero"`
	Rescan Duration `json:"rescan,omitzero"`
}

// CheckSchedule is a check's interval.
type CheckSchedule struct {
	Every Duration `json:"every,omitzero"`
}

// CameraChecks adds the connection parameters to the camera schedule. A
// camera counts as unreachable only when every attempt of a round fails,
// so one lost packet does not raise an alarm.
type CameraChecks struct {
	Every      Duration `json:"every,omitzero"`
	Timeout    Duration `json:"timeout,omitzero"`
	Attempts   int      `json:"attempts,omitempty"`
	RetryDelay Duration `json:"retry_delay,omitzero"`
	// Parallel bounds how many cameras are checked at once.
	Parallel int `json:"parallel,omitempty"`
}

// SpoolConfig bounds the durable spool.
type SpoolConfig struct {
	// MaxReports is the most reports kept while keepwatch is unreachable.
	// Beyond it the oldest heartbeats go first, then superseded status
	// reports; reports carrying events are never dropped.
	MaxReports int `json:"max_reports,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("30s").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes d as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON accepts "90s", "5m", "1h30m".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`a duration is a string such as "30s" or "5m"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: want a form such as \"30s\" or \"5m\"", s)
	}
	*d = Duration(v)
	return nil
}

// Defaults of the configuration.
const (
	DefaultStorageLowPercent  = 10.0
	DefaultStorageFullPercent = 1.0
	DefaultMaxReports         = 10000
	// DefaultSampleEvery: keepwatch keeps one raw sample per drive per
	// 5 minutes (keepwatch.SeriesRawSlot); sampling faster sends more
	// and keeps nothing more.
	DefaultSampleEvery = 5 * time.Minute
	DefaultRescan      = 24 * time.Hour
)

// LoadConfig reads and validates a configuration file.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, err
	}
	defer f.Close()
	c, err := ParseConfig(io.LimitReader(f, 4<<20))
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes a configuration, refuses unknown fields (a typo
// must not silently switch a check off), fills defaults and validates.
func ParseConfig(r io.Reader) (Config, error) {
	var c Config
	b, err := io.ReadAll(r)
	if err != nil {
		return c, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line := 1 + bytes.Count(b[:min(int(se.Offset), len(b))], []byte("\n"))
			return c, keepwatch.Errorf(keepwatch.EINVALID, "line %d: %v", line, err)
		}
		return c, keepwatch.Errorf(keepwatch.EINVALID, "%v", err)
	}
	if dec.More() {
		return c, keepwatch.Errorf(keepwatch.EINVALID, "data after the JSON object")
	}
	return c, c.normalize()
}

// normalize fills defaults and checks every field.
func (c *Config) normalize() error {
	bad := func(format string, args ...any) error { return keepwatch.Errorf(keepwatch.EINVALID, format, args...) }
	t := &c.Thresholds
	if t.StorageLowPercent == 0 {
		t.StorageLowPercent = DefaultStorageLowPercent
	}
	if t.StorageFullPercent == 0 {
		t.StorageFullPercent = DefaultStorageFullPercent
	}
	if err := checkThresholds("thresholds", t.StorageLowPercent, t.StorageFullPercent); err != nil {
		return err
	}
	if len(c.Drives) > keepwatch.MaxDrives {
		return bad("at most %d drives", keepwatch.MaxDrives)
	}
	seen := map[string]bool{}
	for i := range c.Drives {
		d := &c.Drives[i]
		if d.Path == "" {
			return bad("drives[%d]: path is required", i)
		}
		if !keepwatch.ValidText(d.Path, keepwatch.MaxSubjectLen) {
			return bad("drives[%d]: path is longer than %d bytes or not printable", i, keepwatch.MaxSubjectLen)
		}
		if seen[d.Path] {
			return bad("drives[%d]: %s is listed twice", i, d.Path)
		}
		seen[d.Path] = true
		if d.Role != "" && d.Role != "recording" && d.Role != "archive" && d.Role != "other" {
			return bad("drives[%d]: role must be recording, archive or other", i)
		}
		if err := normalizeRecordings(d); err != nil {
			return bad("drives[%d] (%s): %s", i, d.Path, keepwatch.ErrorMessage(err))
		}
		if d.StorageLowPercent == 0 {
			d.StorageLowPercent = t.StorageLowPercent
		}
		if d.StorageFullPercent == 0 {
			d.StorageFullPercent = t.StorageFullPercent
		}
		if err := checkThresholds(fmt.Sprintf("drives[%d]", i), d.StorageLowPercent, d.StorageFullPercent); err != nil {
			return err
		}
	}
	if c.MediaDatabase != "" && !keepwatch.ValidText(c.MediaDatabase, keepwatch.MaxSubjectLen) {
		return bad("media_database is longer than %d bytes or not printable", keepwatch.MaxSubjectLen)
	}
	names := map[string]bool{}
	for i := range c.Cameras {
		cam := &c.Cameras[i]
		if cam.Name == "" || !keepwatch.ValidText(cam.Name, keepwatch.MaxSubjectLen) {
			return bad("cameras[%d]: name is required (at most %d printable bytes)", i, keepwatch.MaxSubjectLen)
		}
		if names[cam.Name] {
			return bad("cameras[%d]: the name %q is used twice", i, cam.Name)
		}
		names[cam.Name] = true
		if cam.RTSP != "" {
			u, err := url.Parse(cam.RTSP)
			if err != nil || (u.Scheme != "rtsp" && u.Scheme != "rtsps") || u.Host == "" {
				return bad("cameras[%d] (%s): rtsp must be a URL such as rtsp://10.0.4.12:554/stream1", i, cam.Name)
			}
			if cam.Address == "" {
				port := u.Port()
				if port == "" {
					port = "554"
				}
				cam.Address = net.JoinHostPort(u.Hostname(), port)
			}
		}
		if cam.Address == "" {
			return bad("cameras[%d] (%s): address host:port is required", i, cam.Name)
		}
		host, port, err := net.SplitHostPort(cam.Address)
		if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
			return bad("cameras[%d] (%s): address must be host:port, e.g. 10.0.4.12:554", i, cam.Name)
		}
	}
	if c.LicensedCameras < 0 {
		return bad("licensed_cameras must not be negative")
	}
	ch := &c.Checks
	defaultEvery(&ch.Drives.Every, time.Minute)
	defaultEvery(&ch.MediaDatabase.Every, time.Minute)
	defaultEvery(&ch.Licenses.Every, 5*time.Minute)
	defaultEvery(&ch.Cameras.Every, 30*time.Second)
	defaultEvery(&ch.Cameras.Timeout, 3*time.Second)
	defaultEvery(&ch.Cameras.RetryDelay, 2*time.Second)
	if ch.Cameras.Attempts == 0 {
		ch.Cameras.Attempts = 3
	}
	if ch.Cameras.Parallel == 0 {
		ch.Cameras.Parallel = 16
	}
	for name, d := range map[string]Duration{
		"checks.drives.every": ch.Drives.Every, "checks.media_database.every": ch.MediaDatabase.Every,
		"checks.licenses.every": ch.Licenses.Every, "checks.cameras.every": ch.Cameras.Every,
		"checks.cameras.timeout": ch.Cameras.Timeout, "checks.cameras.retry_delay": ch.Cameras.RetryDelay,
	} {
		if d.D() < 10*time.Millisecond || d.D() > 24*time.Hour {
			return bad("%s must be between 10ms and 24h", name)
		}
	}
	defaultEvery(&ch.DriveSamples.Every, DefaultSampleEvery)
	defaultEvery(&ch.DriveSamples.Rescan, DefaultRescan)
	if e := ch.DriveSamples.Every.D(); e < time.Minute || e > time.Hour {
		return bad("checks.drive_samples.every must be between 1m and 1h")
	}
	if r := ch.DriveSamples.Rescan.D(); r < time.Hour || r > 7*24*time.Hour {
		return bad("checks.drive_samples.rescan must be between 1h and 168h")
	}
	if ch.Cameras.Attempts < 1 || ch.Cameras.Attempts > 10 {
		return bad("checks.cameras.attempts must be 1 to 10")
	}
	if ch.Cameras.Parallel < 1 || ch.Cameras.Parallel > 256 {
		return bad("checks.cameras.parallel must be 1 to 256")
	}
	if c.LocalAPI == "" {
		c.LocalAPI = DefaultLocalAPI
	}
	if err := CheckLoopback(c.LocalAPI); err != nil {
		return err
	}
	if host, port, _ := net.SplitHostPort(c.LocalAPI); strings.EqualFold(host, "localhost") {
		// Name resolution could point elsewhere; listen on the address.
		c.LocalAPI = net.JoinHostPort("127.0.0.1", port)
	}
	if c.Spool.MaxReports == 0 {
		c.Spool.MaxReports = DefaultMaxReports
	}
	if c.Spool.MaxReports < 10 || c.Spool.MaxReports > 10_000_000 {
		return bad("spool.max_reports must be 10 to 10000000")
	}
	return nil
}

func defaultEvery(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}

func checkThresholds(where string, low, full float64) error {
	if low <= 0 || low >= 100 || full <= 0 || full >= 100 {
		return keepwatch.Errorf(keepwatch.EINVALID, "%s: thresholds are percentages of free space, above 0 and below 100", where)
	}
	if full > low {
		return keepwatch.Errorf(keepwatch.EINVALID, "%s: storage_full_percent (%g) must not be above storage_low_percent (%g)", where, full, low)
	}
	return nil
}

// CheckLoopback refuses a local API address that is not on the loopback
// interface: the local API has no authentication of its own, so it must
// never be reachable from the network.
func CheckLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return keepwatch.Errorf(keepwatch.EINVALID, "local_api %q must be host:port on 127.0.0.1 or ::1", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return keepwatch.Errorf(keepwatch.EINVALID, "local_api %q: bad port", addr)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return keepwatch.Errorf(keepwatch.EINVALID, "local_api %q must listen on the loopback interface only (127.0.0.1 or ::1)", addr)
	}
	return nil
}
