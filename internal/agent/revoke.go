package agent

import (
	"context"
	"log/slog"
	"time"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/provider"
)

// revokeOnShutdown revokes what the providers hold for the pod (Vault:
// its dynamic-secret leases and its token) when the pod asked for it,
// within the grace. It runs once the rotation loop has stopped, that is
// after SIGTERM: with native sidecars, once the application containers
// have exited. A failure is logged; the agent still exits cleanly, and
// what was not revoked expires with its TTL as without the annotation.
func revokeOnShutdown(log *slog.Logger, r *agentconfig.RevokeOnShutdown, set provider.Set) {
	if r == nil {
		return
	}
	grace := r.GraceOrDefault()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	start := time.Now()
	if err := set.Revoke(ctx); err != nil {
		log.Warn("revoke on shutdown failed; what was not revoked expires with its TTL", "grace", grace.String(), "error", err.Error())
		return
	}
	log.Info("revoked the pod's leases and tokens on shutdown", "took", time.Since(start).Round(time.Millisecond).String(), "grace", grace.String())
}
