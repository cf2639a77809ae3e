package secretsync

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/chart"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/scheme"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// installRBAC applies manifests/sync/rbac.yaml as it is in the tree and
// returns a configuration that acts as the controller's service account.
func installRBAC(t *testing.T, env *testenv.Env) *rest.Config {
	t.Helper()
	ctx := context.Background()
	o := RBACOptions{}.withDefaults()
	namedNamespace(t, env, o.Namespace)
	serviceAccount(t, env, o.Namespace, o.ServiceAccount, nil)
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "manifests", "sync", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := chart.Split(b)
	if err != nil {
		t.Fatalf("rbac.yaml: %v", err)
	}
	for _, u := range objs {
		if err := env.Client.Create(ctx, u); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: o.Username(),
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + o.Namespace, "system:authenticated"},
	}
	return cfg
}

// The controller, bound exactly as the manifests bind it, does its whole
// job with that access (leader election included), and is refused what
// the design does not need, by RBAC or by the admission policy.
func TestRBACAsInstalled(t *testing.T) {
	env := controlPlane(t)
	cfg := installRBAC(t, env)
	as, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	asClient, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	own := RBACOptions{}.withDefaults().Namespace

	ns := namespace(t, env, "rbac")
	serviceAccount(t, env, ns, "app", nil)
	serviceAccount(t, env, ns, "other", nil)
	serviceAccount(t, env, ns, "robot", map[string]string{AnnotationAllowSync: "db"})
	serviceAccount(t, env, ns, "legacy", map[string]string{AnnotationAllowSync: "true"})
	create(t, env, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "foreign"}, Data: map[string][]byte{"k": []byte("v")}})

	// Wait until the admission policy is in force.
	eventually(t, 30*time.Second, "admission policy ssi-sync-guard in force", func() (bool, string) {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "probe"}}
		err := asClient.Create(ctx, s)
		if err == nil {
			_ = env.Client.Delete(ctx, s)
			return false, "created an unlabelled Secret"
		}
		return strings.Contains(err.Error(), "ssi-sync-guard"), err.Error()
	})

	// The whole job, as the service account, with leader election.
	fake := newFake("vault", map[string]string{"db-password": "pw-1", "db-user": "app"})
	h := startController(t, env, cfg, Options{Providers: provider.NewSet(fake), RotationInterval: 500 * time.Millisecond}, func(o *manager.Options) {
		o.LeaderElection = true
		o.LeaderElectionID = LeaderElectionID
		o.LeaderElectionNamespace = own
		o.LeaderElectionReleaseOnCancel = true
	})
	create(t, env, vaultClass(t, ns, "db", dbPasswordSecret))
	pod := csiPod(ns, "app-0", "app", "db")
	create(t, env, pod)
	waitSecret(t, env, ns, "db", nil)
	fake.set("db-password", "pw-2")
	waitSecret(t, env, ns, "db", func(s *corev1.Secret) string {
		if string(s.Data["password"]) != "pw-2" {
			return "not updated"
		}
		return ""
	})
	waitEvent(t, env, ns, "db", ReasonSecretUpdated)
	if err := env.Client.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	waitNoSecret(t, env, ns, "db")
	lease := &coordinationv1.Lease{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: own, Name: LeaderElectionID}, lease); err != nil {
		t.Fatalf("leader election Lease: %v", err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Errorf("Lease %s/%s has no holder", own, LeaderElectionID)
	}

	// What it needs, directly, with the controller stopped (it would
	// delete the test's managed Secret as declared by no class).
	h.stop()
	target := csiPod(ns, "target", "app", "db")
	create(t, env, target)
	managed := func(name string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{LabelManaged: "true"}, Annotations: map[string]string{AnnotationSyncedFrom: "db"}}}
	}
	token := func(sa string, secs int64, pod *corev1.Pod, audiences ...string) error {
		tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs, Audiences: audiences}}
		if pod != nil {
			tr.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
		}
		_, err := as.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, tr, metav1.CreateOptions{})
		return err
	}
	allowed := map[string]func() error{
		"list pods":             func() error { return asClient.List(ctx, &corev1.PodList{}) },
		"list classes":          func() error { return asClient.List(ctx, &ssiv1.SecretProviderClassList{}) },
		"list service accounts": func() error { return asClient.List(ctx, &corev1.ServiceAccountList{}) },
		"token bound to a pod of its service account":                     func() error { return token("app", 600, target) },
		"pod-less token of at most an hour, consented, explicit audience": func() error { return token("robot", MaxTokenSeconds, nil, "vault") },
		"create, update, delete a managed Secret": func() error {
			s := managed("allowed")
			if err := asClient.Create(ctx, s); err != nil {
				return err
			}
			s.Data = map[string][]byte{"k": []byte("v")}
			if err := asClient.Update(ctx, s); err != nil {
				return err
			}
			return asClient.Delete(ctx, s)
		},
		"lease of leader election": func() error {
			return asClient.Get(ctx, client.ObjectKey{Namespace: own, Name: LeaderElectionID}, &coordinationv1.Lease{})
		},
	}
	for name, do := range allowed {
		t.Run("allowed/"+name, func(t *testing.T) {
			if err := do(); err != nil {
				t.Errorf("refused: %v", err)
			}
		})
	}

	class := &ssiv1.SecretProviderClass{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, class); err != nil {
		t.Fatal(err)
	}
	// denied: RBAC (Forbidden) or the admission policy (Invalid, naming
	// ssi-sync-guard) or the API server's own check of bound tokens.
	denied := map[string]struct {
		do   func() error
		want string
	}{
		"get a class by name (only list and watch)": {func() error {
			return asClient.Get(ctx, client.ObjectKeyFromObject(class), &ssiv1.SecretProviderClass{})
		}, "forbidden"},
		"change a class": {func() error {
			c := class.DeepCopy()
			c.Spec.Parameters["roleName"] = "admin"
			return asClient.Update(ctx, c)
		}, "forbidden"},
		"create a class": {func() error {
			return asClient.Create(ctx, &ssiv1.SecretProviderClass{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "evil"}, Spec: class.Spec})
		}, "forbidden"},
		"delete a class": {func() error { return asClient.Delete(ctx, class) }, "forbidden"},
		"create a pod":   {func() error { return asClient.Create(ctx, csiPod(ns, "evil", "app", "db")) }, "forbidden"},
		"delete a pod":   {func() error { return asClient.Delete(ctx, target) }, "forbidden"},
		"get a pod":      {func() error { return asClient.Get(ctx, client.ObjectKeyFromObject(target), &corev1.Pod{}) }, "forbidden"},
		"grant itself pod-less sync (annotate a service account)": {func() error {
			sa := &corev1.ServiceAccount{}
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app"}, sa); err != nil {
				return err
			}
			sa.Annotations = map[string]string{AnnotationAllowSync: "true"}
			return asClient.Update(ctx, sa)
		}, "forbidden"},
		"create a service account": {func() error {
			return asClient.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "evil"}})
		}, "forbidden"},
		"patch a Secret": {func() error {
			return asClient.Patch(ctx, managed("foreign"), client.RawPatch(types.MergePatchType, []byte(`{"data":{"k":"eA=="}}`)))
		}, "forbidden"},
		"list config maps": {func() error { return asClient.List(ctx, &corev1.ConfigMapList{}, client.InNamespace(ns)) }, "forbidden"},
		"list nodes":       {func() error { return asClient.List(ctx, &corev1.NodeList{}) }, "forbidden"},
		"another Lease in its namespace": {func() error {
			return asClient.Get(ctx, client.ObjectKey{Namespace: own, Name: "kube-controller-manager"}, &coordinationv1.Lease{})
		}, "forbidden"},
		"a Lease in another namespace": {func() error {
			return asClient.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: LeaderElectionID}})
		}, "forbidden"},
		"bind itself a cluster role": {func() error {
			return asClient.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "evil"},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
				Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: DefaultServiceAccount, Namespace: own}}})
		}, "forbidden"},
		"create an unlabelled Secret": {func() error {
			return asClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unlabelled"}})
		}, "ssi-sync-guard"},
		"take over a foreign Secret by labelling it": {func() error {
			s := &corev1.Secret{}
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "foreign"}, s); err != nil {
				return err
			}
			s.Labels = map[string]string{LabelManaged: "true"}
			s.Annotations = map[string]string{AnnotationSyncedFrom: "db"}
			return asClient.Update(ctx, s)
		}, "the sync controller changes and deletes only Secrets labelled secrets-store.csi.k8s.io/managed=true"},
		"delete a foreign Secret": {func() error {
			return asClient.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "foreign"}})
		}, "the sync controller changes and deletes only Secrets labelled secrets-store.csi.k8s.io/managed=true"},
		// The API server fills an empty audience list with its own
		// (here the test server's issuer, which the default list does not
		// name): the policy refuses the audiences it is told; the
		// controller itself never asks without an audience.
		"pod-less token for the API server's audience": {func() error { return token("robot", 600, nil, "https://kubernetes.default.svc.cluster.local") },
			"only for an explicit audience that is not the API server's"},
		"pod-less token without consent": {func() error { return token("app", 600, nil, "vault") },
			"only for a service account whose secrets-store-injector.io/allow-sync annotation names classes"},
		"pod-less token with the consent of earlier versions": {func() error { return token("legacy", 600, nil, "vault") },
			"only for a service account whose secrets-store-injector.io/allow-sync annotation names classes"},
		"a service-account-token Secret": {func() error {
			s := managed("legacy-token")
			s.Type = corev1.SecretTypeServiceAccountToken
			s.Annotations[corev1.ServiceAccountNameKey] = "app"
			return asClient.Create(ctx, s)
		}, "the sync controller writes only Secrets of the types"},
		"a Secret in kube-system": {func() error {
			s := managed("sys")
			s.Namespace = "kube-system"
			return asClient.Create(ctx, s)
		}, "in the protected namespaces kube-system, secrets-store-injector"},
		"a token in its own namespace": {func() error {
			// The service account names a class, so the pod-less guard
			// (which admission may evaluate first) lets the request
			// through and the protected-namespace rule is the one that
			// answers.
			sa := &corev1.ServiceAccount{}
			if err := env.Client.Get(ctx, types.NamespacedName{Namespace: own, Name: DefaultServiceAccount}, sa); err != nil {
				return err
			}
			sa.Annotations = map[string]string{AnnotationAllowSync: "db"}
			if err := env.Client.Update(ctx, sa); err != nil {
				return err
			}
			secs := int64(600)
			_, err := as.CoreV1().ServiceAccounts(own).CreateToken(ctx, DefaultServiceAccount,
				&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs, Audiences: []string{"vault"}}}, metav1.CreateOptions{})
			return err
		}, "in the protected namespaces"},
		"token living longer than an hour": {func() error { return token("robot", 2*MaxTokenSeconds, nil, "vault") },
			"the sync controller requests only tokens that expire within 3600 seconds"},
		"token bound to a pod of another service account": {func() error { return token("other", 600, target) },
			"cannot bind token for serviceaccount \"other\" to pod running with different serviceaccount name"},
	}
	for name, tc := range denied {
		t.Run("denied/"+name, func(t *testing.T) {
			err := tc.do()
			if err == nil {
				t.Fatal("allowed")
			}
			if tc.want == "forbidden" {
				if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), RBACOptions{}.Username()) {
					t.Errorf("error %v, want forbidden to %s", err, RBACOptions{}.Username())
				}
				return
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if s, err := getSecret(env, ns, "foreign"); err != nil || string(s.Data["k"]) != "v" || s.Labels[LabelManaged] != "" {
		t.Errorf("foreign Secret after the attempts: %v %+v", err, s)
	}
}
