package app_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/app"
	"keepwatch/internal/notify"
)

// webhookOutcome starts keepwatch with allow, queues a test notification to
// a webhook at url and returns the notification once it is final (or
// retrying).
func webhookOutcome(t *testing.T, allow []string, url string) keepwatch.Notification {
	t.Helper()
	return channelOutcome(t, allow, keepwatch.ChannelSpec{Name: "hook", Type: "webhook", Target: url})
}

// channelOutcome is webhookOutcome for a channel of any type.
func channelOutcome(t *testing.T, allow []string, spec keepwatch.ChannelSpec) keepwatch.Notification {
	t.Helper()
	a := start(t, app.Config{DataDir: t.TempDir(), InsecureHTTP: true, AllowOutbound: allow,
		NotifyEvery: 20 * time.Millisecond, NotifyRetryBase: time.Hour})
	defer a.Shutdown(ctx)
	in, err := a.Store.CreateIntegrator(ctx, "Alice")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := notify.CreateChannel(ctx, a.Store, in.ID, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := notify.QueueTest(ctx, a.Store, in.ID, ch.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ns, err := a.Store.Notifications(ctx, in.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(ns) == 1 && ns[0].Attempts > 0 {
			return ns[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the test notification was never attempted")
	return keepwatch.Notification{}
}

// TestWebhooksReachOnlyAllowedDestinations: by default keepwatch does not
// post to its own loopback, and the tenant learns only a generic class;
// --allow-outbound opens exactly what it names.
func TestWebhooksReachOnlyAllowedDestinations(t *testing.T) {
	var hits atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		if strings.HasSuffix(r.URL.Path, "/broken") {
			http.Error(w, `malformed HTTP status code "fake" from db-7.internal 10.0.0.7`, http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()

	n := webhookOutcome(t, nil, rcv.URL+"/hook")
	if n.State != keepwatch.NotificationPending || n.LastError != "destination not allowed" || hits.Load() != 0 {
		t.Fatalf("default allow-list: %s %q, receiver hits %d", n.State, n.LastError, hits.Load())
	}
	n = webhookOutcome(t, []string{"127.0.0.1/32"}, rcv.URL+"/hook")
	if n.State != keepwatch.NotificationSent || hits.Load() != 1 {
		t.Fatalf("allowed: %s %q, receiver hits %d", n.State, n.LastError, hits.Load())
	}
	n = webhookOutcome(t, []string{"127.0.0.1/32"}, rcv.URL+"/broken")
	if n.LastError != "HTTP 500" {
		t.Fatalf("a failing receiver is shown as %q", n.LastError)
	}
	if _, err := app.New(ctx, app.Config{DataDir: t.TempDir(), AllowOutbound: []string{"10.0.0.0/40"}}); err == nil {
		t.Fatal("a malformed --allow-outbound entry was accepted")
	}
}

// TestVendorEndpointsFollowTheOutboundPolicy: a vendor channel's endpoint
// on a private address is refused like a webhook's, until the operator
// allows it.
func TestVendorEndpointsFollowTheOutboundPolicy(t *testing.T) {
	var hits atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"status":"success","message":"Event processed","dedup_key":"k"}`)
	}))
	defer rcv.Close()
	spec := keepwatch.ChannelSpec{Name: "pager", Type: "pagerduty", RoutingKey: strings.Repeat("r", 32), Endpoint: rcv.URL + "/v2/enqueue"}
	n := channelOutcome(t, nil, spec)
	if n.State != keepwatch.NotificationPending || n.LastError != "destination not allowed" || hits.Load() != 0 {
		t.Fatalf("default allow-list: %s %q, receiver hits %d", n.State, n.LastError, hits.Load())
	}
	n = channelOutcome(t, []string{"127.0.0.1/32"}, spec)
	if n.State != keepwatch.NotificationSent || hits.Load() != 2 { // a test is a trigger and its resolve
		t.Fatalf("allowed: %s %q, receiver hits %d", n.State, n.LastError, hits.Load())
	}
}
