package secretsync

import (
	"context"
	"encoding/json"
	"errors"

	"k8s.io/apimachinery/pkg/types"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/scheme"
	"github.com/ssinjector/ssi/internal/spc"
)

// retryOtherIdentity reports failures another consumer's identity may not
// have: the identity was refused or its token could not be minted.
func retryOtherIdentity(err error) bool {
	if errors.Is(err, errToken) {
		return true
	}
	switch provider.ReasonOf(err) {
	case provider.ReasonAccessDenied, provider.ReasonUnauthenticated:
		return true
	}
	return false
}

// candidate is one identity to fetch with.
type candidate struct {
	id  identity.Identity
	key string
}

// maxCandidates bounds the identities tried per fetch.
const maxCandidates = 3

// candidates are the identities a fetch may run as: one per distinct
// service account among the consumers, the oldest pod of each, at most
// maxCandidates, each decided by identity.Decide from the class, the
// service account and that pod. Tokens are only ever minted for these service accounts,
// bound to these pods.
func (r *Reconciler) candidates(ctx context.Context, class *spc.Class, consumers []consumer) []candidate {
	var out []candidate
	seen := map[string]bool{}
	for _, c := range consumers {
		if seen[c.serviceAccount] {
			continue
		}
		seen[c.serviceAccount] = true
		src := identity.Sources{ServiceAccount: c.serviceAccount, Defaults: identity.Defaults{TokenRequests: r.opts.TokenRequests}}
		m := scheme.Metadata("ServiceAccount")
		if err := r.shared.Get(ctx, types.NamespacedName{Namespace: class.Namespace, Name: c.serviceAccount}, m); err == nil {
			src.ServiceAccountKnown, src.ServiceAccountAnnotations = true, m.Annotations
		}
		pod := identity.Pod{Namespace: class.Namespace, ServiceAccount: c.serviceAccount}
		var podName string
		var podUID types.UID
		if c.pod != nil {
			pod.Name, pod.UID, pod.NodeName = c.pod.Name, string(c.pod.UID), c.pod.Spec.NodeName
			podName, podUID = c.pod.Name, c.pod.UID
			src.PodAnnotations = c.pod.Annotations
		}
		// The same decision as the webhook's for this pod's volume of the
		// class; the one operator default the controller shares with the
		// webhook is the token requests (a Vault class's audience).
		cloud := identity.Decide(class, src).Cloud
		b, _ := json.Marshal(cloud)
		tokens := r.tokens.source(class.Namespace, c.serviceAccount, podName, podUID)
		if c.pod == nil {
			tokens = podlessTokens{inner: tokens, class: class.Key(), serviceAccount: c.serviceAccount, apiAudiences: r.opts.APIServerAudiences}
		}
		out = append(out, candidate{
			id:  identity.Identity{Pod: pod, Cloud: cloud, Tokens: tokens},
			key: class.Namespace + "/" + c.serviceAccount + "|" + string(b),
		})
		if len(out) == maxCandidates {
			break
		}
	}
	r.tokens.prune()
	return out
}
