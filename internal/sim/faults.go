package sim

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"keepwatch"
	"keepwatch/internal/protocol"
)

// FaultKind names a kind of injected fault.
type FaultKind string

// The faults a simulated fleet suffers. Their durations are counted in
// heartbeat intervals, so a fleet behaves alike at a 1-second and a
// 60-second interval.
const (
	// FaultDrive: a recording drive fills up (storage_low, then
	// storage_full) until space is freed and both clear.
	FaultDrive FaultKind = "drive"
	// FaultCamera: a camera flaps, camera_unreachable raised and cleared a
	// few times, ending reachable.
	FaultCamera FaultKind = "camera"
	// FaultMediaDB: the media database refuses writes for a while.
	FaultMediaDB FaultKind = "media_db"
	// FaultArchive: an archive job fails once (an archive_* or
	// file_delete_failed event).
	FaultArchive FaultKind = "archive"
	// FaultCrash: the recording server stops (keepwatch hears nothing),
	// then restarts; now and then from an old copy of its state, so its
	// sequence counter went back and its first report is refused as
	// replayed.
	FaultCrash FaultKind = "crash"
	// FaultSiteOffline: the installation loses its Internet link; its
	// servers keep running and upload what happened once it is back.
	FaultSiteOffline FaultKind = "site_offline"
)

// FaultKinds lists every fault kind, in the order summaries show them.
var FaultKinds = []FaultKind{FaultDrive, FaultCamera, FaultMediaDB, FaultArchive, FaultCrash, FaultSiteOffline}

// Mix weighs the fault kinds: when a fault starts, its kind is drawn in
// proportion to these weights. A kind missing from the map never happens.
type Mix map[FaultKind]int

// DefaultMix is the mix of a fleet that names none.
var DefaultMix = Mix{
	FaultDrive: 20, FaultCamera: 30, FaultMediaDB: 10, FaultArchive: 20, FaultCrash: 10, FaultSiteOffline: 10,
}

// pick draws whether a fault starts during one interval (probability rate)
// and which kind.
func (m Mix) pick(rate float64, rnd *rand.Rand) (FaultKind, bool) {
	if rate <= 0 || rnd.Float64() >= rate {
		return "", false
	}
	total := 0
	for _, k := range FaultKinds {
		total += max(m[k], 0)
	}
	if total == 0 {
		return "", false
	}
	n := rnd.IntN(total)
	for _, k := range FaultKinds {
		if w := max(m[k], 0); n < w {
			return k, true
		} else {
			n -= w
		}
	}
	return "", false
}

// Subjects the faults use: the drive letters and paths of a Windows
// recording server, which is where the VMS runs.
var (
	drives      = []string{`E:\Recordings`, `F:\Recordings`, `G:\Archive`, `H:\Archive`}
	mediaDB     = `D:\MediaDatabase`
	archiveKind = []string{
		keepwatch.KindArchiveDeleteFailed, keepwatch.KindFileDeleteFailed, keepwatch.KindArchiveFatalError,
		keepwatch.KindArchiveOperationFailed, keepwatch.KindArchiveMoveFailed,
	}
	archiveWhy = map[string]string{
		keepwatch.KindArchiveDeleteFailed:    "could not delete the archive: access denied",
		keepwatch.KindFileDeleteFailed:       "could not delete a block file: the file is in use",
		keepwatch.KindArchiveFatalError:      "fatal error while archiving: the database header is corrupt",
		keepwatch.KindArchiveOperationFailed: "the nightly archive job failed",
		keepwatch.KindArchiveMoveFailed:      "moving archive files failed: the target drive is not ready",
	}
)

// Item is a condition or an event by kind and subject, as scenarios name
// them.
type Item struct {
	Kind, Subject string
}

func (i Item) key() string { return i.Kind + "\x00" + i.Subject }

func (i Item) String() string {
	if i.Subject == "" {
		return i.Kind
	}
	return i.Kind + ":" + i.Subject
}

type op uint8

const (
	opRaise op = iota
	opClear
	opEvent
	opCrash
	opRestart
)

// step is one thing a fault does at a given time.
type step struct {
	at      time.Time
	op      op
	kind    string
	subject string
	message string
}

// fault is an injected fault under way: the steps it has still to take.
type fault struct {
	kind  FaultKind
	holds []string // condition keys (or "crash") no other fault may use meanwhile
	steps []step
}

// cond is an active state condition on a simulated server.
type cond struct {
	kind, subject, message string
	since                  time.Time
}

// health is what one simulated recording server knows about itself: the
// state conditions active on it, the events not yet delivered and the
// faults under way. It is a pure model driven by the time it is given,
// so tests run hours of it in microseconds.
type health struct {
	conds  map[string]cond
	pinned map[string]bool // scenario conditions, never cleared
	events []protocol.PayloadEvent
	faults []*fault
	held   map[string]bool
	// down is true while the server is crashed; restarted is set when it
	// comes back, stale when it came back from an old copy of its state.
	down, restarted, stale bool
	cameras                int
	// changed is when the set of active conditions last changed.
	changed time.Time
}

func newHealth(cameras int) *health {
	return &health{conds: map[string]cond{}, pinned: map[string]bool{}, held: map[string]bool{}, cameras: max(cameras, 1)}
}

// pin raises a condition that stays for the whole run.
func (h *health) pin(it Item, since time.Time) {
	h.conds[it.key()] = cond{kind: it.Kind, subject: it.Subject, since: since}
	h.pinned[it.key()] = true
	h.held[it.key()] = true
}

// intervals returns a duration of between lo and hi heartbeat periods.
func intervals(rnd *rand.Rand, period time.Duration, lo, hi int) time.Duration {
	return time.Duration(lo+rnd.IntN(hi-lo+1)) * period
}

// Silence bounds of crashes and lost links, in intervals: always longer
// than the three intervals (plus tolerance) after which keepwatch declares
// a server unavailable, so that keepwatch is seen to notice.
const (
	minSilence = 4
	maxSilence = 8
)

// start begins a fault of kind at now. It returns false when the server
// cannot take it: crashed, or the chosen subject is already in trouble.
// FaultSiteOffline concerns the whole site and is not handled here.
func (h *health) start(kind FaultKind, now time.Time, period time.Duration, rnd *rand.Rand) bool {
	if h.down {
		return false
	}
	f := &fault{kind: kind}
	switch kind {
	case FaultDrive:
		drive := drives[rnd.IntN(len(drives))]
		low, full := Item{keepwatch.KindStorageLow, drive}, Item{keepwatch.KindStorageFull, drive}
		f.holds = []string{low.key(), full.key()}
		t := now
		f.add(t, opRaise, low, fmt.Sprintf("%d %% used", 90+rnd.IntN(5)))
		t = t.Add(intervals(rnd, period, 1, 3))
		f.add(t, opRaise, full, "no space left on the drive (100 % used)")
		t = t.Add(intervals(rnd, period, 2, 5))
		f.add(t, opClear, full, "")
		f.add(t, opClear, low, "")
	case FaultCamera:
		cam := Item{keepwatch.KindCameraUnreachable, fmt.Sprintf("cam-%02d", 1+rnd.IntN(h.cameras))}
		f.holds = []string{cam.key()}
		h.flap(f, cam, now, period, 1+rnd.IntN(3), rnd)
	case FaultMediaDB:
		db := Item{keepwatch.KindMediaDBWriteFailed, mediaDB}
		f.holds = []string{db.key()}
		f.add(now, opRaise, db, "cannot add data to the media database: disk I/O error")
		f.add(now.Add(intervals(rnd, period, 2, 6)), opClear, db, "")
	case FaultArchive:
		kind := archiveKind[rnd.IntN(len(archiveKind))]
		subject := "Archive " + now.UTC().Format("2006-01-02 15:04")
		if kind == keepwatch.KindFileDeleteFailed {
			subject = fmt.Sprintf(`E:\Recordings\cam-%02d\%s\%06d.blk`, 1+rnd.IntN(h.cameras), now.UTC().Format("2006-01-02"), rnd.IntN(1000000))
		}
		f.add(now, opEvent, Item{kind, subject}, archiveWhy[kind])
	case FaultCrash:
		f.holds = []string{"crash"}
		f.steps = append(f.steps, step{at: now, op: opCrash})
		f.steps = append(f.steps, step{at: now.Add(intervals(rnd, period, minSilence, maxSilence)), op: opRestart})
		if rnd.IntN(4) == 0 {
			f.steps[1].message = "stale"
		}
	default:
		return false
	}
	for _, k := range f.holds {
		if h.held[k] {
			return false
		}
	}
	for _, k := range f.holds {
		h.held[k] = true
	}
	h.faults = append(h.faults, f)
	return true
}

// flapCamera starts a camera that loses and regains its connection n
// times (a scenario's flapping camera); false if it is already flapping.
func (h *health) flapCamera(subject string, now time.Time, period time.Duration, n int, rnd *rand.Rand) bool {
	cam := Item{keepwatch.KindCameraUnreachable, subject}
	if h.down || h.held[cam.key()] {
		return false
	}
	f := &fault{kind: FaultCamera, holds: []string{cam.key()}}
	h.flap(f, cam, now, period, n, rnd)
	h.held[cam.key()] = true
	h.faults = append(h.faults, f)
	return true
}

// flap adds n outages of cam to f, each one or two intervals long, with
// one or two intervals of connection between them.
func (h *health) flap(f *fault, cam Item, now time.Time, period time.Duration, n int, rnd *rand.Rand) {
	t := now
	for i := 0; i < n; i++ {
		if i > 0 {
			t = t.Add(intervals(rnd, period, 1, 2))
		}
		f.add(t, opRaise, cam, fmt.Sprintf("no answer on 10.0.%d.%d:554", 1+rnd.IntN(9), 10+rnd.IntN(200)))
		t = t.Add(intervals(rnd, period, 1, 2))
		f.add(t, opClear, cam, "")
	}
}

func (f *fault) add(at time.Time, o op, it Item, message string) {
	f.steps = append(f.steps, step{at: at, op: o, kind: it.Kind, subject: it.Subject, message: message})
}

// advance applies every step due by now, in time order and each at its
// own time (a condition's since, an event's at), however late the server
// wakes. It reports whether the set of active conditions changed.
func (h *health) advance(now time.Time) bool {
	var due []step
	live := h.faults[:0]
	for _, f := range h.faults {
		n := 0
		for n < len(f.steps) && !f.steps[n].at.After(now) {
			n++
		}
		due = append(due, f.steps[:n]...)
		f.steps = f.steps[n:]
		if len(f.steps) > 0 {
			live = append(live, f)
			continue
		}
		for _, k := range f.holds {
			if !h.pinned[k] {
				delete(h.held, k)
			}
		}
	}
	for i := len(live); i < len(h.faults); i++ {
		h.faults[i] = nil
	}
	h.faults = live
	sort.SliceStable(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	changed := false
	for _, s := range due {
		it := Item{s.kind, s.subject}
		switch s.op {
		case opRaise:
			if _, ok := h.conds[it.key()]; !ok {
				h.conds[it.key()] = cond{kind: s.kind, subject: s.subject, message: s.message, since: s.at}
				changed, h.changed = true, s.at
			}
		case opClear:
			if _, ok := h.conds[it.key()]; ok && !h.pinned[it.key()] {
				delete(h.conds, it.key())
				changed, h.changed = true, s.at
			}
		case opEvent:
			h.events = append(h.events, protocol.PayloadEvent{Kind: s.kind, Subject: s.subject, At: s.at.UTC(), Message: s.message})
		case opCrash:
			h.down = true
		case opRestart:
			h.down, h.restarted, h.stale = false, true, s.message == "stale"
		}
	}
	return changed
}

// next returns when the next step is due; ok is false when no fault is
// under way.
func (h *health) next() (t time.Time, ok bool) {
	for _, f := range h.faults {
		if len(f.steps) > 0 && (!ok || f.steps[0].at.Before(t)) {
			t, ok = f.steps[0].at, true
		}
	}
	return t, ok
}

// conditions returns the active state conditions as a status report
// carries them, in a stable order.
func (h *health) conditions() []protocol.PayloadCondition {
	out := make([]protocol.PayloadCondition, 0, len(h.conds))
	for _, c := range h.conds {
		since := c.since.UTC()
		out = append(out, protocol.PayloadCondition{Kind: c.kind, Subject: c.subject, Since: &since, Message: c.message})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Subject < out[j].Subject
	})
	return out
}

// activeFaults counts the faults under way by kind.
func (h *health) activeFaults(into map[FaultKind]int) {
	for _, f := range h.faults {
		if f.kind != FaultArchive {
			into[f.kind]++
		}
	}
}
