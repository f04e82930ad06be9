package app_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"keepwatch/internal/agent"
	"keepwatch/internal/app"
	"keepwatch/internal/store"
)

// mountTmpfs mounts a small tmpfs for the test, or skips where the machine
// does not allow mounts.
func mountTmpfs(t *testing.T, size string) string {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s)", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fill writes a file until the filesystem is full and returns its path.
func fill(t *testing.T, dir string) string {
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Sync()
	return f.Name()
}

func TestFullDataDiskRefusesCleanlyAndRecovers(t *testing.T) {
	data := mountTmpfs(t, "8m")
	a := start(t, app.Config{DataDir: data, InsecureHTTP: true})
	defer a.Shutdown(ctx)
	ag := enrolled(t, a, 1)[0]
	send := func(conds ...string) error {
		p, _ := agent.StatusPayload(conds, nil, time.Now())
		_, err := ag.Send(ctx, p)
		return err
	}
	if err := send(); err != nil {
		t.Fatal(err)
	}
	filler := fill(t, data)
	// With the disk full, status reports are refused with "unavailable"
	// (retry later) until one fits; never accepted and lost.
	var refused int
	for i := 0; i < 200; i++ {
		err := send("camera_unreachable:cam-" + strings.Repeat("x", 200) + string(rune('a'+i%26)))
		if err == nil {
			continue
		}
		if !strings.Contains(err.Error(), "unavailable") {
			t.Fatalf("disk full answered %v, want unavailable", err)
		}
		refused++
		ag.State.Seq-- // the agent retries the same report
		break
	}
	if refused == 0 {
		t.Fatal("the full disk never refused a report")
	}
	// A heartbeat is acknowledged only once its sequence number is
	// committed: with the disk full it is refused too, as unavailable, and
	// the agent keeps it.
	if _, err := ag.Send(ctx, nil); err == nil || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("heartbeat with a full disk: %v, want unavailable", err)
	}
	ag.State.Seq--
	os.Remove(filler)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := send("storage_full:E:")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after space returned: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.Shutdown(ctx)
	s, err := store.Open(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if res, err := s.IntegrityCheck(ctx); err != nil || res != "ok" {
		t.Fatalf("integrity check: %q %v", res, err)
	}
	r, err := s.ServerRecord(ctx, ag.State.ServerID)
	if err != nil || r.LastSeq < ag.State.Seq-1 {
		t.Fatalf("after recovery: %+v %v (agent at %d)", r, err, ag.State.Seq)
	}
}
