package app

import (
	"fmt"
	"os"

	"keepwatch/internal/secret"
)

// newSealer loads the key that seals the secrets keepwatch must read back.
func newSealer(cfg Config) (*secret.Sealer, error) {
	key := cfg.SecretsKey
	if key == nil {
		var err error
		if key, err = secret.LoadKey(os.Getenv("KEEPWATCH_SECRETS_KEY"), cfg.DataDir); err != nil {
			return nil, fmt.Errorf("secrets key: %w", err)
		}
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
