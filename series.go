package keepwatch

import (
	"slices"
	"sort"
	"time"
)

// A drive's history is kept at three resolutions, so that it stays
// bounded whatever the age of the installation:
//
//   - raw samples for SeriesRawKeep (a day), at most one per
//     SeriesRawSlot (5 minutes): the last of a slot wins;
//   - hourly aggregates until SeriesHourlyKeep (14 days, the forecast's
//     window);
//   - daily aggregates until SeriesDailyKeep (400 days).
//
// A point moves to the coarser resolution only once its whole bucket is
// past the finer resolution's age, so an aggregate is built from a
// complete hour or day; points that arrive late (an agent uploading a
// week spent offline) go straight to the resolution of their age. Hours
// and days are UTC.
//
// The bound per drive, SeriesMaxPoints: raw points live while their hour
// ends within the last 24 h, so in at most 25 started hours plus the
// current one, 26 × 12 = 312; hourly points from the end of that to the
// day boundary 14 days back, at most 15 × 24 = 360; daily ones, 401.
// Together 1,073 points (a drive sampled every 5 minutes for years,
// compacted hourly, peaks at 1,009). A point is 10 numbers (drive,
// resolution, bucket start, last sample time, capacity, free, used min
// and max, oldest recording, count). Measured as one row per point keyed
// (drive, resolution, start), written in time order as samples arrive:
// SQLite (WITHOUT ROWID) 69 bytes a row, PostgreSQL 170 bytes a row with
// its primary key index; so at most ~74 KB per drive in SQLite and
// ~182 KB in PostgreSQL.
const (
	SeriesRawSlot    = 5 * time.Minute
	SeriesRawKeep    = 24 * time.Hour
	SeriesHourlyKeep = 14 * 24 * time.Hour
	SeriesDailyKeep  = 400 * 24 * time.Hour
	SeriesMaxPoints  = 26*12 + 15*24 + 401
)

// Resolution of a series point.
type Resolution string

// Resolutions, finest first.
const (
	ResRaw  Resolution = "raw"
	ResHour Resolution = "hour"
	ResDay  Resolution = "day"
)

func (r Resolution) rank() int {
	switch r {
	case ResHour:
		return 1
	case ResDay:
		return 2
	}
	return 0
}

// bucket returns the start of the bucket of resolution r holding t.
func (r Resolution) bucket(t time.Time) time.Time {
	switch r {
	case ResHour:
		return t.UTC().Truncate(time.Hour)
	case ResDay:
		y, m, d := t.UTC().Date()
		return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	}
	return t.UTC()
}

// Length is the time a bucket of r covers; 0 for a raw sample.
func (r Resolution) Length() time.Duration {
	switch r {
	case ResHour:
		return time.Hour
	case ResDay:
		return 24 * time.Hour
	}
	return 0
}

// SeriesPoint is a stored point of a drive's history: a raw sample, or
// the aggregate of the samples of an hour or a day. Capacity, Free and
// OldestRecording are those of the bucket's last sample (LastAt); UsedMin
// and UsedMax span its samples.
type SeriesPoint struct {
	Res             Resolution
	At              time.Time // the sample's time, or the bucket's start
	LastAt          time.Time
	Capacity        uint64
	Free            uint64
	UsedMin         uint64
	UsedMax         uint64
	OldestRecording time.Time
	N               int // samples aggregated
}

// SeriesKey identifies a stored point of a drive.
type SeriesKey struct {
	Res Resolution
	At  time.Time
}

// Key returns the point's key.
func (p SeriesPoint) Key() SeriesKey { return SeriesKey{p.Res, p.At} }

// End is the end of the time the point covers.
func (p SeriesPoint) End() time.Time { return p.At.Add(p.Res.Length()) }

// PointOf makes a raw point of a sample.
func PointOf(s DriveSample) SeriesPoint {
	u := s.Used()
	at := s.At.UTC()
	return SeriesPoint{Res: ResRaw, At: at, LastAt: at, Capacity: s.Capacity, Free: s.Free,
		UsedMin: u, UsedMax: u, OldestRecording: s.OldestRecording, N: 1}
}

// Sample is the point as one sample for the forecast: at the middle of
// its bucket (but not after its last sample), with the middle of its
// used range. On a drive filling steadily that lies on the line; on one
// held at a level, at the level.
func (p SeriesPoint) Sample() DriveSample {
	if p.Res == ResRaw {
		return DriveSample{At: p.At, Capacity: p.Capacity, Free: p.Free, OldestRecording: p.OldestRecording}
	}
	at := p.At.Add(p.Res.Length() / 2)
	if !p.LastAt.IsZero() && p.LastAt.Before(at) {
		at = p.LastAt
	}
	used := p.UsedMin + (p.UsedMax-p.UsedMin)/2
	free := uint64(0)
	if used < p.Capacity {
		free = p.Capacity - used
	}
	return DriveSample{At: at, Capacity: p.Capacity, Free: free, OldestRecording: p.OldestRecording}
}

// Samples turns stored points into forecast samples.
func Samples(points []SeriesPoint) []DriveSample {
	out := make([]DriveSample, len(points))
	for i, p := range points {
		out[i] = p.Sample()
	}
	return out
}

// merge folds q into the aggregate p.
func (p *SeriesPoint) merge(q SeriesPoint) {
	if p.N == 0 {
		res, at := p.Res, p.At
		*p = q
		p.Res, p.At = res, at
		return
	}
	p.UsedMin, p.UsedMax = min(p.UsedMin, q.UsedMin), max(p.UsedMax, q.UsedMax)
	p.N += q.N
	if !q.LastAt.Before(p.LastAt) {
		p.LastAt, p.Capacity, p.Free = q.LastAt, q.Capacity, q.Free
		if !q.OldestRecording.IsZero() {
			p.OldestRecording = q.OldestRecording
		}
	} else if p.OldestRecording.IsZero() {
		p.OldestRecording = q.OldestRecording
	}
}

// CompactionPlan says how to bring a drive's stored points to their
// resolutions: write Upsert (new aggregates, or existing ones with more
// samples folded in; by key), then remove Delete. Both in one
// transaction, so a crash leaves either the old or the new points.
type CompactionPlan struct {
	Upsert []SeriesPoint
	Delete []SeriesKey
}

// Empty reports whether there is nothing to do.
func (c CompactionPlan) Empty() bool { return len(c.Upsert) == 0 && len(c.Delete) == 0 }

// target is the resolution a point belongs at, at now; "" means expired.
func target(p SeriesPoint, now time.Time) Resolution {
	if p.Res == ResRaw && ResHour.bucket(p.At).Add(time.Hour).After(now.Add(-SeriesRawKeep)) {
		return ResRaw
	}
	dayEnd := ResDay.bucket(p.At).Add(24 * time.Hour)
	switch {
	case p.Res.rank() <= ResHour.rank() && dayEnd.After(now.Add(-SeriesHourlyKeep)):
		return ResHour
	case dayEnd.After(now.Add(-SeriesDailyKeep)):
		return ResDay
	}
	return ""
}

// PlanCompaction works out, for one drive's stored points at now, which
// raw samples fold into which hourly bucket, which hourly buckets into
// which day, and what to delete: expired points, surplus raw samples of a
// 5-minute slot, and everything folded. points are distinct by key, as a
// store's primary key keeps them. Running the plan's result through it
// again plans nothing.
func PlanCompaction(points []SeriesPoint, now time.Time) CompactionPlan {
	type key struct {
		res Resolution
		at  int64
	}
	var plan CompactionPlan
	var movers []SeriesPoint
	targets := map[key]Resolution{}
	slots := map[int64]SeriesPoint{} // raw points staying raw: the last of each slot
	for _, p := range points {
		t := target(p, now)
		switch {
		case t == "":
			plan.Delete = append(plan.Delete, p.Key())
		case t == p.Res && t == ResRaw:
			slot := p.At.Truncate(SeriesRawSlot).UnixNano()
			if prev, ok := slots[slot]; !ok || !p.LastAt.Before(prev.LastAt) {
				if ok {
					plan.Delete = append(plan.Delete, prev.Key())
				}
				slots[slot] = p
			} else {
				plan.Delete = append(plan.Delete, p.Key())
			}
		case t != p.Res:
			movers = append(movers, p)
			targets[key{t, t.bucket(p.At).UnixNano()}] = t
		}
	}
	if len(movers) == 0 {
		sortKeys(plan.Delete)
		return plan
	}
	// Aggregates that receive points start from what is stored under
	// their key.
	agg := map[key]*SeriesPoint{}
	for _, p := range points {
		k := key{p.Res, p.At.UnixNano()}
		if _, ok := targets[k]; ok && agg[k] == nil {
			a := &SeriesPoint{Res: p.Res, At: p.At}
			a.merge(p)
			agg[k] = a
		}
	}
	// Oldest first, so that "last" fields end with the latest sample.
	sort.SliceStable(movers, func(i, j int) bool { return movers[i].LastAt.Before(movers[j].LastAt) })
	for _, p := range movers {
		t := target(p, now)
		b := t.bucket(p.At)
		k := key{t, b.UnixNano()}
		a := agg[k]
		if a == nil {
			a = &SeriesPoint{Res: t, At: b}
			agg[k] = a
		}
		a.merge(p)
		plan.Delete = append(plan.Delete, p.Key())
	}
	for _, a := range agg {
		plan.Upsert = append(plan.Upsert, *a)
	}
	sortPoints(plan.Upsert)
	sortKeys(plan.Delete)
	return plan
}

func sortKeys(ks []SeriesKey) {
	sort.Slice(ks, func(i, j int) bool {
		if ks[i].Res != ks[j].Res {
			return ks[i].Res.rank() < ks[j].Res.rank()
		}
		return ks[i].At.Before(ks[j].At)
	})
}

// Apply returns points after plan, sorted: what the store holds once it
// carried the plan out.
func (c CompactionPlan) Apply(points []SeriesPoint) []SeriesPoint {
	type key struct {
		res Resolution
		at  int64
	}
	m := make(map[key]SeriesPoint, len(points))
	for _, p := range points {
		m[key{p.Res, p.At.UnixNano()}] = p
	}
	for _, p := range c.Upsert {
		m[key{p.Res, p.At.UnixNano()}] = p
	}
	for _, k := range c.Delete {
		delete(m, key{k.Res, k.At.UnixNano()})
	}
	out := make([]SeriesPoint, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	sortPoints(out)
	return out
}

func sortPoints(ps []SeriesPoint) {
	slices.SortFunc(ps, func(a, b SeriesPoint) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return a.Res.rank() - b.Res.rank()
	})
}

// SeriesResolution is the resolution a chart of the last span shows:
// raw samples up to a day, hourly up to the forecast's window (14 days:
// 336 points), daily beyond (30, 90, 365 days: one point a day).
func SeriesResolution(span time.Duration) Resolution {
	switch {
	case span <= SeriesRawKeep:
		return ResRaw
	case span <= SeriesHourlyKeep:
		return ResHour
	}
	return ResDay
}

// SeriesRange returns a drive's history over [from, to] at the resolution
// SeriesResolution picks for its length: finer points are folded into
// buckets of that resolution on the fly (the last day of a 90-day chart
// is still raw in the store), coarser ones are shown as they are. Sorted
// by time; at most one point per bucket of the resolution.
func SeriesRange(points []SeriesPoint, from, to time.Time) []SeriesPoint {
	res := SeriesResolution(to.Sub(from))
	var out []SeriesPoint
	agg := map[time.Time]*SeriesPoint{}
	in := make([]SeriesPoint, 0, len(points))
	for _, p := range points {
		if !p.End().Before(from) && !p.At.After(to) {
			in = append(in, p)
		}
	}
	sort.Slice(in, func(i, j int) bool { return in[i].LastAt.Before(in[j].LastAt) })
	for _, p := range in {
		if p.Res.rank() > res.rank() {
			out = append(out, p)
			continue
		}
		b := res.bucket(p.At)
		a, ok := agg[b]
		if !ok {
			a = &SeriesPoint{Res: res, At: b}
			agg[b] = a
		}
		a.merge(p)
	}
	for _, a := range agg {
		out = append(out, *a)
	}
	sortPoints(out)
	return out
}
