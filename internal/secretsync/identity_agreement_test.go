package secretsync

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/csi"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/scheme"
	"github.com/ssinjector/ssi/internal/spc"
)

// TestIdentityAgreement runs the same pods through the three callers of
// identity.Decide and requires the same cloud identity for every volume,
// equal to the expected table:
//   - the webhook: inject.Rewrite, then the agent configuration decoded
//     and each volume's identity taken as the agent takes it
//     (agentconfig.Config.CloudOf);
//   - the node shim: csi.Driver.VolumeIdentity, the service account and
//     the pod read through a fake API reader;
//   - the sync controller: candidates, the service account read from a
//     fake shared cache.
//
// The shim runs without a --gcp-workload-identity-provider: the webhook
// and the sync controller have no such default, so with one the shim
// differs by design for GCP pods that name no provider (identity.Defaults,
// covered in internal/csi's TestCloudIdentity).
func TestIdentityAgreement(t *testing.T) {
	const (
		ns      = "team"
		role    = "arn:aws:iam::111122223333:role/app"
		gsa     = "app@p.iam.gserviceaccount.com"
		wipPath = "projects/1/locations/global/workloadIdentityPools/p/providers/k"
		wipFull = "//iam.googleapis.com/" + wipPath
	)
	classes := map[string]map[string]string{
		"aws-irsa": {"provider": "aws", "objects": "- objectName: db\n  objectType: secretsmanager\n", "region": "eu-west-1"},
		"aws-pi":   {"provider": "aws", "objects": "- objectName: db\n  objectType: secretsmanager\n", "region": "eu-west-1", "usePodIdentity": "true"},
		"az-class": {"provider": "azure", "keyvaultName": "kv-one", "tenantID": "tenant-one", "clientID": "class-client",
			"objects": "array:\n  - |\n    objectName: a\n    objectType: secret\n"},
		"az-sa": {"provider": "azure", "keyvaultName": "kv-two", "tenantID": "tenant-two",
			"objects": "array:\n  - |\n    objectName: b\n    objectType: secret\n"},
		"gcp":     {"provider": "gcp", "secrets": "- resourceName: projects/p/secrets/db/versions/latest\n  path: db\n"},
		"gcp-adc": {"provider": "gcp", "auth": "provider-adc", "secrets": "- resourceName: projects/p/secrets/other/versions/latest\n  path: other\n"},
		"vault":   {"provider": "vault", "roleName": "r", "objects": "- objectName: a\n  secretPath: s\n"},
	}
	objs := map[string]*ssiv1.SecretProviderClass{}
	parsed := map[string]*spc.Class{}
	for name, p := range classes {
		o := &ssiv1.SecretProviderClass{}
		o.Namespace, o.Name = ns, name
		o.Spec.Provider = ssiv1.Provider(p["provider"])
		o.Spec.Parameters = map[string]string{}
		for k, v := range p {
			if k != "provider" {
				o.Spec.Parameters[k] = v
			}
		}
		c, err := spc.Parse(o)
		if err != nil {
			t.Fatalf("class %s: %v", name, err)
		}
		objs[name], parsed[name] = o, c
	}
	serviceAccounts := map[string]map[string]string{
		"app": {
			identity.SAAnnotationAWSRoleARN:     role,
			identity.SAAnnotationAzureClientID:  "sa-client",
			identity.SAAnnotationGCPServiceAcct: gsa,
			// Not a source: every Azure class names its tenant.
			"azure.workload.identity/tenant-id": "sa-tenant",
		},
		"bare": {},
	}
	wif := map[string]string{identity.AnnotationGCPWorkloadIdentityProvider: wipPath}
	azClass := identity.Cloud{AzureClientID: "class-client", AzureTenantID: "tenant-one"}
	azSA := identity.Cloud{AzureClientID: "sa-client", AzureTenantID: "tenant-two"}
	pods := map[string]struct {
		sa      string // "" = a service account that does not exist
		ann     map[string]string
		classes []string // one volume per class, named after it
		want    map[string]identity.Cloud
		// nps are the volumes with a nodePublishSecretRef. The sync
		// controller does not read nodePublishSecretRef Secrets (it fetches
		// as the consumers' service accounts; docs/sync.md), so for them
		// it is held to syncWant instead.
		nps      []string
		syncWant map[string]identity.Cloud
	}{
		"two azure classes":                  {sa: "app", classes: []string{"az-class", "az-sa"}, want: map[string]identity.Cloud{"az-class": azClass, "az-sa": azSA}},
		"two azure classes, other order":     {sa: "app", classes: []string{"az-sa", "az-class"}, want: map[string]identity.Cloud{"az-class": azClass, "az-sa": azSA}},
		"irsa and pod identity":              {sa: "app", classes: []string{"aws-irsa", "aws-pi"}, want: map[string]identity.Cloud{"aws-irsa": {AWSRoleARN: role}, "aws-pi": {}}},
		"pod identity and irsa":              {sa: "app", classes: []string{"aws-pi", "aws-irsa"}, want: map[string]identity.Cloud{"aws-irsa": {AWSRoleARN: role}, "aws-pi": {}}},
		"gcp federation from the pod":        {sa: "app", ann: wif, classes: []string{"gcp", "gcp-adc"}, want: map[string]identity.Cloud{"gcp": {GCPServiceAccount: gsa, GCPWorkloadIdentityProvider: wipFull}, "gcp-adc": {GCPServiceAccount: gsa}}},
		"gcp provider-adc first":             {sa: "app", ann: wif, classes: []string{"gcp-adc", "gcp"}, want: map[string]identity.Cloud{"gcp": {GCPServiceAccount: gsa, GCPWorkloadIdentityProvider: wipFull}, "gcp-adc": {GCPServiceAccount: gsa}}},
		"gcp metadata server":                {sa: "app", classes: []string{"gcp"}, want: map[string]identity.Cloud{"gcp": {GCPServiceAccount: gsa}}},
		"every provider":                     {sa: "app", ann: wif, classes: []string{"vault", "az-sa", "aws-irsa", "gcp", "az-class"}, want: map[string]identity.Cloud{"vault": {}, "az-sa": azSA, "aws-irsa": {AWSRoleARN: role}, "gcp": {GCPServiceAccount: gsa, GCPWorkloadIdentityProvider: wipFull}, "az-class": azClass}},
		"service account without annotation": {sa: "bare", classes: []string{"aws-irsa", "az-sa", "az-class"}, want: map[string]identity.Cloud{"aws-irsa": {}, "az-sa": {AzureTenantID: "tenant-two"}, "az-class": azClass}},
		"azure service principal and gcp key.json": {sa: "app", classes: []string{"az-sa", "gcp", "az-class"}, nps: []string{"az-sa", "gcp", "az-class"},
			want: map[string]identity.Cloud{
				"az-sa":    {AzureTenantID: "tenant-two", Credentials: identity.CredentialsNodePublishSecret},
				"gcp":      {GCPServiceAccount: gsa, Credentials: identity.CredentialsNodePublishSecret},
				"az-class": azClass,
			},
			syncWant: map[string]identity.Cloud{"az-sa": azSA, "gcp": {GCPServiceAccount: gsa}, "az-class": azClass}},
		"unknown service account": {sa: "", ann: wif, classes: []string{"az-sa", "gcp", "aws-irsa"}, want: map[string]identity.Cloud{"az-sa": {AzureTenantID: "tenant-two"}, "gcp": {GCPWorkloadIdentityProvider: wipFull}, "aws-irsa": {}}},
	}
	for name, tc := range pods {
		t.Run(name, func(t *testing.T) {
			saName := tc.sa
			if saName == "" {
				saName = "missing"
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-0", UID: "uid-1", Annotations: tc.ann}}
			pod.Spec.ServiceAccountName = saName
			pod.Spec.Containers = []corev1.Container{{Name: "app", Image: "app"}}
			for _, c := range tc.classes {
				csiSrc := &corev1.CSIVolumeSource{Driver: inject.CSIDriver, VolumeAttributes: map[string]string{inject.ClassAttribute: c}}
				if slices.Contains(tc.nps, c) {
					csiSrc.NodePublishSecretRef = &corev1.LocalObjectReference{Name: "creds-" + c}
				}
				pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: c, VolumeSource: corev1.VolumeSource{CSI: csiSrc}})
				pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: c, MountPath: "/mnt/" + c, ReadOnly: true})
			}
			var sa *corev1.ServiceAccount
			if ann, ok := serviceAccounts[tc.sa]; ok {
				sa = &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: tc.sa, Annotations: ann}}
			}
			paths := map[string]map[string]identity.Cloud{
				"webhook": webhookIdentities(t, pod, sa, objs, nil),
				"shim":    shimIdentities(t, pod, sa, parsed, tc.classes, tc.nps, nil),
				"sync":    syncIdentities(t, pod, sa, parsed, tc.classes, nil),
			}
			for path, got := range paths {
				want := tc.want
				if path == "sync" && tc.syncWant != nil {
					want = tc.syncWant
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s path: per-volume identities differ from the table (-want +got):\n%s", path, diff)
				}
			}
		})
	}
}

// webhookIdentities rewrites the pod as the webhook does and returns the
// identity the agent uses for each volume of its configuration.
func webhookIdentities(t *testing.T, pod *corev1.Pod, sa *corev1.ServiceAccount, classes map[string]*ssiv1.SecretProviderClass, tokenRequests []string) map[string]identity.Cloud {
	t.Helper()
	cfg := inject.DefaultConfig()
	cfg.TokenRequests = tokenRequests
	in := inject.Input{
		Namespace: pod.Namespace, NamespaceLabels: map[string]string{inject.LabelInjection: inject.LabelValueEnabled},
		Pod: &corev1.PodTemplateSpec{ObjectMeta: *pod.ObjectMeta.DeepCopy(), Spec: *pod.Spec.DeepCopy()}, Classes: classes,
	}
	if sa != nil {
		in.ServiceAccount = sa.ObjectMeta.DeepCopy()
	}
	res, err := inject.Rewrite(&cfg, in)
	if err != nil || res.Pod == nil {
		t.Fatalf("Rewrite: %v (skipped %q)", err, res.Skipped)
	}
	var env string
	for _, c := range append(res.Pod.Spec.InitContainers, res.Pod.Spec.Containers...) {
		for _, e := range c.Env {
			if c.Name == inject.AgentContainerName && e.Name == agentconfig.EnvConfig {
				env = e.Value
			}
		}
	}
	ac, err := agentconfig.Decode(env)
	if err != nil {
		t.Fatalf("agent configuration: %v", err)
	}
	out := map[string]identity.Cloud{}
	projected := map[string]bool{}
	for _, tok := range ac.Tokens {
		projected[tok.Audience] = true
	}
	for i := range ac.Volumes {
		v := &ac.Volumes[i]
		out[v.Name] = ac.CloudOf(v)
		// The agent logs a Vault class in with a projected token.
		if c := classes[v.Name]; c != nil && c.Spec.Provider == "vault" {
			if aud := identity.VaultLoginAudience(c.Spec.Parameters["audience"], out[v.Name]); !projected[aud] {
				t.Errorf("volume %s logs in with audience %q, which is not projected (%v)", v.Name, aud, ac.Tokens)
			}
		}
	}
	return out
}

// shimIdentities asks a node shim, whose API reader holds the service
// account and the pod, for the identity of each volume.
func shimIdentities(t *testing.T, pod *corev1.Pod, sa *corev1.ServiceAccount, classes map[string]*spc.Class, vols, nps []string, tokenRequests []string) map[string]identity.Cloud {
	t.Helper()
	objs := []client.Object{pod.DeepCopy()}
	if sa != nil {
		objs = append(objs, sa.DeepCopy())
	}
	api := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(objs...).Build()
	d, err := csi.NewDriver(csi.Options{NodeID: "node-1", KubeletRootDir: t.TempDir(), Endpoint: "unix:///unused.sock", ServiceAccountAnnotations: true},
		csi.Deps{Mounter: csi.SystemMounter{}, Classes: api, APIReader: api})
	if err != nil {
		t.Fatal(err)
	}
	id := identity.Pod{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID), ServiceAccount: pod.Spec.ServiceAccountName}
	// Kubelet sends a token for each of the CSIDriver's tokenRequests.
	var secrets map[string]string
	if tokenRequests != nil {
		toks := map[string]map[string]string{}
		for _, a := range tokenRequests {
			toks[a] = map[string]string{"token": "t-" + a, "expirationTimestamp": "2030-01-01T00:00:00Z"}
		}
		b, err := json.Marshal(toks)
		if err != nil {
			t.Fatal(err)
		}
		secrets = map[string]string{csi.AttrTokens: string(b)}
	}
	out := map[string]identity.Cloud{}
	for _, v := range vols {
		vs := map[string]string{}
		maps.Copy(vs, secrets)
		if slices.Contains(nps, v) {
			// What kubelet sends for a nodePublishSecretRef: its keys.
			maps.Copy(vs, map[string]string{"clientid": "x", "clientsecret": "y", "key.json": "{}"})
		}
		out[v] = d.VolumeIdentity(context.Background(), classes[v], id, vs)
	}
	return out
}

// syncIdentities returns the identity the sync controller fetches each
// volume's class with for this pod: its first candidate.
func syncIdentities(t *testing.T, pod *corev1.Pod, sa *corev1.ServiceAccount, classes map[string]*spc.Class, vols []string, tokenRequests []string) map[string]identity.Cloud {
	t.Helper()
	b := fake.NewClientBuilder().WithScheme(scheme.New())
	if sa != nil {
		b = b.WithObjects(sa.DeepCopy())
	}
	r := &Reconciler{shared: b.Build(), tokens: &tokenCache{clock: clocktesting.NewFakePassiveClock(metav1.Now().Time)}, log: logr.Discard(), opts: Options{TokenRequests: tokenRequests}}
	out := map[string]identity.Cloud{}
	for _, v := range vols {
		cands := r.candidates(context.Background(), classes[v], []consumer{{pod: pod, serviceAccount: pod.Spec.ServiceAccountName}})
		if len(cands) != 1 {
			t.Fatalf("class %s: %d candidates", v, len(cands))
		}
		out[v] = cands[0].id.Cloud
		if !strings.HasPrefix(cands[0].key, fmt.Sprintf("%s/%s|", pod.Namespace, pod.Spec.ServiceAccountName)) {
			t.Errorf("candidate key %q", cands[0].key)
		}
	}
	return out
}

// TestVaultAudienceAgreement: the three callers decide a Vault class's
// login audience alike from the CSIDriver's tokenRequests (the Helm
// value, passed to the webhook and the sync controller as --token-request
// and to the shim by kubelet's tokens): vault-csi-provider's rule
// (identity.VaultAudience). The webhook also projects that audience.
func TestVaultAudienceAgreement(t *testing.T) {
	const ns = "team"
	mk := func(name string, params map[string]string) (*ssiv1.SecretProviderClass, *spc.Class) {
		o := &ssiv1.SecretProviderClass{}
		o.Namespace, o.Name = ns, name
		o.Spec.Provider = "vault"
		o.Spec.Parameters = params
		c, err := spc.Parse(o)
		if err != nil {
			t.Fatal(err)
		}
		return o, c
	}
	obj := "- objectName: a\n  secretPath: s\n"
	plainO, plain := mk("plain", map[string]string{"roleName": "r", "objects": obj})
	ownO, own := mk("own", map[string]string{"roleName": "r", "audience": "team-a", "objects": obj})
	objs := map[string]*ssiv1.SecretProviderClass{"plain": plainO, "own": ownO}
	parsed := map[string]*spc.Class{"plain": plain, "own": own}
	cases := map[string]struct {
		requests []string
		want     map[string]identity.Cloud
	}{
		"chart defaults (no vault)": {[]string{"sts.amazonaws.com", "pods.eks.amazonaws.com", "api://AzureADTokenExchange", ""},
			map[string]identity.Cloud{"plain": {}, "own": {}}},
		"upstream tokenRequests [{audience: vault}]": {[]string{"vault"},
			map[string]identity.Cloud{"plain": {VaultAudience: "vault"}, "own": {}}},
		"vault among others": {[]string{"", "vault", "sts.amazonaws.com"},
			map[string]identity.Cloud{"plain": {VaultAudience: "vault"}, "own": {}}},
		"no token requests": {[]string{},
			map[string]identity.Cloud{"plain": {}, "own": {}}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-0", UID: "uid-1"}}
			pod.Spec.ServiceAccountName = "app"
			pod.Spec.Containers = []corev1.Container{{Name: "app", Image: "app"}}
			vols := []string{"plain", "own"}
			for _, c := range vols {
				pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: c, VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
					Driver: inject.CSIDriver, VolumeAttributes: map[string]string{inject.ClassAttribute: c}}}})
				pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: c, MountPath: "/mnt/" + c, ReadOnly: true})
			}
			sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}}
			for path, got := range map[string]map[string]identity.Cloud{
				"webhook": webhookIdentities(t, pod, sa, objs, tc.requests),
				"shim":    shimIdentities(t, pod, sa, parsed, vols, nil, tc.requests),
				"sync":    syncIdentities(t, pod, sa, parsed, vols, tc.requests),
			} {
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("%s path (-want +got):\n%s", path, diff)
				}
			}
		})
	}
}
