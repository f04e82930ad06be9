package app

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"keepwatch/internal/secret"
	"keepwatch/internal/store"
)

// newSealer loads the key that seals the secrets keepwatch must read back
// (TOTP seeds, identity providers' client secrets): Config.SecretsKey, else
// KEEPWATCH_SECRETS_KEY, else <data>/secrets.key. Nodes sharing a
// PostgreSQL database without either share a key kept in the database,
// which protects less: a dump then holds the key too.
func newSealer(ctx context.Context, cfg Config, st *store.Store, log *slog.Logger) (*secret.Sealer, error) {
	key := cfg.SecretsKey
	env := os.Getenv("KEEPWATCH_SECRETS_KEY")
	_, fileErr := os.Stat(filepath.Join(cfg.DataDir, secret.KeyFile))
	var err error
	switch {
	case key != nil:
	case env == "" && fileErr != nil && st.Dialect() == store.Postgres:
		fresh := make([]byte, 32)
		rand.Read(fresh)
		key, err = st.SealingKey(ctx, fresh)
		log.Warn("the key sealing TOTP seeds and client secrets is kept in the database; set KEEPWATCH_SECRETS_KEY on every node to keep it apart")
	default:
		key, err = secret.LoadKey(env, cfg.DataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	return secret.NewSealer(key)
}

// publicURL is the dashboard's address as users reach it: --public-url,
// else the listen URL.
func (a *App) publicURL() string {
	if a.cfg.PublicURL != "" {
		return a.cfg.PublicURL
	}
	return a.URL()
}
