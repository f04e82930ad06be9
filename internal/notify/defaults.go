package notify

import (
	"context"
	"time"

	"keepwatch"
	"keepwatch/internal/store"
)

// DefaultRouting gives a new integrator notifications that work out of
// the box: an e-mail channel to its owner and a rule for every kind, with
// a one-minute minimum duration so flapping does not page anyone.
func DefaultRouting(ctx context.Context, s *store.Store, integratorID int64, ownerEmail string) error {
	c, err := s.CreateChannel(ctx, integratorID, store.Channel{Name: "Owner e-mail", Type: store.ChannelEmail, Target: ownerEmail, Digest: true, Enabled: true})
	if err != nil {
		return err
	}
	_, err = s.CreateRule(ctx, integratorID, store.Rule{Name: "Everything, after one minute", ChannelID: c.ID,
		MinSeverity: keepwatch.SeverityWarning, MinDuration: keepwatch.Duration(time.Minute), Enabled: true})
	return err
}
