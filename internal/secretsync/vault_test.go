package secretsync

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/provider"
	vaultprov "github.com/ssinjector/ssi/internal/provider/vault"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// vaultSetup starts a real Vault server with Kubernetes auth against the
// test API server: role "app" admits the given service accounts of ns for
// tokens of audience "vault", with read access to secret/data/db.
func vaultSetup(t *testing.T, env *testenv.Env, ns string, sas ...string) *testenv.Vault {
	t.Helper()
	v := testenv.StartVault(t, testenv.VaultOptions{})
	v.EnableKubernetesAuth(t, env, "")
	v.Policy(t, "db", `path "secret/data/db" { capabilities = ["read"] }`)
	v.KubernetesRole(t, "", testenv.KubernetesRole{Name: "app", ServiceAccounts: sas, Namespaces: []string{ns}, Policies: []string{"db"}, Audience: "vault"})
	v.PutKV2(t, "secret", "db", map[string]any{"password": "pw-1", "username": "app"})
	return v
}

func vaultProvider(t *testing.T) provider.Set {
	t.Helper()
	p := vaultprov.New(vaultprov.Options{IdleTimeout: 10 * time.Minute})
	t.Cleanup(func() { _ = p.Close() })
	return provider.NewSet(p)
}

// The seed guide's sync example, as a Vault class, against a real Vault:
// Kubernetes auth with a token minted for the pod's service account, bound
// to the pod, for the class's audience.
func seedVaultClass(t *testing.T, ns, addr, objectName string) *ssiv1.SecretProviderClass {
	t.Helper()
	return classYAML(t, ns, fmt.Sprintf(`
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: vault-secrets-with-sync
spec:
  provider: vault
  parameters:
    vaultAddress: %q
    roleName: app
    audience: vault
    objects: |
      - objectName: "database-creds"
        secretPath: "secret/data/db"
        secretKey: "password"
  secretObjects:
  - secretName: database-credentials
    type: Opaque
    data:
    - objectName: %s
      key: credentials
`, addr, objectName))
}

// Sync from a real Vault: the Secret with the declared key, a rotation in
// Vault reaching it, removal with the last consuming pod.
func TestVaultSyncRotateDelete(t *testing.T) {
	env := controlPlane(t)
	ns := namespace(t, env, "vault")
	serviceAccount(t, env, ns, "app", nil)
	v := vaultSetup(t, env, ns, "app")
	h := startController(t, env, nil, Options{Providers: vaultProvider(t), RotationInterval: 500 * time.Millisecond}, nil)

	create(t, env, seedVaultClass(t, ns, v.Addr, "database-creds"))
	web := injectedPod(t, ns, "web-0", "app", "vault-secrets-with-sync")
	create(t, env, web)
	create(t, env, csiPod(ns, "worker-0", "app", "vault-secrets-with-sync"))
	s := waitSecret(t, env, ns, "database-credentials", nil)
	if string(s.Data["credentials"]) != "pw-1" || len(s.Data) != 1 {
		t.Errorf("data keys %v, credentials %q", sortedKeys(s.Data), s.Data["credentials"])
	}
	if got := ownerKinds(s); got != "Pod/web-0,Pod/worker-0" {
		t.Errorf("owners %s", got)
	}

	v.PutKV2(t, "secret", "db", map[string]any{"password": "pw-2", "username": "app"})
	waitSecret(t, env, ns, "database-credentials", func(s *corev1.Secret) string {
		if string(s.Data["credentials"]) != "pw-2" {
			return "not rotated"
		}
		return ""
	})
	waitEvent(t, env, ns, "vault-secrets-with-sync", ReasonSecretUpdated, "data keys credentials")
	if got := testutilCount(h, "vault", ResultChanged); got < 2 {
		t.Errorf("changed syncs %v, want >= 2", got)
	}

	ctx := context.Background()
	if err := env.Client.Delete(ctx, web, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	waitSecret(t, env, ns, "database-credentials", func(s *corev1.Secret) string {
		if got := ownerKinds(s); got != "Pod/worker-0" {
			return "owners " + got
		}
		return ""
	})
	if err := env.Client.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(ns), client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	waitNoSecret(t, env, ns, "database-credentials")
}

// Against a real Vault: pod-less sync only with both annotations; a class
// naming an object it does not have gets a precise event and no Secret;
// a pod whose service account Vault refuses gets FetchFailed.
func TestVaultPodlessMalformedAndDenied(t *testing.T) {
	env := controlPlane(t)
	ns := namespace(t, env, "vault-more")
	serviceAccount(t, env, ns, "app", nil)
	serviceAccount(t, env, ns, "robot", nil)
	serviceAccount(t, env, ns, "intruder", nil)
	v := vaultSetup(t, env, ns, "app", "robot")
	startController(t, env, nil, Options{Providers: vaultProvider(t)}, nil)

	// Pod-less: the class annotation alone is not enough.
	c := seedVaultClass(t, ns, v.Addr, "database-creds")
	c.Annotations = map[string]string{AnnotationSyncServiceAccount: "robot"}
	create(t, env, c)
	waitEvent(t, env, ns, c.Name, ReasonSyncServiceAccount, "is not annotated secrets-store-injector.io/allow-sync")
	assertNoSecret(t, env, ns, "database-credentials", time.Second)
	allowSync(t, env, ns, "robot", c.Name)
	s := waitSecret(t, env, ns, "database-credentials", nil)
	if string(s.Data["credentials"]) != "pw-1" || ownerKinds(s) != "SecretProviderClass/vault-secrets-with-sync" {
		t.Errorf("pod-less Secret: owners %s", ownerKinds(s))
	}

	// Malformed secretObjects: an event with a precise message, no Secret.
	malformed := map[string]struct {
		data []*ssiv1.SecretObjectData
		want string
	}{
		"unknown-object": {
			data: []*ssiv1.SecretObjectData{{ObjectName: "database-cred", Key: "credentials"}},
			want: `data[0].objectName "database-cred" is not an object of SecretProviderClass ` + ns + `/unknown-object (its objects are "database-creds"); the Secret is not synced`,
		},
		"missing-object-name": {
			data: []*ssiv1.SecretObjectData{{Key: "credentials"}},
			want: `data[0].objectName is empty; name an object of the class; the Secret is not synced`,
		},
		"duplicate-key": {
			data: []*ssiv1.SecretObjectData{{ObjectName: "database-creds", Key: "credentials"}, {ObjectName: "database-creds", Key: "credentials"}},
			want: `data[1].key "credentials" is already used by data[0]; each key of a Secret must be unique; the Secret is not synced`,
		},
	}
	for name, tc := range malformed {
		bad := seedVaultClass(t, ns, v.Addr, "database-creds")
		bad.Name = name
		bad.Spec.SecretObjects[0].SecretName = name + "-credentials"
		bad.Spec.SecretObjects[0].Data = tc.data
		create(t, env, bad)
		create(t, env, csiPod(ns, name+"-0", "app", name))
		waitEvent(t, env, ns, name, ReasonInvalidSecretObject, `secretObjects[0] (Secret "`+name+`-credentials"): `+tc.want)
	}
	for name := range malformed {
		assertNoSecret(t, env, ns, name+"-credentials", 300*time.Millisecond)
	}

	// A service account Vault's role does not admit.
	denied := seedVaultClass(t, ns, v.Addr, "database-creds")
	denied.Name = "denied"
	denied.Spec.SecretObjects[0].SecretName = "denied-credentials"
	create(t, env, denied)
	create(t, env, csiPod(ns, "intruder-0", "intruder", "denied"))
	note := waitEvent(t, env, ns, "denied", ReasonFetchFailed, "SecretProviderClass "+ns+"/denied (provider vault)")
	if strings.Contains(note, "pw-1") {
		t.Errorf("event carries a value: %s", note)
	}
	assertNoSecret(t, env, ns, "denied-credentials", time.Second)
}

func testutilCount(h *harness, prov, result string) float64 {
	return testutil.ToFloat64(h.metrics.Syncs.WithLabelValues(prov, result))
}
