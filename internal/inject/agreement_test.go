package inject

import (
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider/azure"
	"github.com/ssinjector/ssi/internal/provider/gcp"
	"github.com/ssinjector/ssi/internal/spc"
)

// TestAudiencesAgreeWithProviders checks that the tokens projected into
// the agent are exactly those the providers ask their token source for.
// The providers are imported by this test only, so the webhook binary does
// not carry the cloud SDKs.
func TestAudiencesAgreeWithProviders(t *testing.T) {
	sa := &metav1.ObjectMeta{Name: "app", Annotations: map[string]string{identity.SAAnnotationAzureClientID: "c", identity.SAAnnotationGCPServiceAcct: "g@p.iam.gserviceaccount.com"}}
	wif := map[string]string{identity.AnnotationGCPWorkloadIdentityProvider: "projects/1/locations/global/workloadIdentityPools/p/providers/k"}
	tests := map[string]struct {
		class string
		ann   map[string]string
	}{
		"aws irsa":                {class: "aws"},
		"aws pod identity":        {class: "aws-pi"},
		"azure workload identity": {class: "azure"},
		"azure class client id":   {class: "azure-client"},
		"azure vm identity":       {class: "azure-vm"},
		"gcp metadata server":     {class: "gcp"},
		"gcp federation":          {class: "gcp", ann: wif},
		"gcp provider adc":        {class: "gcp-provider", ann: wif},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := input(podWith(tc.ann, tc.class))
			in.ServiceAccount = sa
			res := rewrite(t, in)
			_, agent := findContainer(res.Pod.Spec.InitContainers, AgentContainerName)
			cfg := decodeAgent(t, *agent)
			var got []string
			for _, tok := range cfg.Tokens {
				got = append(got, tok.Audience)
			}
			v := cfg.Volumes[0].Class
			class, err := spc.ParseSpec(v.Namespace, v.Name, v.Provider, v.Parameters)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			switch {
			case class.AWS != nil && class.AWS.UsePodIdentity:
				want = []string{identity.AudienceAWSPodIdentity}
			case class.AWS != nil:
				want = []string{identity.AudienceAWSIRSA}
			case class.Azure != nil:
				want = azure.Audiences(class)
			case class.GCP != nil:
				want = gcp.Audiences(class, cfg.CloudOf(&cfg.Volumes[0]))
			}
			sort.Strings(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("projected audiences differ from the provider's (-provider +projected):\n%s", diff)
			}
		})
	}
}
