package keepwatch

import (
	"strings"
	"testing"
)

func TestChannelSpecValidatesEachTypesFields(t *testing.T) {
	key32 := strings.Repeat("a", 32)
	key30 := strings.Repeat("b", 30)
	for _, c := range []struct {
		spec ChannelSpec
		ok   bool
	}{
		{ChannelSpec{Name: "m", Type: "email", Target: "ops@example.com", Digest: true}, true},
		{ChannelSpec{Name: "m", Type: "email", Target: "ops@example.com", Endpoint: "https://x.example"}, false},
		{ChannelSpec{Name: "h", Type: "webhook", Target: "https://hooks.example/a"}, true},
		{ChannelSpec{Name: "h", Type: "webhook", Target: "https://hooks.example/a", Signature: "standard"}, true},
		{ChannelSpec{Name: "h", Type: "webhook", Target: "https://hooks.example/a", Signature: "v2"}, false},
		{ChannelSpec{Name: "h", Type: "webhook", Target: "ftp://hooks.example/a"}, false},
		{ChannelSpec{Name: "s", Type: "slack", URL: "https://hooks.slack.com/services/T/B/x"}, true},
		{ChannelSpec{Name: "s", Type: "slack", Target: "https://hooks.slack.com/services/T/B/x"}, false},
		{ChannelSpec{Name: "t", Type: "teams", URL: "https://prod.westeurope.logic.azure.com/workflows/1?sig=x"}, true},
		{ChannelSpec{Name: "p", Type: "pagerduty", RoutingKey: key32}, true},
		{ChannelSpec{Name: "p", Type: "pagerduty", RoutingKey: key32, Endpoint: "https://events.eu.pagerduty.com/v2/enqueue"}, true},
		{ChannelSpec{Name: "p", Type: "pagerduty", RoutingKey: key32[:31]}, false},
		{ChannelSpec{Name: "p", Type: "pagerduty", RoutingKey: key32, Endpoint: "javascript:alert(1)"}, false},
		{ChannelSpec{Name: "o", Type: "pushover", Token: key30, User: key30}, true},
		{ChannelSpec{Name: "o", Type: "pushover", Token: key30}, false},
		{ChannelSpec{Name: "o", Type: "pushover", Token: key30, User: strings.Repeat("c ", 15)}, false},
		{ChannelSpec{Name: "h", Type: "halopsa", ClientID: "id", ClientSecret: "s", Endpoint: "https://acme.halopsa.com"}, true},
		{ChannelSpec{Name: "h", Type: "halopsa", ClientID: "id", ClientSecret: "s"}, false},
		{ChannelSpec{Name: "h", Type: "halopsa", ClientID: "id", Endpoint: "https://acme.halopsa.com"}, false},
		{ChannelSpec{Name: "g", Type: "opsgenie", Endpoint: "https://api.opsgenie.com"}, false},
		{ChannelSpec{Name: "g", Type: "opsgenie", APIKey: "eb243592-faa2-4ba2-a551-1afdf565c889", Endpoint: "https://api.eu.opsgenie.com"}, true},
		{ChannelSpec{Name: "c", Type: "connectwise"}, false},
		{ChannelSpec{Name: "x", Type: "sms"}, false},
		{ChannelSpec{Name: "", Type: "slack", URL: "https://hooks.slack.com/services/T/B/x"}, false},
	} {
		ch, err := c.spec.Channel()
		if (err == nil) != c.ok {
			t.Errorf("%+v: err %v, want ok %v", c.spec, err, c.ok)
			continue
		}
		if err != nil && ErrorCode(err) != EINVALID {
			t.Errorf("%+v: code %s, want %s", c.spec, ErrorCode(err), EINVALID)
		}
		if err == nil && ch.Type != ChannelEmail && ch.Type != ChannelWebhook && ch.Secret == "" {
			t.Errorf("%+v: the vendor key is not the channel's secret", c.spec)
		}
	}
}

func TestOnlyTrackingChannelsHearOfAcknowledgements(t *testing.T) {
	for _, typ := range []ChannelType{ChannelEmail, ChannelWebhook, ChannelSlack, ChannelTeams, ChannelPushover} {
		if typ.Tracks() {
			t.Errorf("%s tracks incidents", typ)
		}
	}
	for _, typ := range []ChannelType{ChannelPagerDuty, ChannelOpsgenie, ChannelHaloPSA} {
		if !typ.Tracks() {
			t.Errorf("%s does not track incidents", typ)
		}
	}
}
