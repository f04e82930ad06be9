package notify_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/notify"
	"keepwatch/internal/store"
)

// The test vector published with the Standard Webhooks specification.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestStandardWebhooksSignatureMatchesThePublishedVector(t *testing.T) {
	if got := notify.SignStandard(vectorSecret, vectorID, vectorTimestamp, []byte(vectorBody)); got != vectorSignature {
		t.Fatalf("signature %q, want %q", got, vectorSignature)
	}
	at := time.Unix(vectorTimestamp, 0)
	ts := strconv.Itoa(vectorTimestamp)
	for _, c := range []struct {
		name, id, ts, sig, body string
		now                     time.Time
		ok                      bool
	}{
		{"the vector", vectorID, ts, vectorSignature, vectorBody, at, true},
		{"among other signatures", vectorID, ts, "v1,bm9wZQ== " + vectorSignature, vectorBody, at, true},
		{"another body", vectorID, ts, vectorSignature, `{"test": 2432232315}`, at, false},
		{"another id", "msg_other", ts, vectorSignature, vectorBody, at, false},
		{"too old", vectorID, ts, vectorSignature, vectorBody, at.Add(10 * time.Minute), false},
		{"not a time", vectorID, "soon", vectorSignature, vectorBody, at, false},
	} {
		if got := notify.VerifyStandard(vectorSecret, c.id, c.ts, c.sig, []byte(c.body), c.now, 5*time.Minute); got != c.ok {
			t.Errorf("%s: verified %v, want %v", c.name, got, c.ok)
		}
	}
}

// TestStandardWebhooksChannelSendsWhatAStandardReceiverAccepts creates a
// webhook channel with the standard signature the way the API does and
// checks its deliveries as a receiver written from the specification
// would (not with keepwatch's own verifier).
func TestStandardWebhooksChannelSendsWhatAStandardReceiverAccepts(t *testing.T) {
	x := newSite(t, store.SQLite, 1, 0)
	var mu sync.Mutex
	var secret string
	var got []map[string]any
	var ids []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		id, ts, sigs := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature")
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
		if err != nil || len(key) < 24 {
			t.Errorf("secret %q is not whsec_ and base64 of 24 to 64 bytes", secret)
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + ts + "." + string(body)))
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		sec, _ := strconv.ParseInt(ts, 10, 64)
		if id == "" || !strings.Contains(" "+sigs+" ", " "+want+" ") || x.clock.Now().Sub(time.Unix(sec, 0)).Abs() > 5*time.Minute {
			t.Errorf("bad signature: id %q ts %q sig %q, want %q", id, ts, sigs, want)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Header.Get(notify.HeaderSignature) != "" {
			t.Error("a standard channel also sent X-Keepwatch-Signature")
		}
		var m map[string]any
		json.Unmarshal(body, &m)
		got, ids = append(got, m), append(ids, id)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c, err := notify.CreateChannel(ctx, x.s, x.integ, keepwatch.ChannelSpec{Name: "std", Type: "webhook", Target: srv.URL, Signature: "standard"})
	must(t, err)
	mu.Lock()
	secret = c.Secret
	mu.Unlock()
	if c.Signature != keepwatch.SignatureStandard || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("channel = %+v", c)
	}
	must(t, notify.QueueTest(ctx, x.s, x.integ, c.ID, x.clock.Now()))
	x.run(3*time.Second, nil)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0]["type"] != "test" || got[0]["id"] != ids[0] {
		t.Fatalf("deliveries = %v (ids %v)", got, ids)
	}
}
