package secret_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"keepwatch/internal/secret"
)

func TestSealedValuesOpenOnlyWithTheirKeyAndWhatTheyBelongTo(t *testing.T) {
	dir := t.TempDir()
	key, err := secret.LoadKey("", dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := secret.LoadKey("", dir)
	if err != nil || string(again) != string(key) {
		t.Fatal("the key file was not reused")
	}
	if fi, err := os.Stat(filepath.Join(dir, secret.KeyFile)); err != nil || fi.Mode().Perm()&0o077 != 0 && os.PathSeparator == '/' {
		t.Fatalf("key file: %v %v", fi.Mode(), err)
	}
	s, _ := secret.NewSealer(key)
	sealed := s.Seal([]byte("seed"), "totp:1")
	if got, err := s.Open(sealed, "totp:1"); err != nil || string(got) != "seed" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := s.Open(sealed, "totp:2"); err == nil {
		t.Fatal("a value opened for another owner")
	}
	other, _ := secret.LoadKey(base64.StdEncoding.EncodeToString(make([]byte, 32)), dir)
	o, _ := secret.NewSealer(other)
	if _, err := o.Open(sealed, "totp:1"); err == nil {
		t.Fatal("a value opened under another key")
	}
	if _, err := secret.LoadKey("not base64", dir); err == nil {
		t.Fatal("a bad key was accepted")
	}
}
