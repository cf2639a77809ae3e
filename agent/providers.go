package main

import "github.com/ssinjector/ssi/internal/provider"

// builtinProviders is the provider set compiled into ssi-agent, shared by
// the in-pod agent and the node CSI shim.
//
// Placeholder until the providers land: the agent's owner replaces this
// file with the real registration (vault, aws, azure, gcp). With an empty
// set every class is forwarded to its provider plugin socket.
func builtinProviders() provider.Set { return provider.NewSet() }
