package notify

import (
	"context"
	"fmt"
	"time"

	"keepwatch"
	"keepwatch/internal/secret"
)

// DefaultRouting gives a new integrator notifications that work out of
// the box: an e-mail channel to its owner and a rule for every kind, with
// a one-minute minimum duration so flapping does not page anyone.
func DefaultRouting(ctx context.Context, s keepwatch.ChannelStore, integratorID int64, ownerEmail string) error {
	c, err := s.CreateChannel(ctx, integratorID, keepwatch.Channel{Name: "Owner e-mail", Type: keepwatch.ChannelEmail, Target: ownerEmail, Digest: true, Enabled: true})
	if err != nil {
		return err
	}
	_, err = s.CreateRule(ctx, integratorID, keepwatch.Rule{Name: "Everything, after one minute", ChannelID: c.ID,
		MinSeverity: keepwatch.SeverityWarning, MinDuration: keepwatch.Duration(time.Minute), Enabled: true})
	return err
}

// CreateChannel validates and adds a channel; a webhook gets a new signing
// secret (in the returned channel, to be shown once).
func CreateChannel(ctx context.Context, st keepwatch.ChannelStore, integratorID int64, spec keepwatch.ChannelSpec) (keepwatch.Channel, error) {
	c, err := spec.Channel()
	if err != nil {
		return c, err
	}
	if c.Type == keepwatch.ChannelWebhook {
		if c.Signature == keepwatch.SignatureStandard {
			c.Secret = NewStandardSecret()
		} else {
			c.Secret = secret.New("whsec_")
		}
	}
	return st.CreateChannel(ctx, integratorID, c)
}

// QueueTest queues a test notification to one of an integrator's channels.
func QueueTest(ctx context.Context, st keepwatch.ChannelStore, integratorID, channelID int64, now time.Time) error {
	c, err := st.Channel(ctx, integratorID, channelID)
	if err != nil {
		return err
	}
	if !c.Enabled {
		return keepwatch.Errorf(keepwatch.ECONFLICT, "the channel was deleted")
	}
	_, err = st.Enqueue(ctx, keepwatch.Notification{IntegratorID: integratorID, ChannelID: c.ID, Type: TypeTest,
		DedupKey: fmt.Sprintf("test:c%d:%d", c.ID, now.UnixNano()), NotBefore: now})
	return err
}
