package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/sealed"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

// TestDatabaseURLFromFileOrEnvironment: the PostgreSQL URL (which carries
// a password) need not be on the command line; flags beat the
// environment, and an explicit --data beats KEEPWATCH_DB_URL.
func TestDatabaseURLFromFileOrEnvironment(t *testing.T) {
	dsn := testutil.DSN(t, store.Postgres)
	file := filepath.Join(t.TempDir(), "db-url")
	if err := os.WriteFile(file, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli(t, "", "admin", "--db-file", file, "integrator", "add", "From File", "--owner-email", "a@file.example")
	t.Setenv(envDBURL, dsn)
	cli(t, "", "admin", "integrator", "add", "From Env", "--owner-email", "a@env.example")
	s, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, name := range []string{"From File", "From Env"} {
		if _, err := s.IntegratorByName(context.Background(), name); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// --data given: the environment's PostgreSQL is not used.
	data := t.TempDir()
	cli(t, "", "admin", "--data", data, "--create", "integrator", "add", "Local", "--owner-email", "a@local.example")
	if _, err := s.IntegratorByName(context.Background(), "Local"); err == nil {
		t.Fatal("--data went to the environment's database")
	}
	if !strings.Contains(cliFails(t, "admin", "--db", dsn, "--db-file", file, "backup", "--to", "x"), "not both") {
		t.Fatal("--db and --db-file together were accepted")
	}
}

func TestCredentialPrecedence(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "smtp")
	os.WriteFile(f, []byte("smtp://u:p@file.example:587?from=a@b.example\n"), 0o600)
	old := getenv
	defer func() { getenv = old }()
	getenv = func(k string) string {
		if k == envSMTPURL {
			return "smtp://u:p@env.example:587?from=a@b.example"
		}
		return ""
	}
	for _, c := range []struct{ flag, file, want string }{
		{"smtp://flag.example", "", "smtp://flag.example"},
		{"", f, "smtp://u:p@file.example:587?from=a@b.example"},
		{"", "", "smtp://u:p@env.example:587?from=a@b.example"},
	} {
		got, err := credential("smtp-url", c.flag, "smtp-url-file", c.file, envSMTPURL)
		if err != nil || got != c.want {
			t.Errorf("flag %q file %q: %q %v, want %q", c.flag, c.file, got, err, c.want)
		}
	}
	if _, err := credential("smtp-url", "x", "smtp-url-file", f, envSMTPURL); err == nil {
		t.Error("flag and file together accepted")
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	if _, err := credential("smtp-url", "", "smtp-url-file", empty, envSMTPURL); err == nil {
		t.Error("an empty credential file accepted")
	}
}

// TestRotateSecretsSealsOldValuesAndMovesToANewKey runs the operator's
// procedure: a database from before encryption at rest, then a new key
// put first in the key file, then admin rotate-secrets.
func TestRotateSecretsSealsOldValuesAndMovesToANewKey(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	plain, err := store.Open(ctx, data) // no key file yet: plaintext, as an older keepwatch stored it
	if err != nil {
		t.Fatal(err)
	}
	until, _ := keepwatch.ParseDate("2099-01-01")
	inst, _ := plain.CreateInstallation(ctx, keepwatch.Installation{SLC: "ROT-0001", Customer: "c", Product: "p", CarePlusUntil: until}, []byte("h"))
	id := strings.Repeat("c", 32)
	key := bytes.Repeat([]byte{9}, 32)
	if _, err := plain.Enroll(ctx, keepwatch.Enrollment{InstallationID: inst, ID: id, Name: "RS-01", Key: key, Interval: time.Minute}); err != nil {
		t.Fatal(err)
	}
	plain.Close()

	keyFile := filepath.Join(t.TempDir(), "keys")
	first := sealed.NewKey()
	os.WriteFile(keyFile, []byte(first+"\n"), 0o600)
	_, errOut := cli(t, "", "admin", "--data", data, "--secret-key-file", keyFile, "rotate-secrets")
	if !strings.Contains(errOut, "sealed 1 report keys") {
		t.Fatalf("rotate-secrets said %q", errOut)
	}
	// A new key, the old one kept for opening; rotate; then drop it.
	second := sealed.NewKey()
	os.WriteFile(keyFile, []byte(second+"\n"+first+"\n"), 0o600)
	if _, errOut = cli(t, "", "admin", "--data", data, "--secret-key-file", keyFile, "rotate-secrets"); !strings.Contains(errOut, "sealed 1 report keys") {
		t.Fatalf("rotation said %q", errOut)
	}
	kr, _ := sealed.ParseKeys(second)
	s, err := store.OpenWith(ctx, data, store.Options{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stored, _, err := s.StoredSecrets(ctx, id, 0)
	if err != nil || !kr.Current(stored) {
		t.Fatalf("stored %x %v", stored, err)
	}
	rec, err := s.ServerRecord(ctx, id)
	if err != nil || !bytes.Equal(rec.Key, key) {
		t.Fatalf("after rotation: %x %v", rec.Key, err)
	}
}
