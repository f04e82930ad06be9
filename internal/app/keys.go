package app

import (
	"errors"
	"fmt"
	"path/filepath"

	"keepwatch/internal/sealed"
	"keepwatch/internal/store"
)

// Keyring returns the keys that seal secrets at rest: the configured ones,
// or for SQLite (one node, the key next to the database but apart from its
// backups) a key generated once in the data directory. Several PostgreSQL
// nodes must share one key, and a key stored in the database would not
// protect it, so PostgreSQL needs one configured.
func Keyring(cfg Config) (*sealed.Keyring, error) {
	if cfg.SecretKey != "" {
		k, err := sealed.ParseKeys(cfg.SecretKey)
		if err != nil {
			return nil, fmt.Errorf("secret key: %w", err)
		}
		return k, nil
	}
	if store.IsPostgresURL(cfg.DB) {
		return nil, errors.New("PostgreSQL needs a secret key, the same on every node: give --secret-key-file FILE or KEEPWATCH_SECRET_KEY " +
			"(32 random bytes in base64, e.g. `openssl rand -base64 32`); see docs/operations.md")
	}
	k, created, err := sealed.LoadOrCreate(filepath.Join(cfg.DataDir, store.SecretKeyFile))
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	if created && cfg.Logger != nil {
		cfg.Logger.Info("generated the secret key that seals report keys and webhook secrets; keep it apart from database backups",
			"file", filepath.Join(cfg.DataDir, store.SecretKeyFile))
	}
	return k, nil
}
