package inject

import (
	"strings"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/agentconfig"
)

func TestRevokeOnShutdownAnnotation(t *testing.T) {
	period := func(s int64) func(*Input) {
		return func(in *Input) { in.Pod.Spec.TerminationGracePeriodSeconds = &s }
	}
	tests := map[string]struct {
		ann    map[string]string
		tweak  func(*Input)
		want   *time.Duration // nil: no revokeOnShutdown in the config
		deny   string
		warn   string
		noWarn bool
	}{
		"absent":              {ann: nil, noWarn: true},
		"false":               {ann: map[string]string{AnnotationRevokeOnShutdown: "false"}, noWarn: true},
		"true, default grace": {ann: map[string]string{AnnotationRevokeOnShutdown: "true"}, want: new(time.Duration), noWarn: true},
		"true with grace": {ann: map[string]string{AnnotationRevokeOnShutdown: " True ", AnnotationRevokeOnShutdownGrace: "12s"},
			want: func() *time.Duration { d := 12 * time.Second; return &d }(), noWarn: true},
		"bad value":      {ann: map[string]string{AnnotationRevokeOnShutdown: "yes"}, deny: `annotation secrets-store-injector.io/revoke-on-shutdown: "yes" is neither "true" nor "false"`},
		"bad grace":      {ann: map[string]string{AnnotationRevokeOnShutdown: "true", AnnotationRevokeOnShutdownGrace: "soon"}, deny: `revoke-on-shutdown-grace: "soon" is not a Go duration`},
		"tiny grace":     {ann: map[string]string{AnnotationRevokeOnShutdown: "true", AnnotationRevokeOnShutdownGrace: "10ms"}, deny: `10ms is not between 1s and 2m0s`},
		"grace too long": {ann: map[string]string{AnnotationRevokeOnShutdown: "true", AnnotationRevokeOnShutdownGrace: "30s"}, deny: `30s is not shorter than the pod's terminationGracePeriodSeconds (30s)`},
		"grace within a longer period": {ann: map[string]string{AnnotationRevokeOnShutdown: "true", AnnotationRevokeOnShutdownGrace: "1m"}, tweak: period(90),
			want: func() *time.Duration { d := time.Minute; return &d }(), noWarn: true},
		"default grace beyond a short period": {ann: map[string]string{AnnotationRevokeOnShutdown: "true"}, tweak: period(3), deny: `5s is not shorter than the pod's terminationGracePeriodSeconds (3s)`},
		"grace alone":                         {ann: map[string]string{AnnotationRevokeOnShutdownGrace: "5s"}, warn: "revoke-on-shutdown-grace is ignored without"},
		"init-only":                           {ann: map[string]string{AnnotationRevokeOnShutdown: "true", AnnotationMode: "init-only"}, warn: "revoke-on-shutdown is ignored: mode is init-only"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := input(podWith(tc.ann, "vault"))
			if tc.tweak != nil {
				tc.tweak(&in)
			}
			ac, warnings, denied := rewriteAnnotated(t, in, tc.deny)
			if denied {
				return
			}
			if tc.warn != "" && !strings.Contains(warnings, tc.warn) {
				t.Errorf("warnings %q lack %q", warnings, tc.warn)
			}
			if tc.noWarn && strings.Contains(warnings, "revoke") {
				t.Errorf("unexpected warning %q", warnings)
			}
			got := ac.RevokeOnShutdown
			switch {
			case tc.want == nil && got != nil:
				t.Errorf("revokeOnShutdown = %+v, want none", got)
			case tc.want != nil && got == nil:
				t.Error("no revokeOnShutdown in the agent configuration")
			case tc.want != nil && got.Grace.Duration != *tc.want:
				t.Errorf("grace = %s, want %s", got.Grace.Duration, *tc.want)
			}
			if tc.want != nil && *tc.want == 0 && got != nil && got.GraceOrDefault() != agentconfig.DefaultRevokeGrace {
				t.Errorf("default grace = %s", got.GraceOrDefault())
			}
		})
	}
}
