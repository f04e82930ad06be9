package store_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/sealed"
	"keepwatch/internal/secret"
	"keepwatch/internal/store"
	"keepwatch/internal/testutil"
)

// TestSecretsAreSealedAtRestAndRotate checks that a database read
// without the secret key (a dump) holds neither report keys nor webhook
// secrets, that values moved between rows do not open, that values stored
// before a key was configured still read and are sealed by RotateSecrets,
// and that rotation moves everything to the new key.
func TestSecretsAreSealedAtRestAndRotate(t *testing.T) {
	for _, d := range testutil.Dialects {
		t.Run(d, func(t *testing.T) {
			dsn := testutil.DSN(t, d)
			oldKey, newKey := sealed.NewKey(), sealed.NewKey()
			open := func(keys string) *store.Store {
				var kr *sealed.Keyring
				if keys != "" {
					var err error
					if kr, err = sealed.ParseKeys(keys); err != nil {
						t.Fatal(err)
					}
				}
				s, err := store.OpenWith(ctx, dsn, store.Options{Keyring: kr})
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			// Before encryption at rest: one server and one channel stored
			// in plaintext.
			plain := open("")
			in, err := plain.CreateIntegrator(ctx, "Alice Security")
			must(t, err)
			until, _ := keepwatch.ParseDate("2099-01-01")
			inst, err := plain.CreateInstallation(ctx, keepwatch.Installation{SLC: "SEAL-0001", Customer: "c", Product: "p", Cameras: 1, CarePlusUntil: until}, secret.Hash("k"))
			must(t, err)
			legacyKey := bytes.Repeat([]byte{1}, 32)
			_, err = plain.Enroll(ctx, keepwatch.Enrollment{InstallationID: inst, ID: strings.Repeat("a", 32), Name: "RS-legacy", Key: legacyKey, Interval: time.Minute})
			must(t, err)
			legacyCh, err := plain.CreateChannel(ctx, in.ID, keepwatch.Channel{Name: "old", Type: keepwatch.ChannelWebhook, Target: "https://hooks.example/a", Secret: "whsec_legacy", Enabled: true})
			must(t, err)
			plain.Close()

			s := open(oldKey)
			newKey1 := bytes.Repeat([]byte{2}, 32)
			idB := strings.Repeat("b", 32)
			_, err = s.Enroll(ctx, keepwatch.Enrollment{InstallationID: inst, ID: idB, Name: "RS-new", Key: newKey1, Interval: time.Minute})
			must(t, err)
			ch, err := s.CreateChannel(ctx, in.ID, keepwatch.Channel{Name: "new", Type: keepwatch.ChannelWebhook, Target: "https://hooks.example/b", Secret: "whsec_new", Enabled: true})
			must(t, err)
			stored, storedSecret, err := s.StoredSecrets(ctx, idB, ch.ID)
			must(t, err)
			if bytes.Contains(stored, newKey1) || !sealed.IsSealed(stored) || strings.Contains(storedSecret, "whsec_new") {
				t.Fatalf("stored in the clear: %x %q", stored, storedSecret)
			}
			rec, err := s.ServerRecord(ctx, idB)
			if err != nil || !bytes.Equal(rec.Key, newKey1) {
				t.Fatalf("read back: %x %v", rec.Key, err)
			}
			got, err := s.Channel(ctx, in.ID, ch.ID)
			if err != nil || got.Secret != "whsec_new" {
				t.Fatalf("channel secret read back: %q %v", got.Secret, err)
			}
			// Legacy plaintext values still read.
			if rec, err := s.ServerRecord(ctx, strings.Repeat("a", 32)); err != nil || !bytes.Equal(rec.Key, legacyKey) {
				t.Fatalf("legacy key: %x %v", rec.Key, err)
			}
			if got, err := s.Channel(ctx, in.ID, legacyCh.ID); err != nil || got.Secret != "whsec_legacy" {
				t.Fatalf("legacy secret: %q %v", got.Secret, err)
			}
			n, err := s.RotateSecrets(ctx)
			if err != nil || n.ReportKeys != 1 || n.WebhookSecrets != 1 {
				t.Fatalf("seal legacy values: %+v %v", n, err)
			}
			s.Close()

			// A dump read without the key yields no usable secret.
			dump := open("")
			if _, err := dump.ServerRecord(ctx, idB); err == nil {
				t.Fatal("a store without the key read a sealed report key")
			}
			dump.Close()

			// Rotation: new key current, old key still opens; rotate-secrets
			// re-seals every value; then the old key can go.
			s = open(newKey + "\n" + oldKey)
			n, err = s.RotateSecrets(ctx)
			if err != nil || n.ReportKeys != 2 || n.WebhookSecrets != 2 {
				t.Fatalf("rotate: %+v %v", n, err)
			}
			if n, err := s.RotateSecrets(ctx); err != nil || n.ReportKeys+n.WebhookSecrets != 0 {
				t.Fatalf("second rotation re-sealed %+v %v", n, err)
			}
			s.Close()
			s = open(newKey)
			defer s.Close()
			for id, want := range map[string][]byte{strings.Repeat("a", 32): legacyKey, idB: newKey1} {
				if rec, err := s.ServerRecord(ctx, id); err != nil || !bytes.Equal(rec.Key, want) {
					t.Fatalf("after rotation %s: %x %v", id, rec.Key, err)
				}
			}
			if got, err := s.Channel(ctx, in.ID, legacyCh.ID); err != nil || got.Secret != "whsec_legacy" {
				t.Fatalf("after rotation, secret: %q %v", got.Secret, err)
			}
		})
	}
}

// TestSealedKeyMovedToAnotherRowDoesNotOpen: whoever can write the
// database cannot give a server another server's key.
func TestSealedKeyMovedToAnotherRowDoesNotOpen(t *testing.T) {
	kr, _ := sealed.ParseKeys(sealed.NewKey())
	s, err := store.OpenWith(ctx, testutil.DSN(t, store.SQLite), store.Options{Keyring: kr})
	must(t, err)
	defer s.Close()
	f := newFixture(t, s)
	a, _, err := s.StoredSecrets(ctx, f.aliceSrv, 0)
	must(t, err)
	must(t, s.OverwriteReportKeyForTest(ctx, f.bobSrv, a))
	if _, err := s.ServerRecord(ctx, f.bobSrv); err == nil {
		t.Fatal("a report key moved to another server opened")
	}
}
