package protocol

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"time"
)

// A heartbeat may also travel as one UDP datagram: the request is the
// sealed envelope itself (the same bytes as the HTTPS body), already
// authenticated and replay-protected per server, so it needs no TLS
// connection. keepwatch answers it with one datagram MACed under a key
// derived from the server's report key. docs/protocol.md describes the
// bytes.

// MaxDatagram bounds a heartbeat datagram; larger envelopes go by HTTPS.
const MaxDatagram = 1200

// DatagramAnswerVersion is the first byte of an answer datagram. It is
// not Version, so an answer can never be taken for a request.
const DatagramAnswerVersion = 0x81

// DatagramKeyInfo is the HKDF info string of the answer MAC key.
const DatagramKeyInfo = "keepwatch datagram answer v1"

// Statuses of an answer datagram.
const (
	// DatagramAccepted: the heartbeat is durable; its sequence number is
	// spent.
	DatagramAccepted byte = 0
	// DatagramReplayed: the sequence number was already spent (the
	// answer to an earlier copy was lost, or the counter is behind).
	DatagramReplayed byte = 1
	// DatagramUseHTTPS: not taken by datagram; send the same envelope
	// over HTTPS, whose answer says why (status report, paused, limited,
	// keepwatch busy).
	DatagramUseHTTPS byte = 2
)

// maxStateLen bounds the state string of an answer.
const maxStateLen = 32

// answer layout: version (1) | server id (16) | sequence (8) | status (1)
// | state length (1) | state | interval seconds (4) | keep-alive seconds
// (2) | server time, Unix milliseconds (8) | HMAC-SHA256 (32), all
// integers big endian; the MAC covers everything before it.
const (
	answerFixed = 1 + 16 + 8 + 1 + 1 + 4 + 2 + 8
	macLen      = sha256.Size
)

// DatagramAnswer is keepwatch's answer to a heartbeat datagram.
type DatagramAnswer struct {
	ID     ServerID
	Seq    uint64
	Status byte
	// State is the server's state as keepwatch holds it after the
	// heartbeat ("ok" when accepted and reporting).
	State           string
	IntervalSeconds uint32
	// KeepAliveSeconds is how long keepwatch keeps an idle HTTPS
	// connection worth holding: an agent whose interval is longer closes
	// its connection after each report.
	KeepAliveSeconds uint16
	ServerTime       time.Time
}

// DatagramKey derives the answer MAC key from a report key.
func DatagramKey(reportKey []byte) []byte {
	k, err := hkdf.Key(sha256.New, reportKey, nil, DatagramKeyInfo, 32)
	if err != nil {
		panic(err) // only for lengths HKDF-SHA256 cannot produce
	}
	return k
}

// Seal encodes the answer and appends its MAC under the server's report
// key.
func (a DatagramAnswer) Seal(reportKey []byte) []byte {
	return a.SealWith(DatagramKey(reportKey))
}

// SealWith is Seal with the MAC key already derived.
func (a DatagramAnswer) SealWith(macKey []byte) []byte {
	state := a.State
	if len(state) > maxStateLen {
		state = state[:maxStateLen]
	}
	b := make([]byte, 0, answerFixed+len(state)+macLen)
	b = append(b, DatagramAnswerVersion)
	b = append(b, a.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, a.Seq)
	b = append(b, a.Status, byte(len(state)))
	b = append(b, state...)
	b = binary.BigEndian.AppendUint32(b, a.IntervalSeconds)
	b = binary.BigEndian.AppendUint16(b, a.KeepAliveSeconds)
	b = binary.BigEndian.AppendUint64(b, uint64(a.ServerTime.UnixMilli()))
	m := hmac.New(sha256.New, macKey)
	m.Write(b)
	return m.Sum(b)
}

// ErrAnswer is any datagram that is not a valid answer to the request:
// malformed, for another server or sequence number, or with a MAC that
// does not verify. Agents ignore such datagrams.
var ErrAnswer = errors.New("not an authenticated answer to this heartbeat")

// OpenDatagramAnswer checks that b is keepwatch's answer to the heartbeat
// (id, seq) and decodes it.
func OpenDatagramAnswer(macKey []byte, id ServerID, seq uint64, b []byte) (DatagramAnswer, error) {
	var a DatagramAnswer
	if len(b) < answerFixed+macLen || b[0] != DatagramAnswerVersion {
		return a, ErrAnswer
	}
	l := int(b[26])
	if l > maxStateLen || len(b) != answerFixed+l+macLen {
		return a, ErrAnswer
	}
	body, tag := b[:len(b)-macLen], b[len(b)-macLen:]
	m := hmac.New(sha256.New, macKey)
	m.Write(body)
	if !hmac.Equal(m.Sum(nil), tag) {
		return a, ErrAnswer
	}
	copy(a.ID[:], b[1:17])
	a.Seq = binary.BigEndian.Uint64(b[17:25])
	if a.ID != id || a.Seq != seq {
		return a, ErrAnswer
	}
	a.Status = b[25]
	a.State = string(b[27 : 27+l])
	rest := b[27+l:]
	a.IntervalSeconds = binary.BigEndian.Uint32(rest[0:4])
	a.KeepAliveSeconds = binary.BigEndian.Uint16(rest[4:6])
	a.ServerTime = time.UnixMilli(int64(binary.BigEndian.Uint64(rest[6:14]))).UTC()
	return a, nil
}
