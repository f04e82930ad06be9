package api_test

import (
	"fmt"
	"testing"

	"keepwatch/internal/store"
)

// TestRegistrationAttemptsAreRateLimited: registering SLCs by guessing
// (first registration wins) is limited per integrator and per address.
func TestRegistrationAttemptsAreRateLimited(t *testing.T) {
	tn := setup(t, store.SQLite)
	for i := 0; i < 100; i++ {
		if status, body := tn.call(t, "alice-owner", "POST", "/api/v1/registrations", fmt.Sprintf(`{"slc":"GUESS-%04d"}`, i)); status != 409 {
			t.Fatalf("attempt %d: %d %s", i+1, status, body)
		}
	}
	status, body := tn.call(t, "alice-owner", "POST", "/api/v1/registrations", `{"slc":"GUESS-9999"}`)
	if status != 429 || code(body) != "rate_limited" {
		t.Fatalf("attempt 101: %d %s", status, body)
	}
	// Another integrator from the same address is limited by the address.
	if status, body := tn.call(t, "bob-owner", "POST", "/api/v1/registrations", `{"slc":"GUESS-8888"}`); status != 429 || code(body) != "rate_limited" {
		t.Fatalf("same address, other integrator: %d %s", status, body)
	}
}
