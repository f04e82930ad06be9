package app_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/app"
	"keepwatch/internal/sealed"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

// TestPostgresRefusesToStartWithoutASecretKey: nodes must share one key,
// and one kept in the database would not protect it.
func TestPostgresRefusesToStartWithoutASecretKey(t *testing.T) {
	dsn := testutil.DSN(t, store.Postgres)
	_, err := app.New(ctx, app.Config{DataDir: t.TempDir(), DB: dsn, InsecureHTTP: true, Logger: quiet()})
	if err == nil || !strings.Contains(err.Error(), "secret key") {
		t.Fatalf("started without a key: %v", err)
	}
	a, err := app.New(ctx, app.Config{DataDir: t.TempDir(), DB: dsn, InsecureHTTP: true, Logger: quiet(), SecretKey: "not a key"})
	if err == nil {
		a.Shutdown(ctx)
		t.Fatal("started with a malformed key")
	}
}

// TestEnrolledKeysAreSealedUnderTheDataDirectoryKey: SQLite without a
// configured key generates one next to the database; what a server
// enrolls is stored sealed under it and opens again after a restart.
func TestEnrolledKeysAreSealedUnderTheDataDirectoryKey(t *testing.T) {
	data := t.TempDir()
	a := start(t, app.Config{DataDir: data, InsecureHTTP: true})
	until, _ := keepwatch.ParseDate("2099-01-01")
	inst, err := a.Store.CreateInstallation(ctx, keepwatch.Installation{SLC: "KEY-0001", Customer: "c", Product: "p", CarePlusUntil: until}, []byte("h"))
	if err != nil {
		t.Fatal(err)
	}
	id, key := strings.Repeat("d", 32), bytes.Repeat([]byte{4}, 32)
	if _, err := a.Store.Enroll(ctx, keepwatch.Enrollment{InstallationID: inst, ID: id, Name: "RS-01", Key: key, Interval: time.Minute}); err != nil {
		t.Fatal(err)
	}
	a.Shutdown(ctx)
	text, err := os.ReadFile(filepath.Join(data, store.SecretKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	kr, err := sealed.ParseKeys(string(text))
	if err != nil {
		t.Fatal(err)
	}
	a = start(t, app.Config{DataDir: data, InsecureHTTP: true})
	defer a.Shutdown(ctx)
	stored, _, err := a.Store.StoredSecrets(ctx, id, 0)
	if err != nil || !kr.Current(stored) || bytes.Contains(stored, key) {
		t.Fatalf("stored report key %x %v", stored, err)
	}
	rec, err := a.Store.ServerRecord(ctx, id)
	if err != nil || !bytes.Equal(rec.Key, key) {
		t.Fatalf("after restart: %x %v", rec.Key, err)
	}
}
