package inject

import (
	"strings"
	"testing"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
)

// A class whose secretObjects declare a Secret type the sync controller
// refuses (a service-account or bootstrap token) is admitted, with a
// warning naming the volume, the class, the entry and the type; allowed
// types give none.
func TestSecretObjectTypeWarning(t *testing.T) {
	for name, tc := range map[string]struct {
		typ  string
		warn string
	}{
		"service-account token": {"kubernetes.io/service-account-token", `volume "v-vault": SecretProviderClass vault: secretObjects[0] (Secret "s"): type "kubernetes.io/service-account-token" is not a type the sync controller writes`},
		"bootstrap token":       {"bootstrap.kubernetes.io/token", `type "bootstrap.kubernetes.io/token" is not a type the sync controller writes`},
		"opaque":                {"Opaque", ""},
	} {
		t.Run(name, func(t *testing.T) {
			in := input(podWith(nil, "vault"))
			in.Classes["vault"].Spec.SecretObjects = []*ssiv1.SecretObject{{SecretName: "s", Type: tc.typ,
				Data: []*ssiv1.SecretObjectData{{ObjectName: "db-password", Key: "k"}}}}
			res := rewrite(t, in)
			if res.Pod == nil {
				t.Fatalf("not injected: %s", res.Skipped)
			}
			all := strings.Join(res.Warnings, "\n")
			if tc.warn == "" {
				if strings.Contains(all, "secretObjects") {
					t.Errorf("warning for an allowed type: %q", res.Warnings)
				}
				return
			}
			if !strings.Contains(all, tc.warn) {
				t.Errorf("warnings %q lack %q", res.Warnings, tc.warn)
			}
		})
	}
}
