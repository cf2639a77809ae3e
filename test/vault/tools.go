//go:build tools

// Package tools pins the Vault command; the binary is built from the module
// root package github.com/hashicorp/vault.
package tools

import _ "github.com/hashicorp/vault/command"
