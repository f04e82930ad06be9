package notify

import (
	"context"
	"fmt"

	"keepwatch"
)

// TypeAcknowledged tells a tracking channel (PagerDuty, a PSA) that
// someone took an incident in hand.
const TypeAcknowledged = keepwatch.NotifyAcknowledged

// acknowledged tells an acknowledgement to the channels that track
// incidents (keepwatch.ChannelType.Tracks) and were told of the opening;
// e-mail, webhooks and chat channels hear of it with the resolution, as
// before.
func (n *Notifier) acknowledged(ctx context.Context, tr keepwatch.Transition) (keepwatch.Evaluation, error) {
	var ev keepwatch.Evaluation
	ic, err := n.cfg.Store.IncidentForNotify(ctx, tr.IncidentID)
	if err != nil || ic.IntegratorID == 0 {
		return ev, err
	}
	sent, err := n.cfg.Store.NotificationsFor(ctx, ic.ID)
	if err != nil {
		return ev, err
	}
	told := map[int64]bool{}
	for _, s := range sent {
		if s.Type == TypeOpened && s.State == keepwatch.NotificationSent {
			told[s.ChannelID] = true
		}
	}
	for ch := range told {
		c, err := n.cfg.Store.Channel(ctx, ic.IntegratorID, ch)
		if keepwatch.ErrorCode(err) == keepwatch.ENOTFOUND {
			continue
		}
		if err != nil {
			return ev, err
		}
		if !c.Enabled || !c.Type.Tracks() {
			continue
		}
		ev.Enqueue = append(ev.Enqueue, keepwatch.Notification{
			IntegratorID: ic.IntegratorID, ChannelID: ch, IncidentID: ic.ID, InstallationID: ic.InstallationID,
			Type: TypeAcknowledged, DedupKey: fmt.Sprintf("t%d:c%d", tr.ID, ch), NotBefore: tr.At,
		})
	}
	return ev, nil
}
