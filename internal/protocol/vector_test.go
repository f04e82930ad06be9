package protocol

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
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

// The enrollment and answer MACs of the published vector (docs/protocol.md,
// "Test vector", 12.2), built by hand from their definition and compared
// with the package's functions.
const (
	vectorEnrollmentKey = "kwe_vector-enrollment-key"
	vectorSLC           = "M01-C01-123-45-678901"
	vectorName          = "RS-01"
	vectorEnrollKey     = "cb2ae9e349714e8d4595ea9ef32bb27155e1305337e3070f0e44c1c086678a95"
	vectorRequestMAC    = "af12d648bdcbb7cd052407de1f32a15d7ca48f359a77a64ae6e5651f4ab14743"
	vectorEnrollAnswer  = "083191d2ba03a69c5b91b8ac32469fb2a0690754f8a3a1c19990c7214ad86b6a"
	vectorAuthKey       = "c300e93456554366c7904ba7d0f22143ca29975ebbf2df11456b7747876a0007"
	vectorProof         = "3012f0059b3749cf48b6e6cf636728d54a0bc7953016a40632af2f3b573ffbc3"
	vectorAnswerBody    = `{"seq":1,"state":"ok","heartbeat_interval_seconds":60,"server_time":"2026-03-02T08:15:00Z"}`
	vectorAnswerMAC     = "4d310a98af6ebedddd90f275f53d77dd882008ae6c580ad701fc1226e346e2b2"
)

func TestDocumentedTrustVector(t *testing.T) {
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ap, sp, rk := unhex(vectorAgentPublic), unhex(vectorServerPublic), unhex(vectorKey)
	var id ServerID
	copy(id[:], unhex(vectorServerID))
	check := func(name string, got []byte, want string) {
		t.Helper()
		if h := hex.EncodeToString(got); h != want {
			t.Errorf("%s = %s\n want %s (docs/protocol.md)", name, h, want)
		}
	}
	lp := func(b []byte) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...) }
	hm := func(key []byte, parts ...[]byte) []byte {
		m := hmac.New(sha256.New, key)
		for _, p := range parts {
			m.Write(p)
		}
		return m.Sum(nil)
	}
	hashed := sha256.Sum256([]byte(vectorEnrollmentKey))
	ek, err := hkdf.Key(sha256.New, hashed[:], nil, "keepwatch enrollment v1", 32)
	if err != nil {
		t.Fatal(err)
	}
	check("enrollment MAC key (by hand)", ek, vectorEnrollKey)
	check("enrollment MAC key", EnrollMACKey(vectorEnrollmentKey), vectorEnrollKey)

	req := hm(ek, []byte("keepwatch enroll request v1"), lp([]byte(vectorSLC)), lp([]byte(vectorName)), lp(ap))
	check("request mac (by hand)", req, vectorRequestMAC)
	check("request mac", EnrollRequestMAC(ek, vectorSLC, vectorName, ap), vectorRequestMAC)

	ans := hm(ek, []byte("keepwatch enroll answer v1"), lp([]byte(vectorSLC)), lp([]byte(vectorName)), lp(ap), lp(sp), lp(id[:]),
		binary.BigEndian.AppendUint64(nil, 60), []byte{0})
	check("enroll answer mac (by hand)", ans, vectorEnrollAnswer)
	check("enroll answer mac", EnrollAnswerMAC(ek, vectorSLC, vectorName, ap, sp, id, 60, false), vectorEnrollAnswer)
	if hex.EncodeToString(EnrollAnswerMAC(ek, vectorSLC, vectorName, ap, sp, id, 60, true)) == vectorEnrollAnswer {
		t.Error("the pending flag is not covered by the answer MAC")
	}

	ak, err := hkdf.Key(sha256.New, rk, nil, "keepwatch answer key v1", 32)
	if err != nil {
		t.Fatal(err)
	}
	check("answer key (by hand)", ak, vectorAuthKey)
	check("answer key", AuthKey(rk), vectorAuthKey)

	proof := hm(ak, []byte("keepwatch re-enroll v1"), lp(id[:]), lp(ap))
	check("re-enroll proof (by hand)", proof, vectorProof)
	check("re-enroll proof", ReenrollProof(ak, id, ap), vectorProof)

	am := hm(ak, []byte("keepwatch answer v1"), id[:], binary.BigEndian.AppendUint64(nil, 1), binary.BigEndian.AppendUint16(nil, 200), []byte(vectorAnswerBody))
	check("answer mac (by hand)", am, vectorAnswerMAC)
	check("answer mac", AnswerMAC(ak, id, 1, 200, []byte(vectorAnswerBody)), vectorAnswerMAC)
	hdr := base64.StdEncoding.EncodeToString(unhex(vectorAnswerMAC))
	if !CheckAnswer(ak, id, 1, 200, []byte(vectorAnswerBody), hdr) {
		t.Error("CheckAnswer refuses the published answer MAC")
	}
	for _, bad := range []struct {
		seq    uint64
		status int
		body   string
	}{{2, 200, vectorAnswerBody}, {1, 409, vectorAnswerBody}, {1, 200, vectorAnswerBody + " "}} {
		if CheckAnswer(ak, id, bad.seq, bad.status, []byte(bad.body), hdr) {
			t.Errorf("CheckAnswer accepts the MAC for seq %d status %d body %q", bad.seq, bad.status, bad.body)
		}
	}
}
