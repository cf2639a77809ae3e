package csi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// testLogger writes the shim's logs to the test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startShim runs csi.Run (the whole `ssi-agent csi` wiring) until the test
// ends, and returns a connection to its CSI socket once it is ready.
func startShim(t *testing.T, opts Options) (csi.NodeClient, csi.IdentityClient) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	testenv.Background(t, "Run", 20*time.Second, cancel, func() error { return Run(ctx, opts) })
	sock, err := socketPath(opts.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	conn := dial(t, sock)
	ident := csi.NewIdentityClient(conn)
	waitFor(t, "the shim to be ready", func() bool {
		p, err := ident.Probe(ctx, &csi.ProbeRequest{})
		return err == nil && p.GetReady().GetValue()
	})
	return csi.NewNodeClient(conn), ident
}

func podEvents(t *testing.T, env *testenv.Env, ns, pod string) []corev1.Event {
	t.Helper()
	var list corev1.EventList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []corev1.Event
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == "Pod" && e.InvolvedObject.Name == pod {
			out = append(out, e)
		}
	}
	return out
}

func waitEvent(t *testing.T, env *testenv.Env, ns, pod, reason string) corev1.Event {
	t.Helper()
	var found corev1.Event
	waitFor(t, "event "+reason+" on pod "+pod, func() bool {
		for _, e := range podEvents(t, env, ns, pod) {
			if e.Reason == reason {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// TestIntegration runs the shim against a real kube-apiserver with real
// tmpfs mounts: classes are read from the pod's namespace only, tokens
// minted by the TokenRequest API reach the provider through the volume
// context, the SecretProviderClassPodStatus is created and owned by the
// pod, and failures become events on the pod.
func TestIntegration(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	root := shortDir(t)
	requireMounts(t, root)
	ctx := context.Background()

	nsA := env.Namespace(t, "csi-a", nil)
	nsB := env.Namespace(t, "csi-b", nil)
	env.ServiceAccount(t, nsA, "web", map[string]string{identity.SAAnnotationAWSRoleARN: "arn:aws:iam::111122223333:role/web"})
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: nsA, Name: "web-0"},
		Spec: corev1.PodSpec{
			ServiceAccountName: "web",
			NodeName:           "node-1",
			Containers:         []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
		},
	}
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	// The class exists, but only in another namespace.
	if err := env.Client.Create(ctx, spcObject(nsB, "db", "test", map[string]string{"objects": "x"})); err != nil {
		t.Fatal(err)
	}

	prov := newTestProvider("test", map[string]string{"db-password": "s3cr3t-value", "api-key": "k3y-value"})
	const interval = 1500 * time.Millisecond
	node, _ := startShim(t, Options{
		NodeID:                    "node-1",
		KubeletRootDir:            root,
		Endpoint:                  "unix://" + filepath.Join(root, "plugins", DriverName, "csi.sock"),
		RegistrationDir:           filepath.Join(root, "plugins_registry"),
		EnableRotation:            true,
		RotationPollInterval:      interval,
		ServiceAccountAnnotations: true,
		Providers:                 provider.NewSet(prov),
		Config:                    env.Config,
		Logger:                    testLogger(t),
	})

	token, err := env.Token(ctx, nsA, "web", []string{"vault"}, 10*time.Minute, pod)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(10 * time.Minute).UTC().Format(time.RFC3339)
	tokens := fmt.Sprintf(`{"vault":{"token":%q,"expirationTimestamp":%q}}`, token, exp)
	pv := podVolume{ns: nsA, pod: "web-0", uid: string(pod.UID), sa: "web", class: "db", tokens: tokens}
	target := kubeletTarget(t, root, string(pod.UID), "secrets")

	t.Run("class from another namespace is not used", func(t *testing.T) {
		_, err := node.NodePublishVolume(ctx, publishReq(target, pv))
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), fmt.Sprintf("failed to get secretproviderclass %s/db, error: ", nsA)) {
			t.Fatalf("err = %v", err)
		}
		if prov.count() != 0 {
			t.Error("the provider was called for a class of another namespace")
		}
		e := waitEvent(t, env, nsA, "web-0", ReasonClassNotFound)
		if e.Type != corev1.EventTypeWarning || e.InvolvedObject.UID != pod.UID || !strings.HasPrefix(e.Message, fmt.Sprintf(`failed to get secretproviderclass %s/db, error: secretproviderclasses.secrets-store.csi.x-k8s.io "db" not found`, nsA)) {
			t.Errorf("event = %s %s uid=%s %q", e.Type, e.Reason, e.InvolvedObject.UID, e.Message)
		}
		if e.Source.Component != EventComponent || e.Source.Host != "node-1" {
			t.Errorf("event source = %+v", e.Source)
		}
		if m := mountsUnder(t, root); len(m) != 0 {
			t.Errorf("mounts after a failed publish: %v", m)
		}
	})

	t.Run("publish with the class of the pod's namespace", func(t *testing.T) {
		if err := env.Client.Create(ctx, spcObject(nsA, "db", "test", map[string]string{"objects": "y"})); err != nil {
			t.Fatal(err)
		}
		if _, err := node.NodePublishVolume(ctx, publishReq(target, pv)); err != nil {
			t.Fatal(err)
		}
		if got := readVolume(t, target); got["db-password"] != "s3cr3t-value" || got["api-key"] != "k3y-value" {
			t.Errorf("volume = %v", got)
		}
		req := prov.lastRequest()
		if req.Class.Namespace != nsA || req.Class.Parameters["objects"] != "y" {
			t.Errorf("provider got class %s with %v", req.Class.Key(), req.Class.Parameters)
		}
		got, err := req.Identity.Tokens.Token(ctx, "vault")
		if err != nil || got != token {
			t.Errorf("the TokenRequest token did not reach the provider (%v)", err)
		}
		// The class's provider is not a built-in one, so identity.Decide
		// gives it no cloud identity, whatever the service account says
		// (TestCloudIdentity and the agreement test in internal/secretsync
		// cover the built-in providers).
		if req.Identity.Cloud != (identity.Cloud{}) {
			t.Errorf("cloud identity = %+v, want none", req.Identity.Cloud)
		}
	})

	t.Run("SecretProviderClassPodStatus owned by the pod", func(t *testing.T) {
		st := &ssiv1.SecretProviderClassPodStatus{}
		key := client.ObjectKey{Namespace: nsA, Name: "web-0-" + nsA + "-db"}
		waitFor(t, "the status object", func() bool { return env.Client.Get(ctx, key, st) == nil })
		if len(st.OwnerReferences) != 1 {
			t.Fatalf("owners = %+v", st.OwnerReferences)
		}
		o := st.OwnerReferences[0]
		if o.APIVersion != "v1" || o.Kind != "Pod" || o.Name != "web-0" || o.UID != pod.UID || o.Controller != nil {
			t.Errorf("owner = %+v", o)
		}
		if st.Labels[NodeLabel] != "node-1" {
			t.Errorf("labels = %v", st.Labels)
		}
		s := st.Status
		if s.PodName != "web-0" || s.SecretProviderClassName != "db" || !s.Mounted || s.TargetPath != target {
			t.Errorf("status = %+v", s)
		}
		if len(s.Objects) != 2 || s.Objects[0].ID != "api-key" || s.Objects[1].ID != "db-password" || s.Objects[0].Version == "" {
			t.Errorf("objects = %+v", s.Objects)
		}
	})

	t.Run("republish: nothing inside the interval, new content after, files kept on failure", func(t *testing.T) {
		calls := prov.count()
		if _, err := node.NodePublishVolume(ctx, publishReq(target, pv)); err != nil {
			t.Fatal(err)
		}
		if n := prov.count(); n != calls {
			t.Fatalf("a republish inside the interval called the provider (%d calls, was %d)", n, calls)
		}
		prov.set(map[string]string{"db-password": "rotated-value", "api-key": "k3y-value"}, nil)
		time.Sleep(interval + 100*time.Millisecond)
		if _, err := node.NodePublishVolume(ctx, publishReq(target, pv)); err != nil {
			t.Fatal(err)
		}
		if got := readVolume(t, target); got["db-password"] != "rotated-value" || got["api-key"] != "k3y-value" {
			t.Errorf("volume after rotation = %v", got)
		}
		if e := waitEvent(t, env, nsA, "web-0", ReasonRotationComplete); e.Type != corev1.EventTypeNormal || !strings.Contains(e.Message, "rotated db-password") {
			t.Errorf("event = %s %q", e.Type, e.Message)
		}
		st := &ssiv1.SecretProviderClassPodStatus{}
		key := client.ObjectKey{Namespace: nsA, Name: "web-0-" + nsA + "-db"}
		waitFor(t, "the status to record the new version", func() bool {
			return env.Client.Get(ctx, key, st) == nil && len(st.Status.Objects) == 2 &&
				st.Status.Objects[1].ID == "db-password" && st.Status.Objects[1].Version == versionOf("rotated-value")
		})

		prov.set(nil, &provider.Error{Class: nsA + "/db", Provider: "test", Reason: provider.ReasonUnavailable, Err: errors.New("backend down")})
		time.Sleep(interval + 100*time.Millisecond)
		if _, err := node.NodePublishVolume(ctx, publishReq(target, pv)); err != nil {
			t.Fatalf("a failing republish failed the volume: %v", err)
		}
		if got := readVolume(t, target); got["db-password"] != "rotated-value" {
			t.Errorf("volume after a failed refresh = %v", got)
		}
		if m := mountsUnder(t, root); len(m) != 1 || m[0] != target {
			t.Errorf("mounts after a failed refresh = %v", m)
		}
		if e := waitEvent(t, env, nsA, "web-0", ReasonRotationFailed); !strings.Contains(e.Message, "backend down") {
			t.Errorf("event = %q", e.Message)
		}
		prov.set(map[string]string{"db-password": "s3cr3t-value", "api-key": "k3y-value"}, nil)
	})

	t.Run("provider failure: event, no mount", func(t *testing.T) {
		prov.set(nil, &provider.Error{Class: nsA + "/db", Provider: "test", Object: "db-password", Reason: provider.ReasonAccessDenied,
			Err: errors.New("role web may not read db-password")})
		t.Cleanup(func() { prov.set(map[string]string{"db-password": "s3cr3t-value", "api-key": "k3y-value"}, nil) })
		target2 := kubeletTarget(t, root, string(pod.UID), "more")
		_, err := node.NodePublishVolume(ctx, publishReq(target2, pv))
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("err = %v", err)
		}
		e := waitEvent(t, env, nsA, "web-0", ReasonMountFailed)
		if !strings.Contains(e.Message, `object "db-password": AccessDenied: role web may not read db-password`) {
			t.Errorf("event message = %q", e.Message)
		}
		if m := mountsUnder(t, root); len(m) != 1 || m[0] != target {
			t.Errorf("mounts = %v, want only the first volume", m)
		}
	})

	t.Run("no secret value or token in any event", func(t *testing.T) {
		for _, e := range podEvents(t, env, nsA, "web-0") {
			for _, v := range []string{"s3cr3t-value", "k3y-value", "rotated-value", token} {
				if strings.Contains(e.Message, v) {
					t.Errorf("event %s carries a secret", e.Reason)
				}
			}
		}
	})

	t.Run("CSIDriver accepted by the API server", func(t *testing.T) { testCSIDriverAccepted(t, env) })

	t.Run("unpublish", func(t *testing.T) {
		if _, err := node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "v", TargetPath: target}); err != nil {
			t.Fatal(err)
		}
		if m := mountsUnder(t, root); len(m) != 0 {
			t.Errorf("mounts after unpublish: %v", m)
		}
	})
}

// testCSIDriverAccepted applies the generated CSIDriver to the real API
// server, which validates it.
func testCSIDriverAccepted(t *testing.T, env *testenv.Env) {
	ctx := context.Background()
	for name, o := range map[string]DriverObjectOptions{
		"default":           {},
		"tokens in secrets": {Name: "secrets-store-b.csi.k8s.io", Audiences: []string{"vault", "p.svc.id.goog"}, TokenInSecrets: true},
	} {
		t.Run(name, func(t *testing.T) {
			obj := DriverObject(o)
			if err := env.Client.Create(ctx, obj); err != nil {
				t.Fatal(err)
			}
			got := &storagev1.CSIDriver{}
			if err := env.Client.Get(ctx, client.ObjectKey{Name: obj.Name}, got); err != nil {
				t.Fatal(err)
			}
			if *got.Spec.PodInfoOnMount != true || *got.Spec.RequiresRepublish != true || *got.Spec.AttachRequired != false ||
				len(got.Spec.TokenRequests) != len(obj.Spec.TokenRequests) || got.Spec.VolumeLifecycleModes[0] != storagev1.VolumeLifecycleEphemeral {
				t.Errorf("stored spec = %+v", got.Spec)
			}
			if o.TokenInSecrets && (got.Spec.ServiceAccountTokenInSecrets == nil || !*got.Spec.ServiceAccountTokenInSecrets) {
				t.Error("serviceAccountTokenInSecrets was dropped by the API server")
			}
		})
	}
}
