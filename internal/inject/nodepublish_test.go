package inject

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/ssinjector/ssi/internal/identity"
)

// TestUnsupportedIdentityModesDenied: identity modes that cannot work here
// are denied at admission with the class, the field, the reason and what
// to use instead, not left to fail at the agent's first fetch. Azure's
// usePodIdentity is parsed as upstream parses it (strings.TrimSpace, then
// strconv.ParseBool in pkg/provider/types/parameters.go of
// Azure/secrets-store-csi-driver-provider-azure), so " true" is true and
// "yes" is refused.
func TestUnsupportedIdentityModesDenied(t *testing.T) {
	tests := map[string]struct {
		class  string
		reason Reason
		want   []string
	}{
		"token proxy":   {class: "azure-proxy", reason: ReasonClassInvalid, want: []string{`volume "v-azure-proxy"`, "useAzureTokenProxy", "not publicly documented", "parameters.clientID"}},
		"pod identity":  {class: "azure-podid", reason: ReasonClassInvalid, want: []string{"usePodIdentity", "retired", "Workload ID"}},
		"not a boolean": {class: "azure-badbool", reason: ReasonClassInvalid, want: []string{"parameters.usePodIdentity", `"yes" is not a boolean`}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			res, err := Rewrite(&cfg, input(podWith(nil, tc.class)))
			if err == nil {
				t.Fatalf("Rewrite admitted the pod (skipped %q)", res.Skipped)
			}
			if ReasonOf(err) != tc.reason {
				t.Errorf("reason = %q, want %q (%v)", ReasonOf(err), tc.reason, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestNodePublishSecretMountedIntoAgentOnly: the volume's
// nodePublishSecretRef Secret becomes a Secret volume mounted read-only
// into the agent alone, and the agent configuration names where it is
// and fetches with it (Azure service principal: no client ID, no token).
func TestNodePublishSecretMountedIntoAgentOnly(t *testing.T) {
	pod := podWith(nil, "azure")
	pod.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: "x"}}
	pod.Spec.Volumes[0].CSI.NodePublishSecretRef = &corev1.LocalObjectReference{Name: "sp-creds"}
	res := rewrite(t, input(pod))
	vname := nodePublishVolumeName("v-azure")
	var found bool
	for _, v := range res.Pod.Spec.Volumes {
		if v.Name == vname {
			found = true
			if v.Secret == nil || v.Secret.SecretName != "sp-creds" {
				t.Errorf("volume %s = %+v, want Secret sp-creds", vname, v.VolumeSource)
			}
		}
	}
	if !found {
		t.Fatalf("no volume %s", vname)
	}
	for _, c := range append(res.Pod.Spec.InitContainers, res.Pod.Spec.Containers...) {
		for _, m := range c.VolumeMounts {
			if m.Name != vname {
				continue
			}
			if c.Name != AgentContainerName {
				t.Errorf("container %s mounts the nodePublishSecretRef volume", c.Name)
			}
			if !m.ReadOnly || m.MountPath != SecretsDir+"/v-azure" {
				t.Errorf("agent mount = %+v", m)
			}
		}
	}
	_, agent := findContainer(res.Pod.Spec.InitContainers, AgentContainerName)
	cfg := decodeAgent(t, *agent)
	if len(cfg.Volumes) != 1 || cfg.Volumes[0].SecretsDir != SecretsDir+"/v-azure" {
		t.Fatalf("agent volumes = %+v", cfg.Volumes)
	}
	want := identity.Cloud{AzureTenantID: "t1", Credentials: identity.CredentialsNodePublishSecret}
	if got := cfg.CloudOf(&cfg.Volumes[0]); got != want {
		t.Errorf("volume cloud = %+v, want %+v", got, want)
	}
	if len(cfg.Tokens) != 0 {
		t.Errorf("tokens = %+v, want none for a service principal", cfg.Tokens)
	}
}
