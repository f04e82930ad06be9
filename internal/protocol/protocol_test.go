package protocol

import (
	"bytes"
	"crypto/ecdh"
	"testing"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestSealOpenRoundTrip(t *testing.T) {
	id := NewServerID()
	for _, payload := range [][]byte{nil, []byte(`{"conditions":[]}`)} {
		env, err := Seal(testKey(1), id, 42, payload)
		if err != nil {
			t.Fatal(err)
		}
		h, err := ParseHeader(env)
		if err != nil || h.ID != id || h.Seq != 42 {
			t.Fatalf("header = %+v, %v", h, err)
		}
		pt, err := Open(testKey(1), env)
		if err != nil || !bytes.Equal(pt, payload) {
			t.Fatalf("open = %q, %v", pt, err)
		}
	}
}

func TestEveryTamperedByteIsRefused(t *testing.T) {
	id := NewServerID()
	env, _ := Seal(testKey(1), id, 7, []byte(`{"conditions":[{"kind":"storage_full"}]}`))
	for i := range env {
		bad := bytes.Clone(env)
		bad[i] ^= 0x01
		if _, err := ParseHeader(bad); err != nil {
			continue // a changed version byte is malformed, also refused
		}
		if _, err := Open(testKey(1), bad); err != ErrForged {
			t.Fatalf("flipping byte %d: err = %v, want ErrForged", i, err)
		}
	}
	if _, err := Open(testKey(2), env); err != ErrForged {
		t.Fatalf("wrong key: %v", err)
	}
	for _, n := range []int{0, 1, MinEnvelope - 1} {
		if _, err := ParseHeader(env[:n]); err != ErrMalformed {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	if _, err := Open(testKey(1), env[:len(env)-1]); err != ErrForged {
		t.Fatalf("truncated tag: %v", err)
	}
}

func TestBothSidesDeriveTheSameKey(t *testing.T) {
	agent, _ := ecdh.X25519().GenerateKey(nil)
	server, _ := ecdh.X25519().GenerateKey(nil)
	id := NewServerID()
	ap, sp := agent.PublicKey().Bytes(), server.PublicKey().Bytes()
	k1, err := DeriveKey(agent, server.PublicKey(), ap, sp, id)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := DeriveKey(server, agent.PublicKey(), ap, sp, id)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k1, k2) || len(k1) != 32 {
		t.Fatalf("keys differ: %x %x", k1, k2)
	}
	other := NewServerID()
	k3, _ := DeriveKey(agent, server.PublicKey(), ap, sp, other)
	if bytes.Equal(k1, k3) {
		t.Fatal("key is not bound to the server id")
	}
}

// FuzzEnvelope feeds arbitrary bytes to the decoder: it must never panic,
// and nothing but a correctly sealed envelope may open.
func FuzzEnvelope(f *testing.F) {
	id := ServerID{1, 2, 3}
	plain := []byte(`{"conditions":[]}`)
	good, _ := Seal(testKey(9), id, 1, plain)
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{Version})
	f.Add(bytes.Repeat([]byte{0}, MinEnvelope))
	f.Add(append([]byte{Version}, bytes.Repeat([]byte{0xff}, 100)...))
	f.Fuzz(func(t *testing.T, env []byte) {
		h, err := ParseHeader(env)
		if err != nil {
			return
		}
		pt, err := Open(testKey(9), env)
		// Only envelopes sealed with the key (the seed) may open, and then
		// exactly as sealed.
		if err == nil && (h.ID != id || h.Seq != 1 || !bytes.Equal(pt, plain)) {
			t.Fatalf("forged envelope opened: %+v, %q", h, pt)
		}
	})
}

func BenchmarkOpen(b *testing.B) {
	env, _ := Seal(testKey(1), NewServerID(), 1, bytes.Repeat([]byte("x"), 256))
	b.SetBytes(int64(len(env)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := ParseHeader(env); err != nil {
			b.Fatal(err)
		}
		if _, err := Open(testKey(1), env); err != nil {
			b.Fatal(err)
		}
	}
}
