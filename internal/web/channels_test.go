package web_test

import (
	"net/url"
	"strings"
	"testing"

	"keepwatch"
	"keepwatch/internal/testutil"
)

// TestDashboardAddsVendorChannelsThroughTheSameValidation: the
// notifications form creates a channel of each vendor type with its
// fields, refuses what the API refuses with the same message, and shows
// owners the end of a key only (technicians not even that).
func TestDashboardAddsVendorChannelsThroughTheSameValidation(t *testing.T) {
	for _, dialect := range testutil.Dialects {
		t.Run(dialect, func(t *testing.T) {
			f := newFixture(t, fixtureOptions{dialect: dialect})
			owner := f.session("alice-owner")
			const routingKey = "pdkey0abcdefghijklmnopqrstuvwxyz"
			const haloSecret = "halo0client0secret0value"
			for _, form := range []url.Values{
				{"name": {"pager"}, "type": {"pagerduty"}, "routing_key": {routingKey}, "target": {"ignored@example.com"}},
				{"name": {"tickets"}, "type": {"halopsa"}, "client_id": {"keepwatch"}, "client_secret": {haloSecret}, "endpoint": {"https://acme.halopsa.com"}},
				{"name": {"chat"}, "type": {"slack"}, "url": {"https://hooks.slack.com/services/T0/B0/slack0secret0url0key"}},
			} {
				if status, _, body := f.do(owner, "POST", "/notifications/channels", form); status != 303 {
					t.Fatalf("%v: %d %s", form, status, snippet(body))
				}
			}
			status, _, body := f.do(owner, "POST", "/notifications/channels", url.Values{"name": {"tickets"}, "type": {"halopsa"}, "client_id": {"a"}, "client_secret": {"b"}})
			if status != 400 || !strings.Contains(body, "endpoint must be the URL of the HaloPSA instance") {
				t.Fatalf("halopsa without endpoint: %d %s", status, snippet(body))
			}
			chans, err := f.a.Store.Channels(ctx, f.alice)
			must(t, err)
			byType := map[keepwatch.ChannelType]keepwatch.Channel{}
			for _, c := range chans {
				byType[c.Type] = c
			}
			if byType[keepwatch.ChannelPagerDuty].Secret != routingKey || byType[keepwatch.ChannelPagerDuty].Target != "" ||
				byType[keepwatch.ChannelHaloPSA].Endpoint != "https://acme.halopsa.com" || byType[keepwatch.ChannelHaloPSA].Target != "keepwatch" {
				t.Fatalf("stored channels: %+v", chans)
			}
			_, _, page := f.do(owner, "GET", "/notifications", nil)
			if strings.Contains(page, routingKey) || strings.Contains(page, haloSecret) || strings.Contains(page, "slack0secret0url0key") {
				t.Fatal("the notifications page shows a key")
			}
			if !strings.Contains(page, "key …wxyz") || !strings.Contains(page, "https://acme.halopsa.com") {
				t.Fatalf("the owner does not see the end of the key or the endpoint: %s", snippet(page))
			}
			_, _, page = f.do(f.session("alice-technician"), "GET", "/notifications", nil)
			if strings.Contains(page, "…wxyz") || strings.Contains(page, "acme.halopsa.com") {
				t.Fatal("a technician sees where a channel delivers")
			}
		})
	}
}
