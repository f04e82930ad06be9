package api_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/notify"
	"keepwatch/internal/secret"
	"keepwatch/internal/testutil"
)

// TestOnlyOwnersSeeWhereChannelsDeliver reads every API route as each of
// alice's roles after a delivery to her webhook failed: the webhook's URL
// (with the key in its query) reaches owners through the channel list
// only, the signing secret nobody, and a failure is told as a generic
// class.
func TestOnlyOwnersSeeWhereChannelsDeliver(t *testing.T) {
	for _, dialect := range testutil.Dialects {
		t.Run(dialect, func(t *testing.T) {
			tn := setup(t, dialect)
			if err := notify.QueueTest(ctx, tn.a.Store, tn.aliceID, tn.keepCh, time.Now()); err != nil {
				t.Fatal(err)
			}
			if err := tn.a.Notify.Deliver(ctx); err != nil {
				t.Fatal(err)
			}
			inc := fmt.Sprint(tn.incident)
			var gets []string
			for _, rt := range tn.a.API.Routes() {
				if rt.Method != "GET" || rt.Pattern == "/api/v1/events" || rt.Pattern == "/api/v1/openapi.json" {
					continue
				}
				p := strings.NewReplacer("{slc}", aliceSLC, "{id}", inc).Replace(rt.Pattern)
				if p == "/api/v1/installations" {
					p += "?filter=all"
				}
				gets = append(gets, p)
			}
			for _, who := range []string{"alice-viewer", "alice-technician", "alice-owner"} {
				for _, path := range gets {
					status, body := tn.call(t, who, "GET", path, "")
					if strings.Contains(body, hookSecret) {
						t.Errorf("%s GET %s shows the webhook secret", who, path)
					}
					sees := strings.Contains(body, hookKey) || strings.Contains(body, "127.0.0.1:9")
					if sees && !(who == "alice-owner" && path == "/api/v1/channels") {
						t.Errorf("%s GET %s (%d) shows where a channel delivers: %s", who, path, status, body)
					}
					if who == "alice-owner" && path == "/api/v1/channels" && !sees {
						t.Errorf("the owner's channel list has no targets: %s", body)
					}
				}
			}
			ns, err := tn.a.Store.Notifications(ctx, tn.aliceID, 10)
			if err != nil || len(ns) != 1 || ns[0].LastError != "destination not allowed" {
				t.Fatalf("the failed delivery is recorded as %+v %v", ns, err)
			}
		})
	}
}

// TestWhoMayOpenTheEventStream: every role of the integrator, with a token
// or the dashboard's cookie; nobody without a working credential.
func TestWhoMayOpenTheEventStream(t *testing.T) {
	tn := setup(t, "sqlite")
	for _, who := range []string{"alice-viewer", "alice-technician", "alice-owner", "bob-owner"} {
		if st := tn.openStream(t, tn.tokens[who], ""); st.status != 200 {
			t.Errorf("%s: %d %s", who, st.status, st.body)
		}
	}
	if st := tn.openStream(t, "", ""); st.status != 401 || code(st.body) != "unauthorized" {
		t.Errorf("anonymous: %d %s", st.status, st.body)
	}
	if st := tn.openStream(t, "kw_"+strings.Repeat("A", 43), ""); st.status != 401 {
		t.Errorf("forged token: %d", st.status)
	}
	if st := tn.openStream(t, "", secret.New("")); st.status != 401 {
		t.Errorf("unknown session cookie: %d", st.status)
	}
	tok := secret.New("kw_")
	id, err := tn.a.Store.CreateToken(ctx, tn.aliceID, "old", keepwatch.RoleViewer, secret.Hash(tok))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tn.a.Store.RevokeToken(ctx, tn.aliceID, id); err != nil {
		t.Fatal(err)
	}
	if st := tn.openStream(t, tok, ""); st.status != 401 {
		t.Errorf("revoked token: %d", st.status)
	}
	_, cookie := tn.login(t, "viewer2@alice.example", keepwatch.RoleViewer)
	if st := tn.openStream(t, "", cookie); st.status != 200 {
		t.Errorf("session cookie: %d %s", st.status, st.body)
	}
	if err := tn.a.Auth.Logout(ctx, secret.Hash(cookie)); err != nil {
		t.Fatal(err)
	}
	if st := tn.openStream(t, "", cookie); st.status != 401 {
		t.Errorf("signed-out session: %d", st.status)
	}
}
