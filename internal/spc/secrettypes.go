package spc

import (
	"fmt"
	"strings"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
)

// SyncableSecretTypes are the Secret types a secretObjects entry may
// declare: the types the upstream driver documents for secretObjects,
// except the two whose Secrets Kubernetes itself fills with credentials.
// A kubernetes.io/service-account-token Secret makes the token controller
// write a non-expiring legacy token for the service account its annotation
// names; a bootstrap.kubernetes.io/token Secret in kube-system is a node
// join credential. Neither is ever content fetched from a backend, so the
// sync controller never writes them (and its admission policy refuses
// them). The list is data shared by the sync controller, its admission
// policy (internal/secretsync.RBAC) and the webhook's admission warning.
var SyncableSecretTypes = []string{
	"Opaque",
	"kubernetes.io/basic-auth",
	"kubernetes.io/dockercfg",
	"kubernetes.io/dockerconfigjson",
	"kubernetes.io/ssh-auth",
	"kubernetes.io/tls",
}

// CheckSecretType returns an error naming the type and the allowed ones
// when a secretObjects entry's type is not syncable. typ is trimmed; an
// empty type is left to the caller's required-field check.
func CheckSecretType(typ string) error {
	typ = strings.TrimSpace(typ)
	if typ == "" {
		return nil
	}
	for _, t := range SyncableSecretTypes {
		if typ == t {
			return nil
		}
	}
	return fmt.Errorf("type %q is not a type the sync controller writes (allowed: %s)", typ, strings.Join(SyncableSecretTypes, ", "))
}

// SecretObjectWarnings are admission warnings for the secretObjects of a
// class: the entries the sync controller will refuse because of their
// type. where prefixes each message (e.g. `volume "secrets"`).
func SecretObjectWarnings(where, class string, objs []*ssiv1.SecretObject) []string {
	var out []string
	for i, o := range objs {
		if o == nil {
			continue
		}
		if err := CheckSecretType(o.Type); err != nil {
			out = append(out, fmt.Sprintf("%s: SecretProviderClass %s: secretObjects[%d] (Secret %q): %v; the Secret is not synced", where, class, i, strings.TrimSpace(o.SecretName), err))
		}
	}
	return out
}
