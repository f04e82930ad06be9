package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"
)

func utf16File(s string) []byte {
	b := []byte{0xFF, 0xFE}
	for _, u := range utf16.Encode([]rune(s)) {
		b = append(b, byte(u), byte(u>>8))
	}
	return b
}

func TestReadEnrollFileTakesWhatTheInstallerWrites(t *testing.T) {
	dir := t.TempDir()
	ini := "; written by the installer\r\n[enroll]\r\nServer=https://kw.example:8443\r\nSLC=M01-2345-6789\r\nKEY = k3y \r\nname=\r\nconsent=1\r\nca=C:\\kw\\cert.pem\r\n"
	want := EnrollOptions{Server: "https://kw.example:8443", SLC: "M01-2345-6789", Key: "k3y", Consent: true, CAFile: `C:\kw\cert.pem`}
	for name, content := range map[string][]byte{
		"ansi":   []byte(ini),
		"utf8":   append([]byte{0xEF, 0xBB, 0xBF}, ini...),
		"utf16":  utf16File(ini),
		"nosect": []byte(strings.Replace(ini, "[enroll]\r\n", "", 1)),
	} {
		p := filepath.Join(dir, name+".ini")
		os.WriteFile(p, content, 0o600)
		got, ok, err := ReadEnrollFile(p)
		if err != nil || !ok || got != want {
			t.Errorf("%s: got %+v ok=%v err=%v, want %+v", name, got, ok, err, want)
		}
	}

	for name, c := range map[string]struct {
		content string
		ok      bool
		err     string
	}{
		"missing":     {"", false, ""},
		"no server":   {"[enroll]\nserver=\nslc=\nkey=\nconsent=\n", false, ""},
		"no consent":  {"[enroll]\nserver=https://kw\nslc=A\nkey=k\nconsent=0\n", false, "consent"},
		"no key":      {"[enroll]\nserver=https://kw\nslc=A\nconsent=1\n", false, "key is missing"},
		"typo":        {"[enroll]\nserver=https://kw\nslc=A\nkey=k\nconsnet=1\n", false, `unknown key "consnet"`},
		"bad consent": {"[enroll]\nserver=https://kw\nslc=A\nkey=k\nconsent=maybe\n", false, "consent must be"},
		"other sect":  {"[other]\nanything=1\n[enroll]\nserver=https://kw\nslc=A\nkey=k\nconsent=yes\n", true, ""},
	} {
		p := filepath.Join(dir, "case.ini")
		os.Remove(p)
		if name != "missing" {
			os.WriteFile(p, []byte(c.content), 0o600)
		}
		_, ok, err := ReadEnrollFile(p)
		if ok != c.ok || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: ok=%v err=%v, want ok=%v err containing %q", name, ok, err, c.ok, c.err)
		}
	}
}

// logBuffer collects log lines for a test to wait on.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func writeEnrollFile(t *testing.T, path, server, ca, slc, key, name string) {
	t.Helper()
	content := fmt.Sprintf("[enroll]\r\nserver=%s\r\nslc=%s\r\nkey=%s\r\nname=%s\r\nconsent=1\r\nca=%s\r\n", server, slc, key, name, ca)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func startFirstStart(t *testing.T, fs FirstStart) (logs *logBuffer, done <-chan error, stop func()) {
	logs = &logBuffer{}
	fs.Logger = slog.New(slog.NewTextHandler(logs, nil))
	fs.Poll, fs.MaxBackoff = 20*time.Millisecond, 50*time.Millisecond
	fs.Hostname = func() (string, error) { return "RS-HOST", nil }
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- fs.Run(ctx) }()
	t.Cleanup(cancel)
	return logs, ch, cancel
}

func TestFirstStartWaitsForTheFileThenEnrollsAndRemovesIt(t *testing.T) {
	f := newFixture(t, time.Minute)
	dir := t.TempDir()
	file := filepath.Join(dir, "enroll.ini")
	logs, done, _ := startFirstStart(t, FirstStart{Dir: dir, File: file})

	waitFor(t, 10*time.Second, "waiting is logged", func() bool { return logs.count("waiting for an enrollment file") > 0 })
	time.Sleep(100 * time.Millisecond)
	if n := logs.count("waiting for an enrollment file"); n != 1 {
		t.Errorf("waiting logged %d times, want once", n)
	}
	if _, err := Load(dir); err == nil {
		t.Fatal("enrolled without a file")
	}

	// The installer ran without a name: the computer's name is used.
	writeEnrollFile(t, file, f.app.URL(), f.app.CertFile, strings.ToLower(f.slc), "key", "")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("not enrolled within 30s")
	}
	st, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Name != "RS-HOST" || st.SLC != f.slc || !st.Consent || st.ServerID == "" || st.ServerID == f.state.ServerID {
		t.Errorf("state = %+v", st)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the enrollment file (it holds the key) is still there: %v", err)
	}
	// keepwatch knows the new server: it accepts its report.
	c, err := NewClient(st.Server, st.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&Sender{Dir: dir, State: st, Client: c}).Send(context.Background(), nil); err != nil {
		t.Fatalf("heartbeat of the server enrolled from the file: %v", err)
	}
}

func TestFirstStartRetriesRefusalsAndRereadsTheFile(t *testing.T) {
	f := newFixture(t, time.Minute)
	dir := t.TempDir()
	file := filepath.Join(dir, "enroll.ini")
	// Nothing listens there, then the key is wrong: both are retried.
	writeEnrollFile(t, file, "https://127.0.0.1:1", f.app.CertFile, f.slc, "key", "RS-02")
	logs, done, _ := startFirstStart(t, FirstStart{Dir: dir, File: file})
	waitFor(t, 10*time.Second, "an unreachable keepwatch is retried", func() bool { return logs.count("enrollment failed") >= 2 })

	writeEnrollFile(t, file, f.app.URL(), f.app.CertFile, f.slc, "wrong-key", "RS-02")
	waitFor(t, 10*time.Second, "a refused key is retried", func() bool { return logs.count("unauthorized") >= 2 })
	if _, err := Load(dir); err == nil {
		t.Fatal("enrolled with a wrong key")
	}

	writeEnrollFile(t, file, f.app.URL(), f.app.CertFile, f.slc, "key", "RS-02")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("not enrolled within 30s of the corrected file")
	}
	if st, err := Load(dir); err != nil || st.Name != "RS-02" {
		t.Fatalf("state %+v, %v", st, err)
	}
	if strings.Contains(logs.b.String(), "key=key") || logs.count("wrong-key") > 0 {
		t.Error("the enrollment key appears in the log")
	}
}

func TestFirstStartLeavesAnEnrolledDirectoryAlone(t *testing.T) {
	f := newFixture(t, time.Minute)
	file := filepath.Join(f.dir, "enroll.ini")
	writeEnrollFile(t, file, f.app.URL(), f.app.CertFile, f.slc, "key", "RS-OTHER")
	_, done, _ := startFirstStart(t, FirstStart{Dir: f.dir, File: file})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st, err := Load(f.dir)
	if err != nil || st.ServerID != f.state.ServerID || st.Name != "RS-01" {
		t.Errorf("the enrollment changed: %+v, %v", st, err)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the leftover enrollment file is still there: %v", err)
	}
}

func TestFirstStartWithoutConsentWaitsAndStopsWithItsContext(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "enroll.ini")
	os.WriteFile(file, []byte("[enroll]\nserver=https://127.0.0.1:1\nslc=A\nkey=k\nconsent=0\n"), 0o600)
	logs, done, stop := startFirstStart(t, FirstStart{Dir: dir, File: file})
	waitFor(t, 10*time.Second, "the missing consent is logged", func() bool { return logs.count("consent") > 0 })
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if logs.count("enrollment failed") > 0 {
		t.Error("tried to enroll without consent")
	}
	if _, err := Load(dir); err == nil {
		t.Error("enrolled without consent")
	}
}
