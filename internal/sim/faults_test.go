package sim

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/protocol"
)

var t0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

const period = 10 * time.Second

// walk advances h period by period from t0 for n periods and returns the
// condition sets seen after each step, keyed by time.
func walk(h *health, n int) []map[string]time.Time {
	var out []map[string]time.Time
	for i := 0; i <= n; i++ {
		h.advance(t0.Add(time.Duration(i) * period))
		set := map[string]time.Time{}
		for _, c := range h.conditions() {
			set[Item{c.Kind, c.Subject}.String()] = *c.Since
		}
		out = append(out, set)
	}
	return out
}

func TestDriveFillsThenClears(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rnd := rand.New(rand.NewPCG(seed, 0))
		h := newHealth(16)
		if !h.start(FaultDrive, t0, period, rnd) {
			t.Fatal("drive fault did not start")
		}
		// storage_low from the start; storage_full after 1 to 3 intervals;
		// both gone 2 to 5 intervals later; never storage_full alone.
		lowAt, fullAt, clearAt := -1, -1, -1
		for i, set := range walk(h, 10) {
			hasLow, hasFull := false, false
			for k := range set {
				hasLow = hasLow || strings.HasPrefix(k, keepwatch.KindStorageLow+":")
				hasFull = hasFull || strings.HasPrefix(k, keepwatch.KindStorageFull+":")
			}
			if hasLow && lowAt < 0 {
				lowAt = i
			}
			if hasFull && fullAt < 0 {
				fullAt = i
			}
			if hasFull && !hasLow {
				t.Fatalf("seed %d: storage_full without storage_low at step %d", seed, i)
			}
			if fullAt >= 0 && !hasLow && !hasFull && clearAt < 0 {
				clearAt = i
			}
		}
		if lowAt != 0 || fullAt < 1 || fullAt > 3 || clearAt-fullAt < 2 || clearAt-fullAt > 5 {
			t.Fatalf("seed %d: low at %d, full at %d, cleared at %d", seed, lowAt, fullAt, clearAt)
		}
		if len(h.faults) != 0 || len(h.held) != 0 {
			t.Fatalf("seed %d: fault still under way after it cleared: %d faults, holds %v", seed, len(h.faults), h.held)
		}
		// The drive is free again for the next fault.
		if !h.start(FaultDrive, t0.Add(time.Hour), period, rnd) {
			t.Fatalf("seed %d: a cleared drive cannot fill again", seed)
		}
	}
}

func TestConditionsAndEventsKeepTheTimeTheyHappened(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 0))
	h := newHealth(16)
	h.start(FaultMediaDB, t0, period, rnd)
	h.start(FaultArchive, t0.Add(3*time.Second), period, rnd)
	// The server wakes long after both began, yet reports their true times.
	h.advance(t0.Add(time.Second + 4*time.Second))
	conds := h.conditions()
	if len(conds) != 1 || conds[0].Kind != keepwatch.KindMediaDBWriteFailed || !conds[0].Since.Equal(t0) {
		t.Fatalf("conditions %+v", conds)
	}
	if len(h.events) != 1 || !h.events[0].At.Equal(t0.Add(3*time.Second)) || !eventKinds[h.events[0].Kind] {
		t.Fatalf("events %+v", h.events)
	}
}

func TestCameraFlapsAndEndsReachable(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rnd := rand.New(rand.NewPCG(seed, 1))
		h := newHealth(4)
		h.start(FaultCamera, t0, period, rnd)
		steps := walk(h, 20)
		raises, last := 0, false
		for _, set := range steps {
			down := len(set) == 1
			if down && !last {
				raises++
			}
			last = down
		}
		if raises < 1 || raises > 3 || last {
			t.Fatalf("seed %d: %d outages, still down at the end: %v", seed, raises, last)
		}
	}
}

func TestCrashOutlastsTheUnavailabilityWindow(t *testing.T) {
	stale := 0
	const n = 400
	for seed := uint64(1); seed <= n; seed++ {
		rnd := rand.New(rand.NewPCG(seed, 2))
		h := newHealth(4)
		if !h.start(FaultCrash, t0, period, rnd) {
			t.Fatal("crash did not start")
		}
		h.advance(t0)
		if !h.down {
			t.Fatal("not down after the crash began")
		}
		if h.start(FaultCamera, t0, period, rnd) {
			t.Fatal("a crashed server took a new fault")
		}
		back, _ := h.next()
		// Down for longer than 3 intervals + 10 %, so keepwatch must notice.
		if d := back.Sub(t0); d < minSilence*period || d > maxSilence*period {
			t.Fatalf("seed %d: down for %s", seed, d)
		}
		h.advance(back)
		if h.down || !h.restarted {
			t.Fatalf("seed %d: not restarted at %s", seed, back)
		}
		if h.stale {
			stale++
		}
	}
	// One restart in four comes from an old copy of the state.
	if stale < n/8 || stale > n*3/8 {
		t.Fatalf("%d of %d restarts were stale", stale, n)
	}
}

func TestFaultRateAndMix(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 3))
	const n = 200000
	got := map[FaultKind]int{}
	total := 0
	for i := 0; i < n; i++ {
		if k, ok := DefaultMix.pick(0.05, rnd); ok {
			got[k]++
			total++
		}
	}
	if want := 0.05 * n; math.Abs(float64(total)-want) > 0.05*want {
		t.Fatalf("%d faults in %d intervals at rate 0.05", total, n)
	}
	weights := 0
	for _, w := range DefaultMix {
		weights += w
	}
	for _, k := range FaultKinds {
		want := float64(total) * float64(DefaultMix[k]) / float64(weights)
		if math.Abs(float64(got[k])-want) > 0.1*want {
			t.Errorf("%s: %d, want about %.0f", k, got[k], want)
		}
	}
	if _, ok := DefaultMix.pick(0, rnd); ok {
		t.Fatal("a fault at rate 0")
	}
	only := Mix{FaultCamera: 1}
	for i := 0; i < 1000; i++ {
		if k, ok := only.pick(1, rnd); !ok || k != FaultCamera {
			t.Fatalf("mix of cameras only gave %q %v", k, ok)
		}
	}
}

func TestPinnedConditionsStayAndBlockFaultsOnTheirSubject(t *testing.T) {
	h := newHealth(1)
	h.pin(Item{keepwatch.KindCameraUnreachable, "cam-01"}, t0)
	rnd := rand.New(rand.NewPCG(1, 1))
	if h.start(FaultCamera, t0, period, rnd) { // cam-01 is the only camera
		t.Fatal("a fault took a pinned subject")
	}
	if len(walk(h, 5)[5]) != 1 {
		t.Fatal("pinned condition cleared")
	}
}

func TestOfflineRecordingKeepsEveryEventAndDropsOldHeartbeatsFirst(t *testing.T) {
	s := &server{h: newHealth(4)}
	at := t0
	s.h.events = []protocol.PayloadEvent{{Kind: keepwatch.KindArchiveMoveFailed, Subject: "Archive 1", At: t0}}
	s.record(at, false) // an event happened: a status report with it
	for i := 0; i < spoolLimit+50; i++ {
		at = at.Add(period)
		s.record(at, true)
	}
	if len(s.spool) != spoolLimit {
		t.Fatalf("spool holds %d", len(s.spool))
	}
	first := s.spool[0]
	if first.Conditions == nil || len(first.Events) != 1 || !first.Events[0].At.Equal(t0) || !first.SentAt.Equal(t0) {
		t.Fatalf("the recorded event was dropped or retimed: %+v", first)
	}
	// The heartbeats kept are the newest, each stamped when recorded.
	if !s.spool[1].SentAt.Equal(t0.Add(52*period)) || !s.spool[len(s.spool)-1].SentAt.Equal(at) {
		t.Fatalf("kept heartbeats from %s to %s", s.spool[1].SentAt, s.spool[len(s.spool)-1].SentAt)
	}
}
