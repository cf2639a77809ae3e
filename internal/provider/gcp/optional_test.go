package gcp

import (
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	ssicsi "github.com/ssinjector/ssi/internal/csi"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/providertest"
	"github.com/ssinjector/ssi/internal/render"
	"github.com/ssinjector/ssi/internal/spc"
)

// Optional objects through the node CSI shim (NodePublishVolume, then
// republishes as kubelet sends them with rotation on) against the Secret
// Manager fake: an optional secret (named by its path) and an optional
// secret (named by its resourceName) missing at start — NOT_FOUND: the
// publish succeeds without their files, and a template reading one is not
// rendered —, created (files and template appear at the next republish),
// then one deleted and the other's only version disabled (Secret Manager
// answers FAILED_PRECONDITION, as for a destroyed version): the files go.
// A required secret missing fails the publish naming class, object and
// cause.
func TestShimOptionalObjects(t *testing.T) {
	ca := providertest.NewCA(t)
	f := newFakeGCP(t, ca, nil)
	t.Setenv("GCE_METADATA_HOST", f.metadata.Listener.Addr().String())
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	t.Setenv("CLOUDSDK_CONFIG", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	r := &rig{t: t, ns: "gcp", ca: ca, fake: f, vars: map[string]string{}}
	const keyEmail = "keyed@my-project.iam.gserviceaccount.com"
	f.accessors["sa:"+keyEmail] = true
	key := serviceAccountKey(t, f, keyEmail)
	f.addVersion("projects/my-project/secrets/present", []byte("s3cr3t-present"))

	const db, flag = "projects/my-project/secrets/db/versions/latest", "projects/my-project/secrets/flag/versions/latest"
	secrets := "- {resourceName: projects/my-project/secrets/present/versions/latest, path: present.txt}\n" +
		"- {resourceName: " + db + ", path: db.txt}\n" +
		"- {resourceName: " + flag + ", fileName: flag}\n"
	class := &ssiv1.SecretProviderClass{
		ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: "optional", Annotations: map[string]string{
			spc.AnnotationOptionalObjects: "db.txt, " + flag,
			render.Annotation:             "- path: conn.txt\n  template: '{{ object \"db.txt\" }}@db.example'\n",
		}},
		Spec: ssiv1.SecretProviderClassSpec{Provider: "gcp", Parameters: map[string]string{"secrets": secrets}},
	}
	required := &ssiv1.SecretProviderClass{
		ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: "required", Annotations: map[string]string{spc.AnnotationOptionalObjects: "db.txt,flag"}},
		Spec: ssiv1.SecretProviderClassSpec{Provider: "gcp", Parameters: map[string]string{"secrets": secrets +
			"- {resourceName: projects/my-project/secrets/gone/versions/latest, path: gone.txt}\n"}},
	}
	shim := providertest.NewShim(t, ssicsi.Options{Providers: provider.NewSet(r.provider(true)), EnableRotation: true, RotationPollInterval: time.Millisecond}, class, required)
	publish := func(className, uid string) (string, error) {
		time.Sleep(2 * time.Millisecond) // past the rotation poll interval
		c := class
		if className == required.Name {
			c = required
		}
		return shim.Publish(c, uid, map[string]string{KeyJSONKey: key})
	}

	target, err := publish("optional", "uid-1")
	if err != nil {
		t.Fatalf("first publish with the optional secrets missing: %v", err)
	}
	providertest.WantFiles(t, target, map[string]string{"present.txt": "s3cr3t-present"}, "db.txt", "flag", "conn.txt")

	f.addVersion("projects/my-project/secrets/db", []byte("s3cr3t-db"))
	f.addVersion("projects/my-project/secrets/flag", []byte("on"))
	if _, err := publish("optional", "uid-1"); err != nil {
		t.Fatal(err)
	}
	providertest.WantFiles(t, target, map[string]string{"present.txt": "s3cr3t-present", "db.txt": "s3cr3t-db", "flag": "on", "conn.txt": "s3cr3t-db@db.example"})

	f.mu.Lock()
	delete(f.secrets, canonical("projects/my-project/secrets/db"))
	f.mu.Unlock()
	f.setState("projects/my-project/secrets/flag", 1, secretmanagerpb.SecretVersion_DISABLED)
	if _, err := publish("optional", "uid-1"); err != nil {
		t.Fatal(err)
	}
	providertest.WantFiles(t, target, map[string]string{"present.txt": "s3cr3t-present"}, "db.txt", "flag", "conn.txt")

	_, err = publish("required", "uid-2")
	if err == nil {
		t.Fatal("publish succeeded with a required secret missing")
	}
	for _, w := range []string{"SecretProviderClass gcp/required (provider gcp)", `object "projects/my-project/secrets/gone/versions/latest"`, "NotFound", "NotFound: Secret [projects/"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "secrets/db/") {
		t.Errorf("error %q blames the optional secret", err)
	}
}
