package api

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
)

// httpMethods are the operation keys of an OpenAPI path item.
var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("openapi = %q, want 3.1.x", doc.OpenAPI)
	}

	// role of each documented /api/v1/ operation, keyed "METHOD /path";
	// "" when the operation has no x-keepwatch-role (public).
	documented := map[string]string{}
	for path, item := range doc.Paths {
		if !strings.HasPrefix(path, "/api/v1/") {
			continue
		}
		for _, m := range httpMethods {
			raw, ok := item[m]
			if !ok {
				continue
			}
			var op struct {
				Role *string `json:"x-keepwatch-role"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Errorf("%s %s: operation is not an object with a string x-keepwatch-role: %v", strings.ToUpper(m), path, err)
				continue
			}
			role := ""
			if op.Role != nil {
				role = *op.Role
				if role == "" {
					t.Errorf("%s %s: x-keepwatch-role is empty; leave it out for public routes", strings.ToUpper(m), path)
				}
			}
			documented[strings.ToUpper(m)+" "+path] = role
		}
	}

	routes := map[string]string{}
	for _, rt := range (&Handler{}).Routes() {
		routes[rt.Method+" "+rt.Pattern] = string(rt.Role)
	}

	for _, k := range sortedKeys(routes) {
		role, ok := documented[k]
		if !ok {
			t.Errorf("route %s is served but missing from openapi.json", k)
			continue
		}
		if role != routes[k] {
			t.Errorf("route %s: x-keepwatch-role = %q, but the route needs %q", k, role, routes[k])
		}
	}
	for _, k := range sortedKeys(documented) {
		if _, ok := routes[k]; !ok {
			t.Errorf("openapi.json documents %s, which Handler.Routes() does not serve", k)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
