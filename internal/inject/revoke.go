package inject

import (
	"fmt"
	"strings"
	"time"

	"github.com/ssinjector/ssi/internal/agentconfig"
)

// maxRevokeGrace is the longest revoke-on-shutdown-grace accepted: it must
// fit in the pod's terminationGracePeriodSeconds (30 s by default) after
// the application containers have stopped.
const maxRevokeGrace = 2 * time.Minute

// parseRevoke reads revoke-on-shutdown and its grace.
func parseRevoke(ann map[string]string, mode Mode, warnings []string) (*agentconfig.RevokeOnShutdown, []string, error) {
	v, on := ann[AnnotationRevokeOnShutdown]
	g, hasGrace := ann[AnnotationRevokeOnShutdownGrace]
	if on {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true":
		case "false":
			on = false
		default:
			return nil, nil, annotationError(AnnotationRevokeOnShutdown, "%q is neither \"true\" nor \"false\"", v)
		}
	}
	var grace time.Duration
	if hasGrace {
		d, err := time.ParseDuration(strings.TrimSpace(g))
		if err != nil {
			return nil, nil, annotationError(AnnotationRevokeOnShutdownGrace, "%q is not a Go duration such as \"5s\"", g)
		}
		if d < time.Second || d > maxRevokeGrace {
			return nil, nil, annotationError(AnnotationRevokeOnShutdownGrace, "%s is not between 1s and %s", d, maxRevokeGrace)
		}
		grace = d
		if !on {
			warnings = append(warnings, fmt.Sprintf("annotation %s is ignored without %s: \"true\"", AnnotationRevokeOnShutdownGrace, AnnotationRevokeOnShutdown))
		}
	}
	if !on {
		return nil, warnings, nil
	}
	if mode == ModeInitOnly {
		// The agent exits after writing the files; revoking then would
		// end the credentials the application is about to use.
		return nil, append(warnings, fmt.Sprintf("annotation %s is ignored: mode is init-only, whose agent exits before the application starts", AnnotationRevokeOnShutdown)), nil
	}
	r := &agentconfig.RevokeOnShutdown{}
	r.Grace.Duration = grace
	return r, warnings, nil
}

// checkRevokeGrace denies a grace the pod's termination grace period
// cannot hold.
func checkRevokeGrace(r *agentconfig.RevokeOnShutdown, terminationGrace *int64) error {
	if r == nil {
		return nil
	}
	limit := 30 * time.Second
	if terminationGrace != nil {
		limit = time.Duration(*terminationGrace) * time.Second
	}
	if g := r.GraceOrDefault(); g >= limit {
		return annotationError(AnnotationRevokeOnShutdownGrace, "%s is not shorter than the pod's terminationGracePeriodSeconds (%s): the agent would be killed before it revoked; shorten the grace or lengthen the period", g, limit)
	}
	return nil
}
