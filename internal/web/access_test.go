package web_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"

	"keepwatch"
	"keepwatch/internal/testutil"
)

// routeCase is how one dashboard route is exercised.
type routeCase struct {
	path string
	form url.Values // nil for GET
	// ok lists the statuses a caller with the right role may get; the first
	// caller allowed gets ok[0] (later ones may find the work done).
	ok []int
	// bob is what another integrator's owner gets; it must never show
	// alice's data.
	bob int
}

// TestEveryDashboardRouteEnforcesRolesAndTenants checks every dashboard
// route for anonymous visitors, alice's viewer, technician and owner, and
// bob's owner. A route added without an entry here fails the test.
func TestEveryDashboardRouteEnforcesRolesAndTenants(t *testing.T) {
	for _, dialect := range testutil.Dialects {
		t.Run(dialect, func(t *testing.T) {
			f := newFixture(t, fixtureOptions{dialect: dialect})
			inc := fmt.Sprint(f.incident)
			approve, reject := pendingReenrollments(t, f)
			spare, token := fmt.Sprint(f.users["alice-spare"]), fmt.Sprint(f.tokenID)
			ch, rule := fmt.Sprint(f.channel), fmt.Sprint(f.rule)
			form := func(kv ...string) url.Values {
				v := url.Values{}
				for i := 0; i < len(kv); i += 2 {
					v.Set(kv[i], kv[i+1])
				}
				return v
			}
			cases := map[string]routeCase{
				"GET /login":                            {"/login", nil, []int{200, 303}, 303},
				"POST /login":                           {"/login", form("email", "nobody@example.com", "password", "wrong password"), []int{401}, 401},
				"POST /logout":                          {"/logout", form(), []int{303}, 303},
				"GET /{$}":                              {"/?filter=all", nil, []int{200}, 200},
				"GET /installations/{slc}":              {"/installations/" + aliceSLC, nil, []int{200}, 404},
				"POST /installations/{slc}/maintenance": {"/installations/" + aliceSLC + "/maintenance", form("duration", "1h", "reason", "disk swap"), []int{303}, 404},
				"POST /installations/{slc}/maintenance/{id}/stop": {fmt.Sprintf("/installations/%s/maintenance/%d/stop", aliceSLC, f.window), form(), []int{303, 404}, 404},
				"POST /installations/{slc}/drives":                {"/installations/" + aliceSLC + "/drives", form("horizon", "10", "required", "30"), []int{303}, 404},
				"GET /incidents":                                  {"/incidents", nil, []int{200}, 200},
				"GET /incidents/{id}":                             {"/incidents/" + inc, nil, []int{200}, 404},
				"POST /incidents/bulk":                            {"/incidents/bulk", form("id", inc, "action", "assign", "user", fmt.Sprint(f.users["alice-technician"])), []int{303}, 404},
				"POST /incidents/{id}/ack":                        {"/incidents/" + inc + "/ack", form("note", "on my way"), []int{303, 409}, 404},
				"POST /incidents/{id}/assign":                     {"/incidents/" + inc + "/assign", form("user", fmt.Sprint(f.users["alice-technician"])), []int{303}, 404},
				// Its disk is still full: it resolves by itself when that clears.
				"POST /incidents/{id}/resolve":                   {"/incidents/" + inc + "/resolve", form("note", "disk replaced"), []int{409}, 404},
				"GET /registrations":                             {"/registrations", nil, []int{200}, 200},
				"POST /registrations":                            {"/registrations", form("slc", aliceSLC), []int{303}, 409},
				"POST /registrations/release":                    {"/registrations/release", form("slc", aliceIdleSLC), []int{303, 404}, 404},
				"POST /registrations/enrollment-key":             {"/registrations/enrollment-key", form("slc", aliceOKSLC), []int{303}, 404},
				"POST /registrations/enrollment-key/revoke":      {"/registrations/enrollment-key/revoke", form("slc", aliceOKSLC), []int{303}, 404},
				"POST /registrations/reenrollments/{id}/approve": {"/registrations/reenrollments/" + approve + "/approve", form(), []int{303, 404}, 404},
				"POST /registrations/reenrollments/{id}/reject":  {"/registrations/reenrollments/" + reject + "/reject", form(), []int{303, 404}, 404},
				"GET /settings":                                  {"/settings", nil, []int{200}, 200},
				"POST /settings/users":                           {"/settings/users", form("email", "new.%s@alice.example", "role", "viewer"), []int{303}, 303},
				"POST /settings/users/{id}/role":                 {"/settings/users/" + spare + "/role", form("role", "technician"), []int{303}, 404},
				"POST /settings/users/{id}/remove":               {"/settings/users/" + spare + "/remove", form(), []int{303, 404}, 404},
				"POST /settings/tokens":                          {"/settings/tokens", form("name", "export", "role", "viewer"), []int{303}, 303},
				"POST /settings/tokens/{id}/revoke":              {"/settings/tokens/" + token + "/revoke", form(), []int{303, 409}, 404},
				"GET /static/{file...}":                          {"/static/app.css", nil, []int{200}, 200},
				"GET /notifications":                             {"/notifications", nil, []int{200}, 200},
				"POST /notifications/channels":                   {"/notifications/channels", form("name", "pager", "type", "webhook", "target", "https://127.0.0.1:9/pager"), []int{303}, 303},
				"POST /notifications/channels/{id}/test":         {"/notifications/channels/" + ch + "/test", form(), []int{303, 409}, 404},
				"POST /notifications/channels/{id}/delete":       {"/notifications/channels/" + ch + "/delete", form(), []int{303, 404}, 404},
				"POST /notifications/rules":                      {"/notifications/rules", form("name", "errors", "channel", ch, "severity", "error"), []int{303, 400}, 400},
				"POST /notifications/rules/{id}/delete":          {"/notifications/rules/" + rule + "/delete", form(), []int{303, 404}, 404},
			}
			maps.Copy(cases, accountRouteCases(t, f))
			routes := f.a.Web.Routes()
			for _, rt := range routes {
				key := rt.Method + " " + rt.Pattern
				c, ok := cases[key]
				if !ok {
					t.Errorf("route %s has no access-control entry in this test", key)
					continue
				}
				// Every state-changing route must be exercised with a form.
				if rt.Method != "GET" && c.form == nil {
					t.Errorf("%s: a POST route needs a form in this test", key)
				}
			}
			formFor := func(c routeCase, who string) url.Values {
				if c.form == nil {
					return nil
				}
				v := url.Values{}
				for k, vs := range c.form {
					v.Set(k, strings.ReplaceAll(vs[0], "%s", strings.ReplaceAll(who, "-", ".")))
				}
				return v
			}

			// Anonymous visitors: pages send them to sign in, forms are
			// refused, public routes answer.
			for _, rt := range routes {
				c := cases[rt.Method+" "+rt.Pattern]
				status, hdr, body := f.do(session{}, rt.Method, c.path, formFor(c, "anon"))
				switch {
				case rt.Role == "":
					if status != c.ok[0] && !(rt.Pattern == "/login" && status == 200) {
						t.Errorf("%s %s anonymous: %d", rt.Method, rt.Pattern, status)
					}
				case rt.Method == "GET":
					if status != 303 || !strings.HasPrefix(hdr.Get("Location"), "/login") {
						t.Errorf("%s %s anonymous: %d → %q, want a redirect to /login", rt.Method, rt.Pattern, status, hdr.Get("Location"))
					}
				default:
					if status != 401 {
						t.Errorf("%s %s anonymous: %d, want 401", rt.Method, rt.Pattern, status)
					}
				}
				if strings.Contains(body, aliceCustomer) {
					t.Errorf("%s %s anonymous sees alice's data", rt.Method, rt.Pattern)
				}
			}

			// Bob's owner, signed in, on alice's things.
			bob := f.session("bob-owner")
			for _, rt := range routes {
				if rt.Role == "" {
					continue
				}
				c := cases[rt.Method+" "+rt.Pattern]
				s := bob
				if rt.Pattern == "/logout" {
					s = f.session("bob-owner")
				}
				status, _, body := f.do(s, rt.Method, c.path, formFor(c, "bob"))
				if status != c.bob {
					t.Errorf("%s %s as bob: %d, want %d", rt.Method, rt.Pattern, status, c.bob)
				}
				if strings.Contains(body, aliceCustomer) || strings.Contains(body, aliceSLC) && rt.Pattern != "/registrations" {
					t.Errorf("%s %s as bob leaks alice's data", rt.Method, rt.Pattern)
				}
			}

			// Alice's users, weakest first.
			done := map[string]bool{}
			for _, who := range []string{"alice-viewer", "alice-technician", "alice-owner"} {
				s := f.session(who)
				role := keepwatch.Role(strings.TrimPrefix(who, "alice-"))
				for _, rt := range routes {
					if rt.Role == "" {
						continue
					}
					key := rt.Method + " " + rt.Pattern
					c := cases[key]
					use := s
					if rt.Pattern == "/logout" {
						use = f.session(who)
					}
					status, _, body := f.do(use, rt.Method, c.path, formFor(c, who))
					switch {
					case !role.Allows(rt.Role):
						if status != 403 {
							t.Errorf("%s as %s: %d, want 403", key, who, status)
						}
					case !done[key]:
						done[key] = true
						if status != c.ok[0] {
							t.Errorf("%s as %s: %d, want %d: %s", key, who, status, c.ok[0], snippet(body))
						}
					default:
						if !slices.Contains(c.ok, status) {
							t.Errorf("%s as %s: %d, want one of %v: %s", key, who, status, c.ok, snippet(body))
						}
					}
				}
			}
			// Bob's earlier attempts changed nothing of alice's.
			n, err := f.a.Store.Incident(ctx, f.alice, f.incident)
			must(t, err)
			if n.AckedBy != "user:"+f.emails["alice-technician"] {
				t.Errorf("incident acked by %q, want alice's technician", n.AckedBy)
			}
		})
	}
}

func snippet(body string) string {
	if i := strings.Index(body, `id="error-message"`); i >= 0 {
		body = body[i:]
	}
	if len(body) > 300 {
		body = body[:300]
	}
	return body
}

// pendingReenrollments asks, for two of alice's servers, a re-enrollment
// without proof of their keys, and returns the two request ids.
func pendingReenrollments(t testing.TB, f *fixture) (string, string) {
	t.Helper()
	var ids []string
	for _, slc := range []string{aliceSLC, aliceOKSLC} {
		servers, err := f.a.Store.Servers(context.Background(), f.alice, slc)
		if err != nil || len(servers) == 0 {
			t.Fatalf("servers of %s: %v %v", slc, servers, err)
		}
		id, err := f.a.Store.RequestReenrollment(context.Background(), keepwatch.Enrollment{InstallationID: servers[0].InstallationID, ID: servers[0].ID,
			Name: servers[0].Name, Key: bytes.Repeat([]byte{3}, 32)}, "192.0.2.9")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, fmt.Sprint(id))
	}
	return ids[0], ids[1]
}
