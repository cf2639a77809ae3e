package secretsync

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// TestObjectSizeCap: an object over Options.Sizes is not synced; the
// class gets a FetchFailed event naming the object and the limit, never
// the content.
func TestObjectSizeCap(t *testing.T) {
	env := controlPlane(t)
	ns := namedNamespace(t, env, "caps-sync")
	serviceAccount(t, env, ns, "default", nil)
	fake := newFake("aws", map[string]string{"database-creds": strings.Repeat("S", 17)})
	fake.audience = "sts.amazonaws.com"
	startController(t, env, nil, Options{Providers: provider.NewSet(fake), Sizes: limits.Sizes{ObjectBytes: 16, VolumeBytes: 64}}, nil)
	create(t, env, loadClass(t, filepath.Join(testenv.RepoRoot(), "test/testdata/seed/provider-with-sync.yaml"), ns))
	create(t, env, csiPod(ns, "web-0", "default", "aws-secrets-with-sync"))
	waitEvent(t, env, ns, "aws-secrets-with-sync", ReasonFetchFailed, "17 bytes, more than the limit of 16 bytes")
	var s corev1.Secret
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "database-credentials"}, &s); !apierrors.IsNotFound(err) {
		t.Fatalf("the Secret of an oversized object exists (err %v)", err)
	}
}
