package keepwatch

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

const (
	gb = 1_000_000_000
	tb = 1000 * gb
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// samples makes n samples step apart from start, used(t) bytes used
// of capacity at each.
func samples(start time.Time, n int, step time.Duration, capacity uint64, used func(i int, t time.Time) float64) []DriveSample {
	out := make([]DriveSample, n)
	for i := range out {
		at := start.Add(time.Duration(i) * step)
		u := min(max(used(i, at), 0), float64(capacity))
		out[i] = DriveSample{At: at, Capacity: capacity, Free: capacity - uint64(u)}
	}
	return out
}

// fourteenDays: 5-minute samples over 14 days, the forecast's window.
const fourteenDays = 14 * 24 * 12

func lastAt(s []DriveSample) time.Time { return s[len(s)-1].At }

func days(t time.Time) float64 { return t.Sub(t0).Hours() / 24 }

func TestForecastSteadyFillGivesTheFullDate(t *testing.T) {
	// 1 TB at 50 %, filling 20 GB a day: 500 GB free, full in 25 days.
	ss := samples(t0, fourteenDays, 5*time.Minute, tb, func(_ int, at time.Time) float64 { return 220*gb + 20*gb*days(at) })
	now := lastAt(ss)
	f := ForecastFill(ss, now)
	if !f.Filling() {
		t.Fatalf("a steadily filling drive: %+v", f)
	}
	if math.Abs(f.DaysUntilFull-25) > 0.1 || math.Abs(f.SlopeBytesPerDay-20*gb) > 0.01*gb {
		t.Fatalf("full in %.2f days at %.1f GB/day, want 25 days at 20 GB/day", f.DaysUntilFull, f.SlopeBytesPerDay/gb)
	}
	if want := now.Add(25 * 24 * time.Hour); f.FullAt.Sub(want).Abs() > 3*time.Hour {
		t.Fatalf("full at %s, want about %s", f.FullAt, want)
	}
	// An hour later, nothing new measured: the full date stays, the days
	// until it shrink.
	later := ForecastFill(ss, now.Add(time.Hour))
	if later.FullAt.Sub(f.FullAt).Abs() > time.Minute || math.Abs(f.DaysUntilFull-later.DaysUntilFull-1.0/24) > 0.001 {
		t.Fatalf("an hour later: %+v, before %+v", later, f)
	}
}

func TestForecastWithNoiseAndADailyRhythm(t *testing.T) {
	// Footage grows only from 08:00 to 20:00 (motion recording), 30 GB
	// a day, with ±2 GB of measurement noise: still 30 GB/day.
	rnd := rand.New(rand.NewPCG(1, 2))
	ss := samples(t0, fourteenDays, 5*time.Minute, 2*tb, func(_ int, at time.Time) float64 {
		d := math.Floor(days(at))
		h := at.Sub(t0.Add(time.Duration(d) * 24 * time.Hour)).Hours()
		today := min(max(h-8, 0), 12) / 12
		return 1*tb + 30*gb*(d+today) + rnd.NormFloat64()*2*gb
	})
	f := ForecastFill(ss, lastAt(ss))
	if !f.Filling() || math.Abs(f.SlopeBytesPerDay-30*gb) > 1.5*gb {
		t.Fatalf("daily rhythm: %+v (%.1f GB/day), want filling at 30 GB/day", f, f.SlopeBytesPerDay/gb)
	}
	// 2 TB − (1 TB + 13.98 × 30 GB) ≈ 580 GB free: ~19 days.
	if f.DaysUntilFull < 17 || f.DaysUntilFull > 21 {
		t.Fatalf("full in %.1f days, want about 19", f.DaysUntilFull)
	}
}

// sawtooth is a drive the recorder holds at a level: it records rate
// bytes a day and, whenever used reaches hi, deletes the oldest footage
// down to lo.
func sawtooth(capacity uint64, lo, hi, rate float64, n int, rnd *rand.Rand) []DriveSample {
	used := lo
	prev := t0
	return samples(t0, n, 5*time.Minute, capacity, func(_ int, at time.Time) float64 {
		used += rate * at.Sub(prev).Hours() / 24
		prev = at
		if used >= hi {
			used = lo + (used - hi)
		}
		if rnd != nil {
			return used + rnd.NormFloat64()*0.0005*float64(capacity)
		}
		return used
	})
}

func TestForecastRetentionManagedDriveIsNotFilling(t *testing.T) {
	for _, c := range []struct {
		name   string
		lo, hi float64 // of the capacity
		rate   float64 // of the capacity a day
	}{
		{"held at 95 %, deletes 1 % at a time", 0.945, 0.955, 0.02},
		{"held at 95 %, deletes in small steps", 0.949, 0.951, 0.05},
		{"held at 99 %, fast recorder", 0.985, 0.995, 0.10},
		{"held at 92 %, slow recorder", 0.91, 0.93, 0.005},
	} {
		for seed := range uint64(5) {
			rnd := rand.New(rand.NewPCG(seed, 7))
			ss := sawtooth(4*tb, c.lo*4*tb, c.hi*4*tb, c.rate*4*tb, fourteenDays, rnd)
			f := ForecastFill(ss, lastAt(ss))
			if f.Trend != TrendRetentionManaged {
				t.Errorf("%s (seed %d): %s, %.3f %%/day, level %.3f; want retention_managed", c.name, seed, f.Trend, f.SlopeBytesPerDay/(4*tb)*100, f.Level)
			}
		}
	}
}

func TestForecastDriveThatFilledAndThenWasHeldIsNotFilling(t *testing.T) {
	// 12 days from 40 % up at 5 %/day, then the recorder holds it at 95 %
	// for the last 2 days: the whole window rises, the recent part does not.
	const capacity = 1 * tb
	held := false
	ss := samples(t0, fourteenDays, 5*time.Minute, capacity, func(i int, at time.Time) float64 {
		u := 0.40 + 0.05*days(at)
		if u >= 0.95 || held {
			held = true
			u = 0.95 - 0.005*math.Mod(float64(i), 12)/12
		}
		return u * capacity
	})
	f := ForecastFill(ss, lastAt(ss))
	if f.Filling() || f.Trend != TrendRetentionManaged {
		t.Fatalf("filled, then held at 95 %%: %+v", f)
	}
}

func TestForecastAcceleratingDriveUsesTheRecentSlope(t *testing.T) {
	// Flat at 60 % for 12 days, then cameras were added: 4 %/day for the
	// last 2 days. The window's median slope is about 0; the recent one
	// fills the remaining ~32 % in 8 days.
	const capacity = 1 * tb
	ss := samples(t0, fourteenDays, 5*time.Minute, capacity, func(_ int, at time.Time) float64 {
		d := days(at)
		return (0.60 + 0.04*max(d-12, 0)) * capacity
	})
	f := ForecastFill(ss, lastAt(ss))
	if !f.Filling() || f.DaysUntilFull < 7.5 || f.DaysUntilFull > 8.5 {
		t.Fatalf("an accelerating drive: %+v, want full in about 8 days", f)
	}
}

func TestForecastEmptyingDriveHasNoFullDate(t *testing.T) {
	ss := samples(t0, fourteenDays, 5*time.Minute, tb, func(_ int, at time.Time) float64 { return 900*gb - 30*gb*days(at) })
	f := ForecastFill(ss, lastAt(ss))
	if f.Trend != TrendEmptying || f.Filling() || !f.FullAt.IsZero() {
		t.Fatalf("an emptying drive: %+v", f)
	}
}

func TestForecastFlatNoisyDriveNeverFills(t *testing.T) {
	// Flat at 50 % and at 98 % with ±1 % noise: across 40 noise draws no
	// verdict of filling (a false warning is what makes people ignore
	// them).
	for _, level := range []float64{0.5, 0.98} {
		for seed := range uint64(40) {
			rnd := rand.New(rand.NewPCG(seed, 99))
			ss := samples(t0, fourteenDays, 5*time.Minute, tb, func(int, time.Time) float64 {
				return (level + rnd.NormFloat64()*0.01) * tb
			})
			if f := ForecastFill(ss, lastAt(ss)); f.Filling() {
				t.Errorf("flat at %.0f %% (seed %d) forecast as filling: %+v", level*100, seed, f)
			}
		}
	}
}

func TestForecastASingleOutlierDoesNotChangeTheVerdict(t *testing.T) {
	for _, c := range []struct {
		name string
		used func(int, time.Time) float64
	}{
		{"filling", func(_ int, at time.Time) float64 { return 300*gb + 25*gb*days(at) }},
		{"flat", func(int, time.Time) float64 { return 500 * gb }},
		{"held at 95 %", func(i int, _ time.Time) float64 { return (0.95 - 0.004*math.Mod(float64(i), 24)/24) * tb }},
		{"emptying", func(_ int, at time.Time) float64 { return 800*gb - 20*gb*days(at) }},
	} {
		base := samples(t0, fourteenDays, 5*time.Minute, tb, c.used)
		now := lastAt(base)
		want := ForecastFill(base, now)
		for _, pos := range []int{0, 1, fourteenDays / 2, fourteenDays - 200, fourteenDays - 2, fourteenDays - 1} {
			for _, free := range []uint64{0, tb} { // full for a moment, or empty
				ss := append([]DriveSample(nil), base...)
				ss[pos].Free = free
				got := ForecastFill(ss, now)
				if got.Trend != want.Trend {
					t.Errorf("%s: an outlier (free %d) at %d turned %s into %s", c.name, free, pos, want.Trend, got.Trend)
				}
				if want.Filling() && math.Abs(got.DaysUntilFull-want.DaysUntilFull) > 0.02*want.DaysUntilFull {
					t.Errorf("%s: an outlier at %d moved the full date from %.2f to %.2f days", c.name, pos, want.DaysUntilFull, got.DaysUntilFull)
				}
			}
		}
	}
}

func TestForecastNeedsEnoughRecentPoints(t *testing.T) {
	fill := func(_ int, at time.Time) float64 { return 300*gb + 25*gb*days(at) }
	cases := []struct {
		name string
		ss   []DriveSample
		now  func([]DriveSample) time.Time
		want Trend
	}{
		{"no samples", nil, func([]DriveSample) time.Time { return t0 }, TrendUnknown},
		{"11 points over 2 days", samples(t0, 11, 4*time.Hour+48*time.Minute, tb, fill), lastAt, TrendUnknown},
		{"12 points over 2 days", samples(t0, 12, 4*time.Hour+22*time.Minute, tb, fill), lastAt, TrendFilling},
		{"23 hours of 5-minute samples", samples(t0, 23*12, 5*time.Minute, tb, fill), lastAt, TrendUnknown},
		{"24 hours of 5-minute samples", samples(t0, 24*12+1, 5*time.Minute, tb, fill), lastAt, TrendFilling},
		{"latest sample 25 hours old", samples(t0, fourteenDays, 5*time.Minute, tb, fill),
			func(s []DriveSample) time.Time { return lastAt(s).Add(25 * time.Hour) }, TrendUnknown},
		{"only samples older than the window", samples(t0, 100, time.Hour, tb, fill),
			func(s []DriveSample) time.Time { return lastAt(s).Add(ForecastWindow) }, TrendUnknown},
		{"samples after now are ignored", samples(t0, 100, time.Hour, tb, fill),
			func([]DriveSample) time.Time { return t0.Add(10 * time.Hour) }, TrendUnknown},
	}
	for _, c := range cases {
		if got := ForecastFill(c.ss, c.now(c.ss)); got.Trend != c.want {
			t.Errorf("%s: %s, want %s (%+v)", c.name, got.Trend, c.want, got)
		}
	}
}

func TestForecastIgnoresSamplesOfAReplacedDrive(t *testing.T) {
	// 7 days of a 500 GB drive at 90 % held flat, then a 2 TB drive from
	// 20 % filling 40 GB a day: the forecast is the new drive's.
	old := samples(t0, 7*24*12, 5*time.Minute, 500*gb, func(int, time.Time) float64 { return 450 * gb })
	start := lastAt(old).Add(5 * time.Minute)
	neu := samples(start, 7*24*12, 5*time.Minute, 2*tb, func(_ int, at time.Time) float64 { return 400*gb + 40*gb*at.Sub(start).Hours()/24 })
	ss := append(old, neu...)
	f := ForecastFill(ss, lastAt(ss))
	if !f.Filling() || math.Abs(f.SlopeBytesPerDay-40*gb) > gb || f.Points != len(neu) {
		t.Fatalf("a replaced drive: %+v", f)
	}
}

func TestForecastOfAFullFillingDriveIsNow(t *testing.T) {
	// 700 GB to 1 TB in 3 days: the last sample is full.
	n := 3*24*12 + 1
	ss := samples(t0, n, 5*time.Minute, tb, func(i int, _ time.Time) float64 { return 700*gb + 300*gb*float64(i)/float64(n-1) })
	f := ForecastFill(ss, lastAt(ss))
	if !f.Filling() || f.DaysUntilFull > 0.01 {
		t.Fatalf("a drive that filled up: %+v", f)
	}
}

func TestForecastOrderOfSamplesDoesNotMatter(t *testing.T) {
	ss := samples(t0, fourteenDays, 5*time.Minute, tb, func(_ int, at time.Time) float64 { return 300*gb + 25*gb*days(at) })
	want := ForecastFill(ss, lastAt(ss))
	rnd := rand.New(rand.NewPCG(3, 3))
	shuffled := append([]DriveSample(nil), ss...)
	rnd.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	if got := ForecastFill(shuffled, lastAt(ss)); got != want {
		t.Fatalf("shuffled: %+v, sorted: %+v", got, want)
	}
}

func TestThinKeepsAtMostMaxPointsEvenlyInTime(t *testing.T) {
	// A day of 1-minute samples and 13 days of hourly ones: thinning
	// must not give the dense day most of the weight.
	dense := samples(t0.Add(13*24*time.Hour), 24*60, time.Minute, tb, func(int, time.Time) float64 { return 1 })
	sparse := samples(t0, 13*24, time.Hour, tb, func(int, time.Time) float64 { return 1 })
	pts := forecastWindow(append(sparse, dense...), t0.Add(15*24*time.Hour))
	out := thin(pts, ForecastMaxPoints)
	if len(out) > ForecastMaxPoints {
		t.Fatalf("%d points, want at most %d", len(out), ForecastMaxPoints)
	}
	inLastDay := 0
	for _, p := range out {
		if p.at >= t0.Add(13*24*time.Hour).UnixNano() {
			inLastDay++
		}
	}
	if inLastDay > ForecastMaxPoints/14+2 {
		t.Fatalf("%d of %d points from the last of 14 days", inLastDay, len(out))
	}
}

func BenchmarkForecastFourteenDaysOfFiveMinuteSamples(b *testing.B) {
	rnd := rand.New(rand.NewPCG(1, 1))
	ss := samples(t0, fourteenDays, 5*time.Minute, tb, func(_ int, at time.Time) float64 {
		return 300*gb + 25*gb*days(at) + rnd.NormFloat64()*gb
	})
	now := lastAt(ss)
	b.ReportAllocs()
	for b.Loop() {
		ForecastFill(ss, now)
	}
}

func TestForecastNearlyFullDriveThatKeepsFillingFills(t *testing.T) {
	// 89 % to 94.6 % in 14 days (0.4 %/day), ±0.05 % noise: no recorder
	// holds it, it fills: ~13.5 days left.
	rnd := rand.New(rand.NewPCG(5, 5))
	ss := samples(t0, fourteenDays, 5*time.Minute, 8*tb, func(_ int, at time.Time) float64 {
		return (0.89 + 0.004*days(at) + rnd.NormFloat64()*0.0005) * 8 * tb
	})
	f := ForecastFill(ss, lastAt(ss))
	if !f.Filling() || f.DaysUntilFull < 12.5 || f.DaysUntilFull > 14.5 {
		t.Fatalf("a nearly full drive still filling: %+v", f)
	}
}

func TestNthAgreesWithSorting(t *testing.T) {
	rnd := rand.New(rand.NewPCG(8, 8))
	for _, n := range []int{1, 2, 3, 10, 101, 1000} {
		for trial := 0; trial < 20; trial++ {
			a := make([]float64, n)
			for i := range a {
				a[i] = float64(rnd.IntN(n/2 + 1)) // with ties
			}
			sorted := slices.Clone(a)
			slices.Sort(sorted)
			k := rnd.IntN(n)
			if got := nth(a, k); got != sorted[k] {
				t.Fatalf("n=%d k=%d: %v, want %v", n, k, got, sorted[k])
			}
			for i := range a {
				if i < k && a[i] > a[k] || i > k && a[i] < a[k] {
					t.Fatalf("n=%d k=%d: not partitioned at %d", n, k, i)
				}
			}
		}
	}
}
