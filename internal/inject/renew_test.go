package inject

import (
	"strings"
	"testing"

	"github.com/ssinjector/ssi/internal/agentconfig"
)

func TestCertRenewAtAnnotation(t *testing.T) {
	tests := map[string]struct {
		ann  map[string]string
		want float64
		deny string
		warn string
	}{
		"absent":     {},
		"fraction":   {ann: map[string]string{AnnotationCertRenewAt: "0.5"}, want: 0.5},
		"percentage": {ann: map[string]string{AnnotationCertRenewAt: " 75% "}, want: 0.75},
		"one":        {ann: map[string]string{AnnotationCertRenewAt: "1"}, deny: `annotation secrets-store-injector.io/cert-renew-at: "1" is not a fraction between 0 and 1`},
		"zero":       {ann: map[string]string{AnnotationCertRenewAt: "0%"}, deny: `"0%" is not a fraction`},
		"words":      {ann: map[string]string{AnnotationCertRenewAt: "soon"}, deny: `"soon" is not a fraction`},
		"init-only":  {ann: map[string]string{AnnotationCertRenewAt: "0.5", AnnotationMode: "init-only"}, warn: "cert-renew-at is ignored: mode is init-only"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ac, warnings, denied := rewriteAnnotated(t, input(podWith(tc.ann, "vault")), tc.deny)
			if denied {
				return
			}
			if tc.warn != "" && !strings.Contains(warnings, tc.warn) {
				t.Errorf("warnings %q lack %q", warnings, tc.warn)
			}
			if tc.warn == "" && strings.Contains(warnings, "cert-renew-at") {
				t.Errorf("unexpected warning %q", warnings)
			}
			if got := ac.CertRenewAt; got != tc.want {
				t.Errorf("certRenewAt = %v, want %v", got, tc.want)
			}
		})
	}
}

// rewriteAnnotated rewrites in with the default configuration. With deny
// set it requires an annotation denial containing deny and reports true;
// else it returns the agent's configuration and the warnings joined.
func rewriteAnnotated(t *testing.T, in Input, deny string) (cfg *agentconfig.Config, warnings string, denied bool) {
	t.Helper()
	c := DefaultConfig()
	res, err := Rewrite(&c, in)
	if deny != "" {
		if err == nil || ReasonOf(err) != ReasonInvalidAnnotation || !strings.Contains(err.Error(), deny) {
			t.Fatalf("err = %v (reason %q), want a denial containing %q", err, ReasonOf(err), deny)
		}
		return nil, "", true
	}
	if err != nil {
		t.Fatalf("Rewrite: %v", err)
	}
	_, agent := findContainer(res.Pod.Spec.InitContainers, AgentContainerName)
	if agent == nil {
		t.Fatal("no agent init container")
	}
	ac := decodeAgent(t, *agent)
	return ac, strings.Join(res.Warnings, "\n"), false
}
