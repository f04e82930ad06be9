package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"keepwatch/internal/agent"
)

// The Windows installer writes an enrollment file from its properties and
// registers `agent run --enroll-file`: the agent enrolls at its first start,
// even when keepwatch is not reachable yet at that moment.
func TestAgentRunEnrollsFromTheInstallersFileOnceKeepwatchAnswers(t *testing.T) {
	data, dir := t.TempDir(), t.TempDir()
	admin := func(args ...string) string {
		out, _ := cli(t, "", append([]string{"admin", "--data", data, "--create"}, args...)...)
		return strings.TrimSpace(out)
	}
	admin("integrator", "add", "Alice Security", "--owner-email", "owner@alice.example")
	token := admin("token", "create", "--integrator", "Alice Security", "--name", "t", "--role", "owner")
	const slc = "MSI-0001"
	key := admin("license", "add", "--slc", slc, "--customer", "Harbor Logistics", "--product", "XProtect Corporate 2016", "--cameras", "48", "--care-plus-until", "2099-01-01")
	addr := freePort(t)
	ca := filepath.Join(data, "tls", "cert.pem")
	file := filepath.Join(dir, "enroll.ini")
	ini := fmt.Sprintf("[enroll]\r\nserver=https://%s\r\nslc=%s\r\nkey=%s\r\nname=RS-MSI\r\nconsent=1\r\nca=%s\r\n", addr, slc, key, ca)
	if err := os.WriteFile(file, []byte(ini), 0o600); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(config, []byte(`{"local_api": "127.0.0.1:0"}`), 0o600)

	// The agent starts first, as after an installation at boot.
	logFile := filepath.Join(t.TempDir(), "agent.log")
	logs, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	cmd := exec.Command(os.Args[0], "agent", "run", "--state", dir, "--config", config, "--enroll-file", file)
	cmd.Env = append(os.Environ(), "KEEPWATCH_TEST_RUN_MAIN=1")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	showLog := func() string { b, _ := os.ReadFile(logFile); return string(b) }
	waitLog := func(what string) {
		t.Helper()
		eventually(t, 20*time.Second, what, func() bool { return strings.Contains(showLog(), what) })
	}
	waitLog("enrollment failed")
	if _, err := agent.Load(dir); err == nil {
		t.Fatal("enrolled while keepwatch is down")
	}

	kw, _ := startKeepwatch(t, data, addr)
	api := newAPIClient(t, kw.URL(), ca, token)
	if code, body := api.do("POST", "/api/v1/registrations", map[string]string{"slc": slc}); code != 201 {
		t.Fatalf("register: %d %v", code, body)
	}
	waitLog("agent running")
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the enrollment file is still there after enrolling: %v", err)
	}
	st, err := agent.Load(dir)
	if err != nil || st.Name != "RS-MSI" {
		t.Fatalf("state %+v, %v\n%s", st, err, showLog())
	}
	eventually(t, 20*time.Second, "the server reports to keepwatch", func() bool {
		code, body := api.do("GET", "/api/v1/installations/"+slc+"/servers", nil)
		list, _ := body["servers"].([]any)
		return code == 200 && len(list) == 1 && list[0].(map[string]any)["state"] == "ok"
	})
	if strings.Contains(showLog(), key) {
		t.Error("the enrollment key appears in the agent's log")
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("agent run ended with %v\n%s", waitErr, showLog())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not stop on SIGTERM")
	}

	// A stop while waiting for an enrollment is a clean stop too.
	empty := t.TempDir()
	c2 := exec.CommandContext(context.Background(), os.Args[0], "agent", "run", "--state", empty, "--enroll-file", filepath.Join(empty, "enroll.ini"))
	c2.Env = append(os.Environ(), "KEEPWATCH_TEST_RUN_MAIN=1")
	out := &syncBuffer{}
	c2.Stderr = out
	if err := c2.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "waiting for enrollment is logged", func() bool { return strings.Contains(out.String(), "waiting for an enrollment file") })
	c2.Process.Signal(syscall.SIGTERM)
	if err := c2.Wait(); err != nil {
		t.Errorf("stop while waiting: %v\n%s", err, out.String())
	}
}
