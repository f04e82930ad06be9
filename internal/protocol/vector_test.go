package protocol

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"encoding/binary"
	"encoding/hex"
	"testing"
)

// The test vector published in docs/protocol.md ("Test vector"). These
// constants are copied verbatim into the document; if this test fails, the
// document is wrong too.
const (
	vectorAgentPublic  = "a4e09292b651c278b9772c569f5fa9bb13d906b46ab68c9df9dc2b4409f8a209"
	vectorServerPublic = "ce8d3ad1ccb633ec7b70c17814a5c76ecd029685050d344745ba05870e587d59"
	vectorShared       = "2ed76ab549b1e73c031eb49c9448f0798aea81b698279a0c3dc3e49fbfc4b953"
	vectorServerID     = "000102030405060708090a0b0c0d0e0f"
	vectorKey          = "0bc94d856e0534aee71661116131446920d5ea51c458ac968af281171f92fdec"
	vectorPayload      = `{"conditions":[]}`
	vectorEnvelope     = "01000102030405060708090a0b0c0d0e0f0000000000000001000000000000000000000000df0686879ddbf6392bb0773564bda3565c6c0a64ec07ceb173aca3b208069344ea"
)

func TestDocumentedVector(t *testing.T) {
	x := ecdh.X25519()
	agent, err := x.NewPrivateKey(bytes.Repeat([]byte{0x01}, 32))
	if err != nil {
		t.Fatal(err)
	}
	server, err := x.NewPrivateKey(bytes.Repeat([]byte{0x02}, 32))
	if err != nil {
		t.Fatal(err)
	}
	var id ServerID
	for i := range id {
		id[i] = byte(i)
	}
	if id.String() != vectorServerID {
		t.Fatalf("server id = %s, want %s", id, vectorServerID)
	}
	ap, sp := agent.PublicKey().Bytes(), server.PublicKey().Bytes()
	check := func(name string, got []byte, want string) {
		t.Helper()
		if h := hex.EncodeToString(got); h != want {
			t.Errorf("%s = %s\n want %s (docs/protocol.md)", name, h, want)
		}
	}
	check("agent public key", ap, vectorAgentPublic)
	check("server public key", sp, vectorServerPublic)
	shared, err := agent.ECDH(server.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	check("shared secret", shared, vectorShared)

	key, err := DeriveKey(agent, server.PublicKey(), ap, sp, id)
	if err != nil {
		t.Fatal(err)
	}
	check("report key (agent side)", key, vectorKey)
	serverKey, err := DeriveKey(server, agent.PublicKey(), ap, sp, id)
	if err != nil {
		t.Fatal(err)
	}
	check("report key (server side)", serverKey, vectorKey)

	// The envelope is built by hand, as another implementation would, with
	// an all-zero nonce (Seal always draws a random one).
	env := make([]byte, 0, 128)
	env = append(env, Version)
	env = append(env, id[:]...)
	env = binary.BigEndian.AppendUint64(env, 1)
	nonce := make([]byte, 12)
	env = append(env, nonce...)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	env = aead.Seal(env, nonce, []byte(vectorPayload), env[:25])
	check("envelope", env, vectorEnvelope)

	// The published envelope must be accepted by the real decoder.
	want, err := hex.DecodeString(vectorEnvelope)
	if err != nil {
		t.Fatalf("vectorEnvelope is not hex: %v", err)
	}
	h, err := ParseHeader(want)
	if err != nil || h.ID != id || h.Seq != 1 {
		t.Fatalf("ParseHeader(vector) = %+v, %v", h, err)
	}
	wantKey, _ := hex.DecodeString(vectorKey)
	pt, err := Open(wantKey, want)
	if err != nil || string(pt) != vectorPayload {
		t.Fatalf("Open(vector) = %q, %v", pt, err)
	}
}
