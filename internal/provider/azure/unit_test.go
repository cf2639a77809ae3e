package azure

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/spc"
)

func TestDecode(t *testing.T) {
	cases := map[string]struct {
		encoding, in, want, err string
	}{
		"empty is utf-8":   {"", "s3cr3t", "s3cr3t", ""},
		"utf-8":            {"utf-8", "s3cr3t", "s3cr3t", ""},
		"base64":           {"base64", "czNjcjN0", "s3cr3t", ""},
		"base64 upper":     {"BASE64", "czNjcjN0", "s3cr3t", ""},
		"hex":              {"hex", "7333637233 74", "", "not hexadecimal"},
		"hex ok":           {"hex", "733363723374", "s3cr3t", ""},
		"bad base64":       {"base64", "s3cr3t!!", "", "not standard base64"},
		"unknown encoding": {"rot13", "s3cr3t", "", "is not utf-8, base64 or hex"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := decode(tc.encoding, []byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), tc.in) {
					t.Fatalf("error quotes the value: %v", err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestPublicKeyPEM(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	jwk := func(m map[string]any) *azkeys.JSONWebKey {
		var k azkeys.JSONWebKey
		b := mustJSON(t, m)
		if err := k.UnmarshalJSON(b); err != nil {
			t.Fatal(err)
		}
		return &k
	}
	cases := map[string]struct {
		key  *azkeys.JSONWebKey
		want any
		err  string
	}{
		"RSA":           {jwk(rsaJWK(&rsaKey.PublicKey, "RSA")), &rsaKey.PublicKey, ""},
		"RSA-HSM":       {jwk(rsaJWK(&rsaKey.PublicKey, "RSA-HSM")), &rsaKey.PublicKey, ""},
		"EC P-256":      {jwk(ecJWK(t, &p256.PublicKey, "EC", "P-256")), &p256.PublicKey, ""},
		"EC-HSM P-521":  {jwk(ecJWK(t, &p521.PublicKey, "EC-HSM", "P-521")), &p521.PublicKey, ""},
		"secp256k1":     {jwk(map[string]any{"kty": "EC", "crv": "P-256K", "x": "AA", "y": "AA"}), nil, `EC curve "P-256K" is not supported`},
		"symmetric":     {jwk(map[string]any{"kty": "oct"}), nil, `key type "oct" is not supported`},
		"no curve":      {jwk(map[string]any{"kty": "EC", "x": "AA", "y": "AA"}), nil, "has no curve"},
		"not on curve":  {jwk(map[string]any{"kty": "EC", "crv": "P-256", "x": "AQ", "y": "AQ"}), nil, "is not a point on P-256"},
		"no material":   {&azkeys.JSONWebKey{}, nil, "no key material"},
		"RSA without n": {jwk(map[string]any{"kty": "RSA", "e": "AQAB"}), nil, "no modulus"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := publicKeyPEM(tc.key)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkPublicKey(t, got, tc.want)
		})
	}
}

func TestPFXToPEMOrdersChain(t *testing.T) {
	c := newChain(t, "order.example.test")
	other := newChain(t, "unrelated.example.test")
	cases := map[string]struct {
		cas  []*x509.Certificate
		want []*x509.Certificate
	}{
		"root then intermediate": {[]*x509.Certificate{c.root, c.inter}, []*x509.Certificate{c.leaf, c.inter, c.root}},
		"already ordered":        {[]*x509.Certificate{c.inter, c.root}, []*x509.Certificate{c.leaf, c.inter, c.root}},
		"incomplete chain":       {[]*x509.Certificate{c.root}, []*x509.Certificate{c.leaf, c.root}},
		"unrelated certificate":  {[]*x509.Certificate{other.root, c.root, c.inter}, []*x509.Certificate{c.leaf, c.inter, c.root, other.root}},
		"leaf only":              {nil, []*x509.Certificate{c.leaf}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, err := pfxToPEM(c.pfx(t, tc.cas...))
			if err != nil {
				t.Fatal(err)
			}
			blocks := pemBlocks(t, out)
			if len(blocks) != 1+len(tc.want) || blocks[0].Type != "PRIVATE KEY" {
				t.Fatalf("%d blocks, first %s", len(blocks), blocks[0].Type)
			}
			if _, err := x509.ParsePKCS8PrivateKey(blocks[0].Bytes); err != nil {
				t.Fatalf("key is not PKCS#8: %v", err)
			}
			for i, w := range tc.want {
				if !bytes.Equal(blocks[i+1].Bytes, w.Raw) {
					t.Errorf("certificate %d is not %s", i, w.Subject.CommonName)
				}
			}
		})
	}
	if _, err := pfxToPEM([]byte("s3cr3t garbage")); err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("garbage PFX: %v", err)
	}
}

func TestResolveCloud(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	_ = os.WriteFile(good, []byte(`{"name":"AzureStackCloud","activeDirectoryEndpoint":"https://login.stack.test","keyVaultDNSSuffix":".vault.stack.test"}`), 0o600)
	partial := filepath.Join(dir, "partial.json")
	_ = os.WriteFile(partial, []byte(`{"name":"AzureStackCloud"}`), 0o600)
	notJSON := filepath.Join(dir, "bad.json")
	_ = os.WriteFile(notJSON, []byte(`name: x`), 0o600)
	cases := map[string]struct {
		cloud, file string
		env         map[string]string
		authority   string
		vault       string
		verify      bool
		err         string
	}{
		"public":         {spc.AzurePublicCloud, "", nil, "https://login.microsoftonline.com/", "https://kv.vault.azure.net/", true, ""},
		"us government":  {spc.AzureUSGovernmentCloud, "", nil, "https://login.microsoftonline.us/", "https://kv.vault.usgovcloudapi.net/", true, ""},
		"china":          {spc.AzureChinaCloud, "", nil, "https://login.chinacloudapi.cn/", "https://kv.vault.azure.cn/", true, ""},
		"stack":          {spc.AzureStackCloud, good, nil, "https://login.stack.test/", "https://kv.vault.stack.test/", true, ""},
		"stack partial":  {spc.AzureStackCloud, partial, nil, "", "", false, "must set activeDirectoryEndpoint and keyVaultDNSSuffix"},
		"stack not JSON": {spc.AzureStackCloud, notJSON, nil, "", "", false, "is not an Azure environment JSON document"},
		"authority env":  {spc.AzurePublicCloud, "", map[string]string{EnvAuthorityHost: "https://login.example.test"}, "https://login.example.test/", "https://kv.vault.azure.net/", true, ""},
		"http authority": {spc.AzurePublicCloud, "", map[string]string{EnvAuthorityHost: "http://login.example.test"}, "", "", false, "is not an https URL"},
		"vault env":      {spc.AzurePublicCloud, "", map[string]string{EnvKeyVaultEndpoint: "https://127.0.0.1:8443/"}, "https://login.microsoftonline.com/", "https://127.0.0.1:8443/", false, ""},
		"http vault env": {spc.AzurePublicCloud, "", map[string]string{EnvKeyVaultEndpoint: "http://127.0.0.1:8080"}, "https://login.microsoftonline.com/", "", false, "requires TLS"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			az := &spc.Azure{KeyvaultName: "kv", Cloud: tc.cloud, CloudEnvFileName: tc.file}
			getenv := func(k string) string { return tc.env[k] }
			ce, err := resolveCloud(az, getenv, limits.Files{})
			var vault string
			var verify bool
			if err == nil {
				vault, verify, err = vaultURL(az, ce, getenv)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || ce.authorityHost != tc.authority || vault != tc.vault || verify != tc.verify {
				t.Fatalf("authority %q vault %q verify %v err %v", ce.authorityHost, vault, verify, err)
			}
		})
	}
}

// TestResolveCloudFiles: cloudEnvFileName is read under the rules of
// limits.Files, and no error quotes the file.
func TestResolveCloudFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "env.json")
	_ = os.WriteFile(good, []byte(`{"activeDirectoryEndpoint":"https://login.stack.test","keyVaultDNSSuffix":"vault.stack.test"}`), 0o600)
	const marker = "hMARKER-c0ffee"
	leak := filepath.Join(dir, "leak.json")
	_ = os.WriteFile(leak, []byte(marker+`{"a":1}`), 0o600)
	typed := filepath.Join(dir, "typed.json")
	_ = os.WriteFile(typed, []byte(`{"activeDirectoryEndpoint":["`+marker+`"]}`), 0o600)
	cases := map[string]struct {
		files limits.Files
		file  string
		err   string
	}{
		"in pod, any regular file":    {limits.Files{}, good, ""},
		"in pod, a device":            {limits.Files{}, "/dev/zero", "is not a regular file"},
		"shared without a directory":  {limits.Files{Shared: true}, good, "--class-files-dir, which is not set"},
		"shared inside":               {limits.Files{Shared: true, Dir: dir}, good, ""},
		"shared outside":              {limits.Files{Shared: true, Dir: dir}, "/etc/hostname", "is not inside the class files directory"},
		"shared device":               {limits.Files{Shared: true, Dir: "/dev"}, "/dev/zero", "is not a regular file"},
		"too large":                   {limits.Files{MaxBytes: 16}, good, "more than the limit of 16 bytes"},
		"syntax error quotes nothing": {limits.Files{}, leak, "invalid JSON at byte 1"},
		"type error quotes nothing":   {limits.Files{}, typed, `field "activeDirectoryEndpoint" is not a string`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			az := &spc.Azure{KeyvaultName: "kv", Cloud: spc.AzureStackCloud, CloudEnvFileName: tc.file}
			_, err := resolveCloud(az, func(string) string { return "" }, tc.files)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
			if strings.Contains(err.Error(), "MARKER") || strings.Contains(err.Error(), "'h'") {
				t.Fatalf("the error quotes the file's content: %v", err)
			}
		})
	}
}

func TestIdentityMode(t *testing.T) {
	cases := map[string]struct {
		az       spc.Azure
		cloud    identity.Cloud
		noLend   bool // a shared process whose operator did not allow its identity
		mode, id string
		err      string
	}{
		"class client ID":             {spc.Azure{ClientID: "a"}, identity.Cloud{AzureClientID: "b"}, false, modeWorkloadIdentity, "a", ""},
		"annotation client ID":        {spc.Azure{}, identity.Cloud{AzureClientID: "b"}, false, modeWorkloadIdentity, "b", ""},
		"VM identity":                 {spc.Azure{UseVMManagedIdentity: true, UserAssignedIdentityID: "u"}, identity.Cloud{}, false, modeManagedIdentity, "u", ""},
		"system VM identity":          {spc.Azure{UseVMManagedIdentity: true}, identity.Cloud{}, false, modeManagedIdentity, "", ""},
		"VM identity, shared process": {spc.Azure{UseVMManagedIdentity: true, UserAssignedIdentityID: "u"}, identity.Cloud{}, true, "", "", "lends to no class unless the operator allows it"},
		"workload identity, shared":   {spc.Azure{ClientID: "a"}, identity.Cloud{}, true, modeWorkloadIdentity, "a", ""},
		"pod identity":                {spc.Azure{UsePodIdentity: true}, identity.Cloud{}, false, "", "", "aad-pod-identity is retired"},
		"token proxy":                 {spc.Azure{UseAzureTokenProxy: true}, identity.Cloud{}, false, "", "", "identity binding is not supported"},
		"nothing":                     {spc.Azure{}, identity.Cloud{}, false, "", "", "no workload identity client ID"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			az := tc.az
			req := provider.Request{Class: &spc.Class{Azure: &az}, Identity: identity.Identity{Cloud: tc.cloud}}
			mode, id, err := identityMode(req, tc.noLend)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || mode != tc.mode || id != tc.id {
				t.Fatalf("mode %q id %q err %v", mode, id, err)
			}
		})
	}
}
