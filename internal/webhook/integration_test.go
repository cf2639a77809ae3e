package webhook

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/render"
	"github.com/ssinjector/ssi/internal/scheme"
)

// admissions sums the admission counter over all outcomes.
func admissions() float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() { DefaultMetrics().Admissions.Collect(ch); close(ch) }()
	var sum float64
	for m := range ch {
		var d dto.Metric
		_ = m.Write(&d)
		sum += d.GetCounter().GetValue()
	}
	return sum
}

func agentOf(t *testing.T, pod *corev1.Pod) (*corev1.Container, *agentconfig.Config) {
	t.Helper()
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.Name == inject.AgentContainerName {
			for _, e := range c.Env {
				if e.Name == agentconfig.EnvConfig {
					cfg, err := agentconfig.Decode(e.Value)
					if err != nil {
						t.Fatalf("stored agent configuration: %v", err)
					}
					return c, cfg
				}
			}
		}
	}
	t.Fatalf("stored pod has no agent; init containers: %+v", pod.Spec.InitContainers)
	return nil, nil
}

// TestIntegration runs the real webhook behind the generated
// MutatingWebhookConfiguration on a real kube-apiserver.
func TestIntegration(t *testing.T) {
	h := startHarness(t)
	ctx := context.Background()
	c := h.env.Client
	ns := h.seedNamespace(t, map[string]string{inject.LabelInjection: inject.LabelValueEnabled})

	audiences := map[string][]string{
		"aws-secrets":    {identity.AudienceAWSIRSA},
		"azure-keyvault": {identity.AudienceAzureWorkloadIdentity},
		"gcp-secrets":    nil,
		"vault-secrets":  {""},
	}
	stored := map[string]*corev1.Pod{}
	// Let the caches see the objects just created, then count: admitting
	// pods whose namespace, classes and service account exist reads only
	// the informer caches.
	time.Sleep(time.Second)
	callsBefore := h.apiCalls.Load()
	t.Run("seed deployment pod is stored rewritten", func(t *testing.T) {
		for class, auds := range audiences {
			t.Run(class, func(t *testing.T) {
				pod := seedPod(t, class)
				pod.Namespace, pod.GenerateName = ns, "app-with-secrets-"
				input := pod.DeepCopy()
				if err := c.Create(ctx, pod); err != nil {
					t.Fatalf("create: %v", err)
				}
				got := &corev1.Pod{}
				if err := c.Get(ctx, client.ObjectKeyFromObject(pod), got); err != nil {
					t.Fatal(err)
				}
				stored[class] = got
				if got.Annotations[inject.AnnotationStatus] != inject.StatusInjected {
					t.Errorf("status annotation: %v", got.Annotations)
				}
				vol := got.Spec.Volumes[0]
				if vol.Name != "secrets-store" || vol.CSI != nil || vol.EmptyDir == nil || vol.EmptyDir.Medium != corev1.StorageMediumMemory {
					t.Errorf("secrets volume stored as %+v", vol)
				}
				app := got.Spec.Containers[0]
				if len(got.Spec.Containers) != 1 || app.Name != "app" || !cmp.Equal(input.Spec.Containers[0].Env, app.Env) {
					t.Errorf("app container changed: %+v", got.Spec.Containers)
				}
				var appMounts []corev1.VolumeMount
				for _, m := range app.VolumeMounts {
					if m.Name == "secrets-store" {
						appMounts = append(appMounts, m)
					}
					if m.Name == inject.TokenVolumeName {
						t.Errorf("app container mounts the agent's tokens")
					}
				}
				if diff := cmp.Diff(input.Spec.Containers[0].VolumeMounts, appMounts); diff != "" {
					t.Errorf("app mount changed:\n%s", diff)
				}
				agent, cfg := agentOf(t, got)
				if got.Spec.InitContainers[0].Name != inject.AgentContainerName || agent.RestartPolicy == nil || *agent.RestartPolicy != corev1.ContainerRestartPolicyAlways {
					t.Errorf("agent is not the first init container as a native sidecar")
				}
				if agent.StartupProbe == nil || agent.StartupProbe.HTTPGet == nil || agent.StartupProbe.HTTPGet.Path != "/readyz" {
					t.Errorf("startup probe %+v", agent.StartupProbe)
				}
				if cfg.Volumes[0].Class.Name != class || cfg.Volumes[0].Class.Namespace != ns {
					t.Errorf("class snapshot %+v", cfg.Volumes[0].Class)
				}
				var spcObj ssiv1.SecretProviderClass
				if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: class}, &spcObj); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(spcObj.Spec.Parameters, cfg.Volumes[0].Class.Parameters); diff != "" {
					t.Errorf("class snapshot parameters differ from the class:\n%s", diff)
				}
				var gotAuds []string
				for _, tok := range cfg.Tokens {
					gotAuds = append(gotAuds, tok.Audience)
				}
				if diff := cmp.Diff(auds, gotAuds); diff != "" {
					t.Errorf("token audiences (-want +got):\n%s", diff)
				}
				// The ServiceAccount admission plugin runs again after the
				// webhook; the agent's empty mask keeps the API token out.
				var appToken bool
				for _, m := range app.VolumeMounts {
					appToken = appToken || m.MountPath == inject.APITokenPath
				}
				if !appToken {
					t.Errorf("the ServiceAccount admission plugin did not run: the app has no API token mount")
				}
				for _, m := range agent.VolumeMounts {
					if strings.HasPrefix(m.MountPath, "/var/run/secrets/kubernetes.io") && m.Name != inject.NoAPITokenVolumeName {
						t.Errorf("agent got the API token mount %+v", m)
					}
				}
				if class == "aws-secrets" && cfg.Cloud.AWSRoleARN != "arn:aws:iam::111122223333:role/app" {
					t.Errorf("role ARN %q", cfg.Cloud.AWSRoleARN)
				}
				if class == "azure-keyvault" && (cfg.Cloud.AzureClientID != "00000000-1111-2222-3333-444444444444" || cfg.Cloud.AzureTenantID != "your-tenant-id") {
					t.Errorf("azure identity %+v", cfg.Cloud)
				}
				if class == "gcp-secrets" && cfg.Cloud.GCPServiceAccount != "app@my-project.iam.gserviceaccount.com" {
					t.Errorf("gcp identity %+v", cfg.Cloud)
				}
			})
		}
	})

	if n := h.apiCalls.Load() - callsBefore; n != 0 {
		t.Errorf("the webhook made %d API requests while admitting %d pods; want none (informer caches)", n, len(audiences))
	}

	t.Run("missing class is denied with the class and the problem", func(t *testing.T) {
		pod := seedPod(t, "no-such-class")
		pod.Namespace = ns
		calls := h.apiCalls.Load()
		err := c.Create(ctx, pod)
		// A cache miss is confirmed with one read before denying.
		if n := h.apiCalls.Load() - calls; n != 1 {
			t.Errorf("%d API requests for a missing class, want 1 confirmation read", n)
		}
		if err == nil {
			t.Fatal("created")
		}
		want := `volume "secrets-store": SecretProviderClass "no-such-class" not found in namespace "` + ns + `"`
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("error %q (forbidden %v), want it to contain %q", err, apierrors.IsForbidden(err), want)
		}
	})

	t.Run("class that does not parse is denied with the field", func(t *testing.T) {
		bad := &ssiv1.SecretProviderClass{ObjectMeta: objectMeta(ns, "bad-vault"), Spec: ssiv1.SecretProviderClassSpec{
			Provider: "vault", Parameters: map[string]string{"objects": "- objectName: a\n  secretPath: x\n"},
		}}
		if err := c.Create(ctx, bad); err != nil {
			t.Fatal(err)
		}
		pod := seedPod(t, "bad-vault")
		pod.Namespace = ns
		err := c.Create(ctx, pod)
		want := "SecretProviderClass " + ns + "/bad-vault (provider vault): parameters.roleName"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to contain %q", err, want)
		}
	})

	t.Run("a class's template text is read from a ConfigMap of its namespace", func(t *testing.T) {
		cm := &corev1.ConfigMap{ObjectMeta: objectMeta(ns, "app-templates"), Data: map[string]string{"app.env": `TOKEN={{ object "api-token" | shellQuote }}`}}
		if err := c.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
		var tc ssiv1.SecretProviderClass
		readYAML(t, seedDir+"/vault-secret-provider.yaml", &tc)
		tc.ObjectMeta = objectMeta(ns, "vault-templated")
		tc.Annotations = map[string]string{render.Annotation: "- path: app.env\n  configMapKeyRef: {name: app-templates, key: app.env}\n"}
		if err := c.Create(ctx, &tc); err != nil {
			t.Fatal(err)
		}
		pod := seedPod(t, "vault-templated")
		pod.Namespace, pod.GenerateName = ns, "templated-"
		if err := c.Create(ctx, pod); err != nil {
			t.Fatalf("create: %v", err)
		}
		_, cfg := agentOf(t, pod)
		want := []render.Template{{Path: "app.env", Text: cm.Data["app.env"]}}
		if diff := cmp.Diff(want, cfg.Volumes[0].Templates); diff != "" {
			t.Errorf("agent templates (-want +got):\n%s", diff)
		}
		tc2 := tc.DeepCopy()
		tc2.ObjectMeta = objectMeta(ns, "vault-templated-missing")
		tc2.Annotations = map[string]string{render.Annotation: "- path: app.env\n  configMapKeyRef: {name: nope, key: app.env}\n"}
		if err := c.Create(ctx, tc2); err != nil {
			t.Fatal(err)
		}
		pod = seedPod(t, "vault-templated-missing")
		pod.Namespace = ns
		err := c.Create(ctx, pod)
		if wantErr := `SecretProviderClass ` + ns + `/vault-templated-missing: annotation secrets-store-injector.io/templates: template "app.env": ConfigMap nope has no key app.env`; err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("error %v, want it to contain %q", err, wantErr)
		}
	})

	t.Run("re-admission changes nothing", func(t *testing.T) {
		first := stored["vault-secrets"]
		if first == nil {
			t.Skip("no stored pod")
		}
		// In-process: the handler returns no patch for the rewritten pod.
		wh := NewHandler(scheme.New(), h.server.Injector, NewMetrics(nil))
		resp := wh.Handle(ctx, request(t, first))
		if !resp.Allowed || len(resp.Patches) != 0 {
			t.Errorf("handler on the rewritten pod: allowed %v, patches %v", resp.Allowed, resp.Patches)
		}
		// Through the API server: the same pod created again is stored
		// with the same spec.
		before := admissions()
		again := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "again-", Labels: first.Labels, Annotations: first.Annotations}, Spec: *first.Spec.DeepCopy()}
		if err := c.Create(ctx, again); err != nil {
			t.Fatalf("create: %v", err)
		}
		if diff := cmp.Diff(first.Spec, again.Spec); diff != "" {
			t.Errorf("second admission changed the pod (-first +second):\n%s", diff)
		}
		if admissions() != before {
			t.Errorf("the API server sent an injected pod to the webhook again (matchConditions)")
		}
	})

	t.Run("only pods that can need the webhook are sent", func(t *testing.T) {
		before := admissions()
		plain := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "plain-"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "a"}}}}
		if err := c.Create(ctx, plain); err != nil {
			t.Fatal(err)
		}
		if got := admissions(); got != before {
			t.Errorf("a pod without secrets-store volumes or annotations reached the webhook (%v admissions, was %v)", got, before)
		}
		optOut := seedPod(t, "vault-secrets")
		optOut.Namespace, optOut.Annotations = ns, map[string]string{inject.AnnotationInject: "false"}
		if err := c.Create(ctx, optOut); err != nil {
			t.Fatal(err)
		}
		if got := admissions(); got != before {
			t.Errorf("an opted-out pod reached the webhook")
		}
		if optOut.Spec.Volumes[0].CSI == nil {
			t.Errorf("opted-out pod was rewritten")
		}
		other := h.seedNamespace(t, nil)
		pod := seedPod(t, "vault-secrets")
		pod.Namespace = other
		if err := c.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		if got := admissions(); got != before+1 {
			t.Errorf("admissions %v, want %v", got, before+1)
		}
		if pod.Spec.Volumes[0].CSI == nil || pod.Annotations[inject.AnnotationStatus] != "" {
			t.Errorf("pod in a namespace that is not enabled was rewritten")
		}
	})

	t.Run("the agent satisfies Pod Security restricted", func(t *testing.T) {
		restricted := h.seedNamespace(t, map[string]string{
			inject.LabelInjection:                inject.LabelValueEnabled,
			"pod-security.kubernetes.io/enforce": "restricted",
		})
		mk := func(app corev1.Container) *corev1.Pod {
			return &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: restricted, GenerateName: "restricted-", Annotations: map[string]string{inject.AnnotationReloadSignal: "SIGHUP"}},
				Spec: corev1.PodSpec{
					ServiceAccountName: "app-service-account",
					Containers:         []corev1.Container{app},
					Volumes:            []corev1.Volume{csiVolume("secrets-store", "vault-secrets")},
				},
			}
		}
		// Control: Pod Security is enforced in the namespace.
		loose := restrictedApp()
		loose.SecurityContext = nil
		if err := c.Create(ctx, mk(loose)); err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
			t.Fatalf("a non-compliant app was admitted (%v): Pod Security is not enforced", err)
		}
		pod := mk(restrictedApp())
		if err := c.Create(ctx, pod); err != nil {
			t.Fatalf("injected restricted pod refused: %v", err)
		}
		agent, acfg := agentOf(t, pod)
		if *agent.SecurityContext.RunAsUser != 1000 || pod.Spec.ShareProcessNamespace == nil || !*pod.Spec.ShareProcessNamespace {
			t.Errorf("reload-signal: agent user %d, shareProcessNamespace %v", *agent.SecurityContext.RunAsUser, pod.Spec.ShareProcessNamespace)
		}
		if got := strings.Join(acfg.ReloadContainers, ","); acfg.ReloadSignal != "SIGHUP" || got != "app" {
			t.Errorf("stored agent configuration: reloadSignal %q, reloadContainers %q; want SIGHUP for app", acfg.ReloadSignal, got)
		}
	})

	t.Run("health and metrics endpoints", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz"} {
			resp, err := http.Get(h.health + p)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: %d", p, resp.StatusCode)
			}
		}
		resp, err := http.Get(h.metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		for _, want := range []string{
			`ssi_webhook_admissions_total{outcome="injected",reason=""}`,
			`ssi_webhook_admissions_total{outcome="denied",reason="class-not-found"} 1`,
			`ssi_webhook_admission_duration_seconds_bucket{outcome="injected",le="0.005"}`,
		} {
			if !strings.Contains(string(b), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	t.Run("certificate rotation is picked up without restart", func(t *testing.T) {
		old := h.servedSerial(t)
		caPEM, certPEM, keyPEM := newCA(t)
		// Trust both CAs while the certificate changes, as a rotation does.
		var mwc admissionregistrationv1.MutatingWebhookConfiguration
		if err := c.Get(ctx, client.ObjectKey{Name: DefaultConfigurationOptions().Name}, &mwc); err != nil {
			t.Fatal(err)
		}
		mwc.Webhooks[0].ClientConfig.CABundle = append(append([]byte{}, h.hook.LocalServingCAData...), caPEM...)
		if err := c.Update(ctx, &mwc); err != nil {
			t.Fatal(err)
		}
		dir := h.hook.LocalServingCertDir
		writeAtomically(t, dir+"/tls.key", keyPEM)
		writeAtomically(t, dir+"/tls.crt", certPEM)
		deadline := time.Now().Add(20 * time.Second)
		for h.servedSerial(t).Cmp(old) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the webhook still serves the old certificate after 20s")
			}
			time.Sleep(200 * time.Millisecond)
		}
		// Trust only the new CA: admissions keep working.
		if err := c.Get(ctx, client.ObjectKeyFromObject(&mwc), &mwc); err != nil {
			t.Fatal(err)
		}
		mwc.Webhooks[0].ClientConfig.CABundle = caPEM
		if err := c.Update(ctx, &mwc); err != nil {
			t.Fatal(err)
		}
		deadline = time.Now().Add(30 * time.Second)
		for {
			pod := seedPod(t, "vault-secrets")
			pod.Namespace = ns
			err := c.Create(ctx, pod, client.DryRunAll)
			if err == nil && pod.Annotations[inject.AnnotationStatus] == inject.StatusInjected {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no injection with the rotated certificate: %v", err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	})
}
