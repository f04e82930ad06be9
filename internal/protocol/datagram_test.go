package protocol

import (
	"bytes"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"
)

// The datagram test vector published in docs/protocol.md ("Heartbeat
// datagrams"): keepwatch's answer to the envelope of the test vector
// above (server id 00…0f, sequence number 1) under its report key.
const (
	vectorDatagramKey    = "536cfc5cbb2519923fe3554a76cfc2b099e20398155258a2557613ae7c9b3b31"
	vectorDatagramAnswer = "81000102030405060708090a0b0c0d0e0f000000000000000100026f6b0000003c000f0000019b7ca98f2ee76dbefba5645633f10a54d94a02f13828ad68fe66e67ef3db7b6698e44004ab"
)

func vectorAnswer() DatagramAnswer {
	var id ServerID
	for i := range id {
		id[i] = byte(i)
	}
	return DatagramAnswer{ID: id, Seq: 1, Status: DatagramAccepted, State: "ok", IntervalSeconds: 60, KeepAliveSeconds: 15,
		ServerTime: time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC)}
}

func TestDocumentedDatagramVector(t *testing.T) {
	key, _ := hex.DecodeString(vectorKey)
	if got := hex.EncodeToString(DatagramKey(key)); got != vectorDatagramKey {
		t.Errorf("answer MAC key = %s, documented %s", got, vectorDatagramKey)
	}
	a := vectorAnswer()
	b := a.Seal(key)
	if got := hex.EncodeToString(b); got != vectorDatagramAnswer {
		t.Errorf("answer = %s, documented %s", got, vectorDatagramAnswer)
	}
	doc, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	flat := strings.Join(strings.Fields(string(doc)), "")
	for _, v := range []string{vectorDatagramKey, vectorDatagramAnswer} {
		if !strings.Contains(flat, v) {
			t.Errorf("docs/protocol.md does not show %s", v)
		}
	}
	got, err := OpenDatagramAnswer(DatagramKey(key), a.ID, a.Seq, b)
	if err != nil {
		t.Fatal(err)
	}
	if got != a {
		t.Errorf("decoded %+v, sealed %+v", got, a)
	}
}

// TestDatagramAnswerRefusesAnythingElse: an agent takes only keepwatch's
// answer to its own heartbeat.
func TestDatagramAnswerRefusesAnythingElse(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	a := vectorAnswer()
	good := a.Seal(key)
	macKey := DatagramKey(key)
	if _, err := OpenDatagramAnswer(macKey, a.ID, a.Seq, good); err != nil {
		t.Fatalf("the genuine answer: %v", err)
	}
	cases := map[string][]byte{
		"empty":           nil,
		"truncated":       good[:len(good)-1],
		"longer":          append(append([]byte{}, good...), 0),
		"other key":       a.Seal(bytes.Repeat([]byte{8}, 32)),
		"a request":       append([]byte{Version}, good[1:]...),
		"flipped status":  flip(good, 25),
		"flipped time":    flip(good, len(good)-macLen-1),
		"flipped MAC":     flip(good, len(good)-1),
		"unMACed garbage": bytes.Repeat([]byte{0x81}, len(good)),
	}
	for name, b := range cases {
		if _, err := OpenDatagramAnswer(macKey, a.ID, a.Seq, b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := OpenDatagramAnswer(macKey, a.ID, a.Seq+1, good); err == nil {
		t.Error("an answer to another sequence number: accepted")
	}
	other := a.ID
	other[0] ^= 1
	if _, err := OpenDatagramAnswer(macKey, other, a.Seq, good); err == nil {
		t.Error("an answer for another server: accepted")
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte{}, b...)
	c[i] ^= 1
	return c
}
