package agent

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/protocol"
)

func openTestSpool(t *testing.T, dir string, st *State, max int) *Spool {
	t.Helper()
	sp, err := OpenSpool(dir, st, max)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

func eventPayload(n int, at time.Time) *protocol.Payload {
	return &protocol.Payload{SentAt: &at, Events: []protocol.PayloadEvent{{Kind: keepwatch.KindArchiveMoveFailed, Subject: fmt.Sprintf("ev-%04d", n), At: at}}}
}

func TestSpoolSequenceNumbersNeverRepeatAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	st := &State{ServerID: "00112233445566778899aabbccddeeff", Seq: 41}
	sp, err := OpenSpool(dir, st, 0)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var last uint64
	for i := range 5 {
		seq, err := sp.Record(KindEvents, now, eventPayload(i, now))
		if err != nil {
			t.Fatal(err)
		}
		if seq <= last || seq <= 41 {
			t.Fatalf("sequence %d after %d (agent.json had 41)", seq, last)
		}
		last = seq
	}
	// Delivered reports leave the spool, but their numbers stay used.
	for range 5 {
		e, _, _ := sp.Head()
		if err := sp.Delivered(e.Seq, now, "ok"); err != nil {
			t.Fatal(err)
		}
	}
	sp.Close()
	sp = openTestSpool(t, dir, st, 0)
	seq, err := sp.Record(KindHeartbeat, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if seq != last+1 {
		t.Fatalf("after reopening an empty spool the next sequence is %d, want %d", seq, last+1)
	}
	stats, _ := sp.Stats()
	if stats.LastAckedSeq != last || stats.Depth != 1 {
		t.Fatalf("stats %+v", stats)
	}
}

func TestSpoolBoundDropsOldestHeartbeatsFirstAndNeverEvents(t *testing.T) {
	st := &State{ServerID: "00112233445566778899aabbccddeeff"}
	sp := openTestSpool(t, t.TempDir(), st, 10)
	now := time.Now()
	rec := func(kind string, p *protocol.Payload) error {
		_, err := sp.Record(kind, now, p)
		return err
	}
	for i := range 4 {
		rec(KindEvents, eventPayload(i, now))
	}
	empty := []protocol.PayloadCondition{}
	rec(KindStatus, &protocol.Payload{SentAt: &now, Conditions: &empty})
	for range 10 {
		if err := rec(KindHeartbeat, nil); err != nil {
			t.Fatal(err)
		}
	}
	stats, _ := sp.Stats()
	if stats.Depth != 10 || stats.DroppedHeartbeats != 5 || stats.PendingEvents != 4 {
		t.Fatalf("after 15 reports into a spool of 10: %+v", stats)
	}
	// The newest heartbeats are the ones kept.
	e, _, _ := sp.Head()
	if e.Kind != KindEvents {
		t.Fatalf("head is %s", e.Kind)
	}
	// Fill with events: heartbeats go, then the superseded status report,
	// never the latest one; events never.
	for i := 4; i < 9; i++ {
		if err := rec(KindEvents, eventPayload(i, now)); err != nil {
			t.Fatal(err)
		}
	}
	rec(KindStatus, &protocol.Payload{SentAt: &now, Conditions: &empty})
	stats, _ = sp.Stats()
	if stats.PendingEvents != 9 || stats.DroppedStatus != 1 || stats.Depth != 10 {
		t.Fatalf("after filling with events: %+v", stats)
	}
	if err := rec(KindEvents, eventPayload(99, now)); !errors.Is(err, ErrSpoolFull) {
		t.Fatalf("an event into a spool full of events: %v, want ErrSpoolFull", err)
	}
	if err := rec(KindHeartbeat, nil); err != nil {
		t.Fatal(err)
	}
	stats, _ = sp.Stats()
	if stats.PendingEvents != 9 || stats.Depth != 10 {
		t.Fatalf("a heartbeat pushed out an event: %+v", stats)
	}
}

func TestSpoolOfAnotherServerIsDiscarded(t *testing.T) {
	dir := t.TempDir()
	sp, _ := OpenSpool(dir, &State{ServerID: "00112233445566778899aabbccddeeff"}, 0)
	now := time.Now()
	sp.Record(KindEvents, now, eventPayload(1, now))
	sp.Close()
	sp = openTestSpool(t, dir, &State{ServerID: "ffeeddccbbaa99887766554433221100"}, 0)
	stats, _ := sp.Stats()
	if stats.Depth != 0 || stats.Discarded != 1 {
		t.Fatalf("spool of a re-enrolled directory: %+v", stats)
	}
}

func TestRenumberKeepsOrderAboveEveryUsedNumber(t *testing.T) {
	sp := openTestSpool(t, t.TempDir(), &State{ServerID: "00112233445566778899aabbccddeeff"}, 0)
	now := time.Now()
	for i := range 3 {
		sp.Record(KindEvents, now, eventPayload(i, now))
	}
	if e, _, _ := sp.Claim(); e.Seq != 1 || e.Attempts != 0 {
		t.Fatalf("claimed %+v", e)
	}
	if e, _, _ := sp.Claim(); e.Seq != 1 || e.Attempts != 1 {
		t.Fatalf("claimed again %+v", e)
	}
	if err := sp.Renumber(1_000_000); err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for {
		e, ok, _ := sp.Head()
		if !ok {
			break
		}
		if e.Attempts != 0 {
			t.Fatalf("a renumbered report keeps its attempts: %+v", e)
		}
		seqs = append(seqs, e.Seq)
		sp.Delivered(e.Seq, now, "")
	}
	if len(seqs) != 3 || seqs[0] <= 1_000_003 || seqs[1] != seqs[0]+1 || seqs[2] != seqs[1]+1 {
		t.Fatalf("renumbered to %v", seqs)
	}
	if next, _ := sp.Record(KindHeartbeat, now, nil); next != seqs[2]+1 {
		t.Fatalf("next after renumbering %d, want %d", next, seqs[2]+1)
	}
}
