package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"keepwatch/internal/store"
)

// banner returns what the demo's start banner says after label.
func banner(t *testing.T, out, pattern string) string {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the demo's banner has no %s:\n%s", pattern, out)
	}
	return m[1]
}

// startDemo runs `keepwatch demo` in-process on data until the returned
// stop is called, and returns its banner.
func startDemo(t *testing.T, data string) (string, func() (int, string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}, []string{"demo", "--addr", "127.0.0.1:0", "--data", data})
	}()
	// Three minutes: under the race detector, on a shared machine, the
	// demo's start (enrolling its fleet, writing a month of drive history)
	// takes far longer than the seconds it takes a user.
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(out.String(), "Press Ctrl-C") {
		select {
		case code := <-done:
			cancel()
			t.Fatalf("demo exited with %d:\n%s", code, errb.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no banner within three minutes:\n%s", errb.String())
		}
	}
	var once sync.Once
	code := 0
	stop := func() (int, string) {
		once.Do(func() {
			cancel()
			code = <-done
		})
		return code, errb.String()
	}
	t.Cleanup(func() { stop() })
	return out.String(), stop
}

func TestDemoOffersUnregisteredSLC(t *testing.T) {
	data := t.TempDir()
	out, stop := startDemo(t, data)
	slc := banner(t, out, `Try registering SLC (\S+) under Registration`)
	api := &apiClient{t: t, base: banner(t, out, `URL:\s+(\S+)`), token: banner(t, out, `API token:\s+(\S+)`), http: &http.Client{Timeout: 10 * time.Second}}
	if _, held := api.installations("all")[slc]; held {
		t.Fatalf("%s is offered for registration but already registered", slc)
	}
	if code, body := api.do("POST", "/api/v1/registrations", map[string]string{"slc": slc}); code != 201 {
		t.Fatalf("registering %s: %d %v", slc, code, body)
	}
	if got := api.installations("all")[slc]; got != "never_reported" {
		t.Fatalf("%s after registration: %q", slc, got)
	}
	if code, logs := stop(); code != 0 {
		t.Fatalf("demo: exit %d:\n%s", code, logs)
	}
	if !exists(filepath.Join(data, store.DBFile)) {
		t.Fatal("the demo removed the data of --data")
	}

	// A second run on the same data offers the same SLC afresh.
	out, stop = startDemo(t, data)
	api.base, api.token = banner(t, out, `URL:\s+(\S+)`), banner(t, out, `API token:\s+(\S+)`)
	if again := banner(t, out, `Try registering SLC (\S+) under Registration`); again != slc {
		t.Fatalf("second run offers %s, first %s", again, slc)
	}
	if _, held := api.installations("all")[slc]; held {
		t.Fatalf("second run offers %s, still registered from the first", slc)
	}
	if code, logs := stop(); code != 0 {
		t.Fatalf("demo: exit %d:\n%s", code, logs)
	}
}

func TestDemoRemovesTempDirOnExit(t *testing.T) {
	for _, sig := range []os.Signal{syscall.SIGTERM, os.Interrupt} {
		t.Run(sig.String(), func(t *testing.T) {
			tmp := t.TempDir()
			cmd := exec.Command(os.Args[0], "demo", "--addr", "127.0.0.1:0")
			cmd.Env = append(os.Environ(), "KEEPWATCH_TEST_RUN_MAIN=1", "TMPDIR="+tmp)
			var out, errb syncBuffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})
			eventually(t, 3*time.Minute, "the demo's banner", func() bool { return strings.Contains(out.String(), "Press Ctrl-C") })
			data := banner(t, out.String(), `data:\s+(\S+) \(removed when the demo stops`)
			if !strings.HasPrefix(data, tmp) || !exists(filepath.Join(data, store.DBFile)) {
				t.Fatalf("temporary data %s: not in %s or without a database", data, tmp)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				exited <- err // for the cleanup
				if err != nil {
					t.Fatalf("demo after %s: %v\n%s", sig, err, errb.String())
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("demo still running 30 s after %s:\n%s", sig, errb.String())
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Fatalf("the demo left %v in %s", left, tmp)
			}
			logs := errb.String()
			for _, want := range []string{"stopping the demo", "demo stopped", "removed the demo's temporary directory"} {
				if !strings.Contains(logs, want) {
					t.Errorf("no %q in the demo's log:\n%s", want, logs)
				}
			}
		})
	}
}

// The demo's drives show a forecast and keepwatch's verdicts from the
// first page: thirty days of history are written at its start.
func TestDemoShowsDriveForecastsAtOnce(t *testing.T) {
	out, _ := startDemo(t, t.TempDir())
	api := &apiClient{t: t, base: banner(t, out, `URL:\s+(\S+)`), token: banner(t, out, `API token:\s+(\S+)`), http: &http.Client{Timeout: 10 * time.Second}}
	drive := func(slc string) map[string]any {
		t.Helper()
		code, body := api.do("GET", "/api/v1/installations/"+slc+"/drives", nil)
		ds, _ := body["drives"].([]any)
		if code != 200 || len(ds) == 0 {
			t.Fatalf("%s drives: %d %v", slc, code, body)
		}
		return ds[0].(map[string]any)
	}
	// Filling: full in about nine days.
	if d := drive("DEMO-1000-7000"); d["trend"] != "filling" || d["days_until_full"] == nil ||
		d["days_until_full"].(float64) < 7 || d["days_until_full"].(float64) > 11 {
		t.Fatalf("filling drive %v", d)
	}
	// Held full by its recorder: not filling, 19 days kept of 30.
	if d := drive("DEMO-1074-7026"); d["trend"] != "retention_managed" || d["days_until_full"] != nil || d["retention_days"].(float64) < 18.9 {
		t.Fatalf("retained drive %v", d)
	}
	_, body := api.do("GET", "/api/v1/installations/DEMO-1074-7026", nil)
	found := false
	for _, c := range body["conditions"].([]any) {
		if c.(map[string]any)["kind"] == "retention_short" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no retention_short on the site keeping 19 days of 30: %v", body["conditions"])
	}
}
