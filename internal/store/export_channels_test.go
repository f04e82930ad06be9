package store

import "context"

// InsertOldChannelForTest adds a webhook channel the way releases before
// vendor channels did (their schema has no endpoint or signature).
func (s *Store) InsertOldChannelForTest(ctx context.Context, integratorID int64, name, target string) (int64, error) {
	var id int64
	err := s.tx(ctx, func(t *Tx) error {
		var err error
		id, err = t.insert(`INSERT INTO channels (integrator_id, name, type, target, secret, digest, enabled, created_at) VALUES (?, ?, 'webhook', ?, '', 0, 1, 0)`,
			integratorID, name, target)
		return err
	})
	return id, err
}
