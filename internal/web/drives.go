package web

import (
	"context"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"keepwatch"
)

// chartRanges are the spans a drive chart shows, as the page's range
// parameter names them.
var chartRanges = []struct {
	Key string
	D   time.Duration
}{{"30d", 30 * 24 * time.Hour}, {"90d", 90 * 24 * time.Hour}, {"365d", 365 * 24 * time.Hour}}

func chartSpan(key string) (string, time.Duration) {
	for _, c := range chartRanges {
		if c.Key == key {
			return c.Key, c.D
		}
	}
	return chartRanges[0].Key, chartRanges[0].D
}

// driveView is one drive on the installation page: its figures, its
// chart, and its footage against the requirement.
type driveView struct {
	keepwatch.DriveStatus
	Index     int
	Chart     template.HTML
	Retention template.HTML
	// Own is the retention required of this drive by name, "" when it
	// follows the installation's.
	Own string
}

// drivesData is the drives section of the installation page.
type drivesData struct {
	Drives   []driveView
	Range    string
	Ranges   []rangeLink
	Settings keepwatch.DriveSettings
}

type rangeLink struct {
	Key, Href string
	Current   bool
}

// loadDrives builds the drives section: each drive's status at now and
// its chart over the span rng names.
func (h *Handler) loadDrives(ctx context.Context, integratorID int64, slc, rng string, now time.Time) (drivesData, error) {
	key, span := chartSpan(rng)
	d := drivesData{Range: key}
	for _, c := range chartRanges {
		d.Ranges = append(d.Ranges, rangeLink{Key: c.Key, Href: "/installations/" + slc + "?range=" + c.Key + "#drives", Current: c.Key == key})
	}
	set, hs, err := h.Store.InstallationDrives(ctx, integratorID, slc, now)
	if err != nil {
		return d, err
	}
	d.Settings = set
	from := now.Add(-span)
	for i, hist := range hs {
		st := set.Status(hist, now)
		points, err := h.Store.DriveSeries(ctx, integratorID, slc, hist.Server, hist.Path, from)
		if err != nil {
			return d, err
		}
		v := driveView{DriveStatus: st, Index: i,
			Chart:     driveChart(st, keepwatch.SeriesRange(points, from, now), from, now, span),
			Retention: retentionBar(st)}
		if days, ok := set.PerDrive[hist.Path]; ok {
			v.Own = strconv.Itoa(days)
		}
		d.Drives = append(d.Drives, v)
	}
	return d, nil
}

// The chart's geometry, in SVG user units; the SVG scales to its box.
const (
	chartW, chartH = 600.0, 200.0
	chartL, chartR = 58.0, 8.0
	chartT, chartB = 12.0, 30.0
)

// driveChart draws a drive's used space over [from, now] as a share of
// its capacity: the day's range as a band, the last sample of each day
// as a line, and, when the drive is filling, the forecast as a dashed
// line to the full date (marked when it falls within the chart, which
// extends a fifth of its span past now).
func driveChart(st keepwatch.DriveStatus, points []keepwatch.SeriesPoint, from, now time.Time, span time.Duration) template.HTML {
	end := now.Add(span / 5)
	pw, ph := chartW-chartL-chartR, chartH-chartT-chartB
	x := func(t time.Time) float64 {
		return chartL + pw*float64(t.Sub(from))/float64(end.Sub(from))
	}
	y := func(frac float64) float64 {
		return chartT + ph*(1-math.Max(0, math.Min(1, frac)))
	}
	share := func(used, capacity uint64) float64 {
		if capacity == 0 {
			return 0
		}
		return float64(used) / float64(capacity)
	}
	var b strings.Builder
	label := fmt.Sprintf("Used space of %s over %s", st.Path, rangeWords(span))
	if st.DaysUntilFull != nil {
		label += fmt.Sprintf("; full around %s at the current trend", st.FullAt.UTC().Format(time.DateOnly))
	}
	fmt.Fprintf(&b, `<svg class="drive-chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s">`,
		chartW, chartH, template.HTMLEscapeString(label))
	for _, g := range []float64{0, 0.5, 1} {
		cls := "grid-line"
		if g == 1 {
			cls = "cap-line"
		}
		fmt.Fprintf(&b, `<line class="%s" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, cls, chartL, y(g), chartW-chartR, y(g))
		fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%.1f" text-anchor="end">%.0f %%</text>`, chartL-4, y(g)+4, g*100)
	}
	fmt.Fprintf(&b, `<line class="now-line" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, x(now), chartT, x(now), chartT+ph)
	fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%.1f">%s</text>`, chartL, chartH-8, from.UTC().Format("Jan 2"))
	fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%.1f" text-anchor="middle">today</text>`, x(now), chartH-8)
	if len(points) > 0 {
		var band, line []string
		for _, p := range points {
			at := p.At.Add(p.Res.Length() / 2)
			if at.After(p.LastAt) {
				at = p.LastAt
			}
			line = append(line, fmt.Sprintf("%.1f,%.1f", x(at), y(share(p.Capacity-min(p.Free, p.Capacity), p.Capacity))))
			band = append(band, fmt.Sprintf("%.1f,%.1f", x(at), y(share(p.UsedMax, p.Capacity))))
		}
		for i := len(points) - 1; i >= 0; i-- {
			p := points[i]
			at := p.At.Add(p.Res.Length() / 2)
			if at.After(p.LastAt) {
				at = p.LastAt
			}
			band = append(band, fmt.Sprintf("%.1f,%.1f", x(at), y(share(p.UsedMin, p.Capacity))))
		}
		fmt.Fprintf(&b, `<polygon class="used-band" points="%s"/>`, strings.Join(band, " "))
		fmt.Fprintf(&b, `<polyline class="used-line" points="%s"/>`, strings.Join(line, " "))
	}
	if st.DaysUntilFull != nil && st.CapacityBytes > 0 && !st.MeasuredAt.IsZero() {
		x0, y0 := x(st.MeasuredAt), y(share(st.CapacityBytes-st.FreeBytes, st.CapacityBytes))
		full := *st.FullAt
		if full.After(end) {
			// The line leaves the chart before the drive is full.
			days := end.Sub(st.MeasuredAt).Hours() / 24
			frac := share(st.CapacityBytes-st.FreeBytes, st.CapacityBytes) + st.GrowthBytesPerDay*days/float64(st.CapacityBytes)
			fmt.Fprintf(&b, `<line class="forecast" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, x0, y0, x(end), y(frac))
		} else {
			fmt.Fprintf(&b, `<line class="forecast" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, x0, y0, x(full), y(1))
			fmt.Fprintf(&b, `<circle class="full-mark" cx="%.1f" cy="%.1f" r="4"/>`, x(full), y(1))
			anchor := "end"
			if x(full) < chartL+pw/2 {
				anchor = "start"
			}
			fmt.Fprintf(&b, `<text class="full-label" x="%.1f" y="%.1f" text-anchor="%s">full %s</text>`, x(full), y(1)+20, anchor, full.UTC().Format("Jan 2"))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func rangeWords(span time.Duration) string {
	return fmt.Sprintf("the last %d days", int(span.Hours()/24))
}

// retentionBar draws the footage a drive keeps against the requirement:
// a bar of the days kept, with a mark at the days required.
func retentionBar(st keepwatch.DriveStatus) template.HTML {
	if st.RetentionDays == nil {
		return ""
	}
	kept, req := *st.RetentionDays, float64(st.RequiredRetentionDays)
	scale := math.Max(kept, req) * 1.1
	if scale <= 0 {
		scale = 1
	}
	cls := "ret-ok"
	if sev, short := keepwatch.RetentionSeverity(kept, st.RequiredRetentionDays); short {
		cls = "ret-" + string(sev)
	}
	const w, h = 300.0, 14.0
	label := fmt.Sprintf("Footage kept %.1f days", kept)
	if req > 0 {
		label += fmt.Sprintf(", %d required", st.RequiredRetentionDays)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="retention-bar" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s" preserveAspectRatio="none">`, w, h, template.HTMLEscapeString(label))
	fmt.Fprintf(&b, `<rect class="ret-track" x="0" y="2" width="%.0f" height="%.0f"/>`, w, h-4)
	fmt.Fprintf(&b, `<rect class="%s" x="0" y="2" width="%.1f" height="%.0f"/>`, cls, w*kept/scale, h-4)
	if req > 0 {
		fmt.Fprintf(&b, `<line class="ret-required" x1="%.1f" y1="0" x2="%.1f" y2="%.0f"/>`, w*req/scale, w*req/scale, h)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// setDriveSettings takes the drive settings form: the horizon, the
// retention required of recording drives, and per drive an optional
// requirement of its own.
func (h *Handler) setDriveSettings(w http.ResponseWriter, r *http.Request, rq *request) error {
	slc, err := slcParam(r)
	if err != nil {
		return err
	}
	refuse := func(field string, err error) error {
		if keepwatch.ErrorCode(err) != keepwatch.EINVALID {
			return err
		}
		return h.renderInstallation(w, r, rq, statusOfRefusal(err), refusedForm(r, "drives", field, err))
	}
	days := func(field, what string) (int, error) {
		v := strings.TrimSpace(r.PostFormValue(field))
		if v == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, keepwatch.Invalid(field, "%s is a whole number of days", what)
		}
		return n, nil
	}
	horizon, err := days("horizon", "the forecast horizon")
	if err != nil {
		return refuse("horizon", err)
	}
	if r.PostFormValue("horizon") != "" && horizon == 0 {
		return refuse("horizon", keepwatch.Invalid("horizon", "the forecast horizon is 1 to %d days", keepwatch.MaxForecastHorizonDays))
	}
	required, err := days("required", "the required retention")
	if err != nil {
		return refuse("required", err)
	}
	var per []keepwatch.DriveRequirement
	for i := 0; i < keepwatch.MaxDriveRequirements; i++ {
		path := r.PostFormValue("drive_path_" + strconv.Itoa(i))
		if path == "" {
			break
		}
		field := "drive_" + strconv.Itoa(i)
		if strings.TrimSpace(r.PostFormValue(field)) == "" {
			continue
		}
		n, err := days(field, "the retention required of "+path)
		if err != nil {
			return refuse(field, err)
		}
		per = append(per, keepwatch.DriveRequirement{Path: path, RequiredRetentionDays: n})
	}
	set, err := keepwatch.NewDriveSettings(horizon, required, per)
	if err != nil {
		field := "required"
		if strings.Contains(keepwatch.ErrorMessage(err), "horizon") {
			field = "horizon"
		}
		return refuse(field, err)
	}
	p := rq.principal()
	failed, err := keepwatch.ApplyDriveSettings(r.Context(), h.Store, p.IntegratorID, slc, set, h.now(), h.Publish)
	if err != nil {
		return err
	}
	for id, err := range failed {
		h.Logger.Warn("judge drives", "server", id, "err", err)
	}
	h.audit(r, rq, "drives.settings", slc, set.String())
	redirectTo(w, r, "/installations/"+slc, "drives", "drives")
	return nil
}
