package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/secretsync"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

func TestSyncFlags(t *testing.T) {
	tests := map[string]struct {
		args    []string
		wantErr string
	}{
		"rotation interval zero":            {args: []string{"sync", "--rotation-poll-interval", "0s", "--namespace", "ssi-system"}, wantErr: "--rotation-poll-interval must be positive"},
		"leader election needs a namespace": {args: []string{"sync", "--namespace", ""}, wantErr: "--leader-elect needs --namespace"},
		"bad backend host":                  {args: []string{"sync", "--namespace", "ssi-system", "--allowed-backend-hosts", "vault.corp,10.0.0.0/40"}, wantErr: `allowed backend host "10.0.0.0/40": not a CIDR prefix`},
		"unexpected argument":               {args: []string{"sync", "--namespace", "ssi-system", "extra"}, wantErr: `sync: unexpected arguments ["extra"]`},
		"bad log format":                    {args: []string{"sync", "--log-format", "yaml"}, wantErr: `invalid value "yaml" for flag -log-format: log format "yaml" is not json or text`},
		// The admission server no longer syncs: it holds no Secret or
		// token rights.
		"serve --sync-secrets":            {args: []string{"serve", "--sync-secrets", "--cert-dir", t.TempDir()}, wantErr: "the sync controller runs as `ssi-webhook sync` (its own Deployment and service account); --sync-secrets is a flag of that command"},
		"serve --rotation-poll-interval":  {args: []string{"serve", "--rotation-poll-interval=1m", "--cert-dir", t.TempDir()}, wantErr: "--rotation-poll-interval is a flag of that command"},
		"object limit not a size":         {args: []string{"sync", "--namespace", "ssi-system", "--max-object-bytes", "big"}, wantErr: `"big" is not a byte count`},
		"volume limit below the object's": {args: []string{"sync", "--namespace", "ssi-system", "--max-object-bytes", "2Mi", "--max-volume-bytes", "1Mi"}, wantErr: "smaller than the object limit"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, strings.NewReader(""), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// `ssi-webhook sync` runs the sync controller with the built-in
// providers, leader-elected: against a real API server and a real
// Vault, a pod consuming a class gets its Secret, a rotation in Vault
// reaches it, and the Secret goes with the pod.
func TestSyncCommandSyncsSecrets(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := context.Background()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.Env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kubeconfig)
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ssi-system"}}); err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace(t, "app", nil)
	env.ServiceAccount(t, ns, "app", nil)
	v := testenv.StartVault(t, testenv.VaultOptions{})
	v.EnableKubernetesAuth(t, env, "")
	v.Policy(t, "db", `path "secret/data/db" { capabilities = ["read"] }`)
	v.KubernetesRole(t, "", testenv.KubernetesRole{Name: "app", ServiceAccounts: []string{"app"}, Namespaces: []string{ns}, Policies: []string{"db"}})
	v.PutKV2(t, "secret", "db", map[string]any{"password": "pw-1"})

	runCtx, cancel := context.WithCancel(ctx)
	var errOut bytes.Buffer
	args := []string{"sync", "--rotation-poll-interval", "500ms", "--namespace", "ssi-system",
		"--allowed-backend-hosts", "127.0.0.1,localhost",
		"--metrics-bind-address", "0", "--health-probe-bind-address", testenv.FreeAddr(t), "--log-format", "text"}
	testenv.Background(t, "sync", 30*time.Second, cancel, func() error {
		return run(runCtx, args, strings.NewReader(""), &bytes.Buffer{}, &errOut)
	})

	class := &ssiv1.SecretProviderClass{}
	if err := yaml.UnmarshalStrict([]byte(fmt.Sprintf(`
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: db
  namespace: %s
spec:
  provider: vault
  parameters:
    vaultAddress: %q
    roleName: app
    objects: |
      - objectName: db-password
        secretPath: secret/data/db
        secretKey: password
  secretObjects:
  - secretName: db
    type: Opaque
    data:
    - objectName: db-password
      key: password
`, ns, v.Addr)), class); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, class); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-0"},
		Spec: corev1.PodSpec{
			ServiceAccountName: "app",
			Containers:         []corev1.Container{{Name: "app", Image: "app", VolumeMounts: []corev1.VolumeMount{{Name: "s", MountPath: "/mnt/s", ReadOnly: true}}}},
			Volumes: []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
				Driver: inject.CSIDriver, ReadOnly: ptr.To(true), VolumeAttributes: map[string]string{inject.ClassAttribute: "db"}}}}},
		},
	}
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 60s; sync log:\n%s", what, errOut.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	secret := func() *corev1.Secret {
		s := &corev1.Secret{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, s); err != nil {
			return nil
		}
		return s
	}
	waitFor("Secret with pw-1", func() bool { s := secret(); return s != nil && string(s.Data["password"]) == "pw-1" })
	v.PutKV2(t, "secret", "db", map[string]any{"password": "pw-2"})
	waitFor("Secret rotated to pw-2", func() bool { s := secret(); return s != nil && string(s.Data["password"]) == "pw-2" })
	lease := &coordinationv1.Lease{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "ssi-system", Name: secretsync.LeaderElectionID}, lease); err != nil {
		t.Errorf("Lease: %v", err)
	}
	if err := env.Client.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	waitFor("Secret deleted", func() bool {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, &corev1.Secret{})
		return apierrors.IsNotFound(err)
	})
}

func TestSyncAllowProcessIdentity(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want bool
	}{
		"off by default": {want: false},
		"allowed":        {args: []string{"--allow-process-identity"}, want: true},
	} {
		t.Run(name, func(t *testing.T) {
			var s providerFlags
			fs := flag.NewFlagSet("sync", flag.ContinueOnError)
			s.addFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if s.shared.AllowProcessIdentity != tc.want {
				t.Errorf("AllowProcessIdentity = %v, want %v", s.shared.AllowProcessIdentity, tc.want)
			}
		})
	}
}
