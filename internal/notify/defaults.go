package notify

import (
	"context"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
	"time"

	"keepwatch"
	"keepwatch/internal/secret"
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

// ValidateChannel checks a channel's type and target.
func ValidateChannel(typ, target, name string) error {
	if name == "" || !keepwatch.ValidText(name, 100) {
		return keepwatch.Errorf(keepwatch.EINVALID, "name must be 1 to 100 printable characters")
	}
	switch typ {
	case store.ChannelEmail:
		a, err := mail.ParseAddress(target)
		if err != nil || a.Address != target || len(target) > 254 {
			return keepwatch.Errorf(keepwatch.EINVALID, "target must be an e-mail address")
		}
	case store.ChannelWebhook:
		u, err := url.Parse(target)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(target) > 2048 {
			return keepwatch.Errorf(keepwatch.EINVALID, "target must be an http(s) URL")
		}
	default:
		return keepwatch.Errorf(keepwatch.EINVALID, "type must be email or webhook")
	}
	return nil
}

// CreateChannel validates and adds a channel; a webhook gets a new signing
// secret (in the returned channel, to be shown once).
func CreateChannel(ctx context.Context, st *store.Store, integratorID int64, name, typ, target string, digest bool) (store.Channel, error) {
	name, target = strings.TrimSpace(name), strings.TrimSpace(target)
	if err := ValidateChannel(typ, target, name); err != nil {
		return store.Channel{}, err
	}
	c := store.Channel{Name: name, Type: typ, Target: target, Digest: digest && typ == store.ChannelEmail, Enabled: true}
	if typ == store.ChannelWebhook {
		c.Secret = secret.New("whsec_")
	}
	return st.CreateChannel(ctx, integratorID, c)
}

// QueueTest queues a test notification to one of an integrator's channels.
func QueueTest(ctx context.Context, st *store.Store, integratorID, channelID int64, now time.Time) error {
	c, err := st.Channel(ctx, integratorID, channelID)
	if err != nil {
		return err
	}
	if !c.Enabled {
		return keepwatch.Errorf(keepwatch.ECONFLICT, "the channel was deleted")
	}
	_, err = st.Enqueue(ctx, store.Notification{IntegratorID: integratorID, ChannelID: c.ID, Type: TypeTest,
		DedupKey: fmt.Sprintf("test:c%d:%d", c.ID, now.UnixNano()), NotBefore: now})
	return err
}
