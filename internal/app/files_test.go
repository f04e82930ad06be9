package app_test

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"keepwatch"
	"keepwatch/internal/app"
	"keepwatch/internal/secret"
)

// mode returns the permission bits of path.
func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestDataFilesArePrivateWhateverExistedBefore: a data directory another
// local user can read, with files they can read, is narrowed on start;
// backups are written private.
func TestDataFilesArePrivateWhateverExistedBefore(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("POSIX modes")
	}
	data := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		want := map[string]os.FileMode{
			data: 0o700, filepath.Join(data, "keepwatch.db"): 0o600, filepath.Join(data, "keepwatch.db-wal"): 0o600,
			filepath.Join(data, "secret.key"): 0o600, filepath.Join(data, "tls"): 0o700, filepath.Join(data, "tls", "key.pem"): 0o600,
		}
		for p, m := range want {
			if got := mode(t, p); got != m {
				t.Errorf("%s: %s is %v, want %v", when, p, got, m)
			}
		}
	}
	a := start(t, app.Config{DataDir: data, SelfSigned: true})
	in, _ := a.Store.CreateIntegrator(ctx, "Alice")
	a.Store.CreateToken(ctx, in.ID, "t", keepwatch.RoleOwner, secret.Hash("x"))
	check("first start")
	backup := filepath.Join(t.TempDir(), "copy.db")
	if err := a.Store.Backup(ctx, backup); err != nil {
		t.Fatal(err)
	}
	if got := mode(t, backup); got != 0o600 {
		t.Errorf("backup is %v, want 0600", got)
	}
	a.Shutdown(ctx)

	// Someone (an older keepwatch, a careless copy) opened everything up.
	for _, p := range []string{data, filepath.Join(data, "tls")} {
		os.Chmod(p, 0o755)
	}
	for _, p := range []string{"keepwatch.db", "keepwatch.db-wal", "secret.key", "tls/key.pem"} {
		os.Chmod(filepath.Join(data, p), 0o644)
	}
	a = start(t, app.Config{DataDir: data, SelfSigned: true})
	defer a.Shutdown(ctx)
	a.Store.CreateToken(ctx, in.ID, "t2", keepwatch.RoleOwner, secret.Hash("y"))
	check("restart")
}

// TestStartSaysWhichNamesTheCertificateCovers: agents must reach keepwatch
// by one of them; the operator sees them at start.
func TestStartSaysWhichNamesTheCertificateCovers(t *testing.T) {
	var logs syncBuffer
	a, err := app.New(ctx, app.Config{DataDir: t.TempDir(), Addr: "127.0.0.1:0", SelfSigned: true, PublicURL: "https://keepwatch.example.net:8443",
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(ctx)
	if !strings.Contains(logs.String(), "names=localhost,") || !strings.Contains(logs.String(), "keepwatch.example.net") || !strings.Contains(logs.String(), "127.0.0.1") {
		t.Fatalf("start-up log does not list the certificate's names:\n%s", logs.String())
	}
}

// TestMetricsNeedTheirTokenOrTheirOwnAddress: /metrics tells how big the
// fleet is; an operator can require a token or move it off the public
// listener.
func TestMetricsNeedTheirTokenOrTheirOwnAddress(t *testing.T) {
	get := func(url, token string) (int, string) {
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	open := start(t, app.Config{DataDir: t.TempDir(), InsecureHTTP: true})
	defer open.Shutdown(ctx)
	if st, body := get(open.URL()+"/metrics", ""); st != 200 || !strings.Contains(body, "keepwatch_") {
		t.Fatalf("default /metrics: %d", st)
	}
	guarded := start(t, app.Config{DataDir: t.TempDir(), InsecureHTTP: true, MetricsToken: "metrics-token-3f9a"})
	defer guarded.Shutdown(ctx)
	for _, tok := range []string{"", "wrong", "metrics-token-3f9"} {
		if st, body := get(guarded.URL()+"/metrics", tok); st != 401 || strings.Contains(body, "keepwatch_") {
			t.Fatalf("/metrics with token %q: %d", tok, st)
		}
	}
	if st, _ := get(guarded.URL()+"/metrics", "metrics-token-3f9a"); st != 200 {
		t.Fatalf("/metrics with its token: %d", st)
	}
	apart := start(t, app.Config{DataDir: t.TempDir(), InsecureHTTP: true, MetricsAddr: "127.0.0.1:0"})
	defer apart.Shutdown(ctx)
	if st, body := get(apart.URL()+"/metrics", ""); st == 200 || strings.Contains(body, "keepwatch_") {
		t.Fatalf("/metrics still on the main listener: %d", st)
	}
	if st, body := get(apart.MetricsURL, ""); st != 200 || !strings.Contains(body, "keepwatch_") {
		t.Fatalf("/metrics on its own address: %d", st)
	}
}
