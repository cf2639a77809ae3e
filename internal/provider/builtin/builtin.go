// Package builtin registers the providers compiled into the binaries, one
// line each, so that `ssi-agent run`, `fetch` and `csi` and the sync
// controller of ssi-webhook serve the same set, each set up for whose
// credentials it may use.
package builtin

import (
	"flag"
	"log/slog"
	"time"

	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/aws"
	"github.com/ssinjector/ssi/internal/provider/azure"
	"github.com/ssinjector/ssi/internal/provider/gcp"
	"github.com/ssinjector/ssi/internal/provider/vault"
)

// Where says whose credentials a process's providers may use.
type Where int

const (
	// InPod is `ssi-agent run`: the process is the pod, its identity is
	// the pod's (projected tokens, the pod's ambient credentials).
	InPod Where = iota
	// Local is `ssi-agent fetch`: the caller's ambient credentials
	// (VAULT_TOKEN, the cloud SDKs' default chains) are meant to be used.
	Local
	// OutsidePod is the node shim and the sync controller: one process
	// fetches for many pods; its own credentials must never stand in for a
	// pod's.
	OutsidePod
)

// FlagAllowProcessIdentity is the flag of Shared.AllowProcessIdentity, the
// same in `ssi-agent csi` and the sync controller.
const FlagAllowProcessIdentity = "allow-process-identity"

// Shared are the operator's choices for the providers of the processes
// that serve every namespace (OutsidePod): the node shim and the sync
// controller parse the same flags into it.
type Shared struct {
	// AllowProcessIdentity lets classes fetch with the process's own cloud
	// identity (Azure useVMManagedIdentity: the node's or the sync
	// controller's managed identity; GCP auth: provider-adc: its
	// application default credentials) and hands what it fetches to the
	// tenant whose pod or class asked. Off by default: such a class is
	// refused with a per-class error, and the webhook warns at admission.
	AllowProcessIdentity bool
}

// AddFlags registers the flags of Shared on fs.
func (s *Shared) AddFlags(fs *flag.FlagSet) {
	fs.BoolVar(&s.AllowProcessIdentity, FlagAllowProcessIdentity, false,
		"let classes fetch with this process's own cloud identity (Azure useVMManagedIdentity, GCP auth: provider-adc), for every namespace; off refuses them (Helm value allowProcessIdentity)")
}

// New returns the built-in providers for where. idleTimeout, outside a
// pod, drops the Vault token and leases of a pod not fetched for in that
// long. lim caps every backend response (lim.ResponseBytes) and decides
// which files class parameters may name: outside a pod only regular files
// under lim.ClassFilesDir, in the pod (and locally) the caller's own
// regular files; all read through the per-object cap. shared applies
// outside a pod only.
func New(log *slog.Logger, where Where, idleTimeout time.Duration, lim limits.Config, shared Shared) provider.Set {
	files := FilesFor(where, lim)
	maxResp := lim.ResponseBytes()
	vopts := vault.Options{Logger: log, EnvToken: where == Local, Files: files, MaxResponseBytes: maxResp}
	outside := where == OutsidePod
	if outside {
		vopts.IdleTimeout = idleTimeout
	}
	lend := outside && shared.AllowProcessIdentity
	return provider.NewSet(
		vault.New(vopts),
		aws.New(aws.Options{OutsidePod: outside, MaxResponseBytes: maxResp}),
		azure.New(azure.Options{OutsidePod: outside, AllowProcessIdentity: lend, Files: files, MaxResponseBytes: maxResp}),
		gcp.New(gcp.Options{OutsidePod: outside, AllowProcessIdentity: lend, MaxResponseBytes: maxResp}),
	)
}

// FilesFor is the rule for files named by class parameters in a process
// of kind where: shared (only under lim.ClassFilesDir) outside a pod.
func FilesFor(where Where, lim limits.Config) limits.Files {
	return limits.Files{Shared: where == OutsidePod, Dir: lim.ClassFilesDir, MaxBytes: lim.FileBytes()}
}
