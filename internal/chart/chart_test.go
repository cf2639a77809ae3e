package chart

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/ssinjector/ssi/internal/testing/testenv"
)

func convert[T any](t testing.TB, u *unstructured.Unstructured) *T {
	t.Helper()
	if u == nil {
		t.Fatalf("object missing")
	}
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}

func TestLint(t *testing.T) {
	r := runner(t)
	tests := map[string]Options{
		"defaults":     {},
		"non-default":  nonDefault,
		"tls secret":   {Set: []string{"webhook.tls.mode=secret", "webhook.tls.caBundle=Zm9v"}},
		"no node shim": {Set: []string{"linux.enabled=false", "crds.install=false", "webhook.replicas=1"}},
	}
	for name, o := range tests {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, err := r.Lint(ctx, o)
			if err != nil {
				t.Fatalf("helm lint: %v\n%s", err, out)
			}
			s := string(out)
			if !strings.Contains(s, "1 chart(s) linted, 0 chart(s) failed") {
				t.Errorf("lint summary missing:\n%s", s)
			}
			for _, bad := range []string{"[ERROR]", "[WARNING]"} {
				if strings.Contains(s, bad) {
					t.Errorf("lint reports %s:\n%s", bad, s)
				}
			}
		})
	}
}

func TestSchemaRejectsBadValues(t *testing.T) {
	r := runner(t)
	tests := map[string]struct {
		set    []string
		want   string
		values string
	}{
		"unknown top-level key":     {[]string{"rotationPollIntervall=2m"}, "rotationPollIntervall", ""},
		"unknown nested key":        {[]string{"webhook.replica=3"}, "replica", ""},
		"failure policy":            {[]string{"failurePolicy=Maybe"}, "failurePolicy", ""},
		"native sidecars":           {[]string{"nativeSidecars=yes"}, "nativeSidecars", ""},
		"rotation poll interval":    {[]string{"rotationPollInterval=soon"}, "rotationPollInterval", ""},
		"rotation interval number":  {[]string{"injection.rotationInterval=120"}, "rotationInterval", ""},
		"sync not a bool":           {[]string{"syncSecret.enabled=maybe"}, "/syncSecret/enabled", ""},
		"zero replicas":             {[]string{"webhook.replicas=0"}, "replicas", ""},
		"timeout above 30":          {[]string{"webhook.timeoutSeconds=31"}, "timeoutSeconds", ""},
		"relative kubelet dir":      {[]string{"linux.kubeletRootDir=var/lib/kubelet"}, "kubeletRootDir", ""},
		"agent as root":             {[]string{"injection.agentUID=0"}, "agentUID", ""},
		"null tokenRequests entry":  {nil, "tokenRequests", "tokenRequests: [null]"},
		"short token expiration":    {[]string{"tokenRequests[0].expirationSeconds=60"}, "expirationSeconds", ""},
		"tls mode":                  {[]string{"webhook.tls.mode=self"}, "mode", ""},
		"secret mode without CA":    {[]string{"webhook.tls.mode=secret"}, "caBundle", ""},
		"CA bundle not base64":      {[]string{"webhook.tls.mode=secret", "webhook.tls.caBundle=-----BEGIN"}, "caBundle", ""},
		"bad quantity":              {[]string{"agent.resources.memoryLimit=lots"}, "memoryLimit", ""},
		"bad pull policy":           {[]string{"agent.image.pullPolicy=Sometimes"}, "pullPolicy", ""},
		"bad namespace exclusion":   {[]string{"injection.excludeNamespaces[0]=Not_A_Namespace"}, "excludeNamespaces", ""},
		"bad issuer kind":           {[]string{"webhook.tls.certManager.issuerRef.kind=Vault", "webhook.tls.certManager.issuerRef.name=x"}, "kind", ""},
		"metrics address":           {[]string{"linux.metricsAddr=8095"}, "metricsAddr", ""},
		"shim backend host a URL":   {[]string{"linux.allowedBackendHosts[0]=https://vault.example.com"}, "allowedBackendHosts", ""},
		"log verbosity not integer": {[]string{"logVerbosity=high"}, "logVerbosity", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			o := Options{Set: tc.set}
			if tc.values != "" {
				o.Values = []string{tc.values}
			}
			_, err := r.Template(ctx, o)
			if err == nil {
				t.Fatalf("--set %v %s rendered; want a schema error", tc.set, tc.values)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not name %q:\n%v", tc.want, err)
			}
		})
	}
}

// podSpecs returns the pod templates of the workloads, keyed kind/name.
func podSpecs(t testing.TB, objs []*unstructured.Unstructured) map[string]corev1.PodSpec {
	t.Helper()
	out := map[string]corev1.PodSpec{}
	for _, u := range Find(objs, "Deployment") {
		out["Deployment/"+u.GetName()] = convert[appsv1.Deployment](t, u).Spec.Template.Spec
	}
	for _, u := range Find(objs, "DaemonSet") {
		out["DaemonSet/"+u.GetName()] = convert[appsv1.DaemonSet](t, u).Spec.Template.Spec
	}
	for _, k := range []string{"StatefulSet", "Job", "CronJob", "Pod", "ReplicaSet"} {
		if len(Find(objs, k)) > 0 {
			t.Errorf("unexpected %s in the chart", k)
		}
	}
	return out
}

func TestSecurityProperties(t *testing.T) {
	r := runner(t)
	// want: the webhook Deployment and the node DaemonSet, and the sync
	// controller's Deployment when syncSecret.enabled (non-default).
	for name, tc := range map[string]struct {
		o    Options
		want int
	}{"defaults": {Options{}, 2}, "non-default": {nonDefault, 3}} {
		o := tc.o
		t.Run(name, func(t *testing.T) {
			objs := render(t, r, o)
			specs := podSpecs(t, objs)
			if len(specs) != tc.want {
				t.Fatalf("workloads = %v, want %d: the webhook Deployment, the node DaemonSet (and with sync, the sync Deployment)", keys(specs), tc.want)
			}
			var privileged []string
			for w, spec := range specs {
				if spec.HostNetwork || spec.HostPID || spec.HostIPC {
					t.Errorf("%s uses host namespaces", w)
				}
				if spec.SecurityContext == nil || spec.SecurityContext.SeccompProfile == nil || spec.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Errorf("%s: pod seccomp profile is not RuntimeDefault", w)
				}
				all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
				for _, c := range all {
					id := w + "/" + c.Name
					sc := c.SecurityContext
					if sc == nil {
						t.Errorf("%s: no securityContext", id)
						continue
					}
					if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
						t.Errorf("%s: root filesystem is writable", id)
					}
					if sc.Privileged != nil && *sc.Privileged {
						privileged = append(privileged, id)
						continue
					}
					nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) ||
						(sc.RunAsNonRoot == nil && spec.SecurityContext.RunAsNonRoot != nil && *spec.SecurityContext.RunAsNonRoot)
					if !nonRoot {
						t.Errorf("%s: may run as root", id)
					}
					if uid := effectiveUID(spec, c); uid == nil || *uid == 0 {
						t.Errorf("%s: runs as uid %v", id, uid)
					}
					if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
						t.Errorf("%s: privilege escalation allowed", id)
					}
					if sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
						t.Errorf("%s: capabilities %+v, want drop ALL and add none", id, sc.Capabilities)
					}
					for _, m := range c.VolumeMounts {
						if m.MountPropagation != nil && *m.MountPropagation != corev1.MountPropagationNone {
							t.Errorf("%s: mount %s propagates", id, m.Name)
						}
					}
				}
				if w != "DaemonSet/ssi-node" {
					for _, v := range spec.Volumes {
						if v.HostPath != nil {
							t.Errorf("%s: hostPath volume %s", w, v.Name)
						}
					}
				}
			}
			if want := []string{"DaemonSet/ssi-node/csi"}; !reflect.DeepEqual(privileged, want) {
				t.Errorf("privileged containers = %v, want %v", privileged, want)
			}
			shim := specs["DaemonSet/ssi-node"]
			var bidirectional []string
			for _, m := range shim.Containers[0].VolumeMounts {
				if m.MountPropagation != nil && *m.MountPropagation == corev1.MountPropagationBidirectional {
					bidirectional = append(bidirectional, m.MountPath)
				}
			}
			root := "/var/lib/kubelet"
			if o.Namespace != "" {
				root = "/var/data/kubelet"
			}
			if want := []string{root + "/pods"}; !reflect.DeepEqual(bidirectional, want) {
				t.Errorf("bidirectional mounts = %v, want %v", bidirectional, want)
			}
			for _, v := range shim.Volumes {
				if v.HostPath == nil {
					t.Errorf("shim volume %s is not a hostPath", v.Name)
				}
			}
		})
	}
}

func effectiveUID(spec corev1.PodSpec, c corev1.Container) *int64 {
	if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
		return c.SecurityContext.RunAsUser
	}
	if spec.SecurityContext != nil {
		return spec.SecurityContext.RunAsUser
	}
	return nil
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// grant is one (scope, apiGroup, resource, resourceName) → verbs entry.
type grant struct {
	Scope, Group, Resource, Name string
}

// grants flattens the rules bound to each service account of the chart:
// "namespace/name" → grant → sorted verbs.
func grants(t testing.TB, objs []*unstructured.Unstructured) map[string]map[grant][]string {
	t.Helper()
	clusterRoles := map[string][]rbacv1.PolicyRule{}
	for _, u := range Find(objs, "ClusterRole") {
		clusterRoles[u.GetName()] = convert[rbacv1.ClusterRole](t, u).Rules
	}
	roles := map[string][]rbacv1.PolicyRule{}
	for _, u := range Find(objs, "Role") {
		roles[u.GetNamespace()+"/"+u.GetName()] = convert[rbacv1.Role](t, u).Rules
	}
	out := map[string]map[grant][]string{}
	add := func(subjects []rbacv1.Subject, scope string, rules []rbacv1.PolicyRule) {
		for _, s := range subjects {
			if s.Kind != rbacv1.ServiceAccountKind {
				t.Errorf("binding to %s %s", s.Kind, s.Name)
				continue
			}
			sa := s.Namespace + "/" + s.Name
			if out[sa] == nil {
				out[sa] = map[grant][]string{}
			}
			for _, r := range rules {
				names := r.ResourceNames
				if len(names) == 0 {
					names = []string{""}
				}
				for _, g := range r.APIGroups {
					for _, res := range r.Resources {
						for _, n := range names {
							k := grant{scope, g, res, n}
							out[sa][k] = sortedUnion(out[sa][k], r.Verbs)
						}
					}
				}
			}
		}
	}
	for _, u := range Find(objs, "ClusterRoleBinding") {
		b := convert[rbacv1.ClusterRoleBinding](t, u)
		rules, ok := clusterRoles[b.RoleRef.Name]
		if !ok {
			t.Errorf("ClusterRoleBinding %s refers to a ClusterRole the chart does not define", b.Name)
		}
		add(b.Subjects, "cluster", rules)
	}
	for _, u := range Find(objs, "RoleBinding") {
		b := convert[rbacv1.RoleBinding](t, u)
		if b.RoleRef.Kind != "Role" {
			t.Errorf("RoleBinding %s binds a %s", b.Name, b.RoleRef.Kind)
		}
		rules, ok := roles[b.Namespace+"/"+b.RoleRef.Name]
		if !ok {
			t.Errorf("RoleBinding %s refers to a Role the chart does not define", b.Name)
		}
		add(b.Subjects, b.Namespace, rules)
	}
	return out
}

func sortedUnion(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range append(append([]string{}, a...), b...) {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

func TestRBACIsLeastPrivilege(t *testing.T) {
	r := runner(t)
	read := []string{"get", "list", "watch"}
	webhook := map[grant][]string{
		{"cluster", "", "namespaces", ""}:                                      read,
		{"cluster", "", "serviceaccounts", ""}:                                 read,
		{"cluster", "", "configmaps", ""}:                                      {"get"},
		{"cluster", "secrets-store.csi.x-k8s.io", "secretproviderclasses", ""}: read,
	}
	node := map[grant][]string{
		{"cluster", "secrets-store.csi.x-k8s.io", "secretproviderclasses", ""}:          read,
		{"cluster", "secrets-store.csi.x-k8s.io", "secretproviderclasspodstatuses", ""}: {"create", "get", "update"},
		{"cluster", "", "serviceaccounts", ""}:                                          {"get"},
		{"cluster", "", "pods", ""}:                                                     {"get"},
		{"cluster", "", "configmaps", ""}:                                               {"get"},
		{"cluster", "", "events", ""}:                                                   {"create", "patch"},
		// Tokens for a Vault class's audience kubelet sent none for, as
		// vault-csi-provider requests them.
		{"cluster", "", "serviceaccounts/token", ""}: {"create"},
	}
	// The sync controller's own service account; the webhook's keeps no
	// Secret or token rights with sync on.
	syncer := func(ns string) map[grant][]string {
		return map[grant][]string{
			{"cluster", "", "pods", ""}:                                            {"list", "watch"},
			{"cluster", "", "serviceaccounts", ""}:                                 {"list", "watch"},
			{"cluster", "secrets-store.csi.x-k8s.io", "secretproviderclasses", ""}: {"list", "watch"},
			{"cluster", "", "serviceaccounts/token", ""}:                           {"create"},
			{"cluster", "", "secrets", ""}:                                         {"create", "delete", "get", "list", "update", "watch"},
			{"cluster", "", "events", ""}:                                          {"create", "patch"},
			{"cluster", "", "configmaps", ""}:                                      {"get"},
			{ns, "coordination.k8s.io", "leases", ""}:                              {"create"},
			{ns, "coordination.k8s.io", "leases", "ssi-sync"}:                      {"get", "update"},
		}
	}
	tests := map[string]struct {
		o    Options
		want map[string]map[grant][]string
	}{
		"defaults": {Options{}, map[string]map[grant][]string{
			"secrets-store-injector/ssi-webhook": webhook,
			"secrets-store-injector/ssi-node":    node,
		}},
		"sync enabled": {Options{Namespace: "platform", Set: []string{"syncSecret.enabled=true"}}, map[string]map[grant][]string{
			"platform/ssi-webhook": webhook,
			"platform/ssi-sync":    syncer("platform"),
			"platform/ssi-node":    node,
		}},
		"no node shim": {Options{Set: []string{"linux.enabled=false"}}, map[string]map[grant][]string{
			"secrets-store-injector/ssi-webhook": webhook,
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			objs := render(t, r, tc.o)
			got := grants(t, objs)
			if !reflect.DeepEqual(got, tc.want) {
				for sa := range union(got, tc.want) {
					for g := range unionG(got[sa], tc.want[sa]) {
						if !reflect.DeepEqual(got[sa][g], tc.want[sa][g]) {
							t.Errorf("%s %+v: verbs %v, want %v", sa, g, got[sa][g], tc.want[sa][g])
						}
					}
				}
			}
			for sa, gs := range got {
				for g, verbs := range gs {
					if g.Group == "*" || g.Resource == "*" || contains(verbs, "*") {
						t.Errorf("%s: wildcard in %+v %v", sa, g, verbs)
					}
					// The node shim requests pod-bound tokens for Vault
					// classes (vault-csi-provider's rule); nothing else but
					// the sync controller mints.
					if (g.Resource == "secrets" || g.Resource == "serviceaccounts/token") && !strings.HasSuffix(sa, "/ssi-sync") &&
						(g.Resource != "serviceaccounts/token" || !strings.HasSuffix(sa, "/ssi-node")) {
						t.Errorf("%s has %v on %s", sa, verbs, g.Resource)
					}
					if g.Resource == "secrets" && name != "sync enabled" {
						t.Errorf("%s reads Secrets without syncSecret.enabled", sa)
					}
				}
			}
			// Every workload runs under a service account the chart binds.
			for w, spec := range podSpecs(t, objs) {
				ns := "secrets-store-injector"
				if tc.o.Namespace != "" {
					ns = tc.o.Namespace
				}
				if _, ok := got[ns+"/"+spec.ServiceAccountName]; !ok {
					t.Errorf("%s runs as %s, which has no binding", w, spec.ServiceAccountName)
				}
			}
		})
	}
}

func union[V any](a, b map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func unionG(a, b map[grant][]string) map[grant]bool {
	out := map[grant]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestWebhookTLS(t *testing.T) {
	r := runner(t)
	t.Run("helm generates a CA and a serving certificate the caBundle trusts", func(t *testing.T) {
		objs := render(t, r, Options{Namespace: "tls-ns"})
		sec := convert[corev1.Secret](t, Get(objs, "Secret", "ssi-webhook-tls"))
		if sec.Type != corev1.SecretTypeTLS || sec.Namespace != "tls-ns" {
			t.Errorf("secret type %s namespace %s", sec.Type, sec.Namespace)
		}
		mwc := convert[admissionregistrationv1.MutatingWebhookConfiguration](t, Get(objs, "MutatingWebhookConfiguration", "secrets-store-injector"))
		caBundle := mwc.Webhooks[0].ClientConfig.CABundle
		if string(caBundle) != string(sec.Data["ca.crt"]) {
			t.Fatalf("caBundle is not the Secret's ca.crt")
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caBundle) {
			t.Fatal("caBundle holds no certificate")
		}
		blk, _ := pem.Decode(sec.Data["tls.crt"])
		leaf, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		// The API server calls https://ssi-webhook.tls-ns.svc:443.
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "ssi-webhook.tls-ns.svc", Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("serving certificate does not verify for ssi-webhook.tls-ns.svc: %v", err)
		}
		if d := time.Until(leaf.NotAfter); d < 3600*24*time.Hour {
			t.Errorf("serving certificate expires in %s, want about 10 years", d)
		}
		if blk, _ := pem.Decode(sec.Data["tls.key"]); blk == nil || !strings.Contains(blk.Type, "PRIVATE KEY") {
			t.Errorf("tls.key is not a PEM private key")
		}
		// The server reads tls.crt and tls.key only.
		dep := convert[appsv1.Deployment](t, Get(objs, "Deployment", "ssi-webhook"))
		for _, v := range dep.Spec.Template.Spec.Volumes {
			if v.Name == "tls" {
				if v.Secret.SecretName != "ssi-webhook-tls" || len(v.Secret.Items) != 2 {
					t.Errorf("tls volume %+v", v.Secret)
				}
			}
		}
	})
	t.Run("two renders make two CAs (lookup keeps them on a real cluster)", func(t *testing.T) {
		a := convert[corev1.Secret](t, Get(render(t, r, Options{}), "Secret", "ssi-webhook-tls"))
		b := convert[corev1.Secret](t, Get(render(t, r, Options{}), "Secret", "ssi-webhook-tls"))
		if string(a.Data["ca.crt"]) == string(b.Data["ca.crt"]) {
			t.Errorf("helm template produced the same CA twice; genCA is not in use")
		}
	})
	t.Run("cert-manager", func(t *testing.T) {
		objs := render(t, r, Options{Namespace: "cm", Set: []string{"webhook.tls.mode=cert-manager"}})
		if Get(objs, "Secret", "ssi-webhook-tls") != nil {
			t.Error("cert-manager mode renders the TLS Secret")
		}
		mwc := convert[admissionregistrationv1.MutatingWebhookConfiguration](t, Get(objs, "MutatingWebhookConfiguration", "secrets-store-injector"))
		if got := mwc.Annotations["cert-manager.io/inject-ca-from"]; got != "cm/ssi-webhook" {
			t.Errorf("inject-ca-from = %q", got)
		}
		if len(mwc.Webhooks[0].ClientConfig.CABundle) != 0 {
			t.Error("caBundle set; cert-manager's CA injector owns it")
		}
		cert := Get(objs, "Certificate", "ssi-webhook")
		if cert == nil {
			t.Fatal("no Certificate ssi-webhook")
		}
		if s, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName"); s != "ssi-webhook-tls" {
			t.Errorf("Certificate secretName %q", s)
		}
		dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
		if !contains(dns, "ssi-webhook.cm.svc") {
			t.Errorf("Certificate dnsNames %v", dns)
		}
		ref, _, _ := unstructured.NestedStringMap(cert.Object, "spec", "issuerRef")
		if ref["name"] != "ssi-webhook-ca" || ref["kind"] != "Issuer" {
			t.Errorf("issuerRef %v, want the chart's CA Issuer", ref)
		}
		if Get(objs, "Issuer", "ssi-webhook-ca") == nil || Get(objs, "Issuer", "ssi-webhook-selfsigned") == nil || Get(objs, "Certificate", "ssi-webhook-ca") == nil {
			t.Error("self-signed CA chain missing")
		}
	})
	t.Run("cert-manager with an existing issuer", func(t *testing.T) {
		objs := render(t, r, nonDefault)
		if len(Find(objs, "Issuer")) != 0 {
			t.Error("Issuers rendered though issuerRef is set")
		}
		ref, _, _ := unstructured.NestedStringMap(Get(objs, "Certificate", "ssi-webhook").Object, "spec", "issuerRef")
		if !reflect.DeepEqual(ref, map[string]string{"kind": "ClusterIssuer", "name": "corp-ca"}) {
			t.Errorf("issuerRef %v", ref)
		}
	})
	t.Run("secret", func(t *testing.T) {
		ca := base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\n"))
		objs := render(t, r, Options{Set: []string{"webhook.tls.mode=secret", "webhook.tls.caBundle=" + ca, "webhook.tls.secretName=my-tls"}})
		if len(Find(objs, "Secret"))+len(Find(objs, "Certificate")) != 0 {
			t.Error("secret mode renders certificate objects")
		}
		mwc := convert[admissionregistrationv1.MutatingWebhookConfiguration](t, Get(objs, "MutatingWebhookConfiguration", "secrets-store-injector"))
		if string(mwc.Webhooks[0].ClientConfig.CABundle) != "-----BEGIN CERTIFICATE-----\n" {
			t.Errorf("caBundle %q", mwc.Webhooks[0].ClientConfig.CABundle)
		}
		dep := convert[appsv1.Deployment](t, Get(objs, "Deployment", "ssi-webhook"))
		if got := dep.Spec.Template.Spec.Volumes[0].Secret.SecretName; got != "my-tls" {
			t.Errorf("webhook mounts %q", got)
		}
	})
}

func TestMutatingWebhookConfiguration(t *testing.T) {
	r := runner(t)
	objs := render(t, r, nonDefault)
	mwc := convert[admissionregistrationv1.MutatingWebhookConfiguration](t, Get(objs, "MutatingWebhookConfiguration", "secrets-store-injector"))
	if len(mwc.Webhooks) != 1 {
		t.Fatalf("%d webhooks", len(mwc.Webhooks))
	}
	w := mwc.Webhooks[0]
	if *w.FailurePolicy != admissionregistrationv1.Fail || *w.SideEffects != admissionregistrationv1.SideEffectClassNone ||
		*w.TimeoutSeconds != 5 || *w.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
		t.Errorf("policy fields: failure %s sideEffects %s timeout %d reinvocation %s", *w.FailurePolicy, *w.SideEffects, *w.TimeoutSeconds, *w.ReinvocationPolicy)
	}
	if s := w.ClientConfig.Service; s.Name != "ssi-webhook" || s.Namespace != "platform-secrets" || *s.Path != "/mutate-v1-pod" || *s.Port != 443 {
		t.Errorf("service %+v", s)
	}
	excluded := w.NamespaceSelector.MatchExpressions[0]
	if excluded.Key != "kubernetes.io/metadata.name" || !reflect.DeepEqual(excluded.Values, []string{"kube-system", "platform-secrets", "legacy", "batch"}) {
		t.Errorf("excluded namespaces %+v", excluded)
	}
	var names []string
	for _, c := range w.MatchConditions {
		names = append(names, c.Name)
	}
	if !reflect.DeepEqual(names, []string{"not-injected", "not-opted-out", "uses-secrets-store"}) {
		t.Errorf("matchConditions %v", names)
	}
	// The webhook is told the same policy and its own namespace.
	args := convert[appsv1.Deployment](t, Get(objs, "Deployment", "ssi-webhook")).Spec.Template.Spec.Containers[0].Args
	for _, want := range []string{"--failure-policy=Fail", "--namespace=platform-secrets", "--native-sidecars=false", "--exclude-namespace=legacy",
		"--exclude-namespace=batch", "--agent-image=registry.example/ssi-agent:1.2.3", "--rotation-interval=30s", "--min-rotation-interval=10s", "--agent-cpu-limit=200m",
		"--log-level=debug", "--log-format=text"} {
		if !contains(args, want) {
			t.Errorf("webhook args lack %s: %v", want, args)
		}
	}
	for _, a := range args {
		if strings.HasPrefix(a, "--sync-secrets") || strings.HasPrefix(a, "--rotation-poll-interval") || strings.HasPrefix(a, "--leader-elect") {
			t.Errorf("the webhook is given sync flag %s; the sync controller is its own Deployment", a)
		}
	}
}

// With syncSecret.enabled the sync controller is a Deployment of its own,
// under a service account of its own, given every sync value.
func TestSyncDeployment(t *testing.T) {
	r := runner(t)
	if Get(render(t, r, Options{}), "Deployment", "ssi-sync") != nil {
		t.Error("sync Deployment rendered without syncSecret.enabled")
	}
	objs := render(t, r, nonDefault)
	if Get(objs, "ServiceAccount", "ssi-sync") == nil {
		t.Error("no ServiceAccount ssi-sync")
	}
	dep := convert[appsv1.Deployment](t, Get(objs, "Deployment", "ssi-sync"))
	if *dep.Spec.Replicas != 2 || dep.Namespace != "platform-secrets" {
		t.Errorf("replicas %d namespace %s", *dep.Spec.Replicas, dep.Namespace)
	}
	spec := dep.Spec.Template.Spec
	if spec.ServiceAccountName != "ssi-sync" || len(spec.Containers) != 1 {
		t.Fatalf("service account %q, %d containers", spec.ServiceAccountName, len(spec.Containers))
	}
	c := spec.Containers[0]
	want := []string{"sync", "--namespace=platform-secrets", "--rotation-poll-interval=120s", "--leader-elect=true",
		"--max-object-bytes=2Mi", "--max-volume-bytes=8388608", "--class-files-dir=/etc/ssi/class-files",
		"--allow-process-identity=true", "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081",
		"--allowed-backend-hosts=*.vault.example.com,10.20.0.0/16", "--allow-protected-namespace=kube-system",
		"--api-server-audiences=https://issuer.example,kubernetes.default.svc",
		"--token-request=vault", "--token-request=my-project.svc.id.goog",
		"--log-level=debug", "--log-format=text"}
	if !reflect.DeepEqual(c.Args, want) {
		t.Errorf("args\n got %q\nwant %q", c.Args, want)
	}
	if c.Image != "registry.example/ssi-webhook:1.2.3" || c.LivenessProbe == nil || c.ReadinessProbe == nil {
		t.Errorf("image %s, probes %v %v", c.Image, c.LivenessProbe, c.ReadinessProbe)
	}
	if c.Resources.Limits.Memory().String() != "300Mi" || c.Resources.Requests.Cpu().String() != "30m" {
		t.Errorf("resources %+v", c.Resources)
	}
	// One replica: no election.
	one := convert[appsv1.Deployment](t, Get(render(t, r, Options{Set: []string{"syncSecret.enabled=true"}}), "Deployment", "ssi-sync"))
	if a := one.Spec.Template.Spec.Containers[0].Args; !contains(a, "--leader-elect=false") || contains(a, "--allow-protected-namespace=kube-system") {
		t.Errorf("default args %q", a)
	}
}

func TestWebhookDeployment(t *testing.T) {
	r := runner(t)
	objs := render(t, r, Options{})
	dep := convert[appsv1.Deployment](t, Get(objs, "Deployment", "ssi-webhook"))
	if *dep.Spec.Replicas != 2 {
		t.Errorf("replicas %d", *dep.Spec.Replicas)
	}
	spec := dep.Spec.Template.Spec
	if len(spec.TopologySpreadConstraints) != 2 {
		t.Errorf("topology spread %+v", spec.TopologySpreadConstraints)
	}
	c := spec.Containers[0]
	if c.StartupProbe == nil || c.LivenessProbe == nil || c.ReadinessProbe == nil {
		t.Error("webhook probes missing")
	}
	if Get(objs, "Deployment", "ssi-sync") != nil {
		t.Error("sync controller enabled by default")
	}
	pdb := Get(objs, "PodDisruptionBudget", "ssi-webhook")
	if pdb == nil {
		t.Fatal("no PodDisruptionBudget")
	}
	if v, _, _ := unstructured.NestedInt64(pdb.Object, "spec", "minAvailable"); v != 1 {
		t.Errorf("minAvailable %d", v)
	}
	if one := render(t, r, Options{Set: []string{"webhook.replicas=1"}}); Get(one, "PodDisruptionBudget", "ssi-webhook") != nil {
		t.Error("a PodDisruptionBudget with one replica blocks node drains")
	}
	// Services: webhook and metrics ports on the webhook pods.
	svc := convert[corev1.Service](t, Get(objs, "Service", "ssi-webhook"))
	if svc.Spec.Ports[0].Port != 443 || svc.Spec.Ports[0].TargetPort.StrVal != "webhook" {
		t.Errorf("service ports %+v", svc.Spec.Ports)
	}
}

// TestTokenRequestsDriveWebhookAndSync: the tokenRequests value is the
// CSIDriver's tokenRequests and the webhook's and the sync controller's
// --token-request flags, so all three decide a Vault class's audience
// from the same list (identity.VaultAudience).
func TestTokenRequestsDriveWebhookAndSync(t *testing.T) {
	r := runner(t)
	tests := map[string]struct {
		o    Options
		want []string
	}{
		"defaults":    {Options{Set: []string{"syncSecret.enabled=true"}}, []string{"sts.amazonaws.com", "pods.eks.amazonaws.com", "api://AzureADTokenExchange", ""}},
		"non-default": {nonDefault, []string{"vault", "my-project.svc.id.goog"}},
		"upstream":    {Options{Values: []string{"tokenRequests: [{audience: vault}]\nsyncSecret: {enabled: true}\n"}}, []string{"vault"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			objs := render(t, r, tc.o)
			d := convert[storagev1.CSIDriver](t, Get(objs, "CSIDriver", "secrets-store.csi.k8s.io"))
			var got []string
			for _, tr := range d.Spec.TokenRequests {
				got = append(got, tr.Audience)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("CSIDriver tokenRequests %q, want %q", got, tc.want)
			}
			for _, dep := range []string{"ssi-webhook", "ssi-sync"} {
				c := convert[appsv1.Deployment](t, Get(objs, "Deployment", dep)).Spec.Template.Spec.Containers[0]
				var flags []string
				for _, a := range c.Args {
					if v, ok := strings.CutPrefix(a, "--token-request="); ok {
						flags = append(flags, v)
					}
				}
				if !reflect.DeepEqual(flags, tc.want) {
					t.Errorf("%s --token-request %q, want %q", dep, flags, tc.want)
				}
			}
		})
	}
}

func TestNodeShim(t *testing.T) {
	r := runner(t)
	tests := map[string]struct {
		o                 Options
		root              string
		republish, inSecr bool
		audiences         []string
		caps              []string // size caps and class files arguments
		hosts             string   // the --allowed-backend-hosts argument; "" for none
		logs              []string // the logging arguments, from logVerbosity and logFormatJSON
	}{
		"defaults": {Options{}, "/var/lib/kubelet", true, false,
			[]string{"sts.amazonaws.com", "pods.eks.amazonaws.com", "api://AzureADTokenExchange", ""},
			[]string{"--max-object-bytes=1Mi", "--max-volume-bytes=4Mi"}, "",
			[]string{"--log-level=info", "--log-format=json"}},
		"non-default": {nonDefault, "/var/data/kubelet", false, true, []string{"vault", "my-project.svc.id.goog"},
			[]string{"--max-object-bytes=2Mi", "--max-volume-bytes=8388608", "--class-files-dir=/etc/ssi/class-files"},
			"--allowed-backend-hosts=vault.example.com,10.30.0.0/16",
			[]string{"--log-level=debug", "--log-format=text"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			objs := render(t, r, tc.o)
			d := convert[storagev1.CSIDriver](t, Get(objs, "CSIDriver", "secrets-store.csi.k8s.io"))
			if *d.Spec.AttachRequired || !*d.Spec.PodInfoOnMount || *d.Spec.RequiresRepublish != tc.republish ||
				!reflect.DeepEqual(d.Spec.VolumeLifecycleModes, []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecycleEphemeral}) {
				t.Errorf("CSIDriver spec %+v", d.Spec)
			}
			var auds []string
			for _, tr := range d.Spec.TokenRequests {
				auds = append(auds, tr.Audience)
			}
			if !reflect.DeepEqual(auds, tc.audiences) {
				t.Errorf("tokenRequests %v, want %v", auds, tc.audiences)
			}
			if got := d.Spec.ServiceAccountTokenInSecrets != nil && *d.Spec.ServiceAccountTokenInSecrets; got != tc.inSecr {
				t.Errorf("serviceAccountTokenInSecrets %v, want %v", got, tc.inSecr)
			}
			ds := convert[appsv1.DaemonSet](t, Get(objs, "DaemonSet", "ssi-node"))
			c := ds.Spec.Template.Spec.Containers[0]
			for _, want := range []string{
				"--endpoint=unix://" + tc.root + "/plugins/csi-secrets-store/csi.sock",
				"--kubelet-root-dir=" + tc.root,
				"--plugins-registry-dir=" + tc.root + "/plugins_registry",
				"--nodeid=$(SSI_NODE_NAME)",
			} {
				if !contains(c.Args, want) {
					t.Errorf("shim args lack %s: %v", want, c.Args)
				}
			}
			for _, want := range tc.caps {
				if !contains(c.Args, want) {
					t.Errorf("shim args lack %s: %v", want, c.Args)
				}
			}
			// The flags every command has, not the deprecated -v and
			// --log-format-json the shim still accepts.
			var logs []string
			for _, a := range c.Args {
				if strings.HasPrefix(a, "--log") || strings.HasPrefix(a, "--v=") || strings.HasPrefix(a, "-v") {
					logs = append(logs, a)
				}
			}
			if !reflect.DeepEqual(logs, tc.logs) {
				t.Errorf("shim logging arguments %q, want %q", logs, tc.logs)
			}
			var hosts []string
			for _, a := range c.Args {
				if strings.HasPrefix(a, "--allowed-backend-hosts") {
					hosts = append(hosts, a)
				}
			}
			if want := []string{tc.hosts}; (tc.hosts == "" && len(hosts) != 0) || (tc.hosts != "" && !reflect.DeepEqual(hosts, want)) {
				t.Errorf("shim backend hosts arguments %q, want %q", hosts, tc.hosts)
			}
			if dir := "/etc/ssi/class-files"; contains(tc.caps, "--class-files-dir="+dir) {
				found := false
				for _, m := range c.VolumeMounts {
					found = found || (m.MountPath == dir && m.ReadOnly)
				}
				if !found {
					t.Errorf("the class files directory %s is not mounted read-only: %+v", dir, c.VolumeMounts)
				}
			}
			mounts := map[string]string{}
			for _, m := range c.VolumeMounts {
				mounts[m.Name] = m.MountPath
			}
			for _, v := range ds.Spec.Template.Spec.Volumes {
				if v.HostPath.Path != mounts[v.Name] {
					t.Errorf("hostPath %s mounted at %s: the shim and kubelet must see the same paths", v.HostPath.Path, mounts[v.Name])
				}
			}
			if ds.Spec.Template.Spec.NodeSelector["kubernetes.io/os"] != "linux" {
				t.Error("shim not restricted to Linux nodes")
			}
		})
	}
	if objs := render(t, r, Options{Set: []string{"linux.enabled=false"}}); len(Find(objs, "DaemonSet"))+len(Find(objs, "CSIDriver")) != 0 {
		t.Error("linux.enabled=false still installs the shim or the CSIDriver")
	}
}

func TestCRDs(t *testing.T) {
	r := runner(t)
	objs := render(t, r, Options{})
	crds := Find(objs, "CustomResourceDefinition")
	if len(crds) != 2 {
		t.Fatalf("%d CRDs", len(crds))
	}
	for _, c := range crds {
		want, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "manifests", "crds", "secrets-store.csi.x-k8s.io_"+strings.TrimSuffix(c.GetName(), ".secrets-store.csi.x-k8s.io")+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		gen, err := Split(want)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c.Object["spec"], gen[0].Object["spec"]) {
			t.Errorf("CRD %s differs from manifests/crds", c.GetName())
		}
		if c.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
			t.Errorf("CRD %s is deleted on uninstall", c.GetName())
		}
	}
	if objs := render(t, r, Options{Set: []string{"crds.install=false"}}); len(Find(objs, "CustomResourceDefinition")) != 0 {
		t.Error("crds.install=false renders CRDs")
	}
}

// TestManifestsUpToDate is `make verify`'s check of manifests/ inside `make
// test`.
func TestManifestsUpToDate(t *testing.T) {
	r := runner(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, err := r.Manifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "manifests", ManifestsFile))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("manifests/%s is stale: run make manifests", ManifestsFile)
	}
}

func TestRefusesOldKubernetes(t *testing.T) {
	r := runner(t)
	tests := map[string]struct {
		version string
		ok      bool
	}{
		"1.29":              {"1.29.9", false},
		"1.30":              {"1.30.0", true},
		"1.37":              {"1.37.2", true},
		"development build": {"0.0.0-master", true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := r.Template(ctx, Options{KubeVersion: tc.version})
			if tc.ok && err != nil {
				t.Fatalf("Kubernetes %s refused: %v", tc.version, err)
			}
			if !tc.ok && (err == nil || !strings.Contains(err.Error(), "needs Kubernetes 1.30 or later")) {
				t.Fatalf("Kubernetes %s: err %v, want a refusal naming 1.30", tc.version, err)
			}
		})
	}
}

// TestValuesDocumented checks that the chart README names every value of
// values.yaml (maps are walked; lists and empty maps are leaves).
func TestValuesDocumented(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(), Path)
	vb, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := sigsyaml.Unmarshal(vb, &values); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var leaves []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		m, ok := v.(map[string]any)
		if !ok || len(m) == 0 || strings.HasSuffix(prefix, ".resources") && prefix != "agent.resources" || prefix == "linux.updateStrategy" {
			leaves = append(leaves, prefix)
			return
		}
		for k, sub := range m {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			walk(p, sub)
		}
	}
	walk("", values)
	if len(leaves) < 40 {
		t.Fatalf("only %d values found: %v", len(leaves), leaves)
	}
	for _, k := range leaves {
		if !strings.Contains(string(readme), "`"+k+"`") {
			t.Errorf("value %s is not documented in %s/README.md", k, Path)
		}
	}
}
