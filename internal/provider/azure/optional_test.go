package azure

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/providertest"
	"github.com/ssinjector/ssi/internal/spc"
	"github.com/ssinjector/ssi/internal/volume"
)

// remove deletes an object with all its versions, as a purged Key Vault
// object: the next get answers 404 SecretNotFound, KeyNotFound or
// CertificateNotFound.
func (f *fakeAzure) remove(kind, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.objects[kind], name)
}

// Optional objects against the Key Vault fake, through the real SDK
// clients and volume.Refresh: a secret, a key (named by its alias), a
// certificate and a secret with a version history, all optional, missing
// at start (404 SecretNotFound / KeyNotFound / CertificateNotFound: the
// refresh succeeds, the files are absent), created (the files appear),
// deleted (the files go; with on-delete: keep they stay). An optional
// object Key Vault refuses (403) still fails the refresh, and a required
// object missing fails it naming class, object and cause.
func TestOptionalObjects(t *testing.T) {
	r := newRig(t)
	f := r.fake
	ctx := context.Background()
	f.put("secrets", "present", kvVer{value: "s3cr3t-present"})
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	web := newChain(t, "web.example.test")
	objects := objectsParam(
		"objectName: present\nobjectType: secret",
		"objectName: db\nobjectType: secret",
		"objectName: signing\nobjectType: key\nobjectAlias: signing.pem",
		"objectName: web\nobjectType: cert",
		"objectName: hist\nobjectType: secret\nobjectVersionHistory: 2",
	)
	ids := []string{"cert/web", "key/signing", "secret/db", "secret/hist"}
	for _, onDelete := range []string{"remove", "keep"} {
		t.Run(onDelete, func(t *testing.T) {
			c, err := spc.ParseAnnotated(r.ns, "azure-class", "azure", map[string]string{"keyvaultName": "kv-test", "tenantId": f.tenant, "clientID": testClientID, "objects": objects},
				map[string]string{spc.AnnotationOptionalObjects: "db\nsigning.pem\nweb\nhist", spc.AnnotationOptionalOnDelete: onDelete})
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "vol")
			v := &volume.Volume{Class: c, Dir: dir}
			id := r.request(c).Identity
			refresh := func() volume.Result {
				t.Helper()
				res, err := v.Refresh(ctx, r.p, id)
				if err != nil {
					t.Fatalf("refresh: %v", err)
				}
				return res
			}
			all := []string{"db", "signing.pem", "web", "hist/0", "hist/1"}

			res := refresh()
			providertest.WantFiles(t, dir, map[string]string{"present": ""}, all...)
			if !slices.Equal(res.Missing, ids) {
				t.Errorf("Missing = %v, want %v", res.Missing, ids)
			}

			f.put("secrets", "db", kvVer{value: "s3cr3t-db"})
			f.put("keys", "signing", kvVer{jwk: rsaJWK(&rsaKey.PublicKey, "RSA")})
			f.put("certificates", "web", kvVer{cer: web.leaf.Raw})
			f.put("secrets", "hist", kvVer{value: "s3cr3t-hist-1"})
			f.put("secrets", "hist", kvVer{value: "s3cr3t-hist-2"})
			res = refresh()
			providertest.WantFiles(t, dir, anyContent(append([]string{"present"}, all...)))
			if got := providertest.ReadFile(t, dir, "hist/0"); got != "s3cr3t-hist-2" {
				t.Errorf("hist/0 = %q, want the newest version", got)
			}
			if len(res.Missing) != 0 {
				t.Errorf("Missing = %v after the objects were created", res.Missing)
			}

			// Key Vault refuses an optional object: that is no reason to
			// drop it, the refresh fails and the files stay.
			f.mu.Lock()
			f.denied["db"] = true
			f.mu.Unlock()
			_, err = v.Refresh(ctx, r.p, id)
			if provider.ReasonOf(err) != provider.ReasonAccessDenied || !strings.Contains(err.Error(), `object "secret/db"`) {
				t.Errorf("refresh with db denied: %v, want AccessDenied naming secret/db", err)
			}
			f.mu.Lock()
			delete(f.denied, "db")
			f.mu.Unlock()
			providertest.WantFiles(t, dir, anyContent(append([]string{"present"}, all...)))

			for _, o := range [][2]string{{"secrets", "db"}, {"keys", "signing"}, {"certificates", "web"}, {"secrets", "hist"}} {
				f.remove(o[0], o[1])
			}
			res = refresh()
			if onDelete == "keep" {
				providertest.WantFiles(t, dir, anyContent(append([]string{"present"}, all...)))
				if got := providertest.ReadFile(t, dir, "db"); got != "s3cr3t-db" {
					t.Errorf("db = %q, want its last content kept", got)
				}
			} else {
				providertest.WantFiles(t, dir, map[string]string{"present": ""}, all...)
			}
			if !slices.Equal(res.Missing, ids) {
				t.Errorf("Missing = %v after the delete, want %v", res.Missing, ids)
			}
			if got := providertest.ReadFile(t, dir, "present"); got != "s3cr3t-present" {
				t.Errorf("present = %q", got)
			}
		})
	}

	t.Run("required missing", func(t *testing.T) {
		c, err := spc.ParseAnnotated(r.ns, "azure-class", "azure", map[string]string{"keyvaultName": "kv-test", "tenantId": f.tenant, "clientID": testClientID,
			"objects": objectsParam("objectName: present\nobjectType: secret", "objectName: maybe\nobjectType: secret", "objectName: required\nobjectType: secret")},
			map[string]string{spc.AnnotationOptionalObjects: "maybe"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = (&volume.Volume{Class: c, Dir: filepath.Join(t.TempDir(), "vol")}).Refresh(ctx, r.p, r.request(c).Identity)
		if err == nil {
			t.Fatal("refresh succeeded with a required secret missing")
		}
		for _, w := range []string{"SecretProviderClass " + r.ns + "/azure-class (provider azure)", `object "secret/required"`, "NotFound", "HTTP 404 SecretNotFound"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q lacks %q", err, w)
			}
		}
		if strings.Contains(err.Error(), "maybe") {
			t.Errorf("error %q blames the optional object", err)
		}
	})
}

// anyContent wants each of names with some content.
func anyContent(names []string) map[string]string {
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[n] = ""
	}
	return m
}
