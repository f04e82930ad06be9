package main

import (
	"context"
	"flag"
	"fmt"

	"keepwatch/internal/store"
)

// adminRotateSecrets seals every report key and webhook secret under the
// current secret key: values stored in the clear by an older keepwatch,
// and values sealed under a key being retired.
func adminRotateSecrets(ctx context.Context, e *env, fs *flag.FlagSet, args []string, open func() (*store.Store, error)) error {
	if err := flagsOnly(fs, args); err != nil {
		return err
	}
	s, err := open()
	if err != nil {
		return err
	}
	defer s.Close()
	n, err := s.RotateSecrets(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "sealed %d report keys and %d webhook secrets under the current secret key; keys listed after it are no longer needed\n",
		n.ReportKeys, n.WebhookSecrets)
	return nil
}
