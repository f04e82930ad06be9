package respond

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestMediaTypesMatchInAnyCaseWithParameters(t *testing.T) {
	for header, want := range map[string]bool{
		"application/json":                true,
		"Application/JSON":                true,
		"application/json; charset=utf-8": true,
		"APPLICATION/JSON;CHARSET=UTF-8":  true,
		"application/jsonp":               false,
		"text/plain":                      false,
		"application/json;;":              false,
	} {
		if got := IsMediaType(header, "application/json"); got != want {
			t.Errorf("%q: %v, want %v", header, got, want)
		}
	}
}

func TestJSONProblemsAreNamed(t *testing.T) {
	var v struct {
		At    *time.Time `json:"at"`
		Count int        `json:"count"`
		Items []struct {
			Kind string `json:"kind"`
		} `json:"items"`
		Key []byte `json:"key"`
	}
	for doc, want := range map[string]string{
		`{"at":"yesterday"}`:            `"yesterday" is not an RFC 3339 timestamp`,
		`{"at":"2026-02-30T00:00:00Z"}`: `"2026-02-30T00:00:00Z" is not an RFC 3339 timestamp`,
		`{"at":17}`:                     "a timestamp must be a string",
		`{"count":"seven"}`:             "count must be an integer, not string",
		`{"items":[{"kind":1}]}`:        "items.kind must be a string, not number",
		`{"key":"%%%"}`:                 "not standard base64",
		`{"count":`:                     "ends too early",
		`{"count" 1}`:                   "not valid JSON (at byte",
	} {
		err := json.Unmarshal([]byte(doc), &v)
		if err == nil {
			t.Fatalf("%s was accepted", doc)
		}
		if got := JSONProblem(err); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q", doc, got, want)
		}
	}
}
