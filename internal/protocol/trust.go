package protocol

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// What authenticates the enrollment exchange and keepwatch's answers
// (docs/protocol.md, sections 3 and 8). Every MAC is HMAC-SHA256 over a
// label followed by length-prefixed fields, so that no two messages of
// different meaning share bytes.
const (
	// EnrollKeyInfo is the HKDF info of the enrollment MAC key, derived
	// from the SHA-256 of the installation's enrollment key.
	EnrollKeyInfo = "keepwatch enrollment v1"
	// AuthKeyInfo is the HKDF info of a server's answer key, derived from
	// its report key.
	AuthKeyInfo = "keepwatch answer key v1"

	enrollRequestLabel = "keepwatch enroll request v1"
	enrollAnswerLabel  = "keepwatch enroll answer v1"
	reenrollLabel      = "keepwatch re-enroll v1"
	answerLabel        = "keepwatch answer v1"

	// MACHeader carries the answer MAC of a report's answer.
	MACHeader = "Keepwatch-MAC"
)

// Bounds of the heartbeat interval an agent adopts from an answer.
const (
	MinInterval = time.Second
	MaxInterval = time.Hour
)

// ValidInterval reports whether an agent may adopt a heartbeat interval
// of secs seconds from an authenticated answer.
func ValidInterval(secs int64) bool {
	return secs >= int64(MinInterval/time.Second) && secs <= int64(MaxInterval/time.Second)
}

// EnrollMACKey derives the enrollment MAC key from the enrollment key as
// the operator gave it.
func EnrollMACKey(enrollmentKey string) []byte {
	h := sha256.Sum256([]byte(enrollmentKey))
	return EnrollMACKeyFromHash(h[:])
}

// EnrollMACKeyFromHash derives the enrollment MAC key from the SHA-256 of
// the enrollment key (what keepwatch stores).
func EnrollMACKeyFromHash(hash []byte) []byte {
	k, err := hkdf.Key(sha256.New, hash, nil, EnrollKeyInfo, 32)
	if err != nil {
		panic(err) // only for lengths out of range
	}
	return k
}

// AuthKey derives a server's answer key from its report key. It MACs
// keepwatch's answers and the agent's proof of its current key at a new
// enrollment.
func AuthKey(reportKey []byte) []byte {
	k, err := hkdf.Key(sha256.New, reportKey, nil, AuthKeyInfo, 32)
	if err != nil {
		panic(err)
	}
	return k
}

func field(b, x []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(x)))
	return append(b, x...)
}

func mac(key []byte, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// EnrollRequestMAC is the agent's proof that it holds the enrollment key:
// HMAC over the SLC (upper case), the server name and the agent's public
// key.
func EnrollRequestMAC(enrollKey []byte, slc, name string, agentPub []byte) []byte {
	msg := []byte(enrollRequestLabel)
	msg = field(msg, []byte(slc))
	msg = field(msg, []byte(name))
	msg = field(msg, agentPub)
	return mac(enrollKey, msg)
}

// EnrollAnswerMAC is keepwatch's proof, to the agent, that the answer
// comes from the holder of the enrollment key and belongs to this
// request.
func EnrollAnswerMAC(enrollKey []byte, slc, name string, agentPub, serverPub []byte, id ServerID, intervalSeconds int64, pending bool) []byte {
	msg := []byte(enrollAnswerLabel)
	msg = field(msg, []byte(slc))
	msg = field(msg, []byte(name))
	msg = field(msg, agentPub)
	msg = field(msg, serverPub)
	msg = field(msg, id[:])
	msg = binary.BigEndian.AppendUint64(msg, uint64(intervalSeconds))
	p := byte(0)
	if pending {
		p = 1
	}
	return mac(enrollKey, append(msg, p))
}

// ReenrollProof is the agent's proof, at a new enrollment of a server it
// already reports for, that it holds the server's current report key.
func ReenrollProof(authKey []byte, id ServerID, agentPub []byte) []byte {
	msg := []byte(reenrollLabel)
	msg = field(msg, id[:])
	msg = field(msg, agentPub)
	return mac(authKey, msg)
}

// AnswerMAC authenticates keepwatch's answer to a report: the HTTP
// status, the body, and the server id and sequence number of the envelope
// answered.
func AnswerMAC(authKey []byte, id ServerID, seq uint64, status int, body []byte) []byte {
	msg := make([]byte, 0, len(answerLabel)+16+8+2+len(body))
	msg = append(msg, answerLabel...)
	msg = append(msg, id[:]...)
	msg = binary.BigEndian.AppendUint64(msg, seq)
	msg = binary.BigEndian.AppendUint16(msg, uint16(status))
	msg = append(msg, body...)
	return mac(authKey, msg)
}

// CheckAnswer reports whether header (the Keepwatch-MAC value) is the
// answer MAC of status and body.
func CheckAnswer(authKey []byte, id ServerID, seq uint64, status int, body []byte, header string) bool {
	got, err := base64.StdEncoding.DecodeString(header)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	return hmac.Equal(got, AnswerMAC(authKey, id, seq, status, body))
}
