package keepwatch

import (
	"math"
	"testing"
	"time"
)

// seriesStore holds one drive's points by key, as a store would, and
// carries out compaction plans.
type seriesStore struct {
	points []SeriesPoint // sorted, once asked for
	byKey  map[SeriesKey]SeriesPoint
	n      int
}

func (s *seriesStore) add(p SeriesPoint) {
	if s.byKey == nil {
		s.byKey = map[SeriesKey]SeriesPoint{}
	}
	s.byKey[SeriesKey{p.Res, p.At.UTC()}] = p
}

func (s *seriesStore) all() []SeriesPoint {
	out := make([]SeriesPoint, 0, len(s.byKey))
	for _, p := range s.byKey {
		out = append(out, p)
	}
	return out
}

func (s *seriesStore) compact(t *testing.T, now time.Time) CompactionPlan {
	t.Helper()
	plan := PlanCompaction(s.all(), now)
	for _, p := range plan.Upsert {
		s.add(p)
	}
	for _, k := range plan.Delete {
		delete(s.byKey, SeriesKey{k.Res, k.At.UTC()})
	}
	if s.n++; s.n%16 == 1 {
		if again := PlanCompaction(s.all(), now); !again.Empty() {
			t.Fatalf("compaction at %s is not idempotent: %+v", now, again)
		}
	}
	s.points = nil
	return plan
}

// sorted returns the points in time order.
func (s *seriesStore) sorted() []SeriesPoint {
	if s.points == nil {
		s.points = CompactionPlan{}.Apply(s.all())
	}
	return s.points
}

func (s *seriesStore) size() int { return len(s.byKey) }

func TestSeriesStaysWithinItsBoundOverYears(t *testing.T) {
	// 430 days of a sample every 5 minutes (the first day every minute, a
	// faster agent), compacted every 6 hours and, over the last 20 days
	// (when every resolution is full), every hour as a store would: then
	// never more than SeriesMaxPoints.
	var s seriesStore
	start := time.Date(2025, 1, 1, 0, 3, 0, 0, time.UTC)
	end := start.Add(430 * 24 * time.Hour)
	at, most := start, 0
	for i := 0; at.Before(end); i++ {
		used := uint64(i) % 1000
		s.add(PointOf(DriveSample{At: at, Capacity: 1000, Free: 1000 - used}))
		step := 5 * time.Minute
		if at.Before(start.Add(24 * time.Hour)) {
			step = time.Minute
		}
		next := at.Add(step)
		steady := next.After(end.Add(-20 * 24 * time.Hour))
		if next.Truncate(time.Hour) != at.Truncate(time.Hour) && (steady || next.Hour()%6 == 0) {
			s.compact(t, next)
			if steady {
				most = max(most, s.size())
			}
		}
		at = next
	}
	if most > SeriesMaxPoints {
		t.Fatalf("%d points after a compaction, bound %d", most, SeriesMaxPoints)
	}
	n := map[Resolution]int{}
	for _, p := range s.sorted() {
		n[p.Res]++
	}
	t.Logf("most %d points (bound %d); at the end %v", most, SeriesMaxPoints, n)
	if n[ResRaw] > 26*12 || n[ResHour] > 15*24 || n[ResDay] > 401 || n[ResDay] < 385 {
		t.Fatalf("points by resolution: %v", n)
	}
	oldest := s.sorted()[0]
	if oldest.Res != ResDay || oldest.At.Before(at.Add(-SeriesDailyKeep-24*time.Hour)) {
		t.Fatalf("oldest point %+v at %s", oldest, at)
	}
}

func TestCompactionAggregatesAreTheSamplesMinMaxAndLast(t *testing.T) {
	var s seriesStore
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	oldest := day.Add(-30 * 24 * time.Hour)
	var raw []DriveSample
	for i := 0; i < 24*12; i++ {
		at := day.Add(time.Duration(i) * 5 * time.Minute)
		used := uint64(500 + (i*37)%211) // 500 … 710
		d := DriveSample{At: at, Capacity: 1000, Free: 1000 - used, OldestRecording: oldest.Add(time.Duration(i) * time.Minute)}
		raw = append(raw, d)
		s.add(PointOf(d))
	}
	// A day and an hour later: every hour of that day is hourly.
	s.compact(t, day.Add(49*time.Hour))
	if len(s.sorted()) != 24 {
		t.Fatalf("%d points, want 24 hourly", len(s.sorted()))
	}
	for h, p := range s.sorted() {
		if p.Res != ResHour || !p.At.Equal(day.Add(time.Duration(h)*time.Hour)) || p.N != 12 {
			t.Fatalf("hour %d: %+v", h, p)
		}
		lo, hi := uint64(math.MaxUint64), uint64(0)
		for _, d := range raw[h*12 : h*12+12] {
			lo, hi = min(lo, d.Used()), max(hi, d.Used())
		}
		last := raw[h*12+11]
		if p.UsedMin != lo || p.UsedMax != hi || p.Free != last.Free || !p.LastAt.Equal(last.At) || !p.OldestRecording.Equal(last.OldestRecording) {
			t.Fatalf("hour %d: %+v, want min %d max %d last %+v", h, p, lo, hi, last)
		}
	}
	// 15 days later: one daily point with the day's figures.
	s.compact(t, day.Add(15*24*time.Hour+time.Minute))
	if len(s.sorted()) != 1 {
		t.Fatalf("%d points, want one day", len(s.sorted()))
	}
	p := s.sorted()[0]
	if p.Res != ResDay || !p.At.Equal(day) || p.N != 288 || p.UsedMin != 500 || p.UsedMax != 710 || !p.LastAt.Equal(raw[287].At) || p.Free != raw[287].Free {
		t.Fatalf("day: %+v", p)
	}
	// 400 days after its end it is gone.
	if plan := s.compact(t, day.Add(401*24*time.Hour)); len(plan.Delete) != 1 || len(s.sorted()) != 0 {
		t.Fatalf("after 400 days: %+v, left %+v", plan, s.sorted())
	}
}

func TestCompactionKeepsTheLastSampleOfAFiveMinuteSlot(t *testing.T) {
	var s seriesStore
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for i := 0; i < 5; i++ {
		s.add(PointOf(DriveSample{At: at.Add(time.Duration(i) * time.Minute), Capacity: 100, Free: uint64(90 - i)}))
	}
	plan := s.compact(t, at.Add(10*time.Minute))
	if len(plan.Delete) != 4 || len(s.sorted()) != 1 || s.sorted()[0].Free != 86 {
		t.Fatalf("plan %+v, left %+v", plan, s.sorted())
	}
}

func TestCompactionFoldsLateSamplesIntoTheirResolution(t *testing.T) {
	// The store holds hourly and daily points; an agent back from three
	// weeks offline uploads samples of 20 days ago and of 2 days ago.
	var s seriesStore
	now := time.Date(2026, 3, 30, 12, 0, 0, 0, time.UTC)
	d20 := ResDay.bucket(now.Add(-20 * 24 * time.Hour))
	h2 := ResHour.bucket(now.Add(-48 * time.Hour))
	s.add(SeriesPoint{Res: ResDay, At: d20, LastAt: d20.Add(20 * time.Hour), Capacity: 100, Free: 50, UsedMin: 40, UsedMax: 50, N: 10})
	s.add(SeriesPoint{Res: ResHour, At: h2, LastAt: h2.Add(30 * time.Minute), Capacity: 100, Free: 45, UsedMin: 55, UsedMax: 55, N: 1})
	s.add(PointOf(DriveSample{At: d20.Add(22 * time.Hour), Capacity: 100, Free: 30}))
	s.add(PointOf(DriveSample{At: d20.Add(3 * time.Hour), Capacity: 100, Free: 70}))
	s.add(PointOf(DriveSample{At: h2.Add(40 * time.Minute), Capacity: 100, Free: 20}))
	s.compact(t, now)
	if len(s.sorted()) != 2 {
		t.Fatalf("points: %+v", s.sorted())
	}
	day, hour := s.sorted()[0], s.sorted()[1]
	if day.Res != ResDay || day.N != 12 || day.UsedMin != 30 || day.UsedMax != 70 || day.Free != 30 || !day.LastAt.Equal(d20.Add(22*time.Hour)) {
		t.Fatalf("day: %+v", day)
	}
	if hour.Res != ResHour || hour.N != 2 || hour.UsedMin != 55 || hour.UsedMax != 80 || hour.Free != 20 {
		t.Fatalf("hour: %+v", hour)
	}
}

func TestSeriesRangePicksTheResolution(t *testing.T) {
	// A year of compacted history (sampled every 5 minutes where raw
	// samples are still kept).
	var s seriesStore
	now := time.Date(2026, 6, 1, 12, 2, 0, 0, time.UTC)
	step := func(at time.Time) time.Duration { // 5-minute samples for the last 2 days, 30 before
		if now.Sub(at) > 48*time.Hour {
			return 30 * time.Minute
		}
		return 5 * time.Minute
	}
	for at := now.Add(-365 * 24 * time.Hour); !at.After(now); at = at.Add(step(at)) {
		used := uint64(at.Sub(now.Add(-365 * 24 * time.Hour)).Hours()) // one byte an hour
		s.add(PointOf(DriveSample{At: at, Capacity: 1 << 40, Free: 1<<40 - used}))
		if at.Minute() == 0 && at.Hour()%6 == 0 {
			s.compact(t, at)
		}
	}
	s.compact(t, now)
	for _, c := range []struct {
		span   time.Duration
		res    Resolution
		lo, hi int
	}{
		{24 * time.Hour, ResRaw, 280, 290},
		{7 * 24 * time.Hour, ResHour, 168, 170},
		{30 * 24 * time.Hour, ResDay, 30, 31},
		{90 * 24 * time.Hour, ResDay, 90, 91},
		{365 * 24 * time.Hour, ResDay, 365, 366},
	} {
		got := SeriesRange(s.sorted(), now.Add(-c.span), now)
		if SeriesResolution(c.span) != c.res || len(got) < c.lo || len(got) > c.hi {
			t.Errorf("%s: %d points, want %s, %d to %d", c.span, len(got), c.res, c.lo, c.hi)
			continue
		}
		seen := map[time.Time]bool{}
		for i, p := range got {
			if p.Res != c.res || seen[p.At] || i > 0 && !got[i-1].At.Before(p.At) {
				t.Fatalf("%s: point %d %+v (duplicate, unsorted or of another resolution)", c.span, i, p)
			}
			seen[p.At] = true
		}
		if last := got[len(got)-1]; last.Free != 1<<40-uint64(365*24) {
			t.Errorf("%s: the last point ends at free %d", c.span, last.Free)
		}
	}
}

func TestForecastFromTheCompactedSeriesMatchesTheRawOne(t *testing.T) {
	var s seriesStore
	ss := fillingDrive(20*gb, 25, 0)
	for i, d := range ss {
		s.add(PointOf(d))
		if i%12 == 0 {
			s.compact(t, d.At)
		}
	}
	now := lastAt(ss)
	s.compact(t, now)
	raw := ForecastFill(ss, now)
	compact := ForecastFill(Samples(s.sorted()), now)
	if !compact.Filling() || math.Abs(compact.DaysUntilFull-raw.DaysUntilFull) > 0.05*raw.DaysUntilFull {
		t.Fatalf("from %d stored points: %+v; from %d samples: %+v", len(s.sorted()), compact, len(ss), raw)
	}
}
