// Package sealed encrypts the secrets keepwatch must be able to read back
// — per-server report keys, webhook signing secrets — before they are
// stored, so that a copy of the database alone cannot forge a report or a
// webhook. AES-256-GCM under a key kept outside the database; the row and
// column a value belongs to are its associated data, so a sealed value
// copied into another row does not open.
//
// A Keyring holds the current key, which seals, and older keys, which
// only open: every sealed value names its key by a 4-byte id, so keys
// can be rotated — add a new current key, re-seal everything (keepwatch
// admin rotate-secrets), then drop the old key.
package sealed

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the size of a key: AES-256.
const KeySize = 32

// magic starts every sealed binary value (version 1).
var magic = []byte("kw\x01")

// textPrefix starts every sealed text value.
const textPrefix = "kwsealed1."

const (
	idSize    = 4
	nonceSize = 12
	overhead  = len("kw\x01") + idSize + nonceSize + 16
)

// Keyring seals with its current key and opens with any of its keys. It is
// safe for concurrent use.
type Keyring struct {
	current [idSize]byte
	aeads   map[[idSize]byte]cipher.AEAD
	order   [][idSize]byte
	raw     [][]byte // the keys in order, current first
}

// Derive returns one 32-byte key per key of the ring, current first, for
// a purpose other than sealing (HKDF-SHA256, info "keepwatch " + purpose).
// Every node holding the same keys derives the same ones.
func (k *Keyring) Derive(purpose string) [][]byte {
	out := make([][]byte, 0, len(k.raw))
	for _, key := range k.raw {
		d, err := hkdf.Key(sha256.New, key, nil, "keepwatch "+purpose, 32)
		if err != nil {
			panic(err)
		}
		out = append(out, d)
	}
	return out
}

// KeyID is the short id stored with every value sealed under key.
func KeyID(key []byte) [idSize]byte {
	h := sha256.Sum256(append([]byte("keepwatch sealed key id\x00"), key...))
	return [idSize]byte(h[:idSize])
}

// NewKey returns a new random key, encoded as keys are written in key
// files and environment variables.
func NewKey() string {
	b := make([]byte, KeySize)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// ParseKeys reads keys written one per line (or separated by commas or
// spaces), each 32 bytes in base64 (standard or URL alphabet) or 64 hex
// digits; lines starting with # are comments. The first key is current,
// the others only open values sealed under them.
func ParseKeys(text string) (*Keyring, error) {
	var keys [][]byte
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, f := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\r' }) {
			k, err := decodeKey(f)
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("no secret key given")
	}
	return NewKeyring(keys...)
}

func decodeKey(s string) ([]byte, error) {
	if len(s) == 2*KeySize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != KeySize {
				return nil, fmt.Errorf("a secret key must be %d bytes, this one is %d", KeySize, len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("a secret key must be 32 bytes in base64 or 64 hex digits")
}

// NewKeyring returns a keyring whose first key is current.
func NewKeyring(keys ...[]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("no secret key given")
	}
	k := &Keyring{aeads: map[[idSize]byte]cipher.AEAD{}}
	for i, key := range keys {
		if len(key) != KeySize {
			return nil, fmt.Errorf("a secret key must be %d bytes", KeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		id := KeyID(key)
		if _, dup := k.aeads[id]; dup {
			continue
		}
		if i == 0 {
			k.current = id
		}
		k.aeads[id] = aead
		k.order = append(k.order, id)
		k.raw = append(k.raw, bytes.Clone(key))
	}
	return k, nil
}

// CurrentID is the id of the key that seals, in hex.
func (k *Keyring) CurrentID() string { return hex.EncodeToString(k.current[:]) }

// IDs lists the keyring's key ids in hex, current first.
func (k *Keyring) IDs() []string {
	out := make([]string, len(k.order))
	for i, id := range k.order {
		out[i] = hex.EncodeToString(id[:])
	}
	return out
}

// Seal encrypts plaintext under the current key, bound to ad (which row
// and column it belongs to).
func (k *Keyring) Seal(plaintext []byte, ad string) []byte {
	out := make([]byte, 0, len(plaintext)+overhead)
	out = append(out, magic...)
	out = append(out, k.current[:]...)
	nonce := make([]byte, nonceSize)
	rand.Read(nonce)
	out = append(out, nonce...)
	return k.aeads[k.current].Seal(out, nonce, plaintext, []byte(ad))
}

// IsSealed reports whether b is a sealed value (else it is a plaintext
// value stored before encryption at rest, or by a tool without a key).
func IsSealed(b []byte) bool { return len(b) >= overhead && bytes.HasPrefix(b, magic) }

// Open decrypts a sealed value bound to ad.
func (k *Keyring) Open(b []byte, ad string) ([]byte, error) {
	if !IsSealed(b) {
		return nil, errors.New("not a sealed value")
	}
	id := [idSize]byte(b[len(magic) : len(magic)+idSize])
	aead, ok := k.aeads[id]
	if !ok {
		return nil, fmt.Errorf("a value is sealed under secret key %x, which is not among the configured keys (%s)", id, strings.Join(k.IDs(), ", "))
	}
	nonce := b[len(magic)+idSize : len(magic)+idSize+nonceSize]
	p, err := aead.Open(nil, nonce, b[len(magic)+idSize+nonceSize:], []byte(ad))
	if err != nil {
		return nil, fmt.Errorf("a sealed value (%s) does not open under key %x: altered or moved", ad, id)
	}
	return p, nil
}

// Current reports whether b is sealed under the current key.
func (k *Keyring) Current(b []byte) bool {
	return IsSealed(b) && [idSize]byte(b[len(magic):len(magic)+idSize]) == k.current
}

// SealString seals a text value; the result is text.
func (k *Keyring) SealString(plaintext, ad string) string {
	return textPrefix + base64.RawURLEncoding.EncodeToString(k.Seal([]byte(plaintext), ad))
}

// IsSealedString reports whether s is a sealed text value.
func IsSealedString(s string) bool { return strings.HasPrefix(s, textPrefix) }

// OpenString opens a sealed text value.
func (k *Keyring) OpenString(s, ad string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, textPrefix))
	if !IsSealedString(s) || err != nil {
		return "", errors.New("not a sealed text value")
	}
	p, err := k.Open(b, ad)
	return string(p), err
}

// CurrentString reports whether s is sealed under the current key.
func (k *Keyring) CurrentString(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, textPrefix))
	return IsSealedString(s) && err == nil && k.Current(b)
}

// LoadOrCreate reads the keys in the file at path, creating it with one
// new key (mode 0600, its directory 0700) if it does not exist. created
// reports whether it did.
func LoadOrCreate(path string) (k *Keyring, created bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, false, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) { // another process made it first
			return LoadOrCreate(path)
		}
		if err != nil {
			return nil, false, err
		}
		text := "# keepwatch secret key: seals report keys and webhook secrets in the database.\n" +
			"# Keep it apart from database backups. First key seals; later ones only open.\n" + NewKey() + "\n"
		_, werr := f.WriteString(text)
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			os.Remove(path)
			return nil, false, err
		}
		k, err := ParseKeys(text)
		return k, true, err
	}
	if err != nil {
		return nil, false, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, false, err
	}
	k, err = ParseKeys(string(b))
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", path, err)
	}
	return k, false, nil
}
