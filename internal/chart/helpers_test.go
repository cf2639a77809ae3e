package chart

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// runner returns a Runner on the repository's chart with the pinned Helm.
// Without Helm the test fails (make test builds it), except under -short.
func runner(t testing.TB) Runner {
	t.Helper()
	root := testenv.RepoRoot()
	helm, err := HelmBinary(root)
	if err != nil {
		if testing.Short() {
			t.Skipf("-short and no helm: %v", err)
		}
		t.Fatal(err)
	}
	return Runner{Helm: helm, Chart: filepath.Join(root, Path)}
}

// render renders the chart and decodes the objects.
func render(t testing.TB, r Runner, o Options) []*unstructured.Unstructured {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	y, err := r.Template(ctx, o)
	if err != nil {
		t.Fatalf("render %v: %v", o.Set, err)
	}
	objs, err := Split(y)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) == 0 {
		t.Fatalf("render %v: no objects", o.Set)
	}
	return objs
}

// nonDefault turns on or changes every optional part of the chart.
var nonDefault = Options{
	Release:     "ssi",
	Namespace:   "platform-secrets",
	KubeVersion: "1.37.0",
	Values: []string{`
logVerbosity: 5
logFormatJSON: false
imagePullSecrets: [{name: regcred}]
syncSecret:
  enabled: true
  replicas: 2
  allowedBackendHosts: ["*.vault.example.com", 10.20.0.0/16]
  allowProtectedNamespaces: [kube-system]
  apiServerAudiences: [https://issuer.example, kubernetes.default.svc]
  resources: {requests: {cpu: 30m, memory: 80Mi}, limits: {memory: 300Mi}}
enableSecretRotation: false
rotationPollInterval: 120s
tokenRequests:
  - audience: vault
  - audience: my-project.svc.id.goog
    expirationSeconds: 3600
failurePolicy: Fail
maxObjectBytes: 2Mi
maxVolumeBytes: 8388608
classFilesDir: /etc/ssi/class-files
nativeSidecars: "off"
allowProcessIdentity: true
injection:
  rotationInterval: 30s
  excludeNamespaces: [legacy, batch]
agent:
  image: {repository: registry.example/ssi-agent, tag: "1.2.3", pullPolicy: Always}
  resources: {cpuRequest: 20m, memoryRequest: 32Mi, memoryLimit: 128Mi, cpuLimit: 200m}
webhook:
  replicas: 3
  image: {repository: registry.example/ssi-webhook, tag: "1.2.3", pullPolicy: Always}
  timeoutSeconds: 5
  tls:
    mode: cert-manager
    certManager:
      issuerRef: {kind: ClusterIssuer, name: corp-ca}
  topologySpreadConstraints:
    - maxSkew: 1
      topologyKey: topology.kubernetes.io/zone
      whenUnsatisfiable: DoNotSchedule
      labelSelector:
        matchLabels: {app.kubernetes.io/component: webhook}
  nodeSelector: {node-role.kubernetes.io/system: "true"}
  tolerations: [{key: dedicated, operator: Equal, value: system, effect: NoSchedule}]
  priorityClassName: system-cluster-critical
  podAnnotations: {example.com/team: platform}
  podLabels: {team: platform}
  clientCAConfigMap: apiserver-webhook-client-ca
  networkPolicy:
    podCIDRs: [10.244.0.0/16, "fd00:10:244::/56"]
    metricsFrom: []
linux:
  kubeletRootDir: /var/data/kubelet
  providersDir: /run/providers
  additionalProvidersDirs: [/etc/kubernetes/secrets-store-csi-providers, /opt/providers]
  metricsAddr: ":9095"
  allowedBackendHosts: [vault.example.com, 10.30.0.0/16]
  priorityClassName: system-node-critical
serviceMonitor:
  enabled: true
  labels: {release: prometheus}
`},
}
