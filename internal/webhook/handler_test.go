package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/render"
	"github.com/ssinjector/ssi/internal/scheme"
)

// staticLookup is a Lookup over fixed objects, with an optional failure.
type staticLookup struct {
	labels   map[string]map[string]string
	classes  map[string]*ssiv1.SecretProviderClass
	accounts map[string]*metav1.ObjectMeta
	cms      map[string]*corev1.ConfigMap
	err      error
}

func (s *staticLookup) ConfigMap(_ context.Context, ns, name string) (*corev1.ConfigMap, error) {
	return s.cms[ns+"/"+name], s.err
}

func (s *staticLookup) NamespaceLabels(_ context.Context, ns string) (map[string]string, error) {
	return s.labels[ns], s.err
}

func (s *staticLookup) Class(_ context.Context, ns, name string) (*ssiv1.SecretProviderClass, error) {
	if s.err != nil {
		return nil, s.err
	}
	c := s.classes[ns+"/"+name]
	if c == nil {
		return nil, nil
	}
	return c.DeepCopy(), nil
}

func (s *staticLookup) ServiceAccount(_ context.Context, ns, name string) (*metav1.ObjectMeta, error) {
	return s.accounts[ns+"/"+name], s.err
}

const seedDir = "../../test/testdata/seed"

// withTemplate gives the seed Vault class a template whose text is in a
// ConfigMap of its namespace.
func withTemplate(l *staticLookup) {
	l.classes["production/vault-secrets"].Annotations = map[string]string{
		render.Annotation: "- path: app.env\n  configMapKeyRef: {name: app-templates, key: app.env}\n",
	}
	l.cms = map[string]*corev1.ConfigMap{"production/app-templates": {
		ObjectMeta: metav1.ObjectMeta{Namespace: "production", Name: "app-templates"},
		Data:       map[string]string{"app.env": `TOKEN={{ object "api-token" | shellQuote }}`},
	}}
}

// seedLookup holds the seed guide's classes and service account in an
// enabled "production" namespace.
func seedLookup(t testing.TB) *staticLookup {
	t.Helper()
	l := &staticLookup{
		labels:   map[string]map[string]string{"production": {inject.LabelInjection: inject.LabelValueEnabled}},
		classes:  map[string]*ssiv1.SecretProviderClass{},
		accounts: map[string]*metav1.ObjectMeta{"production/app-service-account": {Name: "app-service-account", Namespace: "production", Annotations: map[string]string{identity.SAAnnotationAWSRoleARN: "arn:aws:iam::1:role/app"}}},
	}
	for _, f := range []string{"aws", "azure", "gcp", "vault"} {
		var c ssiv1.SecretProviderClass
		readYAML(t, seedDir+"/"+f+"-secret-provider.yaml", &c)
		l.classes[c.Namespace+"/"+c.Name] = &c
	}
	return l
}

func readYAML(t testing.TB, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// seedPod is a pod as the seed Deployment's ReplicaSet would create it.
func seedPod(t testing.TB, class string) *corev1.Pod {
	t.Helper()
	var d struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	readYAML(t, seedDir+"/deployment-with-secrets.yaml", &d)
	p := &corev1.Pod{ObjectMeta: d.Spec.Template.ObjectMeta, Spec: d.Spec.Template.Spec}
	p.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
	p.GenerateName, p.Namespace = "app-with-secrets-7d9f8-", "production"
	p.Spec.Volumes[0].CSI.VolumeAttributes[inject.ClassAttribute] = class
	return p
}

func request(t testing.TB, pod *corev1.Pod) admission.Request {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       types.UID("req-1"),
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: pod.Namespace,
		Operation: admissionv1.Create,
		Object:    runtime.RawExtension{Raw: raw},
	}}
}

func newTestHandler(l Lookup, policy admissionregistrationv1.FailurePolicyType) (*admission.Webhook, *Metrics) {
	cfg := inject.DefaultConfig()
	m := NewMetrics(nil)
	return NewHandler(scheme.New(), &Injector{Config: &cfg, Lookup: l, FailurePolicy: policy, Log: logr.Discard()}, m), m
}

// patched applies a response's JSON patch to the request's pod.
func patched(t *testing.T, req admission.Request, resp admission.Response) *corev1.Pod {
	t.Helper()
	ops, err := json.Marshal(resp.Patches)
	if err != nil {
		t.Fatal(err)
	}
	p, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply(req.Object.Raw)
	if err != nil {
		t.Fatalf("patch does not apply: %v", err)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(out, &pod); err != nil {
		t.Fatal(err)
	}
	return &pod
}

// TestHandler drives the admission handler the API server calls: the
// patch controller-runtime computes turns the request's pod into exactly
// the pod inject.Rewrite returns, denials carry the class and problem, and
// every outcome is counted.
func TestHandler(t *testing.T) {
	lookupErr := errors.New("cache not synced")
	tests := map[string]struct {
		pod      *corev1.Pod
		lookup   func(*staticLookup)
		policy   admissionregistrationv1.FailurePolicyType
		allowed  bool
		injected bool
		code     int32
		message  string
		warning  string
		outcome  string
		reason   string
	}{
		"seed aws":   {pod: seedPod(t, "aws-secrets"), allowed: true, injected: true, outcome: OutcomeInjected},
		"seed azure": {pod: seedPod(t, "azure-keyvault"), allowed: true, injected: true, outcome: OutcomeInjected, warning: "Azure workload identity needs a client ID"},
		"seed gcp":   {pod: seedPod(t, "gcp-secrets"), allowed: true, injected: true, outcome: OutcomeInjected},
		"seed vault": {pod: seedPod(t, "vault-secrets"), allowed: true, injected: true, outcome: OutcomeInjected},
		"missing class": {pod: seedPod(t, "missing"), allowed: false, code: http.StatusForbidden, outcome: OutcomeDenied, reason: string(inject.ReasonClassNotFound),
			message: `volume "secrets-store": SecretProviderClass "missing" not found in namespace "production"`},
		"invalid class": {pod: seedPod(t, "aws-secrets"), lookup: func(l *staticLookup) {
			l.classes["production/aws-secrets"].Spec.Parameters["region"] = "us-west-2"
			l.classes["production/aws-secrets"].Spec.Parameters["failoverRegion"] = "us-west-2"
		},
			allowed: false, code: http.StatusForbidden, outcome: OutcomeDenied, reason: string(inject.ReasonClassInvalid),
			message: `SecretProviderClass production/aws-secrets (provider aws): parameters.failoverRegion: "us-west-2" is the same as the primary region`},
		"template from a ConfigMap": {pod: seedPod(t, "vault-secrets"), lookup: withTemplate, allowed: true, injected: true, outcome: OutcomeInjected},
		"template ConfigMap missing": {pod: seedPod(t, "vault-secrets"), lookup: func(l *staticLookup) { withTemplate(l); l.cms = nil },
			allowed: false, code: http.StatusForbidden, outcome: OutcomeDenied, reason: string(inject.ReasonClassInvalid),
			message: `SecretProviderClass production/vault-secrets: annotation secrets-store-injector.io/templates: template "app.env": ConfigMap app-templates has no key app.env`},
		"namespace not enabled": {pod: seedPod(t, "aws-secrets"), lookup: func(l *staticLookup) { l.labels = nil }, allowed: true, outcome: OutcomeSkipped, reason: string(inject.SkipNotEnabled)},
		"opted out": {pod: func() *corev1.Pod {
			p := seedPod(t, "aws-secrets")
			p.Annotations = map[string]string{inject.AnnotationInject: "false"}
			return p
		}(), lookup: func(l *staticLookup) { l.err = lookupErr }, allowed: true, outcome: OutcomeSkipped, reason: string(inject.SkipOptedOut)},
		"lookup fails, Ignore": {pod: seedPod(t, "aws-secrets"), lookup: func(l *staticLookup) { l.err = lookupErr }, policy: admissionregistrationv1.Ignore,
			allowed: true, outcome: OutcomeError, reason: "lookup", warning: "admitted it unchanged (failurePolicy Ignore): read namespace production: cache not synced"},
		"lookup fails, Fail": {pod: seedPod(t, "aws-secrets"), lookup: func(l *staticLookup) { l.err = lookupErr }, policy: admissionregistrationv1.Fail,
			allowed: false, code: http.StatusInternalServerError, outcome: OutcomeError, reason: "lookup", message: "read namespace production: cache not synced"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l := seedLookup(t)
			if tc.lookup != nil {
				tc.lookup(l)
			}
			if tc.policy == "" {
				tc.policy = admissionregistrationv1.Ignore
			}
			h, m := newTestHandler(l, tc.policy)
			req := request(t, tc.pod)
			resp := h.Handle(context.Background(), req)
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v (%+v)", resp.Allowed, tc.allowed, resp.Result)
			}
			if tc.message != "" && (resp.Result == nil || !strings.Contains(resp.Result.Message, tc.message)) {
				t.Errorf("message %+v lacks %q", resp.Result, tc.message)
			}
			if tc.code != 0 && resp.Result.Code != tc.code {
				t.Errorf("code %d, want %d", resp.Result.Code, tc.code)
			}
			if tc.warning != "" && !strings.Contains(strings.Join(resp.Warnings, "\n"), tc.warning) {
				t.Errorf("warnings %q lack %q", resp.Warnings, tc.warning)
			}
			if got := testutil.ToFloat64(m.Admissions.WithLabelValues(tc.outcome, tc.reason)); got != 1 {
				t.Errorf("admissions{outcome=%s,reason=%s} = %v, want 1", tc.outcome, tc.reason, got)
			}
			if got := testutil.CollectAndCount(m.Duration); got != 1 {
				t.Errorf("%d duration series, want 1", got)
			}
			if !tc.injected {
				if len(resp.Patches) > 0 {
					t.Errorf("patched a pod that must stay unchanged: %v", resp.Patches)
				}
				return
			}
			got := patched(t, req, resp)
			cfg := inject.DefaultConfig()
			classes, sa := inject.References(&corev1.PodTemplateSpec{ObjectMeta: tc.pod.ObjectMeta, Spec: tc.pod.Spec})
			in := inject.Input{Namespace: "production", NamespaceLabels: l.labels["production"], Pod: &corev1.PodTemplateSpec{ObjectMeta: tc.pod.ObjectMeta, Spec: tc.pod.Spec}, Classes: map[string]*ssiv1.SecretProviderClass{}, ServiceAccount: l.accounts["production/"+sa]}
			for _, c := range classes {
				in.Classes[c] = l.classes["production/"+c]
			}
			in.ConfigMap = func(name, key string) (string, bool, error) {
				cm := l.cms["production/"+name]
				if cm == nil {
					return "", false, nil
				}
				v, ok := cm.Data[key]
				return v, ok, nil
			}
			want, err := inject.Rewrite(&cfg, in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want.Pod.Spec, got.Spec); diff != "" {
				t.Errorf("patched spec differs from the rewrite (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want.Pod.ObjectMeta, got.ObjectMeta); diff != "" {
				t.Errorf("patched metadata differs from the rewrite (-want +got):\n%s", diff)
			}

			// Reinvocation: the patched pod comes back unchanged.
			again := h.Handle(context.Background(), request(t, got))
			if !again.Allowed || len(again.Patches) > 0 {
				t.Errorf("reinvocation changed the pod: allowed %v, %d patches", again.Allowed, len(again.Patches))
			}
		})
	}
}

func TestSupportsNativeSidecars(t *testing.T) {
	tests := map[string]struct {
		major, minor string
		want         bool
		err          bool
	}{
		"1.28":  {"1", "28", false, false},
		"1.29":  {"1", "29", true, false},
		"1.29+": {"1", "29+", true, false},
		"1.37":  {"1", "37", true, false},
		"2.0":   {"2", "0", true, false},
		"junk":  {"1", "x", false, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := SupportsNativeSidecars(tc.major, tc.minor)
			if got != tc.want || (err != nil) != tc.err {
				t.Errorf("= %v, %v", got, err)
			}
		})
	}
}
