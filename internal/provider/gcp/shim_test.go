package gcp

import (
	"os"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	ssicsi "github.com/ssinjector/ssi/internal/csi"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/providertest"
)

// TestShimKeyJSON is the node shim's path: NodePublishVolume carrying the
// nodePublishSecretRef Secret's key.json in its secrets, served by the gcp
// provider against the fake's OAuth 2.0 token endpoint and Secret Manager.
func TestShimKeyJSON(t *testing.T) {
	r := newRig(t)
	r.seed()
	const keyEmail = "keyed@my-project.iam.gserviceaccount.com"
	r.fake.accessors["sa:"+keyEmail] = true
	key := serviceAccountKey(t, r.fake, keyEmail)
	class := &ssiv1.SecretProviderClass{ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: "keyed"}, Spec: ssiv1.SecretProviderClassSpec{
		Provider: "gcp", Parameters: map[string]string{"secrets": "- resourceName: projects/my-project/secrets/db/versions/latest\n  path: db.txt\n"}}}
	shim := providertest.NewShim(t, ssicsi.Options{Providers: provider.NewSet(r.provider(true))}, class)
	target, err := shim.Publish(class, "uid-1", map[string]string{KeyJSONKey: key})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(target, "db.txt"))
	if err != nil || string(b) != "s3cr3t-db-2" {
		t.Fatalf("db.txt = %q, %v", b, err)
	}
	if n := r.fake.calls.Snapshot()["oauth2 jwt-bearer token"]; n != 1 {
		t.Errorf("jwt-bearer token requests = %d, want 1", n)
	}
}
