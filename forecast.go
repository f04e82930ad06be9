package keepwatch

import (
	"math"
	"slices"
	"sort"
	"time"
)

// How a drive's fill forecast is made. A drive's used space (Capacity −
// Free) is fitted against time with the Theil–Sen estimator: the median
// of the slopes between every pair of points. Half the points can be
// anywhere without moving a median far, so a stray measurement (a
// temporary file, a statfs of a remounting volume) does not change the
// verdict, and a drive's daily rhythm (more footage by day than by night)
// averages out over whole days.
//
// The rules, applied to the samples of the last ForecastWindow:
//
//  1. Samples whose capacity differs by more than 1 % from the drive's
//     current capacity (the median of the last five) are left out: the
//     drive was replaced or resized, and its old fill says nothing now.
//  2. No verdict (TrendUnknown) with fewer than ForecastMinPoints samples,
//     a span under ForecastMinSpan, or a latest sample older than
//     ForecastStaleAfter. A day is the least that averages out a day's
//     rhythm; storage_low and storage_full cover a drive that fills in
//     hours.
//  3. At most ForecastMaxPoints points are fitted: the span is cut into
//     that many equal slices of time and each slice gives its median
//     point, so pairs stay ≤ 8,128 and a day of 5-minute samples weighs
//     no more than a day of hourly aggregates.
//  4. A trend is a rise only when it is significant twice over:
//     statistically, the lower bound of the slope's one-sided 99 %
//     confidence interval (Sen's, from Kendall's S) is above zero; and
//     against the noise, the rise the line claims over the span exceeds
//     the band that holds the middle 80 % of the residuals (at least
//     0.1 % of the capacity). A drive that the recorder keeps at a level
//     by deleting old footage saws up and down within such a band and its
//     line barely moves; a drive that fills leaves the band behind.
//     Falling is judged the same way, mirrored.
//  5. The last ForecastRecent (48 h) are fitted too, and decide: a drive
//     that filled for days and then stopped (the recorder reached its
//     limit and began deleting) is no longer filling, and one that was
//     flat and began to fill (cameras added) is. When both rise, the
//     whole window's slope is used unless the recent one is clearly
//     steeper (its lower bound above 1.25 × the window's slope): then the
//     drive accelerated, and the recent slope is used. (Sen's interval
//     assumes independent points; a day's rhythm makes neighbours alike
//     and the interval narrow, hence the margin.)
//  6. A drive whose recent median used is ≥ RetentionManagedLevel (90 %)
//     of its capacity is filling only when the whole window and the last
//     48 h both rise. A recorder that holds a drive at a level by
//     deleting in large steps rises for days between deletions, which
//     the last 48 h alone cannot tell from filling; storage_low (10 %
//     free by default) already speaks for a drive that full.
//     Not filling at that level: TrendRetentionManaged, the flat line of
//     a recorder that holds the drive full on purpose. Not rising below
//     it: TrendSteady. Falling (the last 48 h): TrendEmptying.
//  7. Only TrendFilling has a full date: the latest sample's time plus
//     the free space (capacity minus the median used of the last five
//     samples) over the slope.
const (
	ForecastWindow        = 14 * 24 * time.Hour
	ForecastRecent        = 48 * time.Hour
	ForecastMinSpan       = 24 * time.Hour
	ForecastMinPoints     = 12
	ForecastMaxPoints     = 128
	ForecastStaleAfter    = 24 * time.Hour
	RetentionManagedLevel = 0.90
)

const (
	forecastZ       = 2.326 // one-sided 99 % normal quantile
	forecastMinBand = 0.001 // least noise band, a fraction of the capacity
	capacityDrift   = 0.01  // samples of another capacity are left out
	accelerated     = 1.25  // recent slope's lower bound over the window's
)

// Trend is the verdict of a drive's forecast.
type Trend string

// Trends.
const (
	TrendFilling          Trend = "filling"
	TrendSteady           Trend = "steady"
	TrendRetentionManaged Trend = "retention_managed"
	TrendEmptying         Trend = "emptying"
	TrendUnknown          Trend = "unknown" // too few points, too short a span, or stale
)

// Forecast is what a drive's samples say about its future.
type Forecast struct {
	Trend Trend
	// SlopeBytesPerDay is the growth of the used space: the slope the
	// full date is computed from when filling, else the recent one.
	SlopeBytesPerDay float64
	// DaysUntilFull and FullAt are set only when Trend is TrendFilling.
	DaysUntilFull float64
	FullAt        time.Time
	// Level is the recent median used fraction of the capacity.
	Level  float64
	Points int           // samples considered (after rule 1)
	Span   time.Duration // from the first to the last of them
}

// Filling reports whether the drive has a full date.
func (f Forecast) Filling() bool { return f.Trend == TrendFilling }

// ForecastFill forecasts when a drive is full from its samples (any
// order, any age: only the last ForecastWindow before now count).
func ForecastFill(samples []DriveSample, now time.Time) Forecast {
	f := Forecast{Trend: TrendUnknown}
	pts := forecastWindow(samples, now)
	if len(pts) == 0 {
		return f
	}
	latest := pts[len(pts)-1]
	latestAt := time.Unix(0, latest.at)
	capacity := latest.capacity
	f.Points, f.Span = len(pts), time.Duration(latest.at-pts[0].at)
	f.Level = medianUsed(since(pts, latest.at-int64(24*time.Hour))) / capacity
	if now.Sub(latestAt) > ForecastStaleAfter || len(pts) < ForecastMinPoints || f.Span < ForecastMinSpan {
		return f
	}
	whole := fitTrend(pts)
	recent := whole
	if f.Span > ForecastRecent {
		if rp := since(pts, latest.at-int64(ForecastRecent)); len(rp) >= ForecastMinPoints && time.Duration(rp[len(rp)-1].at-rp[0].at) >= ForecastMinSpan {
			recent = fitTrend(rp)
		}
	}
	f.SlopeBytesPerDay = recent.slope
	high := f.Level >= RetentionManagedLevel
	switch {
	case recent.rising(capacity) && (!high || whole.rising(capacity)):
		slope := recent.slope
		if whole.rising(capacity) && recent.lower <= accelerated*whole.slope {
			slope = whole.slope
		}
		free := max(capacity-medianUsed(pts[max(0, len(pts)-5):]), 0)
		days := free / slope
		f.Trend, f.SlopeBytesPerDay = TrendFilling, slope
		f.FullAt = latestAt.Add(time.Duration(days * 24 * float64(time.Hour))).In(now.Location())
		f.DaysUntilFull = max(f.FullAt.Sub(now).Hours()/24, 0)
	case recent.falling(capacity):
		f.Trend = TrendEmptying
	case high:
		f.Trend = TrendRetentionManaged
	default:
		f.Trend = TrendSteady
	}
	return f
}

// obs is a sample as the fit sees it: Unix nanoseconds and bytes.
type obs struct {
	at             int64
	used, capacity float64
}

func obsLess(a, b obs) int {
	switch {
	case a.at < b.at:
		return -1
	case a.at > b.at:
		return 1
	}
	return 0
}

// forecastWindow returns the samples of the window before now that share
// the drive's current capacity, oldest first (rule 1).
func forecastWindow(samples []DriveSample, now time.Time) []obs {
	pts := make([]obs, 0, len(samples))
	from := now.Add(-ForecastWindow)
	for _, s := range samples {
		if s.Capacity > 0 && !s.At.After(now) && s.At.After(from) {
			pts = append(pts, obs{s.At.UnixNano(), float64(s.Used()), float64(s.Capacity)})
		}
	}
	if len(pts) == 0 {
		return nil
	}
	if !slices.IsSortedFunc(pts, obsLess) {
		slices.SortStableFunc(pts, obsLess)
	}
	var caps []float64
	for _, s := range pts[max(0, len(pts)-5):] {
		caps = append(caps, s.capacity)
	}
	ref := median(caps)
	out := pts[:0]
	for _, s := range pts {
		if math.Abs(s.capacity-ref) <= ref*capacityDrift {
			out = append(out, s)
		}
	}
	return out
}

// since returns the tail of sorted pts from t (Unix nanoseconds) on.
func since(pts []obs, t int64) []obs {
	i := sort.Search(len(pts), func(i int) bool { return pts[i].at >= t })
	return pts[i:]
}

func medianUsed(pts []obs) float64 {
	u := make([]float64, len(pts))
	for i, s := range pts {
		u[i] = s.used
	}
	return median(u)
}

// trendFit is a Theil–Sen line through used space over time, in bytes
// and days.
type trendFit struct {
	slope, lower, upper float64 // bytes a day; the 99 % one-sided bounds
	band                float64 // bytes: P90 − P10 of the residuals
	span                float64 // days
}

func (t trendFit) significant(capacity float64) float64 {
	return max(t.band, forecastMinBand*capacity)
}

func (t trendFit) rising(capacity float64) bool {
	return t.slope > 0 && t.lower > 0 && t.slope*t.span > t.significant(capacity)
}

func (t trendFit) falling(capacity float64) bool {
	return t.slope < 0 && t.upper < 0 && -t.slope*t.span > t.significant(capacity)
}

// fitTrend fits sorted samples (rules 3 and 4).
func fitTrend(pts []obs) trendFit {
	type xy struct{ t, u float64 }
	t0 := pts[0].at
	var ps []xy
	for _, s := range thin(pts, ForecastMaxPoints) {
		ps = append(ps, xy{float64(s.at-t0) / float64(24*time.Hour), s.used})
	}
	n := len(ps)
	slopes := make([]float64, 0, n*(n-1)/2)
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			if dt := ps[j].t - ps[i].t; dt > 0 {
				slopes = append(slopes, (ps[j].u-ps[i].u)/dt)
			}
		}
	}
	fit := trendFit{span: ps[n-1].t - ps[0].t, lower: math.Inf(-1), upper: math.Inf(1)}
	if len(slopes) == 0 {
		return fit
	}
	// Three order statistics of up to 8,128 slopes: selection, not a
	// sort. After nth(k), a[:k] holds the k smallest.
	m := len(slopes)
	k := (m - 1) / 2
	mid := nth(slopes, k)
	fit.slope = mid
	if m%2 == 0 {
		fit.slope = (mid + slices.Min(slopes[k+1:])) / 2
	}
	// Sen's confidence interval: Var(S) of Kendall's S without ties.
	nn := float64(n)
	c := forecastZ * math.Sqrt(nn*(nn-1)*(2*nn+5)/18)
	if lo := int(math.Floor((float64(m)-c)/2)) - 1; lo >= 0 {
		fit.lower = mid
		if lo < k {
			fit.lower = nth(slopes[:k], lo)
		}
	}
	if hi := int(math.Ceil((float64(m) + c) / 2)); hi < m {
		fit.upper = mid
		if hi > k {
			fit.upper = nth(slopes[k+1:], hi-k-1)
		}
	}
	res := make([]float64, n)
	for i, p := range ps {
		res[i] = p.u - fit.slope*p.t
	}
	b := median(res)
	for i := range res {
		res[i] -= b
	}
	slices.Sort(res)
	fit.band = quantile(res, 0.9) - quantile(res, 0.1)
	return fit
}

// nth moves the k-th smallest of a to a[k], the smaller ones before it
// and the larger after, and returns it: quickselect with a
// median-of-three pivot, which sorts what is left when it takes too many
// rounds (input chosen to defeat the pivot stays O(n log n)).
func nth(a []float64, k int) float64 {
	lo, hi := 0, len(a)-1
	for rounds := 0; hi > lo; rounds++ {
		if rounds > 64 {
			slices.Sort(a[lo : hi+1])
			break
		}
		mid := lo + (hi-lo)/2
		if a[mid] < a[lo] {
			a[mid], a[lo] = a[lo], a[mid]
		}
		if a[hi] < a[lo] {
			a[hi], a[lo] = a[lo], a[hi]
		}
		if a[hi] < a[mid] {
			a[hi], a[mid] = a[mid], a[hi]
		}
		p := a[mid]
		i, j := lo, hi
		for i <= j {
			for a[i] < p {
				i++
			}
			for a[j] > p {
				j--
			}
			if i <= j {
				a[i], a[j] = a[j], a[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return a[k]
		}
	}
	return a[k]
}

// thin keeps at most max of sorted pts: the span is cut into max equal
// slices of time, and each slice keeps its median point by used space.
func thin(pts []obs, maxPts int) []obs {
	if len(pts) <= maxPts {
		return pts
	}
	t0, span := pts[0].at, float64(pts[len(pts)-1].at-pts[0].at)
	out := make([]obs, 0, maxPts)
	byUsed := func(a, b obs) int {
		switch {
		case a.used < b.used:
			return -1
		case a.used > b.used:
			return 1
		}
		return obsLess(a, b)
	}
	var slice []obs
	cur := -1
	flush := func() {
		if len(slice) == 0 {
			return
		}
		slices.SortFunc(slice, byUsed)
		out = append(out, slice[(len(slice)-1)/2])
		slice = slice[:0]
	}
	for _, p := range pts {
		k := min(int(float64(p.at-t0)/span*float64(maxPts)), maxPts-1)
		if k != cur {
			flush()
			cur = k
		}
		slice = append(slice, p)
	}
	flush()
	slices.SortStableFunc(out, obsLess)
	return out
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return sortedMedian(s)
}

func sortedMedian(s []float64) float64 {
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// quantile of sorted s, linear between ranks.
func quantile(s []float64, q float64) float64 {
	if len(s) == 0 {
		return 0
	}
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (s[i+1]-s[i])*(pos-float64(i))
}
