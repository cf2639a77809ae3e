package azure

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/providertest"
	"github.com/ssinjector/ssi/internal/spc"
)

// confFile is what one written file must be: its permission on disk and
// its content (data, or check for binary and PEM contents).
type confFile struct {
	mode  fs.FileMode
	data  string
	check func(t *testing.T, b []byte)
}

// TestConformanceAzureContents fetches classes drawn from the upstream Azure
// Key Vault provider (github.com/Azure/secrets-store-csi-driver-provider-azure)
// against the fake Key Vault through the real SDK clients, resolves them as
// the agent does (provider.Merge: the last writer of a path wins), writes
// them with atomicdir as the agent and the node shim do, and checks every
// file's name, mode on disk and content. The identity is a service
// principal from the volume's nodePublishSecretRef (upstream's default
// mode), so no API server is needed. Paths in the comments are files of the
// Azure provider's repository unless another is named.
func TestConformanceAzureContents(t *testing.T) {
	ca := providertest.NewCA(t)
	fake := newFakeAzure(t, ca, &providertest.Reviewer{})
	fake.principals[spClientID] = spSecret1
	fake.access[spClientID] = true
	p := New(Options{
		ClientOptions: azcore.ClientOptions{Transport: providertest.HTTPClient(ca, fake.dialer()), Retry: policy.RetryOptions{MaxRetries: -1}},
		Getenv:        func(string) string { return "" },
	})

	// The vault.
	fake.put("secrets", "secret1", kvVer{value: "secret1-old"})
	fake.put("secrets", "secret1", kvVer{value: "secret1-value"})
	fake.put("secrets", "b64", kvVer{value: base64.StdEncoding.EncodeToString([]byte("bin\x00ary\xff"))})
	fake.put("secrets", "hexval", kvVer{value: hex.EncodeToString([]byte("hex\x01value"))})
	fake.put("secrets", "utf", kvVer{value: "ütf-8 välue"})
	var hist []string
	for _, v := range []string{"h-1", "h-2", "h-3", "h-4", "h-5"} {
		hist = append(hist, fake.put("secrets", "hist", kvVer{value: v}))
	}
	var gappy []string
	for _, v := range []string{"g-1", "g-2", "g-3", "g-4"} {
		gappy = append(gappy, fake.put("secrets", "gappy", kvVer{value: v}))
	}
	fake.disable("secrets", "gappy", gappy[2])
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	fake.put("keys", "key1", kvVer{jwk: rsaJWK(&rsaKey.PublicKey, "RSA")})
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	fake.put("keys", "eckey", kvVer{jwk: ecJWK(t, &ecKey.PublicKey, "EC", "P-256")})
	pem1 := newChain(t, "pemcert1.example.test")
	fake.put("certificates", "pemcert1", kvVer{cer: pem1.leaf.Raw})
	fake.put("secrets", "pemcert1", kvVer{value: pem1.pemBundle(t), contentType: contentTypePEM, certBacked: true})
	p12 := newChain(t, "pkcs12cert1.example.test")
	p12Pub := &p12.leafKey.(*rsa.PrivateKey).PublicKey
	fake.put("certificates", "pkcs12cert1", kvVer{cer: p12.leaf.Raw})
	fake.put("keys", "pkcs12cert1", kvVer{jwk: rsaJWK(p12Pub, "RSA")})
	p12Text := p12.pfxBase64(t)
	fake.put("secrets", "pkcs12cert1", kvVer{value: p12Text, contentType: contentTypePFX, certBacked: true})
	fake.put("secrets", "x", kvVer{value: "x-secret"})
	fake.put("keys", "x", kvVer{jwk: rsaJWK(&rsaKey.PublicKey, "RSA")})
	fake.put("secrets", "y", kvVer{value: "y-secret"})

	text := func(s string, mode fs.FileMode) confFile { return confFile{mode: mode, data: s} }
	pubKey := func(want any) confFile {
		return confFile{mode: 0o644, check: func(t *testing.T, b []byte) { checkPublicKey(t, b, want) }}
	}
	certPEM := func(c *chain) confFile {
		return confFile{mode: 0o644, check: func(t *testing.T, b []byte) {
			if blocks := pemBlocks(t, b); len(blocks) != 1 || blocks[0].Type != "CERTIFICATE" || !bytes.Equal(blocks[0].Bytes, c.leaf.Raw) {
				t.Errorf("not the leaf certificate as one CERTIFICATE block")
			}
		}}
	}
	chainPEM := func(c *chain) confFile {
		return confFile{mode: 0o644, check: func(t *testing.T, b []byte) { checkPEMChain(t, "file", b, c) }}
	}
	tests := map[string]struct {
		objects []string
		files   map[string]confFile
	}{
		// pkg/provider/provider_test.go TestGetSecret "secret"; test/e2e/secret_test.go "should read secret from pod"
		"secret": {[]string{"objectName: secret1\nobjectType: secret"}, map[string]confFile{"secret1": text("secret1-value", 0o644)}},
		// test/e2e/secret_test.go "should read secret from pod with alias"
		"secret with alias": {[]string{"objectName: secret1\nobjectType: secret\nobjectAlias: SECRET_1"}, map[string]confFile{"SECRET_1": text("secret1-value", 0o644)}},
		// pkg/provider/validate.go validateFileName allows separators: the driver writes nested files
		"nested alias": {[]string{"objectName: secret1\nobjectType: secret\nobjectAlias: dir/sub/file"}, map[string]confFile{"dir/sub/file": text("secret1-value", 0o644)}},
		// test/e2e/secret_file_permission_test.go "should mount secret file with given permission"
		"filePermission 0755": {[]string{"objectName: secret1\nobjectType: secret\nfilePermission: \"0755\""}, map[string]confFile{"secret1": text("secret1-value", 0o755)}},
		// pkg/provider/types/parameters_test.go TestGetFilePermissionError "invalid file permission": provider.go drops the
		// error and the driver's atomic_writer.go writes mode 0
		"filePermission 0900 is 0000": {[]string{"objectName: secret1\nobjectType: secret\nfilePermission: \"0900\""}, map[string]confFile{"secret1": text("secret1-value", 0)}},
		// pkg/provider/types/parameters.go GetFilePermission("0000") = 0: written 0000
		"filePermission 0000": {[]string{"objectName: secret1\nobjectType: secret\nfilePermission: \"0000\""}, map[string]confFile{"secret1": text("secret1-value", 0)}},
		// driver atomic_writer.go os.Chmod(os.FileMode(01640)) keeps the permission bits
		"filePermission 01640": {[]string{"objectName: secret1\nobjectType: secret\nfilePermission: \"01640\""}, map[string]confFile{"secret1": text("secret1-value", 0o640)}},
		// pkg/provider/provider_test.go TestGetContentBytes "Base64 encoding"
		"base64 encoding": {[]string{"objectName: b64\nobjectType: secret\nobjectEncoding: base64"}, map[string]confFile{"b64": text("bin\x00ary\xff", 0o644)}},
		// pkg/provider/provider_test.go TestGetContentBytes "Hex encoding" (EqualFold: HEX)
		"hex encoding": {[]string{"objectName: hexval\nobjectType: secret\nobjectEncoding: HEX"}, map[string]confFile{"hexval": text("hex\x01value", 0o644)}},
		// pkg/provider/provider_test.go TestGetContentBytes "UTF-8 encoding"
		"utf-8 encoding": {[]string{"objectName: utf\nobjectType: secret\nobjectEncoding: utf-8"}, map[string]confFile{"utf": text("ütf-8 välue", 0o644)}},
		// test/e2e/key_test.go "should read key from pod" / "with alias": the RSA public key as PEM
		"rsa key": {[]string{"objectName: key1\nobjectType: key", "objectName: key1\nobjectType: key\nobjectAlias: KEY_1"},
			map[string]confFile{"key1": pubKey(&rsaKey.PublicKey), "KEY_1": pubKey(&rsaKey.PublicKey)}},
		// pkg/provider/provider.go getKey JSONWebKeyTypeEC; provider_test.go TestGetCurve P-256
		"ec key": {[]string{"objectName: eckey\nobjectType: key"}, map[string]confFile{"eckey": pubKey(&ecKey.PublicKey)}},
		// pkg/provider/provider_test.go TestGetCertificate: the certificate as one PEM block
		"cert": {[]string{"objectName: pemcert1\nobjectType: cert"}, map[string]confFile{"pemcert1": certPEM(pem1)}},
		// pkg/provider/validate.go validateObjectFormat: "PFX" on a cert passes the exact check; getCertificate writes PEM
		"PFX on a cert": {[]string{"objectName: pemcert1\nobjectType: cert\nobjectFormat: PFX"}, map[string]confFile{"pemcert1": certPEM(pem1)}},
		// pkg/provider/provider_test.go TestGetSecret "secret with kid, pem cert and key": as stored
		"secret with kid, pem": {[]string{"objectName: pemcert1\nobjectType: secret\nobjectAlias: pemcert1-secret"}, map[string]confFile{"pemcert1-secret": chainPEM(pem1)}},
		// pkg/provider/provider_test.go TestGetSecret "secret with kid, pfx, objectFormat=pfx": the base64 text as stored
		"secret with kid, pfx, objectFormat=pfx": {[]string{"objectName: pkcs12cert1\nobjectType: secret\nobjectFormat: pfx\nobjectAlias: p.pfx"}, map[string]confFile{"p.pfx": text(p12Text, 0o644)}},
		// pkg/provider/provider_test.go TestGetSecret "secret with kid, pfx, objectFormat=pem": key, then leaf, intermediate, root
		"secret with kid, pfx, objectFormat=pem": {[]string{"objectName: pkcs12cert1\nobjectType: secret\nobjectFormat: Pem"}, map[string]confFile{"pkcs12cert1": chainPEM(p12)}},
		// pkg/provider/provider_test.go TestGetSecret "secret with kid, pfx, default objectFormat"
		"secret with kid, pfx, default objectFormat": {[]string{"objectName: pkcs12cert1\nobjectType: secret"}, map[string]confFile{"pkcs12cert1": chainPEM(p12)}},
		// pkg/provider/provider.go getSecret (EqualFold pfx) + getContentBytes base64: the PKCS#12 bytes
		"PFX with base64 encoding": {[]string{"objectName: pkcs12cert1\nobjectType: secret\nobjectFormat: PFX\nobjectEncoding: Base64\nobjectAlias: p.p12"},
			map[string]confFile{"p.p12": {mode: 0o644, check: func(t *testing.T, b []byte) {
				if _, leaf, cas, err := pkcs12.DecodeChain(b, ""); err != nil || !leaf.Equal(p12.leaf) || len(cas) != 2 {
					t.Errorf("not the PKCS#12 archive of the chain: %v", err)
				}
			}}}},
		// test/e2e/certificates_test.go BeforeEach (the pkcs12cert1 objects): cert, public key, PEM secret, PFX secret
		"certificates e2e": {[]string{"objectName: pkcs12cert1\nobjectType: cert", "objectName: pkcs12cert1\nobjectType: key\nobjectAlias: pkcs12cert1-pub-key",
			"objectName: pkcs12cert1\nobjectType: secret\nobjectAlias: pkcs12cert1-secret", "objectName: pkcs12cert1\nobjectType: secret\nobjectAlias: pkcs12cert1-secret-pfx\nobjectFormat: pfx"},
			map[string]confFile{"pkcs12cert1": certPEM(p12), "pkcs12cert1-pub-key": pubKey(p12Pub), "pkcs12cert1-secret": chainPEM(p12), "pkcs12cert1-secret-pfx": text(p12Text, 0o644)}},
		// pkg/provider/provider_test.go TestGetLatestNKeyVaultObjects "starts with latest version when no version specified"
		"history newest first": {[]string{"objectName: hist\nobjectType: secret\nobjectVersionHistory: 2"},
			map[string]confFile{"hist/0": text("h-5", 0o644), "hist/1": text("h-4", 0o644)}},
		// pkg/provider/provider_test.go TestGetLatestNKeyVaultObjects "starts at ObjectVersion when specified", with an alias and a mode
		"history from a version": {[]string{"objectName: hist\nobjectType: secret\nobjectAlias: h\nfilePermission: \"0600\"\nobjectVersionHistory: 2\nobjectVersion: " + hist[2]},
			map[string]confFile{"h/0": text("h-3", 0o600), "h/1": text("h-2", 0o600)}},
		// pkg/provider/provider_test.go TestGetLatestNKeyVaultObjects "fewer than ObjectVersionHistory results returns all versions"
		"history longer than the versions": {[]string{"objectName: hist\nobjectType: secret\nobjectVersionHistory: 200"},
			map[string]confFile{"hist/0": text("h-5", 0o644), "hist/1": text("h-4", 0o644), "hist/2": text("h-3", 0o644), "hist/3": text("h-2", 0o644), "hist/4": text("h-1", 0o644)}},
		// pkg/provider/provider.go getLatestNKeyVaultObjects: objectVersion "latest" starts at the newest
		"history from latest": {[]string{"objectName: hist\nobjectType: secret\nobjectVersion: latest\nobjectVersionHistory: 2"},
			map[string]confFile{"hist/0": text("h-5", 0o644), "hist/1": text("h-4", 0o644)}},
		// pkg/provider/keyvault.go GetSecretVersions: disabled versions are not listed
		"history skips disabled versions": {[]string{"objectName: gappy\nobjectType: secret\nobjectVersionHistory: 3"},
			map[string]confFile{"gappy/0": text("g-4", 0o644), "gappy/1": text("g-2", 0o644), "gappy/2": text("g-1", 0o644)}},
		// pkg/provider/types/parameters.go IsSyncingSingleVersion (<= 1): -1 is the latest version as one file
		"history -1": {[]string{"objectName: hist\nobjectType: secret\nobjectVersionHistory: -1"}, map[string]confFile{"hist": text("h-5", 0o644)}},
		// pkg/provider/provider.go getLatestNKeyVaultObjects: filepath.Join cleans "dir/" to dir/0
		"history alias with a trailing slash": {[]string{"objectName: hist\nobjectType: secret\nobjectAlias: dir/\nobjectVersionHistory: 2"},
			map[string]confFile{"dir/0": text("h-5", 0o644), "dir/1": text("h-4", 0o644)}},
		// driver atomic_writer.go: another file in a directory of versions
		"file beside a history": {[]string{"objectName: hist\nobjectType: secret\nobjectAlias: certs\nobjectVersionHistory: 2", "objectName: pemcert1\nobjectType: cert\nobjectAlias: certs/ca.pem"},
			map[string]confFile{"certs/0": text("h-5", 0o644), "certs/1": text("h-4", 0o644), "certs/ca.pem": certPEM(pem1)}},
		// pkg/provider/provider.go getSecret with objectVersion: the pinned version
		"pinned version": {[]string{"objectName: hist\nobjectType: secret\nobjectVersion: " + hist[0]}, map[string]confFile{"hist": text("h-1", 0o644)}},
		// pkg/provider/provider.go GetSecretsStoreObjectContent returns both files; the driver's fileutil/writer.go
		// WritePayloads keys them by path, so the later (the key, with its mode) is written
		"secret and key of one name": {[]string{"objectName: x\nobjectType: secret", "objectName: x\nobjectType: key\nfilePermission: \"0640\""},
			map[string]confFile{"x": {mode: 0o640, check: func(t *testing.T, b []byte) { checkPublicKey(t, b, &rsaKey.PublicKey) }}}},
		// same, the other order: the secret wins
		"key and secret of one name": {[]string{"objectName: x\nobjectType: key", "objectName: x\nobjectType: secret"}, map[string]confFile{"x": text("x-secret", 0o644)}},
		// same, an alias equal to another object's name
		"alias equal to another name": {[]string{"objectName: x\nobjectType: secret\nfilePermission: \"0600\"", "objectName: y\nobjectType: secret\nobjectAlias: x"}, map[string]confFile{"x": text("y-secret", 0o644)}},
		// pkg/provider/provider_test.go TestGetSecretsStoreObjectContent "objects array is empty"
		"empty objects array": {nil, map[string]confFile{}},
	}
	request := func(t *testing.T, params map[string]string) provider.Request {
		t.Helper()
		c, err := spc.ParseSpec("ns", "azure-class", "azure", params)
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		return provider.Request{
			Class: c,
			Identity: identity.Identity{
				Pod:   identity.Pod{Namespace: "ns", Name: "web-0", UID: "uid-1", ServiceAccount: "app"},
				Cloud: identity.Decide(c, identity.Sources{ServiceAccount: "app", NodePublishSecret: true}).Cloud,
			},
			Secrets:    map[string]string{"clientid": spClientID, "clientsecret": spSecret1},
			Permission: 0o644,
		}
	}
	// pkg/provider/provider.go getLatestNKeyVaultObjects: an objectVersion that is not an enabled version
	// yields no file upstream; here the fetch fails NotFound naming the object (docs/providers/azure.md).
	t.Run("history from a missing version", func(t *testing.T) {
		req := request(t, map[string]string{"keyvaultName": "kv-test", "tenantId": fake.tenant,
			"objects": objectsParam("objectName: gappy\nobjectType: secret\nobjectVersionHistory: 2\nobjectVersion: " + gappy[2])})
		_, err := p.Fetch(context.Background(), req)
		if provider.ReasonOf(err) != provider.ReasonNotFound || !strings.Contains(err.Error(), "secret/gappy") || !strings.Contains(err.Error(), gappy[2]) {
			t.Fatalf("fetch: %v, want NotFound naming secret/gappy and the version", err)
		}
	})
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			params := map[string]string{"keyvaultName": "kv-test", "tenantId": fake.tenant, "objects": objectsParam(tc.objects...)}
			if len(tc.objects) == 0 {
				params["objects"] = "array: []"
			}
			req := request(t, params)
			objs, err := p.Fetch(context.Background(), req)
			if err != nil {
				t.Fatalf("fetch: %v", err)
			}
			_, files, err := provider.Merge(nil, objs)
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "vol")
			if _, err := atomicdir.Write(dir, files); err != nil {
				t.Fatalf("write: %v", err)
			}
			var got, want []string
			for _, f := range files {
				got = append(got, f.Path)
			}
			for path := range tc.files {
				want = append(want, path)
			}
			sort.Strings(want)
			if len(got) != len(want) {
				t.Fatalf("files %q, want %q", got, want)
			}
			for i, f := range files {
				if f.Path != want[i] {
					t.Fatalf("files %q, want %q", got, want)
				}
				w := tc.files[f.Path]
				st, err := os.Stat(filepath.Join(dir, f.Path))
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != w.mode {
					t.Errorf("%s: mode %04o on disk, want %04o", f.Path, st.Mode().Perm(), w.mode)
				}
				if w.check != nil {
					w.check(t, f.Data)
				} else if string(f.Data) != w.data {
					t.Errorf("%s = %q, want %q", f.Path, f.Data, w.data)
				}
			}
		})
	}
}
