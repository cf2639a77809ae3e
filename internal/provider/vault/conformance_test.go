package vault

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"testing"
)

// kvAnswer is a Vault read answer whose data is the given JSON object.
func kvAnswer(data string) string {
	return `{"request_id":"req-1","lease_id":"","renewable":false,"lease_duration":0,"data":` + data + `,"wrap_info":null,"warnings":null,"auth":null}`
}

// wantFile is a file an object must produce; check, when set, replaces the
// byte comparison (for whole-response JSON).
type wantFile struct {
	mode  fs.FileMode
	data  string
	check func(t *testing.T, b []byte)
}

// wholeResponse checks that b is the whole Vault answer as JSON whose data
// holds key k with value v.
func wholeResponse(k, v string) func(t *testing.T, b []byte) {
	return func(t *testing.T, b []byte) {
		var r struct {
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("content is not the JSON response: %v", err)
		}
		if r.Data[k] != v {
			t.Fatalf("response data[%q] = %v, want %q", k, r.Data[k], v)
		}
	}
}

// TestConformanceVaultContents fetches classes drawn from the upstream Vault
// provider (github.com/hashicorp/vault-csi-provider) against the fake Vault
// and checks every file's name, mode and content.
func TestConformanceVaultContents(t *testing.T) {
	type answer struct{ method, path, body string }
	kv := func(path, data string) answer { return answer{http.MethodGet, path, kvAnswer(data)} }
	tests := map[string]struct {
		objects string
		answers []answer
		files   map[string]wantFile
	}{
		// internal/provider/provider_test.go TestKeyFromData "string data"
		"string data": {"- {objectName: o, secretPath: secret/app, secretKey: foo}", []answer{kv("/v1/secret/app", `{"foo":"bar"}`)},
			map[string]wantFile{"o": {mode: 0o644, data: "bar"}}},
		// internal/provider/provider_test.go TestKeyFromData "kv v2 embedded data field"
		"kv v2 embedded data": {"- {objectName: o, secretPath: secret/data/app, secretKey: foo}", []answer{kv("/v1/secret/data/app", `{"data":{"foo":"bar"},"metadata":{"version":3}}`)},
			map[string]wantFile{"o": {mode: 0o644, data: "bar"}}},
		// internal/provider/provider_test.go TestKeyFromData "json data"
		"json data": {"- {objectName: o, secretPath: secret/app, secretKey: foo}", []answer{kv("/v1/secret/app", `{"foo":{"a":"b"}}`)},
			map[string]wantFile{"o": {mode: 0o644, data: `{"a":"b"}`}}},
		// internal/provider/provider_test.go TestKeyFromData "json array"
		"json array": {"- {objectName: o, secretPath: secret/app, secretKey: foo}", []answer{kv("/v1/secret/app", `{"foo":["a","b"]}`)},
			map[string]wantFile{"o": {mode: 0o644, data: `["a","b"]`}}},
		// internal/provider/provider.go keyFromData: numbers come through json.Number, exact text
		"number keeps its text": {"- {objectName: o, secretPath: secret/app, secretKey: n}", []answer{kv("/v1/secret/app", `{"n":1.50}`)},
			map[string]wantFile{"o": {mode: 0o644, data: "1.50"}}},
		// internal/provider/provider.go keyFromData: a boolean is JSON-encoded
		"boolean": {"- {objectName: o, secretPath: secret/app, secretKey: b}", []answer{kv("/v1/secret/app", `{"b":true}`)},
			map[string]wantFile{"o": {mode: 0o644, data: "true"}}},
		// internal/provider/provider.go keyFromData: null is JSON-encoded
		"null": {"- {objectName: o, secretPath: secret/app, secretKey: z}", []answer{kv("/v1/secret/app", `{"z":null}`)},
			map[string]wantFile{"o": {mode: 0o644, data: "null"}}},
		// internal/provider/provider.go keyFromData: "data" that is not a map is an ordinary key
		"data key not a map": {"- {objectName: o, secretPath: secret/app, secretKey: k}", []answer{kv("/v1/secret/app", `{"data":"x","k":"v"}`)},
			map[string]wantFile{"o": {mode: 0o644, data: "v"}}},
		// internal/provider/provider.go decodeValue base64
		"base64": {"- {objectName: o, secretPath: secret/app, secretKey: k, encoding: base64}", []answer{kv("/v1/secret/app", `{"k":"aGVsbG8="}`)},
			map[string]wantFile{"o": {mode: 0o644, data: "hello"}}},
		// internal/provider/provider.go decodeValue: strings.EqualFold
		"BASE64 upper case": {"- {objectName: o, secretPath: secret/app, secretKey: k, encoding: BASE64}", []answer{kv("/v1/secret/app", `{"k":"aGVsbG8="}`)},
			map[string]wantFile{"o": {mode: 0o644, data: "hello"}}},
		// internal/provider/provider.go decodeValue hex
		"hex": {"- {objectName: o, secretPath: secret/app, secretKey: k, encoding: hex}", []answer{kv("/v1/secret/app", `{"k":"68656c6c6f"}`)},
			map[string]wantFile{"o": {mode: 0o644, data: "hello"}}},
		// internal/provider/provider.go decodeValue utf-8
		"utf-8": {"- {objectName: o, secretPath: secret/app, secretKey: k, encoding: utf-8}", []answer{kv("/v1/secret/app", `{"k":"grüße ✓"}`)},
			map[string]wantFile{"o": {mode: 0o644, data: "grüße ✓"}}},
		// internal/provider/provider.go getSecret: no secretKey, encoding ignored, whole response
		"encoding ignored without secretKey": {"- {objectName: o, secretPath: secret/app, encoding: base64}", []answer{kv("/v1/secret/app", `{"k":"aGVsbG8="}`)},
			map[string]wantFile{"o": {mode: 0o644, check: wholeResponse("k", "aGVsbG8=")}}},
		// internal/provider/provider.go getSecret: unknown encoding without secretKey is never read
		"unknown encoding without secretKey": {"- {objectName: o, secretPath: secret/app, encoding: rot13}", []answer{kv("/v1/secret/app", `{"k":"v"}`)},
			map[string]wantFile{"o": {mode: 0o644, check: wholeResponse("k", "v")}}},
		// internal/provider/provider_test.go TestHandleMountRequest: a key and a whole response
		"handle mount request": {"- {objectName: object-one, secretPath: path/one, secretKey: the-key}\n- {objectName: object-two, secretPath: path/two}",
			[]answer{kv("/v1/path/one", `{"the-key":"secret v1"}`), kv("/v1/path/two", `{"k":"secret v2"}`)},
			map[string]wantFile{"object-one": {mode: 0o644, data: "secret v1"}, "object-two": {mode: 0o644, check: wholeResponse("k", "secret v2")}}},
		// internal/provider/provider.go HandleMountRequest: filePermission wins
		"filePermission 0600": {"- {objectName: o, secretPath: secret/app, secretKey: k, filePermission: 0600}", []answer{kv("/v1/secret/app", `{"k":"v"}`)},
			map[string]wantFile{"o": {mode: 0o600, data: "v"}}},
		// provider.go int32(FilePermission) → driver atomic_writer.go: special bits dropped
		"filePermission 01600": {"- {objectName: o, secretPath: secret/app, secretKey: k, filePermission: 01600}", []answer{kv("/v1/secret/app", `{"k":"v"}`)},
			map[string]wantFile{"o": {mode: 0o600, data: "v"}}},
		// same, setuid bit
		"filePermission 04755": {"- {objectName: o, secretPath: secret/app, secretKey: k, filePermission: 04755}", []answer{kv("/v1/secret/app", `{"k":"v"}`)},
			map[string]wantFile{"o": {mode: 0o755, data: "v"}}},
		// internal/provider/provider.go HandleMountRequest: zero is the mount's permission
		"filePermission 0": {"- {objectName: o, secretPath: secret/app, secretKey: k, filePermission: 0}", []answer{kv("/v1/secret/app", `{"k":"v"}`)},
			map[string]wantFile{"o": {mode: 0o644, data: "v"}}},
		// objectName is the file path: nested
		"nested objectName": {"- {objectName: tls/cert.pem, secretPath: secret/app, secretKey: k}", []answer{kv("/v1/secret/app", `{"k":"PEM"}`)},
			map[string]wantFile{"tls/cert.pem": {mode: 0o644, data: "PEM"}}},
		// secrets-store-csi-driver atomic_writer.go validatePath: nested ".." prefix
		"nested dotdot objectName": {"- {objectName: dir/..hidden, secretPath: secret/app, secretKey: k}", []answer{kv("/v1/secret/app", `{"k":"h"}`)},
			map[string]wantFile{"dir/..hidden": {mode: 0o644, data: "h"}}},
		// internal/client/client_test.go TestEnsureV1Prefix "leading /v1/"
		"leading /v1/": {"- {objectName: o, secretPath: /v1/secret/foo, secretKey: k}", []answer{kv("/v1/secret/foo", `{"k":"a"}`)},
			map[string]wantFile{"o": {mode: 0o644, data: "a"}}},
		// internal/client/client_test.go TestEnsureV1Prefix "leading v1"
		"leading v1": {"- {objectName: o, secretPath: v1/secret/foo, secretKey: k}", []answer{kv("/v1/secret/foo", `{"k":"b"}`)},
			map[string]wantFile{"o": {mode: 0o644, data: "b"}}},
		// internal/client/client_test.go TestEnsureV1Prefix "leading slash"
		"leading slash": {"- {objectName: o, secretPath: /secret/foo, secretKey: k}", []answer{kv("/v1/secret/foo", `{"k":"c"}`)},
			map[string]wantFile{"o": {mode: 0o644, data: "c"}}},
		// internal/client/client_test.go TestEnsureV1Prefix "leading 1"
		"leading 1": {"- {objectName: o, secretPath: 1/secret/foo, secretKey: k}", []answer{kv("/v1/1/secret/foo", `{"k":"d"}`)},
			map[string]wantFile{"o": {mode: 0o644, data: "d"}}},
		// internal/client/client_test.go TestEnsureV1Prefix "v2"
		"leading /v2/": {"- {objectName: o, secretPath: /v2/secret/foo, secretKey: k}", []answer{kv("/v1/v2/secret/foo", `{"k":"e"}`)},
			map[string]wantFile{"o": {mode: 0o644, data: "e"}}},
		// internal/client/client_test.go TestGenerateRequest "method specified" (PUT) with secretArgs (config_test.go certsSPCYaml)
		"PKI issue with PUT": {"- {objectName: cert, secretPath: pki/issue/example-dot-com, secretKey: certificate, method: PUT, secretArgs: {common_name: test.example.com}}",
			[]answer{{http.MethodPut, "/v1/pki/issue/example-dot-com", kvAnswer(`{"certificate":"CERT","private_key":"KEY"}`)}},
			map[string]wantFile{"cert": {mode: 0o644, data: "CERT"}}},
		// internal/client/client_test.go TestGenerateRequest "body specified" (POST)
		"POST": {"- {objectName: o, secretPath: transit/decrypt/k, secretKey: plaintext, method: POST, secretArgs: {ciphertext: 'vault:v1:x'}}",
			[]answer{{http.MethodPost, "/v1/transit/decrypt/k", kvAnswer(`{"plaintext":"cGxhaW4="}`)}},
			map[string]wantFile{"o": {mode: 0o644, data: "cGxhaW4="}}},
		// internal/provider/provider.go getSecret: shared secretPath and method, one response
		"shared response": {"- {objectName: user, secretPath: database/creds/app, secretKey: username}\n- {objectName: pass, secretPath: database/creds/app, secretKey: password}",
			[]answer{kv("/v1/database/creds/app", `{"username":"u1","password":"p1"}`)},
			map[string]wantFile{"user": {mode: 0o644, data: "u1"}, "pass": {mode: 0o644, data: "p1"}}},
		// internal/config/config_test.go const objects: v1/ prefix and filePermission 0600
		"objects constant": {"-\n  secretPath: \"v1/secret/foo1\"\n  objectName: \"bar1\"\n  filePermission: 0600\n  secretKey: k", []answer{kv("/v1/secret/foo1", `{"k":"f"}`)},
			map[string]wantFile{"bar1": {mode: 0o600, data: "f"}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			unitEnv(t)
			fv := newFakeVault(t)
			for _, a := range tc.answers {
				fv.reply(a.method, a.path, http.StatusOK, a.body)
			}
			c := unitClass(t, fv.srv.URL, map[string]string{"objects": tc.objects})
			p, logs := unitProvider(t, Options{})
			objs, err := unitFetch(t, p, logs, unitRequest(c, nil))
			if err != nil {
				t.Fatalf("fetch: %v", err)
			}
			got := map[string]bool{}
			for _, o := range objs {
				for _, file := range o.Files {
					got[file.Path] = true
					w, ok := tc.files[file.Path]
					if !ok {
						t.Errorf("unexpected file %q", file.Path)
						continue
					}
					if file.Mode != w.mode {
						t.Errorf("%s: mode %#o, want %#o", file.Path, file.Mode, w.mode)
					}
					if w.check != nil {
						w.check(t, file.Data)
					} else if string(file.Data) != w.data {
						t.Errorf("%s: content %q, want %q", file.Path, file.Data, w.data)
					}
				}
			}
			for path := range tc.files {
				if !got[path] {
					t.Errorf("file %q missing", path)
				}
			}
		})
	}
}
