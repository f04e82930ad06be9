package sealed_test

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"keepwatch/internal/sealed"
)

func TestSealOpenAndBinding(t *testing.T) {
	k, err := sealed.ParseKeys(sealed.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	plain := bytes.Repeat([]byte{7}, 32)
	b := k.Seal(plain, "servers.report_key:a")
	if !sealed.IsSealed(b) || bytes.Contains(b, plain) || !k.Current(b) {
		t.Fatalf("sealed value %x", b)
	}
	got, err := k.Open(b, "servers.report_key:a")
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %x %v", got, err)
	}
	// Moved to another row, or altered: it does not open.
	if _, err := k.Open(b, "servers.report_key:b"); err == nil {
		t.Fatal("opened under another row's associated data")
	}
	b[len(b)-1] ^= 1
	if _, err := k.Open(b, "servers.report_key:a"); err == nil {
		t.Fatal("opened an altered value")
	}
	// A plaintext 32-byte key is never taken for a sealed value.
	if sealed.IsSealed(plain) || sealed.IsSealed(append([]byte("kw\x01"), make([]byte, 29)...)) {
		t.Fatal("plaintext key taken for sealed")
	}
	s := k.SealString("whsec_abc", "channels.secret:1")
	if !sealed.IsSealedString(s) || strings.Contains(s, "whsec_abc") {
		t.Fatalf("sealed text %q", s)
	}
	if p, err := k.OpenString(s, "channels.secret:1"); err != nil || p != "whsec_abc" {
		t.Fatalf("open text: %q %v", p, err)
	}
	if _, err := k.OpenString(s, "channels.secret:2"); err == nil {
		t.Fatal("text opened under another row")
	}
}

func TestRotationOpensOldAndSealsNew(t *testing.T) {
	oldKey, newKey := sealed.NewKey(), sealed.NewKey()
	before, _ := sealed.ParseKeys(oldKey)
	v := before.Seal([]byte("report key"), "ad")
	after, err := sealed.ParseKeys("# rotated\n" + newKey + "\n" + oldKey + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if after.Current(v) {
		t.Fatal("old value counted as current")
	}
	if p, err := after.Open(v, "ad"); err != nil || string(p) != "report key" {
		t.Fatalf("old value under the new keyring: %q %v", p, err)
	}
	if !after.Current(after.Seal([]byte("x"), "ad")) {
		t.Fatal("new value not under the current key")
	}
	onlyNew, _ := sealed.ParseKeys(newKey)
	if _, err := onlyNew.Open(v, "ad"); err == nil || !strings.Contains(err.Error(), "not among the configured keys") {
		t.Fatalf("old value without its key: %v", err)
	}
	for _, bad := range []string{"", "# only a comment", "c2hvcnQ=", "zz" + strings.Repeat("0", 62)} {
		if _, err := sealed.ParseKeys(bad); err == nil {
			t.Errorf("key text %q accepted", bad)
		}
	}
}

func TestGeneratedKeyFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "secret.key")
	k1, created, err := sealed.LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	if runtime.GOOS != "windows" {
		fi, _ := os.Stat(path)
		di, _ := os.Stat(filepath.Dir(path))
		if fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
			t.Fatalf("modes: file %v dir %v", fi.Mode().Perm(), di.Mode().Perm())
		}
		os.Chmod(path, 0o644)
	}
	k2, created, err := sealed.LoadOrCreate(path)
	if err != nil || created || k1.CurrentID() != k2.CurrentID() {
		t.Fatalf("reload: %v %v %s %s", created, err, k1.CurrentID(), k2.CurrentID())
	}
	if fi, _ := os.Stat(path); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode not restored: %v", fi.Mode().Perm())
	}
}

func BenchmarkOpenReportKey(b *testing.B) {
	k, _ := sealed.ParseKeys(sealed.NewKey())
	v := k.Seal(make([]byte, 32), "servers.report_key:0123456789abcdef0123456789abcdef")
	for b.Loop() {
		if _, err := k.Open(v, "servers.report_key:0123456789abcdef0123456789abcdef"); err != nil {
			b.Fatal(err)
		}
	}
}
