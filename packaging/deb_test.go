package packaging

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"keepwatch/internal/agent"
)

var rootTools = []string{"dpkg", "dpkg-query", "ldd", "getent", "useradd", "groupadd", "systemd-analyze"}

// scratchRoot makes a minimal root file system for dpkg --root: a merged
// /usr, a shell and the few programs the maintainer scripts call (copied
// from this machine with their libraries), /dev/null, an empty dpkg
// database, and systemd's targets so systemd-analyze can load the units.
// withUseradd false leaves out useradd and groupadd.
func scratchRoot(t *testing.T, withUseradd bool) string {
	t.Helper()
	r := t.TempDir()
	for _, d := range []string{"usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "etc", "var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log", "tmp", "dev", "run", "usr/lib/systemd/system"} {
		if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
		os.Symlink("usr/"+d, filepath.Join(r, d))
	}
	os.Chmod(filepath.Join(r, "tmp"), 0o1777)
	if err := syscall.Mknod(filepath.Join(r, "dev/null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		t.Fatalf("mknod /dev/null: %v", err)
	}
	os.Chmod(filepath.Join(r, "dev/null"), 0o666)
	for name, content := range map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "etc/group": "root:x:0:\n",
		"etc/shadow": "root:*:20000:0:99999:7:::\n", "etc/gshadow": "root:*::\n",
		"var/lib/dpkg/status": "",
	} {
		if err := os.WriteFile(filepath.Join(r, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tools := []string{"sh", "getent", "mkdir", "chown", "chgrp", "chmod", "rm", "rmdir"}
	if withUseradd {
		tools = append(tools, "useradd", "groupadd", "nologin")
	}
	var passwdFiles []string
	for _, tool := range tools {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		copyInto(t, r, p, p)
		if tool == "useradd" || tool == "groupadd" || tool == "nologin" {
			passwdFiles = append(passwdFiles, p)
		}
		real, _ := filepath.EvalSymlinks(p)
		// ldd fails on a static program: it then needs no library.
		libs, _ := exec.Command("ldd", real).Output()
		for _, lib := range regexp.MustCompile(`(?m)(/\S+) \(0x`).FindAllStringSubmatch(string(libs), -1) {
			copyInto(t, r, lib[1], lib[1])
		}
	}
	if withUseradd {
		// The scratch root's dpkg knows the copies as the package passwd,
		// which keepwatch depends on.
		stanza := "Package: passwd\nStatus: install ok installed\nPriority: required\nSection: admin\nMaintainer: none\nArchitecture: amd64\nVersion: 1:4.13+dfsg1-1\nDescription: useradd and groupadd copied from the host\n\n"
		os.WriteFile(filepath.Join(r, "var/lib/dpkg/status"), []byte(stanza), 0o644)
		os.WriteFile(filepath.Join(r, "var/lib/dpkg/info/passwd.list"), []byte(strings.Join(passwdFiles, "\n")+"\n"), 0o644)
	}
	targets, _ := filepath.Glob("/usr/lib/systemd/system/*.target")
	if len(targets) == 0 {
		t.Fatal("no systemd targets on this machine (/usr/lib/systemd/system/*.target): install systemd")
	}
	for _, tg := range targets {
		copyInto(t, r, tg, tg)
	}
	return r
}

// copyInto copies the file src (following links) to dst inside root.
func copyInto(t *testing.T, root, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, dst)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, b, fi.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}

// dpkg runs dpkg on the scratch root; stdin is empty, so a question
// (a conffile prompt) fails instead of waiting.
func dpkg(t *testing.T, root string, args ...string) string {
	t.Helper()
	cmd := exec.Command("dpkg", append([]string{"--root=" + root}, args...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func dpkgStatus(t *testing.T, root string) string {
	t.Helper()
	out, _ := exec.Command("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W", "-f", "${Status} ${Version}", "keepwatch").CombinedOutput()
	return strings.TrimSpace(string(out))
}

// account returns the uid, gid, home and shell of name in root's
// /etc/passwd (ok false if absent).
func account(t *testing.T, root, name string) (uid, gid int, home, shell string, ok bool) {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ":")
		if len(f) == 7 && f[0] == name {
			uid, _ = strconv.Atoi(f[2])
			gid, _ = strconv.Atoi(f[3])
			return uid, gid, f[5], f[6], true
		}
	}
	return 0, 0, "", "", false
}

type wantFile struct {
	mode     fs.FileMode
	uid, gid int
}

func checkFiles(t *testing.T, root string, want map[string]wantFile) {
	t.Helper()
	for path, w := range want {
		fi, err := os.Lstat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != w.mode || int(st.Uid) != w.uid || int(st.Gid) != w.gid {
			t.Errorf("%s: %v %d:%d, want %v %d:%d", path, fi.Mode().Perm(), st.Uid, st.Gid, w.mode, w.uid, w.gid)
		}
	}
}

func exists(root, path string) bool {
	_, err := os.Lstat(filepath.Join(root, path))
	return err == nil
}

// unit reads a systemd unit as key → values (a key may repeat).
func unit(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' || l[0] == '[' {
			continue
		}
		k, v, _ := strings.Cut(l, "=")
		m[k] = append(m[k], v)
	}
	return m
}

func TestDebInstallsUpgradesRemovesAndPurgesWithoutTouchingData(t *testing.T) {
	need(t, true, append(buildTools, rootTools...)...)
	b := artifacts(t)
	deb1, _ := artifactNames(v1)
	deb2, _ := artifactNames(v2)
	r := scratchRoot(t, true)

	// Install.
	dpkg(t, r, "-i", filepath.Join(b.a, deb1))
	if s := dpkgStatus(t, r); s != "install ok installed 1.0.0" {
		t.Fatalf("status %q", s)
	}
	uid, gid, home, shell, ok := account(t, r, "keepwatch")
	if !ok || uid == 0 || uid >= 1000 || home != "/var/lib/keepwatch" || shell != "/usr/sbin/nologin" {
		t.Fatalf("system user keepwatch: uid %d gid %d home %s shell %s (exists %v)", uid, gid, home, shell, ok)
	}
	checkFiles(t, r, map[string]wantFile{
		"usr/bin/keepwatch":                              {0o755, 0, 0},
		"usr/lib/systemd/system/keepwatch.service":       {0o644, 0, 0},
		"usr/lib/systemd/system/keepwatch-agent.service": {0o644, 0, 0},
		"etc/keepwatch/keepwatch.env":                    {0o640, 0, gid},
		"etc/keepwatch/agent.json":                       {0o644, 0, 0},
		"var/lib/keepwatch":                              {0o700, uid, gid},
		"var/lib/keepwatch-agent":                        {0o700, uid, gid},
		"usr/share/doc/keepwatch/examples/agent.json":    {0o644, 0, 0},
	})
	conffiles, _ := exec.Command("dpkg-query", "--admindir="+filepath.Join(r, "var/lib/dpkg"), "-W", "-f", "${Conffiles}", "keepwatch").Output()
	for _, c := range []string{"/etc/keepwatch/keepwatch.env", "/etc/keepwatch/agent.json"} {
		if !strings.Contains(string(conffiles), c) {
			t.Errorf("%s is not a conffile: %s", c, conffiles)
		}
	}
	if v := strings.TrimSpace(run(t, filepath.Join(r, "usr/bin/keepwatch"), "version")); v != "1.0.0" {
		t.Errorf("installed keepwatch version %q", v)
	}
	for _, cfg := range []string{"etc/keepwatch/agent.json", "usr/share/doc/keepwatch/examples/agent.json"} {
		if _, err := agent.LoadConfig(filepath.Join(r, cfg)); err != nil {
			t.Errorf("the agent refuses /%s: %v", cfg, err)
		}
	}
	checkUnits(t, r)
	serveWithPackagedOptions(t, r)

	// Data and an administrator's change to a conffile.
	precious := map[string]string{
		"var/lib/keepwatch/keepwatch.db":     "the database",
		"var/lib/keepwatch/tls/cert.pem":     "the certificate agents trust",
		"var/lib/keepwatch-agent/agent.json": "the agent's identity",
		"var/lib/keepwatch-agent/spool.db":   "the agent's spool",
	}
	for p, content := range precious {
		os.MkdirAll(filepath.Dir(filepath.Join(r, p)), 0o700)
		if err := os.WriteFile(filepath.Join(r, p), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := filepath.Join(r, "etc/keepwatch/keepwatch.env")
	edited := append(must(os.ReadFile(env)), "# changed by the administrator\n"...)
	os.WriteFile(env, edited, 0o640)
	checkData := func(when string) {
		t.Helper()
		for p, content := range precious {
			if b, err := os.ReadFile(filepath.Join(r, p)); err != nil || string(b) != content {
				t.Errorf("after %s: %s = %q, %v", when, p, b, err)
			}
		}
		checkFiles(t, r, map[string]wantFile{"var/lib/keepwatch": {0o700, uid, gid}, "var/lib/keepwatch-agent": {0o700, uid, gid}})
		if u, _, _, _, ok := account(t, r, "keepwatch"); !ok || u != uid {
			t.Errorf("after %s: the user keepwatch is gone or changed (uid %d)", when, u)
		}
	}

	// Upgrade: new binary, data and the administrator's configuration kept.
	dpkg(t, r, "-i", filepath.Join(b.c, deb2))
	if s := dpkgStatus(t, r); s != "install ok installed 1.0.1" {
		t.Fatalf("status after upgrade %q", s)
	}
	if v := strings.TrimSpace(run(t, filepath.Join(r, "usr/bin/keepwatch"), "version")); v != "1.0.1" {
		t.Errorf("upgraded keepwatch version %q", v)
	}
	if b, _ := os.ReadFile(env); string(b) != string(edited) {
		t.Error("the upgrade replaced the administrator's keepwatch.env")
	}
	if m, _ := filepath.Glob(filepath.Join(r, "etc/keepwatch/*.dpkg-*")); len(m) > 0 {
		t.Errorf("the upgrade left %v", m)
	}
	checkData("upgrade")

	// Remove: program and units go, configuration and data stay.
	dpkg(t, r, "-r", "keepwatch")
	if s := dpkgStatus(t, r); s != "deinstall ok config-files 1.0.1" {
		t.Errorf("status after remove %q", s)
	}
	for _, p := range []string{"usr/bin/keepwatch", "usr/lib/systemd/system/keepwatch.service", "usr/lib/systemd/system/keepwatch-agent.service"} {
		if exists(r, p) {
			t.Errorf("%s is still there after remove", p)
		}
	}
	if !exists(r, "etc/keepwatch/keepwatch.env") {
		t.Error("remove deleted the configuration")
	}
	checkData("remove")

	// Purge: the configuration goes, the data stays.
	out := dpkg(t, r, "-P", "keepwatch")
	if exists(r, "etc/keepwatch") {
		t.Error("/etc/keepwatch is still there after purge")
	}
	if s := dpkgStatus(t, r); strings.Contains(s, "installed") || strings.Contains(s, "config-files") {
		t.Errorf("status after purge %q", s)
	}
	if !strings.Contains(out, "/var/lib/keepwatch is kept") {
		t.Errorf("purge does not say the data is kept:\n%s", out)
	}
	checkData("purge")

	// Installed again, keepwatch finds its data and its user as they were.
	dpkg(t, r, "-i", filepath.Join(b.a, deb1))
	checkData("reinstall")
}

// Without useradd (a root made by hand, a container without passwd), the
// installation still succeeds, says what to do, and leaves the directories
// to root.
func TestDebInstallsWithoutUseradd(t *testing.T) {
	need(t, true, append(buildTools, rootTools...)...)
	b := artifacts(t)
	deb1, _ := artifactNames(v1)
	r := scratchRoot(t, false)
	out := dpkg(t, r, "--force-depends", "-i", filepath.Join(b.a, deb1))
	if !strings.Contains(out, "useradd not found: create the system user and group keepwatch") {
		t.Errorf("no advice about the missing user:\n%s", out)
	}
	if _, _, _, _, ok := account(t, r, "keepwatch"); ok {
		t.Error("a user appeared without useradd")
	}
	checkFiles(t, r, map[string]wantFile{
		"var/lib/keepwatch": {0o700, 0, 0}, "var/lib/keepwatch-agent": {0o700, 0, 0},
		"etc/keepwatch/keepwatch.env": {0o644, 0, 0},
	})
}

// checkUnits verifies the installed units with systemd itself and checks
// the hardening they promise.
func checkUnits(t *testing.T, r string) {
	t.Helper()
	cmd := exec.Command("systemd-analyze", "verify", "--root="+r, "keepwatch.service", "keepwatch-agent.service")
	if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	hardening := map[string]string{
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes", "PrivateDevices": "yes",
		"CapabilityBoundingSet": "", "AmbientCapabilities": "", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"RestrictNamespaces": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
		"ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectControlGroups": "yes",
		"SystemCallArchitectures": "native", "User": "keepwatch", "Group": "keepwatch", "UMask": "0077",
	}
	for name, own := range map[string]map[string]string{
		"keepwatch.service": {
			"ExecStart": "/usr/bin/keepwatch serve $KEEPWATCH_SERVE_ARGS", "EnvironmentFile": "/etc/keepwatch/keepwatch.env",
			"ReadWritePaths": "/var/lib/keepwatch", "ProtectHome": "yes",
		},
		"keepwatch-agent.service": {
			"ExecStart":      "/usr/bin/keepwatch agent run --state /var/lib/keepwatch-agent --config /etc/keepwatch/agent.json",
			"ReadWritePaths": "/var/lib/keepwatch-agent", "ProtectHome": "read-only",
			"ConditionPathExists": "/var/lib/keepwatch-agent/agent.json",
		},
	} {
		u := unit(t, filepath.Join(r, "usr/lib/systemd/system", name))
		for k, v := range hardening {
			own[k] = v
		}
		for k, v := range own {
			if got := u[k]; len(got) != 1 || got[0] != v {
				t.Errorf("%s: %s=%q, want %q", name, k, got, v)
			}
		}
		if f := u["SystemCallFilter"]; len(f) != 2 || f[0] != "@system-service" || !strings.HasPrefix(f[1], "~@privileged") {
			t.Errorf("%s: SystemCallFilter %q", name, f)
		}
		// systemd's own rating of the sandbox: 0 is the most, 10 the least
		// confined; "OK" is below 5.
		out, _ := exec.Command("systemd-analyze", "security", "--offline=true", "--root="+r, name).CombinedOutput()
		m := regexp.MustCompile(`Overall exposure level for \S+: (\d+\.\d+)`).FindStringSubmatch(string(out))
		if m == nil {
			t.Errorf("systemd-analyze security %s:\n%s", name, out)
			continue
		}
		if level, _ := strconv.ParseFloat(m[1], 64); level > 2.5 {
			t.Errorf("%s: exposure level %s, want at most 2.5", name, m[1])
		}
		t.Logf("%s: systemd-analyze security exposure level %s", name, m[1])
	}
}

// serveWithPackagedOptions starts the installed binary with the options of
// the packaged keepwatch.env (on a temporary data directory and a free
// loopback port instead of :8443) and waits until it is ready.
func serveWithPackagedOptions(t *testing.T, r string) {
	t.Helper()
	var args []string
	for _, l := range strings.Split(string(must(os.ReadFile(filepath.Join(r, "etc/keepwatch/keepwatch.env")))), "\n") {
		if v, ok := strings.CutPrefix(l, "KEEPWATCH_SERVE_ARGS="); ok {
			args = strings.Fields(v)
			break
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for i := range args {
		switch {
		case i > 0 && args[i-1] == "--data":
			args[i] = t.TempDir()
		case i > 0 && args[i-1] == "--addr":
			if args[i] != ":8443" {
				t.Errorf("the package listens on %s, want :8443", args[i])
			}
			args[i] = addr
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, filepath.Join(r, "usr/bin/keepwatch"), append([]string{"serve"}, args...)...)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		cmd.Wait()
	}()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get("https://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("keepwatch serve %s is not ready within 30s: %v\n%s", strings.Join(args, " "), err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return v
}
