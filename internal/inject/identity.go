package inject

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/identity"
)

// identityFor decides the identity of each volume with identity.Decide,
// records it on the volume, and returns the union of the volumes' token
// audiences (sorted), the pod-wide identity older agents read
// (identity.Merge) and the warnings. An identity mode Decide finds
// unsupported denies the pod here, at admission, rather than at the
// agent's first fetch.
func identityFor(vols []secretVolume, in *Input, cfg *Config) ([]string, identity.Cloud, []string, error) {
	var warnings []string
	auds := map[string]bool{}
	src := identity.Sources{
		ServiceAccount:      serviceAccountName(&in.Pod.Spec),
		ServiceAccountKnown: in.ServiceAccount != nil,
		PodAnnotations:      in.Pod.Annotations,
		Defaults:            identity.Defaults{TokenRequests: cfg.TokenRequests},
	}
	if in.ServiceAccount != nil {
		src.ServiceAccountAnnotations = in.ServiceAccount.Annotations
	}
	clouds := make([]identity.Cloud, 0, len(vols))
	for i := range vols {
		v := &vols[i]
		vsrc := src
		vsrc.NodePublishSecret = v.nodePublishSecret != ""
		d := identity.Decide(v.class, vsrc)
		if d.Unsupported != "" {
			return nil, identity.Cloud{}, nil, &Error{Reason: ReasonClassInvalid, Message: fmt.Sprintf("volume %q: %s", v.name, d.Unsupported)}
		}
		v.cloud = d.Cloud
		clouds = append(clouds, d.Cloud)
		for _, a := range d.Audiences {
			auds[a] = true
		}
		warnings = append(warnings, d.Warnings...)
		if c := v.class; c.AWS != nil && !c.AWS.UsePodIdentity && c.AWS.Region == "" {
			warnings = append(warnings, fmt.Sprintf("SecretProviderClass %s: parameters.region is empty; the agent cannot read the node's region label and uses AWS_REGION from its environment (--agent-env AWS_REGION=...)", c.Name))
		}
	}
	out := make([]string, 0, len(auds))
	for a := range auds {
		out = append(out, a)
	}
	sort.Strings(out)
	return out, identity.Merge(clouds...), warnings, nil
}

// tokens names the projected token file of every audience.
func (p *plan) tokens() []agentconfig.Token {
	out := make([]agentconfig.Token, 0, len(p.audiences))
	used := map[string]bool{}
	for _, a := range p.audiences {
		base := tokenFileName(a)
		name := base
		for i := 2; used[name]; i++ {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		used[name] = true
		out = append(out, agentconfig.Token{Audience: a, Path: TokenDir + "/" + name})
	}
	return out
}

// tokenFileName turns an audience into a file name: runs of characters
// other than letters, digits, '.', '-' and '_' become '-'.
func tokenFileName(aud string) string {
	if aud == identity.DefaultAudience {
		return "default"
	}
	var b strings.Builder
	dash := false
	for _, r := range aud {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_'
		if ok {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.Trim(b.String(), "-.")
	if s == "" {
		return "token"
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
