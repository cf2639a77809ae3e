package main

import (
	"log/slog"
	"time"

	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/aws"
	"github.com/ssinjector/ssi/internal/provider/azure"
	"github.com/ssinjector/ssi/internal/provider/gcp"
	"github.com/ssinjector/ssi/internal/provider/vault"
)

// runsIn says whose credentials a process's providers may use.
type runsIn int

const (
	// inPod is `ssi-agent run`: the process is the pod, its identity is
	// the pod's (projected tokens, the pod's ambient credentials).
	inPod runsIn = iota
	// local is `ssi-agent fetch`: the caller's ambient credentials
	// (VAULT_TOKEN, the cloud SDKs' default chains) are meant to be used.
	local
	// onNode is `ssi-agent csi`: one process serves many pods; its own
	// credentials are the node's and must never stand in for a pod's.
	onNode
)

// nodeIdleTimeout drops the Vault token and leases of a pod the node shim
// has not fetched for in this long (several rotation polls).
const nodeIdleTimeout = 15 * time.Minute

// builtinProviders registers the providers compiled into ssi-agent, one
// line each, so that `run`, `fetch` and `csi` serve the same set.
func builtinProviders(log *slog.Logger, where runsIn) provider.Set {
	vopts := vault.Options{Logger: log, EnvToken: where == local}
	if where == onNode {
		vopts.IdleTimeout = nodeIdleTimeout
	}
	return provider.NewSet(
		vault.New(vopts),
		aws.New(aws.Options{OutsidePod: where == onNode}),
		azure.New(azure.Options{}),
		gcp.New(gcp.Options{OutsidePod: where == onNode}),
	)
}
