package provider

import (
	"context"
	"errors"
	"fmt"
)

// Revoker is implemented by providers that hold credentials for a pod
// which can be ended early: the Vault provider's dynamic-secret leases and
// Vault tokens. The agent calls Revoke when it stops and the pod asked for
// revoke-on-shutdown; after it the provider holds nothing and files written
// from revoked leases no longer work.
type Revoker interface {
	// Revoke ends every lease and token the provider holds, returning
	// when done or when ctx ends. Its error names what could not be
	// revoked and why, never a token or a secret value.
	Revoke(ctx context.Context) error
}

// Revoke calls Revoke on each provider of the set that is a Revoker and
// returns their errors, each naming its provider.
func (s Set) Revoke(ctx context.Context) error {
	var errs []error
	for _, name := range s.Names() {
		if r, ok := s[name].(Revoker); ok {
			if err := r.Revoke(ctx); err != nil {
				errs = append(errs, fmt.Errorf("provider %s: revoke: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}
