package main

import (
	"encoding/json"
	"testing"

	"keepwatch/internal/bench"
)

// bench --fleet runs end to end on a small fleet: every agent's report is
// answered (an answer the agent does not take, as an unauthenticated one
// from the baseline server, shows as retries and errors), by keepwatch and
// by the baseline alike, and every silenced server is declared.
func TestBenchFleetAnswersEveryAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("a fleet of agent processes for half a minute")
	}
	code, stdout, stderr := runBinary(t, "bench", "--fleet", "--servers", "200", "--interval", "2s", "--duration", "4s", "--json")
	if code != 0 {
		t.Fatalf("bench --fleet: exit %d\n%s", code, stderr)
	}
	var r bench.Result
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("bench --fleet output: %v\n%s", err, stdout)
	}
	if r.FleetResult == nil || r.Errors != 0 || r.Detected != r.Silenced || r.Silenced == 0 {
		t.Fatalf("bench --fleet: %s", stdout)
	}
	if r.ReportsPerSec <= 0 || r.BaselineRPS <= 0 || r.StatusReports < 200 || r.Heartbeats == 0 {
		t.Fatalf("bench --fleet answered nothing on one side: %s", stdout)
	}
}
