package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"keepwatch/internal/sealed"
	"keepwatch/internal/testutil"
)

// TestVendorChannelsAreCreatedWithTheirKeysSealedAndNeverShown adds one
// channel of each vendor type through the API: invalid fields are refused
// with invalid_request, the keys are sealed at rest (when a key is
// configured) and no answer shows them again, to the owner included.
func TestVendorChannelsAreCreatedWithTheirKeysSealedAndNeverShown(t *testing.T) {
	for _, dialect := range testutil.Dialects {
		t.Run(dialect, func(t *testing.T) {
			tn := setup(t, dialect)
			keys := map[string]string{
				"slack":     "https://hooks.slack.com/services/T0/B0/slack0secret0url0key",
				"teams":     "https://prod-01.westeurope.logic.azure.com/workflows/abc?sig=teams0secret0sig0key",
				"pagerduty": "pdkey0abcdefghijklmnopqrstuvwxyz",
				"pushover":  "potoken0abcdefghijklmnopqrstuv",
				"opsgenie":  "eb243592-faa2-4ba2-a551-1afdf565c889",
				"halopsa":   "halo0client0secret0value",
			}
			bodies := map[string]string{
				"slack":     `{"name":"chat","type":"slack","url":"` + keys["slack"] + `"}`,
				"teams":     `{"name":"teams","type":"teams","url":"` + keys["teams"] + `"}`,
				"pagerduty": `{"name":"pager","type":"pagerduty","routing_key":"` + keys["pagerduty"] + `"}`,
				"pushover":  `{"name":"phone","type":"pushover","token":"` + keys["pushover"] + `","user":"uQiRzpo4DXghDmr9QzzfQu27cmVRsG"}`,
				"opsgenie":  `{"name":"genie","type":"opsgenie","api_key":"` + keys["opsgenie"] + `","endpoint":"https://api.eu.opsgenie.com"}`,
				"halopsa":   `{"name":"tickets","type":"halopsa","client_id":"keepwatch","client_secret":"` + keys["halopsa"] + `","endpoint":"https://acme.halopsa.com"}`,
			}
			for typ, body := range bodies {
				status, out := tn.call(t, "alice-owner", "POST", "/api/v1/channels", body)
				if status != 201 {
					t.Fatalf("%s: %d %s", typ, status, out)
				}
				if strings.Contains(out, keys[typ]) {
					t.Errorf("%s: the answer echoes the key: %s", typ, out)
				}
				var created struct {
					Channel struct {
						ID         int64  `json:"id"`
						Type       string `json:"type"`
						SecretHint string `json:"secret_hint"`
					} `json:"channel"`
				}
				json.Unmarshal([]byte(out), &created)
				if created.Channel.Type != typ || created.Channel.SecretHint != "…"+keys[typ][len(keys[typ])-4:] {
					t.Errorf("%s: created %s", typ, out)
				}
				_, stored, err := tn.a.Store.StoredSecrets(ctx, "", created.Channel.ID)
				// The PostgreSQL setup runs with a secret key: keys are sealed.
				withKey := dialect == "postgres"
				if err != nil || stored == "" || withKey && (strings.Contains(stored, keys[typ]) || !sealed.IsSealedString(stored)) {
					t.Errorf("%s: stored as %q (%v)", typ, stored, err)
				}
			}
			for _, who := range []string{"alice-owner", "alice-technician", "alice-viewer"} {
				for _, path := range []string{"/api/v1/channels", "/api/v1/notifications", "/api/v1/rules"} {
					_, out := tn.call(t, who, "GET", path, "")
					for typ, k := range keys {
						if strings.Contains(out, k) {
							t.Errorf("%s GET %s shows the %s key", who, path, typ)
						}
					}
				}
			}
			for _, bad := range []string{
				`{"name":"pager","type":"pagerduty","routing_key":"short"}`,
				`{"name":"tickets","type":"halopsa","client_id":"a","client_secret":"b"}`,
				`{"name":"chat","type":"slack","url":"not a url"}`,
				`{"name":"genie","type":"opsgenie"}`,
				`{"name":"psa","type":"connectwise"}`,
				`{"name":"hook","type":"webhook","target":"https://hooks.example/a","signature":"v9"}`,
				`{"name":"pager","type":"pagerduty","routing_key":"` + keys["pagerduty"] + `","endpoint":"file:///etc/passwd"}`,
			} {
				status, out := tn.call(t, "alice-owner", "POST", "/api/v1/channels", bad)
				if status != 400 || code(out) != "invalid_request" {
					t.Errorf("%s: %d %s", bad, status, out)
				}
			}
			status, out := tn.call(t, "alice-owner", "POST", "/api/v1/channels", `{"name":"std","type":"webhook","target":"https://hooks.example/std","signature":"standard"}`)
			if status != 201 || !strings.Contains(out, `"signature":"standard"`) || !strings.Contains(out, `"secret":"whsec_`) {
				t.Errorf("standard webhook: %d %s", status, out)
			}
		})
	}
}
