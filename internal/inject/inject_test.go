package inject

import (
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/identity"
)

const ns = "production"

var enabledNS = map[string]string{LabelInjection: LabelValueEnabled}

func class(name, provider string, params map[string]string) *ssiv1.SecretProviderClass {
	return &ssiv1.SecretProviderClass{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       ssiv1.SecretProviderClassSpec{Provider: ssiv1.Provider(provider), Parameters: params},
	}
}

var (
	vaultObjects = "- objectName: db-password\n  secretPath: secret/data/db\n  secretKey: password\n"
	awsObjects   = "- objectName: db\n  objectType: secretsmanager\n"
	azureObjects = "array:\n  - |\n    objectName: db\n    objectType: secret\n"
	gcpSecrets   = "- resourceName: projects/1/secrets/db/versions/latest\n  path: db\n"
)

func classes() map[string]*ssiv1.SecretProviderClass {
	return map[string]*ssiv1.SecretProviderClass{
		"vault":          class("vault", "vault", map[string]string{"roleName": "app", "objects": vaultObjects}),
		"vault-aud":      class("vault-aud", "vault", map[string]string{"roleName": "app", "audience": "vault", "objects": vaultObjects}),
		"aws":            class("aws", "aws", map[string]string{"region": "eu-west-1", "objects": awsObjects}),
		"aws-pi":         class("aws-pi", "aws", map[string]string{"region": "eu-west-1", "usePodIdentity": "true", "objects": awsObjects}),
		"azure":          class("azure", "azure", map[string]string{"keyvaultName": "kv1", "tenantId": "t1", "objects": azureObjects}),
		"azure-client":   class("azure-client", "azure", map[string]string{"keyvaultName": "kv1", "tenantID": "t2", "clientID": "class-client", "objects": azureObjects}),
		"azure-vm":       class("azure-vm", "azure", map[string]string{"keyvaultName": "kv1", "tenantId": "t1", "useVMManagedIdentity": "true", "objects": azureObjects}),
		"azure-proxy":    class("azure-proxy", "azure", map[string]string{"keyvaultName": "kv1", "tenantId": "t1", "useAzureTokenProxy": "true", "clientID": "c", "objects": azureObjects}),
		"azure-podid":    class("azure-podid", "azure", map[string]string{"keyvaultName": "kv1", "tenantId": "t1", "usePodIdentity": " true", "objects": azureObjects}),
		"azure-badbool":  class("azure-badbool", "azure", map[string]string{"keyvaultName": "kv1", "tenantId": "t1", "usePodIdentity": "yes", "objects": azureObjects}),
		"gcp":            class("gcp", "gcp", map[string]string{"secrets": gcpSecrets}),
		"gcp-provider":   class("gcp-provider", "gcp", map[string]string{"auth": "provider-adc", "secrets": gcpSecrets}),
		"vault-private":  class("vault-private", "vault", map[string]string{"roleName": "app", "objects": "- objectName: key\n  secretPath: secret/data/k\n  secretKey: k\n  filePermission: 0600\n"}),
		"broken":         class("broken", "vault", map[string]string{"objects": vaultObjects}),
		"plugin":         class("plugin", "conjur", map[string]string{"x": "y"}),
		"other-ns-class": {ObjectMeta: metav1.ObjectMeta{Namespace: "elsewhere", Name: "other-ns-class"}, Spec: ssiv1.SecretProviderClassSpec{Provider: "vault", Parameters: map[string]string{"roleName": "app", "objects": vaultObjects}}},
	}
}

// podWith returns a pod whose app container mounts one CSI volume per class.
func podWith(ann map[string]string, classNames ...string) *corev1.PodTemplateSpec {
	yes := true
	p := &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns, Annotations: ann},
		Spec: corev1.PodSpec{
			ServiceAccountName: "app",
			Containers:         []corev1.Container{{Name: "app", Image: "app:1"}},
		},
	}
	for _, c := range classNames {
		name := "v-" + c
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
			Driver: CSIDriver, ReadOnly: &yes, VolumeAttributes: map[string]string{ClassAttribute: c},
		}}})
		p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: name, MountPath: "/mnt/" + c, ReadOnly: true})
	}
	return p
}

func input(pod *corev1.PodTemplateSpec) Input {
	return Input{Namespace: ns, NamespaceLabels: enabledNS, Pod: pod, Classes: classes()}
}

func rewrite(t *testing.T, in Input) *Result {
	t.Helper()
	cfg := DefaultConfig()
	res, err := Rewrite(&cfg, in)
	if err != nil {
		t.Fatalf("Rewrite: %v", err)
	}
	return res
}

func TestDecide(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ExcludedNamespaces = append(cfg.ExcludedNamespaces, "ssi-system")
	tests := map[string]struct {
		ns      string
		labels  map[string]string
		ann     map[string]string
		skip    SkipReason
		warn    string
		wantErr string
	}{
		"labelled namespace":              {ns: ns, labels: enabledNS},
		"annotation in plain namespace":   {ns: ns, ann: map[string]string{AnnotationInject: "true"}},
		"annotation is case-blind":        {ns: ns, ann: map[string]string{AnnotationInject: " True"}},
		"plain namespace":                 {ns: ns, skip: SkipNotEnabled},
		"label with another value":        {ns: ns, labels: map[string]string{LabelInjection: "true"}, skip: SkipNotEnabled, warn: `only "enabled" enables injection`},
		"disabled label":                  {ns: ns, labels: map[string]string{LabelInjection: LabelValueDisabled}, skip: SkipDisabledNamespace},
		"disabled label beats annotation": {ns: ns, labels: map[string]string{LabelInjection: LabelValueDisabled}, ann: map[string]string{AnnotationInject: "true"}, skip: SkipDisabledNamespace},
		"opt out in enabled namespace":    {ns: ns, labels: enabledNS, ann: map[string]string{AnnotationInject: "false"}, skip: SkipOptedOut},
		"already injected":                {ns: ns, labels: enabledNS, ann: map[string]string{AnnotationStatus: StatusInjected}, skip: SkipAlreadyInjected},
		"kube-system even when asked":     {ns: "kube-system", labels: enabledNS, ann: map[string]string{AnnotationInject: "true"}, skip: SkipExcludedNamespace},
		"own namespace":                   {ns: "ssi-system", labels: enabledNS, skip: SkipExcludedNamespace},
		"malformed inject":                {ns: ns, ann: map[string]string{AnnotationInject: "yes"}, wantErr: `annotation secrets-store-injector.io/inject: "yes" is neither "true" nor "false"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			skip, warns, err := Decide(&cfg, tc.ns, tc.labels, tc.ann)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				if ReasonOf(err) != ReasonInvalidAnnotation {
					t.Errorf("reason = %q", ReasonOf(err))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if skip != tc.skip {
				t.Errorf("skip = %q, want %q", skip, tc.skip)
			}
			if tc.warn != "" && (len(warns) != 1 || !strings.Contains(warns[0], tc.warn)) {
				t.Errorf("warnings = %q, want one containing %q", warns, tc.warn)
			}
			if tc.warn == "" && len(warns) > 0 {
				t.Errorf("unexpected warnings %q", warns)
			}
		})
	}
}

// TestDenials checks that every pod that must not be admitted is refused
// with a reason and a message naming the class, volume, annotation or
// container and the problem.
func TestDenials(t *testing.T) {
	withAnn := func(k, v string) *corev1.PodTemplateSpec { return podWith(map[string]string{k: v}, "vault") }
	tests := map[string]struct {
		pod    *corev1.PodTemplateSpec
		reason Reason
		msg    string
	}{
		"missing class": {podWith(nil, "nope"), ReasonClassNotFound,
			`volume "v-nope": SecretProviderClass "nope" not found in namespace "production"`},
		"class of another namespace": {podWith(nil, "other-ns-class"), ReasonClassNotFound,
			`SecretProviderClass "other-ns-class" not found in namespace "production"`},
		"class that does not parse": {podWith(nil, "broken"), ReasonClassInvalid,
			`volume "v-broken": SecretProviderClass production/broken (provider vault): parameters.roleName`},
		"shorthand naming a missing class": {podWith(map[string]string{AnnotationSecretProviderClass: "nope"}), ReasonClassNotFound,
			`annotation secrets-store-injector.io/secret-provider-class: SecretProviderClass "nope" not found in namespace "production"`},
		"shorthand naming a plugin class": {podWith(map[string]string{AnnotationSecretProviderClass: "plugin"}), ReasonClassInvalid,
			`uses provider "conjur", which is not built in`},
		"empty class attribute": {func() *corev1.PodTemplateSpec {
			p := podWith(nil, "vault")
			p.Spec.Volumes[0].CSI.VolumeAttributes = nil
			return p
		}(), ReasonInvalidVolume, `volume "v-vault": csi.volumeAttributes.secretProviderClass is empty`},
		"bad mode":            {withAnn(AnnotationMode, "daemon"), ReasonInvalidAnnotation, `annotation secrets-store-injector.io/mode: "daemon" is neither "sidecar" nor "init-only"`},
		"bad interval":        {withAnn(AnnotationRotationInterval, "5 minutes"), ReasonInvalidAnnotation, `annotation secrets-store-injector.io/rotation-interval: "5 minutes" is not a Go duration`},
		"too short interval":  {withAnn(AnnotationRotationInterval, "10ms"), ReasonInvalidAnnotation, `10ms is shorter than 1s`},
		"bad cpu":             {withAnn(AnnotationAgentCPURequest, "lots"), ReasonInvalidAnnotation, `annotation secrets-store-injector.io/agent-cpu-request: "lots" is not a quantity`},
		"negative memory":     {withAnn(AnnotationAgentMemoryRequest, "-1Mi"), ReasonInvalidAnnotation, `"-1Mi" is negative`},
		"limit below request": {podWith(map[string]string{AnnotationAgentMemoryRequest: "128Mi", AnnotationAgentMemoryLimit: "64Mi"}, "vault"), ReasonInvalidAnnotation, `agent-memory-limit: 64Mi is below the memory request 128Mi`},
		"bad signal":          {withAnn(AnnotationReloadSignal, "SIGKILL"), ReasonInvalidAnnotation, `annotation secrets-store-injector.io/reload-signal: "SIGKILL" is not one of`},
		"root agent":          {withAnn(AnnotationAgentRunAsUser, "0"), ReasonInvalidAnnotation, `"0" is not a non-zero user ID`},
		"zero size":           {withAnn(AnnotationVolumeSizeLimit, "0"), ReasonInvalidAnnotation, `volume-size-limit: must be larger than zero`},
		"bad gcp provider":    {withAnn(identity.AnnotationGCPWorkloadIdentityProvider, "projects/1/pools/x"), ReasonInvalidAnnotation, `gcp-workload-identity-provider: "projects/1/pools/x" is not projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER`},
		"relative mount path": {podWith(map[string]string{AnnotationSecretProviderClass: "vault", AnnotationMountPath: "secrets"}), ReasonInvalidAnnotation, `mount-path: "secrets" is not a clean absolute path`},
		"bad class name":      {podWith(map[string]string{AnnotationSecretProviderClass: "Not_A_Name"}), ReasonInvalidAnnotation, `"Not_A_Name" is not a SecretProviderClass name`},
		"unknown container": {podWith(map[string]string{AnnotationSecretProviderClass: "vault", AnnotationContainers: "app,web"}), ReasonInvalidAnnotation,
			`annotation secrets-store-injector.io/containers: container "web" does not exist (the pod has app)`},
		"mount path taken": {func() *corev1.PodTemplateSpec {
			p := podWith(map[string]string{AnnotationSecretProviderClass: "vault"})
			p.Spec.Volumes = []corev1.Volume{{Name: "x", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "x", MountPath: DefaultMountPath}}
			return p
		}(), ReasonConflict, `container "app" already mounts volume "x" at /mnt/secrets-store`},
		"agent name taken": {func() *corev1.PodTemplateSpec {
			p := podWith(nil, "vault")
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: AgentContainerName})
			return p
		}(), ReasonConflict, `container name "ssi-agent" is reserved`},
		"token volume name taken": {func() *corev1.PodTemplateSpec {
			p := podWith(nil, "vault")
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: TokenVolumeName})
			return p
		}(), ReasonConflict, `volume name "ssi-tokens" is reserved`},
		"shorthand volume name taken": {func() *corev1.PodTemplateSpec {
			p := podWith(map[string]string{AnnotationSecretProviderClass: "vault"})
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: ShorthandVolumeName})
			return p
		}(), ReasonConflict, `already has a volume named "ssi-secrets"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			_, err := Rewrite(&cfg, input(tc.pod))
			if err == nil {
				t.Fatal("admitted, want denial")
			}
			if ReasonOf(err) != tc.reason {
				t.Errorf("reason = %q, want %q (%v)", ReasonOf(err), tc.reason, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("message %q lacks %q", err.Error(), tc.msg)
			}
		})
	}
}

// decodeAgent returns the agent configuration of a container.
func decodeAgent(t *testing.T, c corev1.Container) *agentconfig.Config {
	t.Helper()
	for _, e := range c.Env {
		if e.Name == agentconfig.EnvConfig {
			cfg, err := agentconfig.Decode(e.Value)
			if err != nil {
				t.Fatalf("agent configuration does not decode: %v", err)
			}
			return cfg
		}
	}
	t.Fatalf("container %s has no %s", c.Name, agentconfig.EnvConfig)
	return nil
}

func findContainer(cs []corev1.Container, name string) (int, *corev1.Container) {
	for i := range cs {
		if cs[i].Name == name {
			return i, &cs[i]
		}
	}
	return -1, nil
}

// TestIdentity checks audiences and cloud identity per provider setting.
func TestIdentity(t *testing.T) {
	sa := &metav1.ObjectMeta{Name: "app", Annotations: map[string]string{
		identity.SAAnnotationAWSRoleARN:     "arn:aws:iam::1:role/r",
		identity.SAAnnotationAzureClientID:  "sa-client",
		"azure.workload.identity/tenant-id": "sa-tenant",
		identity.SAAnnotationGCPServiceAcct: "gsa@p.iam.gserviceaccount.com",
	}}
	wif := map[string]string{identity.AnnotationGCPWorkloadIdentityProvider: "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k"}
	tests := map[string]struct {
		classes []string
		ann     map[string]string
		sa      *metav1.ObjectMeta
		nps     bool
		auds    []string
		cloud   identity.Cloud
		warn    string
	}{
		"aws irsa":                               {classes: []string{"aws"}, sa: sa, auds: []string{identity.AudienceAWSIRSA}, cloud: identity.Cloud{AWSRoleARN: "arn:aws:iam::1:role/r"}},
		"aws irsa without role":                  {classes: []string{"aws"}, sa: &metav1.ObjectMeta{Name: "app"}, auds: []string{identity.AudienceAWSIRSA}, warn: `service account "app" has no eks.amazonaws.com/role-arn annotation`},
		"aws pod identity":                       {classes: []string{"aws-pi"}, sa: sa, auds: []string{identity.AudienceAWSPodIdentity}},
		"azure workload id from service account": {classes: []string{"azure"}, sa: sa, auds: []string{identity.AudienceAzureWorkloadIdentity}, cloud: identity.Cloud{AzureClientID: "sa-client", AzureTenantID: "t1"}},
		"azure class client id wins":             {classes: []string{"azure-client"}, sa: sa, auds: []string{identity.AudienceAzureWorkloadIdentity}, cloud: identity.Cloud{AzureClientID: "class-client", AzureTenantID: "t2"}},
		"azure without client id":                {classes: []string{"azure"}, auds: []string{identity.AudienceAzureWorkloadIdentity}, cloud: identity.Cloud{AzureTenantID: "t1"}, warn: "Azure workload identity needs a client ID"},
		"azure vm identity":                      {classes: []string{"azure-vm"}, sa: sa, auds: nil, cloud: identity.Cloud{AzureTenantID: "t1"}, warn: "SecretProviderClass azure-vm: parameters.useVMManagedIdentity fetches with the node's managed identity, not the pod's; the node CSI shim (pods not injected) and the sync controller (secretObjects) refuse this class unless the operator allows it (--allow-process-identity"},
		"azure service principal":                {classes: []string{"azure"}, nps: true, auds: nil, cloud: identity.Cloud{AzureTenantID: "t1"}},
		"azure service principal over the sa":    {classes: []string{"azure"}, sa: sa, nps: true, auds: nil, cloud: identity.Cloud{AzureTenantID: "t1"}},
		"azure class client id over the secret":  {classes: []string{"azure-client"}, sa: sa, nps: true, auds: []string{identity.AudienceAzureWorkloadIdentity}, cloud: identity.Cloud{AzureClientID: "class-client", AzureTenantID: "t2"}},
		"gcp on gke":                             {classes: []string{"gcp"}, sa: sa, auds: nil, cloud: identity.Cloud{GCPServiceAccount: "gsa@p.iam.gserviceaccount.com"}},
		"gcp federation":                         {classes: []string{"gcp"}, ann: wif, auds: []string{"https://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k"}, cloud: identity.Cloud{GCPWorkloadIdentityProvider: wif[identity.AnnotationGCPWorkloadIdentityProvider]}},
		"gcp provider adc":                       {classes: []string{"gcp-provider"}, ann: wif, auds: nil, warn: "SecretProviderClass gcp-provider: parameters.auth: provider-adc fetches with the application default credentials of the process that fetches (the node's), not the pod's; the node CSI shim (pods not injected) and the sync controller (secretObjects) refuse this class unless the operator allows it (--allow-process-identity"},
		"vault default audience":                 {classes: []string{"vault"}, auds: []string{""}},
		"vault class audience":                   {classes: []string{"vault-aud"}, auds: []string{"vault"}},
		"union over volumes":                     {classes: []string{"vault", "aws", "vault-aud"}, sa: sa, auds: []string{"", identity.AudienceAWSIRSA, "vault"}, cloud: identity.Cloud{AWSRoleARN: "arn:aws:iam::1:role/r"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			pod := podWith(tc.ann, tc.classes...)
			if tc.nps {
				pod.Spec.Volumes[0].CSI.NodePublishSecretRef = &corev1.LocalObjectReference{Name: "sp-creds"}
			}
			in := input(pod)
			in.ServiceAccount = tc.sa
			res := rewrite(t, in)
			if res.Pod == nil {
				t.Fatalf("not injected: %s", res.Skipped)
			}
			_, agent := findContainer(res.Pod.Spec.InitContainers, AgentContainerName)
			cfg := decodeAgent(t, *agent)
			var auds []string
			for _, tok := range cfg.Tokens {
				auds = append(auds, tok.Audience)
			}
			if diff := cmp.Diff(tc.auds, auds); diff != "" {
				t.Errorf("audiences (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.cloud, cfg.Cloud); diff != "" {
				t.Errorf("cloud (-want +got):\n%s", diff)
			}
			if tc.warn != "" && !strings.Contains(strings.Join(res.Warnings, "\n"), tc.warn) {
				t.Errorf("warnings %q lack %q", res.Warnings, tc.warn)
			}
			checkTokens(t, res.Pod, agent, cfg)
		})
	}
}

// checkTokens proves the token files the agent is told about are exactly
// the projected ones, with their audiences, mounted only into the agent.
func checkTokens(t *testing.T, pod *corev1.PodTemplateSpec, agent *corev1.Container, cfg *agentconfig.Config) {
	t.Helper()
	var vol *corev1.Volume
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == TokenVolumeName {
			vol = &pod.Spec.Volumes[i]
		}
	}
	if len(cfg.Tokens) == 0 {
		if vol != nil {
			t.Errorf("token volume without tokens")
		}
		return
	}
	if vol == nil || vol.Projected == nil {
		t.Fatalf("no projected token volume")
	}
	projected := map[string]string{}
	for _, s := range vol.Projected.Sources {
		projected[TokenDir+"/"+s.ServiceAccountToken.Path] = s.ServiceAccountToken.Audience
		if *s.ServiceAccountToken.ExpirationSeconds != 3600 {
			t.Errorf("expiration %d", *s.ServiceAccountToken.ExpirationSeconds)
		}
	}
	told := map[string]string{}
	for _, tok := range cfg.Tokens {
		told[tok.Path] = tok.Audience
	}
	if diff := cmp.Diff(projected, told); diff != "" {
		t.Errorf("projected tokens differ from the agent's configuration (-projected +config):\n%s", diff)
	}
	for _, c := range allContainers(&pod.Spec) {
		for _, m := range c.VolumeMounts {
			if m.Name == TokenVolumeName && c.Name != agent.Name {
				t.Errorf("container %s mounts the token volume", c.Name)
			}
			if m.Name == TokenVolumeName && (!m.ReadOnly || m.MountPath != TokenDir) {
				t.Errorf("token mount %+v", m)
			}
		}
	}
}

// TestShapes checks where the agent goes and in which mode, for every
// shape, and that the agent satisfies Pod Security "restricted".
func TestShapes(t *testing.T) {
	initC := func(name string, mounts bool, sidecar bool) corev1.Container {
		c := corev1.Container{Name: name, Image: "x"}
		if mounts {
			c.VolumeMounts = []corev1.VolumeMount{{Name: "v-vault", MountPath: "/s", ReadOnly: true}}
		}
		if sidecar {
			always := corev1.ContainerRestartPolicyAlways
			c.RestartPolicy = &always
		}
		return c
	}
	tests := map[string]struct {
		native  bool
		ann     map[string]string
		restart corev1.RestartPolicy
		inits   []corev1.Container
		// order is the init container names after the rewrite, then
		// the regular ones.
		order   []string
		regular []string
		modes   map[string]agentconfig.Mode
	}{
		"native, no init containers": {native: true, order: []string{AgentContainerName}, regular: []string{"app"},
			modes: map[string]agentconfig.Mode{AgentContainerName: agentconfig.ModeSidecar}},
		"native, after init containers that do not read": {native: true, inits: []corev1.Container{initC("a", false, false), initC("b", false, true)},
			order: []string{"a", "b", AgentContainerName}, regular: []string{"app"}, modes: map[string]agentconfig.Mode{AgentContainerName: agentconfig.ModeSidecar}},
		"native, before the first reader": {native: true, inits: []corev1.Container{initC("a", false, false), initC("reader", true, false), initC("c", false, false)},
			order: []string{"a", AgentContainerName, "reader", "c"}, regular: []string{"app"}, modes: map[string]agentconfig.Mode{AgentContainerName: agentconfig.ModeSidecar}},
		"native, before a reading sidecar": {native: true, inits: []corev1.Container{initC("proxy", false, true), initC("shipper", true, true)},
			order: []string{"proxy", AgentContainerName, "shipper"}, regular: []string{"app"}, modes: map[string]agentconfig.Mode{AgentContainerName: agentconfig.ModeSidecar}},
		"init-only": {native: true, ann: map[string]string{AnnotationMode: "init-only"}, order: []string{AgentContainerName}, regular: []string{"app"},
			modes: map[string]agentconfig.Mode{AgentContainerName: agentconfig.ModeInitOnly}},
		"legacy": {native: false, inits: []corev1.Container{initC("reader", true, false)}, order: []string{AgentInitContainerName, "reader"}, regular: []string{"app", AgentContainerName},
			modes: map[string]agentconfig.Mode{AgentInitContainerName: agentconfig.ModeInit, AgentContainerName: agentconfig.ModeRotate}},
		"legacy job": {native: false, restart: corev1.RestartPolicyOnFailure, order: []string{AgentContainerName}, regular: []string{"app"},
			modes: map[string]agentconfig.Mode{AgentContainerName: agentconfig.ModeInitOnly}},
		"legacy init-only": {native: false, ann: map[string]string{AnnotationMode: "init-only"}, order: []string{AgentContainerName}, regular: []string{"app"},
			modes: map[string]agentconfig.Mode{AgentContainerName: agentconfig.ModeInitOnly}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			pod := podWith(tc.ann, "vault")
			pod.Spec.InitContainers = tc.inits
			pod.Spec.RestartPolicy = tc.restart
			cfg := DefaultConfig()
			cfg.NativeSidecars = tc.native
			res, err := Rewrite(&cfg, input(pod))
			if err != nil {
				t.Fatal(err)
			}
			var order, regular []string
			for _, c := range res.Pod.Spec.InitContainers {
				order = append(order, c.Name)
			}
			for _, c := range res.Pod.Spec.Containers {
				regular = append(regular, c.Name)
			}
			if diff := cmp.Diff(tc.order, order); diff != "" {
				t.Errorf("init containers (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.regular, regular); diff != "" {
				t.Errorf("containers (-want +got):\n%s", diff)
			}
			for cname, mode := range tc.modes {
				_, c := findContainer(append(append([]corev1.Container{}, res.Pod.Spec.InitContainers...), res.Pod.Spec.Containers...), cname)
				ac := decodeAgent(t, *c)
				if ac.Mode != mode {
					t.Errorf("%s: mode %s, want %s", cname, ac.Mode, mode)
				}
				rotates := mode == agentconfig.ModeSidecar || mode == agentconfig.ModeRotate
				if rotates != (ac.RotationInterval.Duration > 0) {
					t.Errorf("%s: rotation interval %s in mode %s", cname, ac.RotationInterval.Duration, mode)
				}
				native := mode == agentconfig.ModeSidecar
				if native != (c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways) {
					t.Errorf("%s: restartPolicy %v in mode %s", cname, c.RestartPolicy, mode)
				}
				if native != (c.StartupProbe != nil) {
					t.Errorf("%s: startup probe %v in mode %s", cname, c.StartupProbe, mode)
				}
				if native && (c.StartupProbe.HTTPGet.Path != "/readyz" || c.StartupProbe.HTTPGet.Port.IntValue() != 9811 || ac.HealthAddr != ":9811") {
					t.Errorf("%s: startup probe %+v, health %s", cname, c.StartupProbe.HTTPGet, ac.HealthAddr)
				}
				checkRestricted(t, c)
				if c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
					t.Errorf("%s: terminationMessagePolicy %q", cname, c.TerminationMessagePolicy)
				}
				if diff := cmp.Diff([]string{"run"}, c.Args); diff != "" {
					t.Errorf("args: %s", diff)
				}
			}
		})
	}
}

// checkRestricted applies the container checks of the Pod Security
// "restricted" profile.
func checkRestricted(t *testing.T, c *corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatalf("%s: no securityContext", c.Name)
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
		t.Errorf("%s: runAsNonRoot not true", c.Name)
	case sc.RunAsUser == nil || *sc.RunAsUser == 0:
		t.Errorf("%s: runAsUser %v", c.Name, sc.RunAsUser)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("%s: allowPrivilegeEscalation not false", c.Name)
	case sc.Capabilities == nil || len(sc.Capabilities.Add) > 0 || !cmp.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}):
		t.Errorf("%s: capabilities %+v", c.Name, sc.Capabilities)
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("%s: seccomp %+v", c.Name, sc.SeccompProfile)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("%s: root filesystem writable", c.Name)
	case sc.Privileged != nil && *sc.Privileged:
		t.Errorf("%s: privileged", c.Name)
	}
}

// TestAgentUser checks the user rule.
func TestAgentUser(t *testing.T) {
	uid := func(v int64) *int64 { return &v }
	tests := map[string]struct {
		podUID, podGID *int64
		appUID         *int64
		second         *int64 // a second reading container's runAsUser, when set
		ann            map[string]string
		want           int64
		wantGroup      *int64
		warn           string
	}{
		"default":                   {want: 65532},
		"pod user":                  {podUID: uid(1000), podGID: uid(2000), want: 1000, wantGroup: uid(2000)},
		"container user wins":       {podUID: uid(1000), appUID: uid(1001), want: 1001},
		"readers disagree":          {appUID: uid(1001), second: uid(1002), want: 65532},
		"root app":                  {appUID: uid(0), want: 65532},
		"annotation":                {appUID: uid(1001), ann: map[string]string{AnnotationAgentRunAsUser: "4242"}, want: 4242},
		"reload without known user": {ann: map[string]string{AnnotationReloadSignal: "SIGHUP"}, want: 65532, warn: "can signal only processes of that user"},
		"private file, other user":  {ann: map[string]string{}, want: 65532, warn: `file "key" has mode 0600 and is written by user 65532`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			classes := []string{"vault"}
			if strings.HasPrefix(name, "private") {
				classes = []string{"vault-private"}
			}
			pod := podWith(tc.ann, classes...)
			if tc.podUID != nil || tc.podGID != nil {
				pod.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: tc.podUID, RunAsGroup: tc.podGID}
			}
			if tc.appUID != nil {
				pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: tc.appUID}
			}
			if tc.second != nil {
				c := pod.Spec.Containers[0]
				c.Name, c.SecurityContext = "second", &corev1.SecurityContext{RunAsUser: tc.second}
				pod.Spec.Containers = append(pod.Spec.Containers, c)
			}
			res := rewrite(t, input(pod))
			_, agent := findContainer(res.Pod.Spec.InitContainers, AgentContainerName)
			if got := *agent.SecurityContext.RunAsUser; got != tc.want {
				t.Errorf("runAsUser = %d, want %d", got, tc.want)
			}
			if diff := cmp.Diff(tc.wantGroup, agent.SecurityContext.RunAsGroup); diff != "" {
				t.Errorf("runAsGroup: %s", diff)
			}
			all := strings.Join(res.Warnings, "\n")
			if tc.warn != "" && !strings.Contains(all, tc.warn) {
				t.Errorf("warnings %q lack %q", res.Warnings, tc.warn)
			}
			if tc.warn == "" && strings.Contains(all, "user") {
				t.Errorf("unexpected user warning: %q", res.Warnings)
			}
			if _, ok := tc.ann[AnnotationReloadSignal]; ok != (res.Pod.Spec.ShareProcessNamespace != nil && *res.Pod.Spec.ShareProcessNamespace) {
				t.Errorf("shareProcessNamespace = %v with reload-signal %v", res.Pod.Spec.ShareProcessNamespace, ok)
			}
		})
	}
}

// TestRewriteContract checks the rest of the contract on one pod: volume
// conversion, untouched app containers, resources, downward API, status,
// attribute overlay, idempotence and that the input is not modified.
func TestRewriteContract(t *testing.T) {
	pod := podWith(map[string]string{AnnotationAgentCPURequest: "20m", AnnotationAgentMemoryRequest: "100Mi"}, "vault", "aws")
	pod.Spec.Volumes[0].CSI.VolumeAttributes["roleName"] = "override"
	before := pod.DeepCopy()
	in := input(pod)
	in.ServiceAccount = &metav1.ObjectMeta{Name: "app"}
	res := rewrite(t, in)
	if diff := cmp.Diff(before, pod); diff != "" {
		t.Fatalf("Rewrite modified its input:\n%s", diff)
	}
	out := res.Pod
	if out.Annotations[AnnotationStatus] != StatusInjected {
		t.Errorf("status annotation %q", out.Annotations[AnnotationStatus])
	}
	if diff := cmp.Diff(before.Spec.Containers, out.Spec.Containers); diff != "" {
		t.Errorf("app containers changed:\n%s", diff)
	}
	for i, v := range out.Spec.Volumes[:2] {
		if v.Name != before.Spec.Volumes[i].Name || v.EmptyDir == nil || v.EmptyDir.Medium != corev1.StorageMediumMemory || v.EmptyDir.SizeLimit.Cmp(resource.MustParse("4Mi")) != 0 || v.CSI != nil {
			t.Errorf("volume %d = %+v, want in-memory emptyDir of 4Mi named %s", i, v, before.Spec.Volumes[i].Name)
		}
	}
	if len(out.Spec.InitContainers) != 1 {
		t.Fatalf("%d init containers, want one agent for both volumes", len(out.Spec.InitContainers))
	}
	agent := out.Spec.InitContainers[0]
	want := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("20m"), corev1.ResourceMemory: resource.MustParse("100Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("100Mi")},
	}
	if !cmp.Equal(want.Requests.Cpu().String(), agent.Resources.Requests.Cpu().String()) || agent.Resources.Requests.Memory().Cmp(*want.Requests.Memory()) != 0 || agent.Resources.Limits.Memory().Cmp(*want.Limits.Memory()) != 0 {
		t.Errorf("resources %+v, want %+v (a request above the default limit raises the limit)", agent.Resources, want)
	}
	env, plain := map[string]string{}, map[string]string{}
	for _, e := range agent.Env[1:] {
		if e.ValueFrom != nil {
			env[e.Name] = e.ValueFrom.FieldRef.FieldPath
		} else {
			plain[e.Name] = e.Value
		}
	}
	if diff := cmp.Diff(map[string]string{
		agentconfig.EnvPodName: "metadata.name", agentconfig.EnvPodNamespace: "metadata.namespace", agentconfig.EnvPodUID: "metadata.uid",
		agentconfig.EnvServiceAccount: "spec.serviceAccountName", agentconfig.EnvNodeName: "spec.nodeName",
		agentconfig.EnvPodIP: "status.podIP",
	}, env); diff != "" {
		t.Errorf("downward API env:\n%s", diff)
	}
	// The collector is held off during start-up, with a soft ceiling at
	// three quarters of the memory limit.
	wantLimit := strconv.FormatInt(agent.Resources.Limits.Memory().Value()/4*3, 10)
	if diff := cmp.Diff(map[string]string{"GOGC": "off", "GOMEMLIMIT": wantLimit}, plain); diff != "" {
		t.Errorf("runtime env:\n%s", diff)
	}
	cfg := decodeAgent(t, agent)
	if len(cfg.Volumes) != 2 || cfg.Volumes[0].Path != VolumeDir+"/v-vault" || cfg.Volumes[1].Path != VolumeDir+"/v-aws" {
		t.Fatalf("volumes %+v", cfg.Volumes)
	}
	if got := cfg.Volumes[0].Class.Parameters["roleName"]; got != "override" {
		t.Errorf("class snapshot roleName = %q, want the volume attribute's override", got)
	}
	if got := cfg.Volumes[0].Class.Parameters["objects"]; got != vaultObjects {
		t.Errorf("class snapshot objects = %q", got)
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), `volumeAttributes.roleName overrides the parameter`) {
		t.Errorf("no warning for the override: %q", res.Warnings)
	}
	mounts := map[string]string{}
	for _, m := range agent.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	if mounts["v-vault"] != VolumeDir+"/v-vault" || mounts["v-aws"] != VolumeDir+"/v-aws" {
		t.Errorf("agent mounts %v", mounts)
	}

	// Reinvocation: the rewritten pod is left alone.
	in2 := input(out)
	res2 := rewrite(t, in2)
	if res2.Pod != nil || res2.Skipped != SkipAlreadyInjected {
		t.Errorf("second rewrite: skipped %q, changed %v", res2.Skipped, res2.Pod != nil)
	}
}

func TestNotInjected(t *testing.T) {
	tests := map[string]struct {
		pod  *corev1.PodTemplateSpec
		skip SkipReason
		warn string
	}{
		"no secrets volume":    {pod: podWith(map[string]string{AnnotationInject: "true"}), skip: SkipNothingToInject, warn: `is "true" but the pod has no secrets-store volume`},
		"only a plugin volume": {pod: podWith(nil, "plugin"), skip: SkipNothingToInject, warn: `uses provider "conjur", which is not built in`},
		"windows pod": {pod: func() *corev1.PodTemplateSpec {
			p := podWith(nil, "vault")
			p.Spec.OS = &corev1.PodOS{Name: corev1.Windows}
			return p
		}(), skip: SkipUnsupported, warn: "the agent runs on Linux only"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := rewrite(t, input(tc.pod))
			if res.Pod != nil || res.Skipped != tc.skip {
				t.Fatalf("skipped %q (changed %v), want %q", res.Skipped, res.Pod != nil, tc.skip)
			}
			if !strings.Contains(strings.Join(res.Warnings, "\n"), tc.warn) {
				t.Errorf("warnings %q lack %q", res.Warnings, tc.warn)
			}
		})
	}
}

func TestTokenFileName(t *testing.T) {
	tests := map[string]string{
		"":                           "default",
		"sts.amazonaws.com":          "sts.amazonaws.com",
		"api://AzureADTokenExchange": "api-AzureADTokenExchange",
		"//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k": "iam.googleapis.com-projects-1-locations-global-workloadIdentityPools-p-providers-k",
		"::": "token",
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			if got := tokenFileName(in); got != want {
				t.Errorf("tokenFileName(%q) = %q, want %q", in, got, want)
			}
		})
	}
}

func TestNodePublishVolumeName(t *testing.T) {
	long := strings.Repeat("a", 63)
	tests := map[string]struct{ in, want string }{
		"short": {"creds", "ssi-nps-creds"},
		"long":  {long, nodePublishVolumeName(long)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := nodePublishVolumeName(tc.in)
			if got != tc.want || len(got) > 63 {
				t.Errorf("%q (%d chars)", got, len(got))
			}
		})
	}
	if nodePublishVolumeName(long) == nodePublishVolumeName(long[:62]+"b") {
		t.Error("long names collide")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := map[string]struct {
		mutate func(*Config)
		want   string
	}{
		"defaults":        {func(*Config) {}, ""},
		"no image":        {func(c *Config) { c.AgentImage = "" }, "--agent-image is empty"},
		"root":            {func(c *Config) { c.AgentUID = 0 }, "never runs as root"},
		"short tokens":    {func(c *Config) { c.TokenExpiration = 0 }, "--token-expiration"},
		"limit < request": {func(c *Config) { c.MemoryLimit = resource.MustParse("1Mi") }, "--agent-memory-limit 1Mi is below"},
		"log format":      {func(c *Config) { c.LogFormat = "xml" }, `--agent-log-format: log format "xml" is not json or text`},
		"log level":       {func(c *Config) { c.LogLevel = "trace" }, `--agent-log-level: log level "trace" is not debug, info, warn or error`},
		"reserved env":    {func(c *Config) { c.AgentEnv = []corev1.EnvVar{{Name: "SSI_AGENT_CONFIG", Value: "{}"}} }, "set by the webhook itself"},
		"bad env name":    {func(c *Config) { c.AgentEnv = []corev1.EnvVar{{Name: "1X"}} }, "not an environment variable name"},
		"env twice":       {func(c *Config) { c.AgentEnv = []corev1.EnvVar{{Name: "A"}, {Name: "A"}} }, "given twice"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mutate(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestAPITokenMask checks that the agent's API token path is covered by an
// empty volume, unless the pod does not mount API tokens at all.
func TestAPITokenMask(t *testing.T) {
	no := false
	tests := map[string]struct {
		automount *bool
		masked    bool
	}{
		"default automount": {nil, true},
		"automount off":     {&no, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			pod := podWith(nil, "vault")
			pod.Spec.AutomountServiceAccountToken = tc.automount
			res := rewrite(t, input(pod))
			_, agent := findContainer(res.Pod.Spec.InitContainers, AgentContainerName)
			var mounted, volume bool
			for _, m := range agent.VolumeMounts {
				if m.MountPath == APITokenPath && m.Name == NoAPITokenVolumeName && m.ReadOnly {
					mounted = true
				}
			}
			for _, v := range res.Pod.Spec.Volumes {
				if v.Name == NoAPITokenVolumeName && v.EmptyDir != nil {
					volume = true
				}
			}
			if mounted != tc.masked || volume != tc.masked {
				t.Errorf("mount %v, volume %v, want %v", mounted, volume, tc.masked)
			}
			for _, m := range res.Pod.Spec.Containers[0].VolumeMounts {
				if m.Name == NoAPITokenVolumeName {
					t.Errorf("app container got the mask")
				}
			}
		})
	}
}
