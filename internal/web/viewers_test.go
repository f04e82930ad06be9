package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"keepwatch/internal/notify"
	"keepwatch/internal/testutil"
)

// TestOnlyOwnersSeeWhereChannelsDeliver reads every dashboard page as each
// of alice's roles after a delivery to her webhook failed: the webhook's
// URL reaches owners on the notifications page only, the signing secret
// nobody, and the audit log of a channel's creation keeps its type, not
// its target.
func TestOnlyOwnersSeeWhereChannelsDeliver(t *testing.T) {
	for _, dialect := range testutil.Dialects {
		t.Run(dialect, func(t *testing.T) {
			f := newFixture(t, fixtureOptions{dialect: dialect})
			must(t, notify.QueueTest(ctx, f.a.Store, f.alice, f.channel, time.Now()))
			must(t, f.a.Notify.Deliver(ctx))
			var pages []string
			for _, rt := range f.a.Web.Routes() {
				if rt.Method == "GET" && rt.Role != "" {
					pages = append(pages, strings.NewReplacer("{$}", "?filter=all", "{slc}", aliceSLC, "{id}", fmt.Sprint(f.incident)).Replace(rt.Pattern))
				}
			}
			for _, who := range []string{"alice-viewer", "alice-technician", "alice-owner"} {
				s := f.session(who)
				for _, p := range pages {
					status, _, body := f.do(s, "GET", p, nil)
					if strings.Contains(body, hookSecret) {
						t.Errorf("%s %s shows the webhook secret", who, p)
					}
					sees := strings.Contains(body, hookKey) || strings.Contains(body, "127.0.0.1:9")
					if sees && !(who == "alice-owner" && p == "/notifications") {
						t.Errorf("%s %s (%d) shows where a channel delivers", who, p, status)
					}
					if who == "alice-owner" && p == "/notifications" && !sees {
						t.Errorf("the owner's notifications page shows no targets")
					}
				}
			}
			// Creating a channel: the audit log says what type, not where.
			owner := f.session("alice-owner")
			status, _, _ := f.do(owner, "POST", "/notifications/channels",
				url.Values{"name": {"pager"}, "type": {"webhook"}, "target": {"https://hooks.example/p?token=audit-marker-2b7d"}})
			if status != 303 {
				t.Fatalf("create channel: %d", status)
			}
			entries, err := f.a.Store.AuditLog(ctx, f.alice, 50)
			must(t, err)
			found := false
			for _, e := range entries {
				if strings.Contains(e.Target+e.Detail, "audit-marker-2b7d") || strings.Contains(e.Target+e.Detail, "hooks.example") {
					t.Errorf("audit entry %s shows the channel's target: %+v", e.Action, e)
				}
				found = found || e.Action == "channel.create"
			}
			if !found {
				t.Fatal("channel creation not audited")
			}
		})
	}
}

// TestWhoMayOpenTheDashboardStream: the dashboard's live updates are the
// API's event stream opened with the session cookie; every signed-in role
// may open it, nobody signed out.
func TestWhoMayOpenTheDashboardStream(t *testing.T) {
	f := newFixture(t, fixtureOptions{dialect: "sqlite"})
	open := func(s session) int {
		c, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(c, "GET", f.base+"/api/v1/events", nil)
		if s.cookie != "" {
			req.AddCookie(&http.Cookie{Name: "kw_session", Value: s.cookie})
		}
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, who := range []string{"alice-viewer", "alice-technician", "alice-owner", "bob-owner"} {
		if st := open(f.session(who)); st != 200 {
			t.Errorf("%s: %d", who, st)
		}
	}
	if st := open(session{}); st != 401 {
		t.Errorf("anonymous: %d", st)
	}
	s := f.session("alice-viewer")
	if st, _, _ := f.do(s, "POST", "/logout", url.Values{}); st != 303 {
		t.Fatalf("sign out: %d", st)
	}
	if st := open(s); st != 401 {
		t.Errorf("signed out: %d", st)
	}
}
