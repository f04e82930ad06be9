package agent

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"keepwatch"
)

// flakyListener accepts connections on a fixed address and can go away
// and come back, like a camera that is unplugged and plugged in again.
type flakyListener struct {
	t    *testing.T
	addr string
	ln   net.Listener
}

func newFlakyListener(t *testing.T) *flakyListener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &flakyListener{t: t, addr: ln.Addr().String(), ln: ln}
	go serveAndClose(ln)
	t.Cleanup(func() { l.down() })
	return l
}

func serveAndClose(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

func (l *flakyListener) down() {
	if l.ln != nil {
		l.ln.Close()
		l.ln = nil
	}
}

func (l *flakyListener) up() {
	var err error
	for i := 0; i < 100; i++ {
		if l.ln, err = net.Listen("tcp", l.addr); err == nil {
			go serveAndClose(l.ln)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	l.t.Fatalf("listen again on %s: %v", l.addr, err)
}

func TestCameraThatGoesAwayAndComesBackIsRaisedOnceAndClearedOnce(t *testing.T) {
	f := newFixture(t, time.Second)
	cam := newFlakyListener(t)
	cfg := Config{Cameras: []Camera{{Name: "cam-03 Entrance", Address: cam.addr}}}
	cfg.Checks.Cameras = CameraChecks{Every: Duration(50 * time.Millisecond), Timeout: Duration(200 * time.Millisecond), Attempts: 3, RetryDelay: Duration(30 * time.Millisecond)}
	d := f.runDaemon(cfg, Probes{})
	key := keepwatch.KindCameraUnreachable + ":cam-03 Entrance"
	waitFor(t, 10*time.Second, "the first status report reaches keepwatch", func() bool {
		st, _ := d.Status()
		return st.Spool.LastAckedSeq > 0 && st.Spool.Depth == 0
	})
	time.Sleep(300 * time.Millisecond) // several rounds of a reachable camera
	if f.active()[key] {
		t.Fatal("a reachable camera was reported unreachable")
	}

	cam.down()
	waitFor(t, 10*time.Second, "camera_unreachable raised at keepwatch", func() bool { return f.active()[key] })
	time.Sleep(300 * time.Millisecond) // several rounds of an unreachable camera
	cam.up()
	waitFor(t, 10*time.Second, "camera_unreachable cleared at keepwatch", func() bool { return !f.active()[key] })
	time.Sleep(300 * time.Millisecond)

	raised, cleared, _ := f.history(keepwatch.KindCameraUnreachable)
	if raised != 1 || cleared != 1 {
		t.Fatalf("camera_unreachable raised %d times and cleared %d times, want exactly once each", raised, cleared)
	}
}

func TestOneFailedAttemptIsNotAnAlarm(t *testing.T) {
	cam := newFlakyListener(t)
	var calls atomic.Int32
	var dialer net.Dialer
	// The first attempt of every round is lost, as a dropped SYN would be.
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if calls.Add(1)%2 == 1 {
			return nil, errors.New("i/o timeout")
		}
		return dialer.DialContext(ctx, network, addr)
	}
	c := &cameraCheck{cameras: []Camera{{Name: "cam-1", Address: cam.addr}}, dial: dial,
		cfg: CameraChecks{Timeout: Duration(time.Second), Attempts: 2, RetryDelay: Duration(10 * time.Millisecond), Parallel: 4}}
	for range 3 {
		conds, err := c.run(context.Background(), time.Now())
		if err != nil || len(conds) != 0 {
			t.Fatalf("one lost attempt raised %v (%v)", conds, err)
		}
	}
	// When every attempt fails, it is an alarm.
	c.cfg.Attempts = 1
	if conds, _ := c.run(context.Background(), time.Now()); len(conds) != 1 || conds[0].Kind != keepwatch.KindCameraUnreachable || conds[0].Subject != "cam-1" {
		t.Fatalf("a failed round gave %v", conds)
	}
}

// rtspServer answers each connection's first line with answer.
func rtspServer(t *testing.T, answer string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				line, _ := r.ReadString('\n')
				if !strings.HasPrefix(line, "OPTIONS rtsp://") {
					return
				}
				for {
					l, err := r.ReadString('\n')
					if err != nil || l == "\r\n" {
						break
					}
				}
				c.Write([]byte(answer))
			}()
		}
	}()
	return ln.Addr().String()
}

func TestRTSPOptionsDecidesReachability(t *testing.T) {
	ok := rtspServer(t, "RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\n\r\n")
	junk := rtspServer(t, "HTTP/1.1 400 Bad Request\r\n\r\n")
	cfg, err := ParseConfig(strings.NewReader(`{"cameras": [
		{"name": "answers", "rtsp": "rtsp://admin:secret@` + ok + `/stream1"},
		{"name": "not-rtsp", "rtsp": "rtsp://` + junk + `/stream1"}],
		"checks": {"cameras": {"timeout": "500ms", "attempts": 1}}}`))
	if err != nil {
		t.Fatal(err)
	}
	c := &cameraCheck{cameras: cfg.Cameras, cfg: cfg.Checks.Cameras, dial: (&net.Dialer{}).DialContext}
	conds, err := c.run(context.Background(), time.Now())
	if err != nil || len(conds) != 1 || conds[0].Subject != "not-rtsp" {
		t.Fatalf("conditions %v, %v; want only not-rtsp unreachable", conds, err)
	}
}

func TestLicenceCheckComparesConfiguredWithLicensed(t *testing.T) {
	cfg, err := ParseConfig(strings.NewReader(`{"licensed_cameras": 1, "cameras": [
		{"name": "a", "address": "10.0.0.1:554"}, {"name": "b", "address": "10.0.0.2:554"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range buildChecks(cfg, Probes{}.withDefaults()) {
		if c.name != "licenses" {
			continue
		}
		conds, _ := c.run(context.Background(), time.Now())
		if len(conds) != 1 || conds[0].Kind != keepwatch.KindLicenseExceeded || conds[0].Message != "2 cameras configured, 1 licensed" {
			t.Fatalf("licence check: %v", conds)
		}
		return
	}
	t.Fatal("no licence check built")
}

func TestDriveThresholdsWithHysteresis(t *testing.T) {
	free := uint64(50)
	d := &driveCheck{drives: []Drive{{Path: "/rec", StorageLowPercent: 10, StorageFullPercent: 1}}, active: map[string]string{},
		statfs: func(string) (DiskUsage, error) { return DiskUsage{Total: 1000, Free: free}, nil }}
	kind := func(f uint64) string {
		free = f
		conds, err := d.run(context.Background(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(conds) == 0 {
			return ""
		}
		return conds[0].Kind
	}
	for _, step := range []struct {
		free uint64
		want string
	}{
		{200, ""}, {99, "storage_low"}, {105, "storage_low"}, {111, ""},
		{9, "storage_full"}, {10, "storage_full"}, {12, "storage_low"}, {150, ""},
	} {
		if got := kind(step.free); got != step.want {
			t.Fatalf("%d of 1000 bytes free: %q, want %q", step.free, got, step.want)
		}
	}
}
