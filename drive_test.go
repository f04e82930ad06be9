package keepwatch

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// fillingDrive: 1 TB, 14 days of 5-minute samples, filling rate bytes a
// day so that it is full after daysLeft days from the last sample; the
// oldest footage is kept days old at every sample.
func fillingDrive(rate float64, daysLeft float64, kept float64) []DriveSample {
	endUsed := float64(tb) - rate*daysLeft
	span := 14.0 - 5.0/(24*60)
	ss := samples(t0, fourteenDays, 5*time.Minute, tb, func(_ int, at time.Time) float64 {
		return endUsed - rate*(span-days(at))
	})
	if kept > 0 {
		for i := range ss {
			ss[i].OldestRecording = ss[i].At.Add(-time.Duration(kept * 24 * float64(time.Hour)))
		}
	}
	return ss
}

func TestDriveStatusCarriesTheForecastAndTheRetention(t *testing.T) {
	ss := fillingDrive(20*gb, 6, 19.5)
	now := lastAt(ss).Add(10 * time.Minute)
	s := DriveSettings{RequiredRetentionDays: 30}
	st := s.Status(DriveHistory{Server: "RS-01", Path: `E:\Recordings`, Role: DriveRecording, Samples: ss}, now)
	if st.Trend != TrendFilling || st.DaysUntilFull == nil || *st.DaysUntilFull < 5.9 || *st.DaysUntilFull > 6.0 {
		t.Fatalf("status: %+v", st)
	}
	if st.FullAt == nil || st.FullAt.Sub(lastAt(ss).Add(6*24*time.Hour)).Abs() > time.Hour {
		t.Fatalf("full at %v", st.FullAt)
	}
	if st.CapacityBytes != tb || st.FreeBytes != ss[len(ss)-1].Free || !st.MeasuredAt.Equal(lastAt(ss)) {
		t.Fatalf("figures: %+v", st)
	}
	if st.RetentionDays == nil || *st.RetentionDays != 19.5 || st.RequiredRetentionDays != 30 || st.OldestRecordingAt == nil {
		t.Fatalf("retention: %+v", st)
	}

	conds := s.Conditions([]DriveStatus{st}, now)
	if len(conds) != 2 {
		t.Fatalf("conditions: %+v", conds)
	}
	fc, rs := conds[1], conds[0] // sorted by kind
	if fc.Kind != KindStorageForecast || fc.Subject != `E:\Recordings` || fc.Severity != SeverityWarning || fc.Server != "RS-01" ||
		!strings.HasPrefix(fc.Message, `E:\Recordings full in ~6 days (grows 18.6 GiB a day, 111.8 GiB free)`) {
		t.Fatalf("storage_forecast: %+v", fc)
	}
	if rs.Kind != KindRetentionShort || rs.Severity != SeverityWarning || rs.Message != "footage kept 19 days, 30 required" {
		t.Fatalf("retention_short: %+v", rs)
	}
	for _, c := range conds {
		if !ValidKind(c.Kind) || !ValidText(c.Message, MaxMessageLen) || !ValidText(c.Subject, MaxSubjectLen) || !c.Since.Equal(now) {
			t.Fatalf("a condition the store would refuse: %+v", c)
		}
	}
}

func TestStorageForecastOnlyWithinTheHorizon(t *testing.T) {
	st := DriveSettings{}.Status(DriveHistory{Path: "/srv/rec", Role: DriveRecording, Samples: fillingDrive(20*gb, 20, 0)}, t0.Add(14*24*time.Hour))
	if st.DaysUntilFull == nil || *st.DaysUntilFull < 19.5 || *st.DaysUntilFull > 20 {
		t.Fatalf("status: %+v", st)
	}
	now := st.MeasuredAt
	if c := (DriveSettings{}).Conditions([]DriveStatus{st}, now); len(c) != 0 {
		t.Fatalf("full in 20 days, default horizon 14: %+v", c)
	}
	if c := (DriveSettings{HorizonDays: 30}).Conditions([]DriveStatus{st}, now); len(c) != 1 || c[0].Kind != KindStorageForecast {
		t.Fatalf("full in 20 days, horizon 30: %+v", c)
	}
}

func TestDriveConditionsClearWhenTheInputChanges(t *testing.T) {
	s := DriveSettings{RequiredRetentionDays: 30}
	path := `E:\Recordings`
	// Filling, full in 5 days, footage kept 10 days: both raised (retention
	// an error: under half).
	before := s.Status(DriveHistory{Path: path, Role: DriveRecording, Samples: fillingDrive(20*gb, 5, 10)}, t0.Add(14*24*time.Hour))
	now := before.MeasuredAt
	active := s.Conditions([]DriveStatus{before}, now)
	if len(active) != 2 || active[0].Severity != SeverityError || active[0].Message != "footage kept 10 days, 30 required" {
		t.Fatalf("raised: %+v", active)
	}
	// The recorder now holds the drive at 95 % and keeps 31 days.
	held := sawtooth(tb, 0.945*tb, 0.955*tb, 0.02*tb, fourteenDays, nil)
	for i := range held {
		held[i].OldestRecording = held[i].At.Add(-31 * 24 * time.Hour)
	}
	after := s.Status(DriveHistory{Path: path, Role: DriveRecording, Samples: held}, lastAt(held))
	if after.Trend != TrendRetentionManaged || after.DaysUntilFull != nil || after.FullAt != nil {
		t.Fatalf("held: %+v", after)
	}
	next := s.Conditions([]DriveStatus{after}, lastAt(held))
	raised, cleared := Diff(active, next)
	if len(next) != 0 || len(raised) != 0 || len(cleared) != 2 {
		t.Fatalf("next %+v, raised %+v, cleared %+v", next, raised, cleared)
	}
}

func TestDriveConditionsOfAStaleDriveAreNone(t *testing.T) {
	s := DriveSettings{RequiredRetentionDays: 30}
	st := s.Status(DriveHistory{Path: "/srv/rec", Role: DriveRecording, Samples: fillingDrive(20*gb, 5, 10)}, t0.Add(14*24*time.Hour))
	if c := s.Conditions([]DriveStatus{st}, st.MeasuredAt.Add(ForecastStaleAfter+time.Minute)); len(c) != 0 {
		t.Fatalf("a drive not measured for a day: %+v", c)
	}
	if c := s.Conditions([]DriveStatus{{Path: "/srv/none"}}, t0); len(c) != 0 {
		t.Fatalf("a drive never measured: %+v", c)
	}
}

func TestRetentionSeverity(t *testing.T) {
	for _, c := range []struct {
		kept     float64
		required int
		sev      Severity
		short    bool
		msg      string
	}{
		{19.9, 30, SeverityWarning, true, "footage kept 19 days, 30 required"},
		{29.99, 30, SeverityWarning, true, "footage kept 29 days, 30 required"},
		{30, 30, "", false, ""},
		{15, 30, SeverityWarning, true, "footage kept 15 days, 30 required"},
		{14.9, 30, SeverityError, true, "footage kept 14 days, 30 required"},
		{1, 30, SeverityError, true, "footage kept 1 day, 30 required"},
		{0.4, 30, SeverityError, true, "footage kept less than a day, 30 required"},
		{5, 0, "", false, ""},
	} {
		sev, short := RetentionSeverity(c.kept, c.required)
		if sev != c.sev || short != c.short {
			t.Errorf("kept %g of %d: %q %v, want %q %v", c.kept, c.required, sev, short, c.sev, c.short)
		}
		if short {
			if m := RetentionMessage(c.kept, c.required); m != c.msg {
				t.Errorf("kept %g of %d: %q, want %q", c.kept, c.required, m, c.msg)
			}
		}
	}
}

func TestRequiredRetentionPerDriveAndRole(t *testing.T) {
	s := DriveSettings{RequiredRetentionDays: 30, PerDrive: map[string]int{`F:\Archive`: 365, `G:\Scratch`: 0}}
	for _, c := range []struct {
		path string
		role DriveRole
		want int
	}{
		{`E:\Recordings`, DriveRecording, 30},
		{`D:\Other`, DriveArchive, 0}, // archives are not held to the installation's days
		{`F:\Archive`, DriveArchive, 365},
		{`G:\Scratch`, DriveRecording, 0},
	} {
		if got := s.RequiredFor(c.path, c.role); got != c.want {
			t.Errorf("%s (%s): %d, want %d", c.path, c.role, got, c.want)
		}
	}
	if s.Horizon() != DefaultForecastHorizonDays {
		t.Fatalf("default horizon %d", s.Horizon())
	}
	for _, bad := range []DriveSettings{{HorizonDays: -1}, {HorizonDays: 366}, {RequiredRetentionDays: -1}, {PerDrive: map[string]int{"x": 4000}}} {
		if ErrorCode(bad.Validate()) != EINVALID {
			t.Errorf("%+v accepted", bad)
		}
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestDriveStatusJSONNamesAndNulls(t *testing.T) {
	st := DriveSettings{}.Status(DriveHistory{Path: "/srv/archive", Role: DriveArchive,
		Samples: samples(t0, 300, 5*time.Minute, tb, func(int, time.Time) float64 { return 100 * gb })}, t0.Add(25*time.Hour))
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	for _, k := range []string{"path", "role", "capacity_bytes", "free_bytes", "days_until_full", "full_at", "oldest_recording_at", "retention_days", "required_retention_days"} {
		if _, ok := m[k]; !ok {
			t.Errorf("%s missing from %s", k, b)
		}
	}
	for _, k := range []string{"days_until_full", "full_at", "oldest_recording_at", "retention_days"} {
		if m[k] != nil {
			t.Errorf("%s = %v, want null for a flat drive without footage age", k, m[k])
		}
	}
	if m["trend"] != "steady" || m["capacity_bytes"].(float64) != tb || m["free_bytes"].(float64) != 900*gb {
		t.Errorf("%s", b)
	}
}

func TestValidateDriveReadings(t *testing.T) {
	now := t0
	ok := DriveReading{Path: `E:\Recordings`, Role: DriveRecording, DriveSample: DriveSample{At: now, Capacity: 100, Free: 40, OldestRecording: now.Add(-time.Hour)}}
	if err := ValidateDriveReadings([]DriveReading{ok}, now); err != nil {
		t.Fatal(err)
	}
	many := make([]DriveReading, MaxDrives+1)
	for i := range many {
		many[i] = ok
		many[i].Path = strings.Repeat("x", i+1)
	}
	if err := ValidateDriveReadings(many[:MaxDrives], now); err != nil {
		t.Fatalf("%d drives: %v", MaxDrives, err)
	}
	mod := func(f func(*DriveReading)) []DriveReading {
		r := ok
		f(&r)
		return []DriveReading{r}
	}
	for name, rs := range map[string][]DriveReading{
		"too many drives":         many,
		"twice the same path":     {ok, ok},
		"no path":                 mod(func(r *DriveReading) { r.Path = "" }),
		"path too long":           mod(func(r *DriveReading) { r.Path = strings.Repeat("p", MaxDrivePathLen+1) }),
		"control character":       mod(func(r *DriveReading) { r.Path = "E:\n" }),
		"unknown role":            mod(func(r *DriveReading) { r.Role = "cache" }),
		"no time":                 mod(func(r *DriveReading) { r.At = time.Time{} }),
		"no capacity":             mod(func(r *DriveReading) { r.Capacity, r.Free = 0, 0 }),
		"more free than size":     mod(func(r *DriveReading) { r.Free = 101 }),
		"footage from the future": mod(func(r *DriveReading) { r.OldestRecording = r.At.Add(time.Second) }),
		"measured in two hours":   mod(func(r *DriveReading) { r.At = now.Add(2 * time.Hour); r.OldestRecording = time.Time{} }),
	} {
		if ErrorCode(ValidateDriveReadings(rs, now)) != EINVALID {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDriveKindsSeverities(t *testing.T) {
	if SeverityOf(KindStorageForecast) != SeverityWarning || SeverityOf(KindRetentionShort) != SeverityWarning {
		t.Fatal("storage_forecast and retention_short are warnings unless the evaluation says otherwise")
	}
	if !ValidKind(KindStorageForecast) || !ValidKind(KindRetentionShort) {
		t.Fatal("kinds must be well-formed")
	}
}

func TestParseDriveRole(t *testing.T) {
	for in, want := range map[string]DriveRole{"": DriveOther, "recording": DriveRecording, "archive": DriveArchive, "other": DriveOther} {
		if got, err := ParseDriveRole(in); err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	if _, err := ParseDriveRole("Recording"); ErrorCode(err) != EINVALID {
		t.Error("a role is lower-case")
	}
}
