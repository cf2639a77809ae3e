package main

import (
	"log/slog"

	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/vault"
)

// builtinProviders registers the providers compiled into ssi-agent, one
// line each, so that `run`, `fetch` and `csi` serve the same set. local is
// true for `ssi-agent fetch`, where providers may fall back to the
// caller's ambient credentials.
func builtinProviders(log *slog.Logger, local bool) provider.Set {
	return provider.NewSet(
		vault.New(vault.Options{Logger: log, EnvToken: local}),
	)
}
