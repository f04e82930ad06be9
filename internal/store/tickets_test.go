package store_test

import (
	"testing"

	"keepwatch"
	"keepwatch/internal/store"
)

// TestIncidentTicketsAreKeptPerChannelAndScopedByIntegrator: the ticket a
// PSA channel opened is found again for its incident, replaced on a new
// opening, and neither read nor written through another integrator.
func TestIncidentTicketsAreKeptPerChannelAndScopedByIntegrator(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *store.Store) {
		f := newFixture(t, s)
		_, err := s.ApplyReport(ctx, report(f.aliceSrv, 1, day, "storage_full:E:"))
		must(t, err)
		ins, err := s.Incidents(ctx, f.alice, "", 10)
		must(t, err)
		inc := ins[0].ID
		ch, err := s.CreateChannel(ctx, f.alice, keepwatch.Channel{Name: "psa", Type: keepwatch.ChannelHaloPSA, Target: "id", Secret: "client-secret-value", Endpoint: "https://acme.halopsa.com", Enabled: true})
		must(t, err)
		_, err = s.IncidentTicket(ctx, f.alice, ch.ID, inc)
		wantCode(t, err, keepwatch.ENOTFOUND)
		must(t, s.SetIncidentTicket(ctx, f.alice, ch.ID, inc, "4242"))
		if got, err := s.IncidentTicket(ctx, f.alice, ch.ID, inc); err != nil || got != "4242" {
			t.Fatalf("ticket = %q, %v", got, err)
		}
		must(t, s.SetIncidentTicket(ctx, f.alice, ch.ID, inc, "4243"))
		if got, _ := s.IncidentTicket(ctx, f.alice, ch.ID, inc); got != "4243" {
			t.Fatalf("reopened ticket = %q", got)
		}
		_, err = s.IncidentTicket(ctx, f.bob, ch.ID, inc)
		wantCode(t, err, keepwatch.ENOTFOUND)
		wantCode(t, s.SetIncidentTicket(ctx, f.bob, ch.ID, inc, "1"), keepwatch.ENOTFOUND)
		if got, _ := s.IncidentTicket(ctx, f.alice, ch.ID, inc); got != "4243" {
			t.Fatalf("bob changed alice's ticket: %q", got)
		}
		back, err := s.Channel(ctx, f.alice, ch.ID)
		must(t, err)
		if back.Endpoint != "https://acme.halopsa.com" || back.Secret != "client-secret-value" || back.SecretHint != "…alue" {
			t.Fatalf("channel read back: %+v", back)
		}
	})
}
