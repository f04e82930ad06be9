package sim

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"keepwatch"
	"keepwatch/internal/protocol"
	"keepwatch/internal/store"
)

// DriveBehavior is how a simulated drive's used space moves.
type DriveBehavior string

// Drive behaviors.
const (
	// DriveRetained: the recorder holds the drive at about 95 % by
	// deleting its oldest footage as it records (the normal case); the
	// footage kept is RetentionDays.
	DriveRetained DriveBehavior = "retained"
	// DriveFilling: nothing is deleted yet; the drive fills at a steady
	// pace, with a daily rhythm (more footage by day), and is full
	// FullAfter after Start.
	DriveFilling DriveBehavior = "filling"
	// DriveRunaway: something records far more than planned (a camera
	// set to full frame rate and quality): full FullAfter after Start,
	// within two days, then stuck full.
	DriveRunaway DriveBehavior = "runaway"
)

// SimDrive is a simulated drive. Its figures are a function of time
// alone, so a demo can seed weeks of history and a running fleet send
// live samples from the same drive.
type SimDrive struct {
	Path     string
	Role     string
	Capacity uint64
	Behavior DriveBehavior
	// Start is when the behavior began (for filling and runaway drives
	// the start of the fill, from StartUsed of the capacity).
	Start     time.Time
	StartUsed float64
	FullAfter time.Duration
	// RetentionDays is the footage a retained drive keeps; filling and
	// runaway drives keep everything since Start plus this.
	RetentionDays float64
	Seed          uint64
}

// Sample is the drive as measured at t.
func (d SimDrive) Sample(t time.Time) protocol.PayloadDrive {
	at := t.UTC().Truncate(time.Second)
	c := float64(d.Capacity)
	days := t.Sub(d.Start).Hours() / 24
	var used float64
	oldest := d.Start.Add(-time.Duration(d.RetentionDays * 24 * float64(time.Hour)))
	switch d.Behavior {
	case DriveRetained:
		// 2 % of the drive recorded a day; at 95.5 % the recorder deletes
		// down by 1 %.
		used = c * (0.945 + math.Mod(0.02*max(days, 0), 0.01))
		oldest = t.Add(-time.Duration(d.RetentionDays * 24 * float64(time.Hour)))
	default:
		full := d.FullAfter.Hours() / 24
		frac := max(days, 0) / full
		if d.Behavior == DriveFilling {
			frac = dailyRhythm(max(days, 0)) / full
		}
		used = c * (d.StartUsed + (1-d.StartUsed)*min(frac, 1))
	}
	used += c * 0.0005 * d.noise(t)
	used = min(max(used, 0), c)
	p := protocol.PayloadDrive{Path: d.Path, Role: d.Role, At: &at, Capacity: d.Capacity, Free: d.Capacity - uint64(used)}
	if d.Role == string(keepwatch.DriveRecording) {
		o := oldest.UTC().Truncate(time.Second)
		if o.After(at) {
			o = at
		}
		p.OldestRecordingAt = &o
	}
	return p
}

// dailyRhythm spreads each day's footage over 06:00 to 22:00 (UTC of the
// simulation), so that a day still adds one day's worth.
func dailyRhythm(days float64) float64 {
	whole := math.Floor(days)
	h := (days - whole) * 24
	return whole + min(max(h-6, 0), 16)/16
}

// noise is a deterministic value in [-1, 1] for the drive's 5-minute slot
// of t.
func (d SimDrive) noise(t time.Time) float64 {
	r := rand.New(rand.NewPCG(d.Seed, uint64(t.Unix()/300)))
	return r.Float64()*2 - 1
}

// DrivesFor gives a simulated server its drives, drawn from rnd: a
// recording drive that is mostly retained (some keeping less than a
// month), sometimes filling (full in 5 to 60 days), rarely running away;
// and on one server in three an archive drive, filling slowly.
func DrivesFor(rnd *rand.Rand, now time.Time) []SimDrive {
	const tib = 1 << 40
	rec := SimDrive{Path: `E:\Recordings`, Role: string(keepwatch.DriveRecording), Capacity: uint64(4+rnd.IntN(13)) * tib,
		Behavior: DriveRetained, Start: now.Add(-60 * 24 * time.Hour), RetentionDays: float64(25 + rnd.IntN(20)), Seed: rnd.Uint64()}
	switch p := rnd.Float64(); {
	case p < 0.02:
		rec.Behavior, rec.StartUsed = DriveRunaway, 0.5+rnd.Float64()*0.3
		rec.Start = now.Add(-time.Duration(6+rnd.IntN(12)) * time.Hour)
		rec.FullAfter = time.Duration(24+rnd.IntN(24)) * time.Hour
	case p < 0.15:
		rec.Behavior, rec.StartUsed = DriveFilling, 0.2+rnd.Float64()*0.4
		rec.Start = now.Add(-time.Duration(14+rnd.IntN(20)) * 24 * time.Hour)
		rec.FullAfter = now.Sub(rec.Start) + time.Duration(5+rnd.IntN(56))*24*time.Hour
		rec.RetentionDays = 0
	}
	out := []SimDrive{rec}
	if rnd.IntN(3) == 0 {
		start := now.Add(-200 * 24 * time.Hour)
		out = append(out, SimDrive{Path: `F:\Archive`, Role: string(keepwatch.DriveArchive), Capacity: uint64(8+rnd.IntN(25)) * tib,
			Behavior: DriveFilling, Start: start, StartUsed: 0.05, FullAfter: now.Sub(start) + time.Duration(200+rnd.IntN(400))*24*time.Hour,
			Seed: rnd.Uint64()})
	}
	return out
}

// driveSet samples a server's drives at most every SampleEvery: a status
// report built at now takes due(now) as its drives.
type driveSet struct {
	drives []SimDrive
	last   time.Time
}

// SampleEvery is how often simulated servers sample their drives, as the
// agent does by default.
const SampleEvery = 5 * time.Minute

func (s *driveSet) due(now time.Time) []protocol.PayloadDrive {
	if s == nil || len(s.drives) == 0 || (!s.last.IsZero() && now.Sub(s.last) < SampleEvery) {
		return nil
	}
	s.last = now
	out := make([]protocol.PayloadDrive, len(s.drives))
	for i, d := range s.drives {
		out[i] = d.Sample(now)
	}
	return out
}

// String names a drive for logs.
func (d SimDrive) String() string { return fmt.Sprintf("%s (%s, %s)", d.Path, d.Role, d.Behavior) }

// BackfillDrives writes span of history of every enrolled server's drives
// before now straight into the store, a sample every step (their figures
// are a function of time, so the live samples that follow continue the
// same lines), then compacts the series and judges the drives, so that
// charts and forecasts show at once. It returns how many samples it wrote.
func (f *Fleet) BackfillDrives(ctx context.Context, st *store.Store, now time.Time, span, step time.Duration) (int, error) {
	n := 0
	for _, s := range f.servers {
		if s.drives == nil || s.creds.ID == "" {
			continue
		}
		var rs []keepwatch.DriveReading
		for t := now.Add(-span); t.Before(now); t = t.Add(step) {
			for _, d := range s.drives.drives {
				rs = append(rs, readingOf(d.Sample(t)))
			}
		}
		if err := st.AddDriveSamples(ctx, s.creds.ID, rs); err != nil {
			return n, err
		}
		n += len(rs)
	}
	for {
		c, err := st.CompactDrives(ctx, now, 100)
		if err != nil {
			return n, err
		}
		if c < 100 {
			break
		}
	}
	for _, s := range f.servers {
		if s.drives == nil || s.creds.ID == "" {
			continue
		}
		if _, err := keepwatch.JudgeDrives(ctx, st, s.creds.ID, now); err != nil {
			return n, err
		}
	}
	return n, nil
}

// readingOf is a sample as keepwatch stores it.
func readingOf(p protocol.PayloadDrive) keepwatch.DriveReading {
	r := keepwatch.DriveReading{Path: p.Path, Role: keepwatch.DriveRole(p.Role),
		DriveSample: keepwatch.DriveSample{At: *p.At, Capacity: p.Capacity, Free: p.Free}}
	if p.OldestRecordingAt != nil {
		r.OldestRecording = *p.OldestRecordingAt
	}
	return r
}
