// Package protocol is ingest protocol v1, shared by the keepwatch server and
// its agents: the enrollment exchange, the key agreement, the sealed report
// envelope and the report payload. docs/protocol.md describes the same
// bytes for other implementers.
package protocol

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"time"
)

// Version is the protocol version, the first byte of every envelope.
const Version = 1

// Paths of the ingest endpoints.
const (
	EnrollPath = "/ingest/v1/enroll"
	ReportPath = "/ingest/v1/report"
)

// Envelope layout: version (1) | server id (16) | sequence (8, big endian) |
// nonce (12) | AES-256-GCM ciphertext with its 16-byte tag. The first 25
// bytes are the additional authenticated data, so the server id, version
// and sequence number cannot be changed without failing the tag.
const (
	headerLen   = 1 + 16 + 8
	nonceLen    = 12
	tagLen      = 16
	MinEnvelope = headerLen + nonceLen + tagLen
	// MaxEnvelope bounds a report on the wire; larger bodies get too_large.
	MaxEnvelope = 1 << 20
)

// KeyInfo is the HKDF info string of the v1 report key.
const KeyInfo = "keepwatch report key v1"

// ServerID is a recording server's 16-byte identity.
type ServerID [16]byte

// NewServerID returns a random server id.
func NewServerID() ServerID {
	var id ServerID
	rand.Read(id[:])
	return id
}

// String formats the id as 32 lower-case hex digits.
func (id ServerID) String() string { return hex.EncodeToString(id[:]) }

// ParseServerID parses the form String returns.
func ParseServerID(s string) (ServerID, error) {
	var id ServerID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, errors.New("server id must be 32 hex digits")
	}
	copy(id[:], b)
	return id, nil
}

// DeriveKey computes the 32-byte report key both sides agree on at
// enrollment: HKDF-SHA256 over the X25519 shared secret, salted with both
// public keys (agent's first) and bound to the server id.
func DeriveKey(priv *ecdh.PrivateKey, peer *ecdh.PublicKey, agentPub, serverPub []byte, id ServerID) ([]byte, error) {
	shared, err := priv.ECDH(peer)
	if err != nil {
		return nil, err
	}
	salt := make([]byte, 0, len(agentPub)+len(serverPub))
	salt = append(append(salt, agentPub...), serverPub...)
	return hkdf.Key(sha256.New, shared, salt, KeyInfo+string(id[:]), 32)
}

// Seal builds an envelope for payload (empty for a heartbeat).
func Seal(key []byte, id ServerID, seq uint64, payload []byte) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, headerLen+nonceLen, headerLen+nonceLen+len(payload)+tagLen)
	out[0] = Version
	copy(out[1:17], id[:])
	binary.BigEndian.PutUint64(out[17:25], seq)
	if _, err := rand.Read(out[headerLen : headerLen+nonceLen]); err != nil {
		return nil, err
	}
	return aead.Seal(out, out[headerLen:headerLen+nonceLen], payload, out[:headerLen]), nil
}

// Header is the clear part of an envelope, read before the key is known.
type Header struct {
	ID  ServerID
	Seq uint64
}

// Errors of envelope parsing. ErrMalformed covers anything that is not a
// well-formed v1 envelope; ErrForged anything that fails authentication.
var (
	ErrMalformed = errors.New("malformed envelope")
	ErrForged    = errors.New("envelope does not authenticate")
)

// ParseHeader reads the clear header of an envelope.
func ParseHeader(env []byte) (Header, error) {
	var h Header
	if len(env) < MinEnvelope || env[0] != Version {
		return h, ErrMalformed
	}
	copy(h.ID[:], env[1:17])
	h.Seq = binary.BigEndian.Uint64(env[17:25])
	if h.Seq == 0 {
		return h, ErrMalformed
	}
	return h, nil
}

// Open authenticates and decrypts an envelope whose header was parsed.
func Open(key []byte, env []byte) ([]byte, error) {
	if len(env) < MinEnvelope {
		return nil, ErrMalformed
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, ErrForged
	}
	pt, err := aead.Open(nil, env[headerLen:headerLen+nonceLen], env[headerLen+nonceLen:], env[:headerLen])
	if err != nil {
		return nil, ErrForged
	}
	return pt, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// EnrollRequest is the JSON body of POST /ingest/v1/enroll.
type EnrollRequest struct {
	SLC          string `json:"slc"`
	Name         string `json:"name"`
	Consent      bool   `json:"consent"`
	PublicKey    []byte `json:"public_key"` // agent's X25519 public key, base64
	AgentVersion string `json:"agent_version"`
	// MAC is EnrollRequestMAC under the enrollment MAC key: the enrollment
	// key itself never travels.
	MAC []byte `json:"mac"`
	// ServerID and Proof, when the agent re-enrolls a server whose report
	// key it holds: ReenrollProof under that key's answer key. Without
	// them a known name waits for the integrator's approval.
	ServerID string `json:"server_id,omitempty"`
	Proof    []byte `json:"proof,omitempty"`
}

// EnrollResponse is the answer to a successful enrollment.
type EnrollResponse struct {
	ServerID                 string `json:"server_id"`
	ServerPublicKey          []byte `json:"server_public_key"`
	HeartbeatIntervalSeconds int64  `json:"heartbeat_interval_seconds"`
	Protocol                 int    `json:"protocol"`
	// Pending: the name is known and the agent proved no current key; the
	// new key works once the integrator approves (202 Accepted).
	Pending bool `json:"pending,omitempty"`
	// MAC is EnrollAnswerMAC under the enrollment MAC key.
	MAC []byte `json:"mac"`
}

// ReportResponse is the answer to an accepted report.
type ReportResponse struct {
	Seq                      uint64 `json:"seq"`
	State                    string `json:"state"`
	HeartbeatIntervalSeconds int64  `json:"heartbeat_interval_seconds"`
	ServerTime               string `json:"server_time"`
	// Refresh asks for a status report with the full current state at
	// once: keepwatch missed a status report (status_seq gap).
	Refresh bool `json:"refresh,omitempty"`
	// RotateKey asks the agent to rotate its report key in-band.
	RotateKey bool `json:"rotate_key,omitempty"`
	// ServerPublicKey answers a report that asked to rotate (Payload
	// Rotate): keepwatch's new X25519 public key, from which both sides
	// derive the next report key as at enrollment.
	ServerPublicKey []byte `json:"server_public_key,omitempty"`
	// KeepAliveSeconds is how long keepwatch keeps an idle connection
	// worth holding: an agent whose next report is further away closes
	// its connection after this one.
	KeepAliveSeconds int64 `json:"keep_alive_seconds,omitempty"`
	// Datagram is true when the answer came by datagram (not on the wire).
	Datagram bool `json:"-"`
}

// Payload is the plaintext of a report. An empty plaintext, or a payload
// without "conditions", is a heartbeat. A payload with "conditions"
// (possibly empty: all clear) is a status report carrying the full set of
// active state conditions.
type Payload struct {
	SentAt *time.Time `json:"sent_at,omitempty"`
	// TransmittedAt is the agent's clock when it sent this attempt (sent_at
	// is when it recorded the report, possibly long before): keepwatch
	// learns the agent's clock offset from it and corrects the report's
	// times.
	TransmittedAt *time.Time `json:"transmitted_at,omitempty"`
	AgentVersion  string     `json:"agent_version,omitempty"`
	// StatusSeq numbers status reports in their own counter (1, 2, …
	// under a report key). In a status report it is that report's number;
	// in a heartbeat, the number of the last status report sent.
	StatusSeq uint64 `json:"status_seq,omitempty"`
	// Rotate asks to rotate the report key in-band: the agent's new
	// X25519 public key.
	Rotate     *PayloadRotate      `json:"rotate,omitempty"`
	Consent    *bool               `json:"consent,omitempty"`
	Conditions *[]PayloadCondition `json:"conditions,omitempty"`
	Events     []PayloadEvent      `json:"events,omitempty"`
	// Drives are measurements of the server's drives (at most
	// keepwatch.MaxDrives), from which keepwatch forecasts when each is
	// full and how much footage it keeps. They change no condition: a
	// report is a status report by its "conditions" alone.
	Drives []PayloadDrive `json:"drives,omitempty"`
}

// PayloadRotate asks for a new report key.
type PayloadRotate struct {
	PublicKey []byte `json:"public_key"`
}

// PayloadDrive is one measurement of a drive. Sizes are bytes.
type PayloadDrive struct {
	Path string `json:"path"`
	// Role is recording, archive or other (absent: other).
	Role string `json:"role,omitempty"`
	// At is when the drive was measured; absent, the report's sent_at.
	At       *time.Time `json:"at,omitempty"`
	Capacity uint64     `json:"capacity"`
	Free     uint64     `json:"free"`
	// OldestRecordingAt is the time of the oldest footage on the drive,
	// absent when it is not measured.
	OldestRecordingAt *time.Time `json:"oldest_recording_at,omitempty"`
}

// PayloadCondition is an active state condition as the agent reports it.
type PayloadCondition struct {
	Kind    string     `json:"kind"`
	Subject string     `json:"subject,omitempty"`
	Since   *time.Time `json:"since,omitempty"`
	Message string     `json:"message,omitempty"`
}

// PayloadEvent is an event with the time it happened on the server.
type PayloadEvent struct {
	Kind    string    `json:"kind"`
	Subject string    `json:"subject,omitempty"`
	At      time.Time `json:"at"`
	Message string    `json:"message,omitempty"`
}

// ErrorBody is every refusal's JSON body.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}
