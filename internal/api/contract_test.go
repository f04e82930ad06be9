package api_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"keepwatch"
	"keepwatch/internal/api"
	"keepwatch/internal/respond"
	"keepwatch/internal/store"
)

// openAPIDoc is what the contract test reads of openapi.json.
type openAPIDoc struct {
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Responses map[string]struct {
			Description string `json:"description"`
		} `json:"responses"`
		Schemas struct {
			Error struct {
				Properties struct {
					Error struct {
						Properties struct {
							Code struct {
								Enum []string `json:"enum"`
							} `json:"code"`
						} `json:"properties"`
					} `json:"error"`
				} `json:"properties"`
			} `json:"Error"`
		} `json:"schemas"`
	} `json:"components"`
}

// documentedAnswers returns, for every documented operation ("METHOD
// /path"), its documented statuses and the description of each (a
// $ref's target's).
func documentedAnswers(t *testing.T) (map[string]map[int]string, []string) {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[int]string{}
	for path, item := range doc.Paths {
		for _, m := range []string{"get", "put", "post", "delete", "patch"} {
			raw, ok := item[m]
			if !ok {
				continue
			}
			var op struct {
				Responses map[string]struct {
					Ref         string `json:"$ref"`
					Description string `json:"description"`
				} `json:"responses"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", m, path, err)
			}
			statuses := map[int]string{}
			for s, r := range op.Responses {
				var status int
				fmt.Sscan(s, &status)
				desc := r.Description
				if name, ok := strings.CutPrefix(r.Ref, "#/components/responses/"); ok {
					target, found := doc.Components.Responses[name]
					if !found {
						t.Errorf("%s %s %s: $ref to a missing response %s", m, path, s, name)
					}
					desc = target.Description
				}
				statuses[status] = desc
			}
			out[strings.ToUpper(m)+" "+path] = statuses
		}
	}
	return out, doc.Components.Schemas.Error.Properties.Error.Properties.Code.Enum
}

// crafted is one request the contract test sends and the answer it gets.
type crafted struct {
	route, who, method, path, body string
}

// notCrafted are documented statuses no request of this test produces,
// with the reason; every other documented status must be produced.
var notCrafted = map[int]string{
	500: "a fault inside keepwatch",
	503: "the database is unavailable (see internal/app's PostgreSQL restart test)",
	429: "documented on every API route for the limits of the token's account; produced here only by registrations and streams",
}

// TestOpenAPIMatchesTheRealAnswers sends, for every documented API
// operation, requests that produce each of its answers (success, no
// token, too small a role, another integrator's data, a malformed or
// oversized body, conflicts), and checks that every answer's status is
// documented for the operation, that its error code is one the document
// lists and names in that status's description, and that every
// documented status is produced (but those of notCrafted).
func TestOpenAPIMatchesTheRealAnswers(t *testing.T) {
	tn := setup(t, store.SQLite)
	documented, codes := documentedAnswers(t)
	inc, ch, keep, rule := fmt.Sprint(tn.incident), fmt.Sprint(tn.channel), fmt.Sprint(tn.keepCh), fmt.Sprint(tn.rule)
	user, token, window := fmt.Sprint(tn.user), fmt.Sprint(tn.token), fmt.Sprint(tn.window)
	huge := `{"note":"` + strings.Repeat("x", 70<<10) + `"}`

	// A sample request of every operation, as its owner makes it.
	samples := map[string]struct{ path, body string }{
		"GET /api/v1/installations":                           {"/api/v1/installations?filter=all", ""},
		"GET /api/v1/installations/{slc}":                     {"/api/v1/installations/" + aliceSLC, ""},
		"GET /api/v1/installations/{slc}/servers":             {"/api/v1/installations/" + aliceSLC + "/servers", ""},
		"GET /api/v1/incidents":                               {"/api/v1/incidents", ""},
		"GET /api/v1/incidents/{id}":                          {"/api/v1/incidents/" + inc, ""},
		"POST /api/v1/incidents/{id}/ack":                     {"/api/v1/incidents/" + inc + "/ack", `{"note":"on it"}`},
		"POST /api/v1/incidents/{id}/resolve":                 {"/api/v1/incidents/" + inc + "/resolve", `{}`},
		"POST /api/v1/registrations":                          {"/api/v1/registrations", `{"slc":"` + aliceSLC + `"}`},
		"DELETE /api/v1/registrations/{slc}":                  {"/api/v1/registrations/" + aliceSLC, ""},
		"GET /api/v1/events":                                  {"/api/v1/events", ""},
		"GET /api/v1/openapi.json":                            {"/api/v1/openapi.json", ""},
		"GET /api/v1/incidents/{id}/history":                  {"/api/v1/incidents/" + inc + "/history", ""},
		"GET /api/v1/notifications":                           {"/api/v1/notifications", ""},
		"GET /api/v1/channels":                                {"/api/v1/channels", ""},
		"POST /api/v1/channels":                               {"/api/v1/channels", `{"name":"pager","type":"webhook","target":"https://127.0.0.1:9/pager"}`},
		"POST /api/v1/channels/{id}/test":                     {"/api/v1/channels/" + ch + "/test", ""},
		"DELETE /api/v1/channels/{id}":                        {"/api/v1/channels/" + ch, ""},
		"GET /api/v1/rules":                                   {"/api/v1/rules", ""},
		"POST /api/v1/rules":                                  {"/api/v1/rules", `{"name":"errors","channel_id":` + keep + `,"min_severity":"error"}`},
		"DELETE /api/v1/rules/{id}":                           {"/api/v1/rules/" + rule, ""},
		"POST /api/v1/incidents/{id}/assign":                  {"/api/v1/incidents/" + inc + "/assign", `{"user_id":` + user + `}`},
		"GET /api/v1/users":                                   {"/api/v1/users", ""},
		"POST /api/v1/users":                                  {"/api/v1/users", `{"email":"new@example.com","role":"viewer"}`},
		"PATCH /api/v1/users/{id}":                            {"/api/v1/users/" + user, `{"role":"viewer"}`},
		"DELETE /api/v1/users/{id}":                           {"/api/v1/users/" + user, ""},
		"GET /api/v1/tokens":                                  {"/api/v1/tokens", ""},
		"POST /api/v1/tokens":                                 {"/api/v1/tokens", `{"name":"export","role":"viewer"}`},
		"DELETE /api/v1/tokens/{id}":                          {"/api/v1/tokens/" + token, ""},
		"GET /api/v1/audit":                                   {"/api/v1/audit", ""},
		"GET /api/v1/installations/{slc}/maintenance":         {"/api/v1/installations/" + aliceSLC + "/maintenance", ""},
		"POST /api/v1/installations/{slc}/maintenance":        {"/api/v1/installations/" + aliceSLC + "/maintenance", `{"duration_seconds":3600,"reason":"disk swap"}`},
		"DELETE /api/v1/installations/{slc}/maintenance/{id}": {"/api/v1/installations/" + aliceSLC + "/maintenance/" + window, ""},
		"GET /api/v1/installations/{slc}/drives":              {"/api/v1/installations/" + aliceSLC + "/drives", ""},
		"GET /api/v1/installations/{slc}/drives/series":       {"/api/v1/installations/" + aliceSLC + "/drives/series?path=E:%5CRecordings&range=90d", ""},
		"GET /api/v1/installations/{slc}/drive-settings":      {"/api/v1/installations/" + aliceSLC + "/drive-settings", ""},
		"GET /api/v1/reenrollments":                           {"/api/v1/reenrollments", ""},
		"POST /api/v1/reenrollments/{id}/approve":             {"/api/v1/reenrollments/" + fmt.Sprint(tn.approve) + "/approve", ""},
		"POST /api/v1/reenrollments/{id}/reject":              {"/api/v1/reenrollments/" + fmt.Sprint(tn.reject) + "/reject", ""},
		"POST /api/v1/installations/{slc}/enrollment-key":     {"/api/v1/installations/" + aliceSLC + "/enrollment-key", ""},
		"DELETE /api/v1/installations/{slc}/enrollment-key":   {"/api/v1/installations/" + aliceSLC + "/enrollment-key", ""},
		"PUT /api/v1/installations/{slc}/drive-settings":      {"/api/v1/installations/" + aliceSLC + "/drive-settings", `{"forecast_horizon_days":14,"required_retention_days":30,"drives":[]}`},
	}
	routes := map[string]api.Route{}
	for _, rt := range tn.a.API.Routes() {
		routes[rt.Method+" "+rt.Pattern] = rt
	}

	// Every documented operation is served: the API's by the route table,
	// the others (ingest, operations) answer something other than the
	// mux's "no such route" or "method not allowed".
	for op := range documented {
		method, path, _ := strings.Cut(op, " ")
		if strings.HasPrefix(path, "/api/v1/") {
			if _, ok := routes[op]; !ok {
				t.Errorf("%s is documented but not served", op)
			}
			if _, ok := samples[op]; !ok {
				t.Errorf("%s has no sample request in this test", op)
			}
			continue
		}
		status, body := tn.call(t, "", method, path, "")
		if status == 404 || status == 405 {
			t.Errorf("%s is documented but answers %d %s", op, status, body)
		}
	}

	var reqs []crafted
	add := func(route, who, method, path, body string) {
		reqs = append(reqs, crafted{route, who, method, path, body})
	}
	// Refusals first: they change nothing.
	for op, s := range samples {
		rt := routes[op]
		if rt.Role == "" {
			continue
		}
		add(op, "", rt.Method, s.path, s.body)
		if rt.Role != keepwatch.RoleViewer {
			add(op, "alice-viewer", rt.Method, s.path, s.body)
		}
		if strings.Contains(rt.Pattern, "{") {
			add(op, "bob-owner", rt.Method, s.path, s.body)
		}
		if s.body != "" {
			add(op, "alice-owner", rt.Method, s.path, `{"`)
			add(op, "alice-owner", rt.Method, s.path, huge)
		}
	}
	// Refusals that depend on the data: a bad filter, a state condition
	// still reported, an SLC nobody registered, an address already taken.
	add("GET /api/v1/installations", "alice-owner", "GET", "/api/v1/installations?filter=bogus", "")
	add("GET /api/v1/incidents", "alice-owner", "GET", "/api/v1/incidents?state=bogus", "")
	add("GET /api/v1/audit", "alice-owner", "GET", "/api/v1/audit?limit=0", "")
	add("GET /api/v1/installations/{slc}/drives/series", "alice-owner", "GET", "/api/v1/installations/"+aliceSLC+"/drives/series?path=E:%5CRecordings&range=7y", "")
	add("POST /api/v1/incidents/{id}/resolve", "alice-owner", "POST", "/api/v1/incidents/"+inc+"/resolve", `{}`)
	add("POST /api/v1/registrations", "alice-owner", "POST", "/api/v1/registrations", `{"slc":"`+bobSLC+`"}`)
	add("POST /api/v1/users", "alice-owner", "POST", "/api/v1/users", `{"email":"spare@alice.example","role":"viewer"}`)
	// The last owner can be neither demoted nor removed; a window already
	// over cannot be stopped.
	owner, err := tn.a.Store.CreateUser(ctx, tn.aliceID, "only-owner@alice.example", "x", keepwatch.RoleOwner)
	if err != nil {
		t.Fatal(err)
	}
	add("PATCH /api/v1/users/{id}", "alice-owner", "PATCH", fmt.Sprintf("/api/v1/users/%d", owner), `{"role":"viewer"}`)
	add("DELETE /api/v1/users/{id}", "alice-owner", "DELETE", fmt.Sprintf("/api/v1/users/%d", owner), "")
	over, err := tn.a.Store.SetMaintenance(ctx, tn.aliceID, keepwatch.MaintenanceWindow{SLC: aliceSLC, Start: time.Now().Add(-2 * time.Hour), End: time.Now().Add(-time.Hour), CreatedBy: "user:owner"})
	if err != nil {
		t.Fatal(err)
	}
	add("DELETE /api/v1/installations/{slc}/maintenance/{id}", "alice-owner", "DELETE", fmt.Sprintf("/api/v1/installations/%s/maintenance/%d", aliceSLC, over.ID), "")
	// Then every operation's success, in route order, giving the
	// installation away last; then the conflicts that follow from them.
	var release crafted
	for _, rt := range tn.a.API.Routes() {
		op := rt.Method + " " + rt.Pattern
		c := crafted{op, "alice-owner", rt.Method, samples[op].path, samples[op].body}
		if op == "DELETE /api/v1/registrations/{slc}" {
			release = c
			continue
		}
		reqs = append(reqs, c)
	}
	add("POST /api/v1/incidents/{id}/ack", "alice-owner", "POST", "/api/v1/incidents/"+inc+"/ack", `{}`)
	add("DELETE /api/v1/tokens/{id}", "alice-owner", "DELETE", "/api/v1/tokens/"+token, "")
	add("POST /api/v1/channels/{id}/test", "alice-owner", "POST", "/api/v1/channels/"+ch+"/test", "")
	// An event's incident is resolved by hand.
	svs, err := tn.a.Store.Servers(ctx, tn.aliceID, aliceSLC)
	if err != nil || len(svs) == 0 {
		t.Fatalf("alice's servers %v %v", svs, err)
	}
	if _, err := tn.a.Store.ApplyReport(ctx, keepwatch.Report{ServerID: svs[0].ID, Seq: 1 << 20, ReceivedAt: time.Now(), Interval: time.Minute,
		Events: []keepwatch.Event{{Kind: "archive_move_failed", Subject: "A1", Severity: keepwatch.SeverityError, At: time.Now()}}}); err != nil {
		t.Fatal(err)
	}
	ins, err := tn.a.Store.Incidents(ctx, tn.aliceID, keepwatch.IncidentOpen, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ins {
		if n.Event {
			add("POST /api/v1/incidents/{id}/resolve", "alice-owner", "POST", fmt.Sprintf("/api/v1/incidents/%d/resolve", n.ID), `{"note":"moved by hand"}`)
		}
	}
	reqs = append(reqs, release)

	known := map[string]bool{}
	for _, c := range codes {
		known[c] = true
	}
	produced := map[string]map[int]bool{}
	for _, c := range reqs {
		status, body := tn.call(t, c.who, c.method, c.path, c.body)
		if produced[c.route] == nil {
			produced[c.route] = map[int]bool{}
		}
		produced[c.route][status] = true
		desc, ok := documented[c.route][status]
		if !ok {
			t.Errorf("%s as %q (%s %.40q) answers %d, which is not documented: %.200s", c.route, c.who, c.path, c.body, status, body)
			continue
		}
		if status < 400 {
			continue
		}
		errCode := code(body)
		switch {
		case !known[errCode]:
			t.Errorf("%s answers %d with code %q, which the Error schema does not list", c.route, status, errCode)
		case respond.Status(errCode) != status:
			t.Errorf("%s answers %d with code %q, which maps to %d", c.route, status, errCode, respond.Status(errCode))
		case !strings.Contains(desc, "`"+errCode+"`"):
			t.Errorf("%s answers %d %s, but the documented %d does not name `%s`: %q", c.route, status, errCode, status, errCode, desc)
		}
	}
	for _, op := range sortedOps(documented) {
		if !strings.HasPrefix(op, "/api/v1/") && !strings.Contains(op, " /api/v1/") {
			continue // ingest: internal/ingest's contract test
		}
		for status := range documented[op] {
			if produced[op][status] {
				continue
			}
			if _, ok := notCrafted[status]; ok {
				continue
			}
			t.Errorf("%s documents %d, but no request of this test produced it (produced %v)", op, status, produced[op])
		}
	}
}

func sortedOps(m map[string]map[int]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
