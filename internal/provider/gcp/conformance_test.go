package gcp

import (
	"context"
	"io/fs"
	"testing"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider/providertest"
)

// TestConformanceGCPContents fetches classes drawn from the upstream Google
// provider (github.com/GoogleCloudPlatform/secrets-store-csi-driver-provider-gcp)
// against the fake Secret Manager, with the pod's ADC from the fake
// metadata server, and checks every file's name, mode and content. No API
// server is needed: the metadata server's account is the pod's.
func TestConformanceGCPContents(t *testing.T) {
	type want struct {
		mode fs.FileMode
		data string
	}
	const db = "projects/my-project/secrets/db/versions/"
	tests := map[string]struct {
		secrets string
		files   map[string]want
	}{
		// config/config_test.go TestParse "single secret"
		"single secret": {"- {resourceName: " + db + "latest, fileName: good1.txt}", map[string]want{"good1.txt": {0o644, "db-2"}}},
		// config/config_test.go TestParse "single secret with mode"
		"mode 0600": {"- {resourceName: " + db + "latest, fileName: good1.txt, mode: 0600}", map[string]want{"good1.txt": {0o600, "db-2"}}},
		// config/config_test.go TestParse "multiple secrets with decimal and octal modes"
		"decimal and octal modes": {"- {resourceName: " + db + "latest, fileName: good1.txt, mode: 256}\n- {resourceName: " + db + "1, fileName: good2.txt, mode: 0600}",
			map[string]want{"good1.txt": {0o400, "db-2"}, "good2.txt": {0o600, "db-1"}}},
		// server/server.go handleMountEvent + driver atomic_writer.go: 01777 keeps 0777
		"mode 01777": {"- {resourceName: " + db + "latest, path: a, mode: 01777}", map[string]want{"a": {0o777, "db-2"}}},
		// same, setuid bit dropped
		"mode 04755": {"- {resourceName: " + db + "latest, path: a, mode: 04755}", map[string]want{"a": {0o755, "db-2"}}},
		// server/server.go handleMountEvent: mode 0 is written 0000, as upstream writes it
		"mode 0": {"- {resourceName: " + db + "latest, path: a, mode: 0}", map[string]want{"a": {0, "db-2"}}},
		// config/config.go Secret.PathString: path wins
		"path wins over fileName": {"- {resourceName: " + db + "latest, path: new.txt, fileName: old.txt}", map[string]want{"new.txt": {0o644, "db-2"}}},
		// config/config.go Secret.PathString: nested path
		"nested path": {"- {resourceName: " + db + "latest, path: dir/sub/db}", map[string]want{"dir/sub/db": {0o644, "db-2"}}},
		// secrets-store-csi-driver atomic_writer.go validatePath: ".." prefix below the top level
		"nested dotdot element": {"- {resourceName: " + db + "latest, path: dir/..hidden}", map[string]want{"dir/..hidden": {0o644, "db-2"}}},
		// util/resource_validator_test.go "valid global secret specific version"
		"numbered version": {"- {resourceName: " + db + "1, path: v1}", map[string]want{"v1": {0o644, "db-1"}}},
		// resourceName versions/<alias>
		"alias": {"- {resourceName: " + db + "stable, path: s}", map[string]want{"s": {0o644, "db-1"}}},
		// server/server_test.go TestHandleMountEventForRegionalSecret
		"regional secret": {"- {resourceName: projects/my-project/locations/us-east1/secrets/regional/versions/latest, fileName: good1.txt}", map[string]want{"good1.txt": {0o644, "regional-1"}}},
		// util/key_extractor_test.go valid_json_key_exists_string_value (server_test.go TestHandleMountEventForExtractJSONKey)
		"extractJSONKey": {"- {resourceName: projects/my-project/secrets/json/versions/latest, path: user, extractJSONKey: user}", map[string]want{"user": {0o644, "admin"}}},
		// util/key_extractor_test.go valid_json_key_exists_empty_string_value
		"extractJSONKey empty string": {"- {resourceName: projects/my-project/secrets/json/versions/latest, path: token, extractJSONKey: token}", map[string]want{"token": {0o644, ""}}},
		// server/server_test.go TestHandleMountEventForMultipleSecretsExtractJSONKey
		"multiple secrets extractJSONKey": {"- {resourceName: projects/my-project/secrets/json/versions/latest, path: user, extractJSONKey: user}\n- {resourceName: projects/my-project/secrets/json/versions/latest, path: role, extractJSONKey: role}",
			map[string]want{"user": {0o644, "admin"}, "role": {0o644, "editor"}}},
		// util/key_extractor_test.go TestExtractContentUsingYAMLKey valid_yaml_key_exists_string_value
		"extractYAMLKey": {"- {resourceName: projects/my-project/secrets/yaml/versions/latest, path: pass, extractYAMLKey: password, mode: 0400}", map[string]want{"pass": {0o400, "s3cr3t"}}},
		// server/server.go resourceIdentity: the same resource at two paths in two modes
		"same resource two paths": {"- {resourceName: " + db + "latest, path: a, mode: 0400}\n- {resourceName: " + db + "latest, path: b, mode: 0644}",
			map[string]want{"a": {0o400, "db-2"}, "b": {0o644, "db-2"}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ca := providertest.NewCA(t)
			f := newFakeGCP(t, ca, &providertest.Reviewer{})
			t.Setenv("GCE_METADATA_HOST", f.metadata.Listener.Addr().String())
			t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
			t.Setenv("CLOUDSDK_CONFIG", t.TempDir())
			t.Setenv("HOME", t.TempDir())
			r := &rig{t: t, ns: "gcp", ca: ca, fake: f, vars: map[string]string{}}
			f.accessors["sa:"+gsaEmail] = true
			f.viewers["sa:"+gsaEmail] = true
			f.addVersion("projects/my-project/secrets/db", []byte("db-1"))
			f.addVersion("projects/my-project/secrets/db", []byte("db-2"))
			f.alias("projects/my-project/secrets/db", "stable", 1)
			f.addVersion("projects/my-project/locations/us-east1/secrets/regional", []byte("regional-1"))
			f.addVersion("projects/my-project/secrets/json", []byte(`{"user": "admin", "role": "editor", "token": ""}`))
			f.addVersion("projects/my-project/secrets/yaml", []byte("password: s3cr3t\nnested:\n  a: b\n"))
			req := r.request(r.class(map[string]string{"secrets": tc.secrets}), identity.Cloud{GCPServiceAccount: gsaEmail}, nil)
			objs, err := r.provider(true).Fetch(context.Background(), req)
			if err != nil {
				t.Fatalf("fetch: %v", err)
			}
			got := 0
			for _, o := range objs {
				for _, file := range o.Files {
					got++
					w, ok := tc.files[file.Path]
					if !ok {
						t.Errorf("unexpected file %q", file.Path)
						continue
					}
					if file.Mode != w.mode || string(file.Data) != w.data {
						t.Errorf("%s: mode %#o content %q, want %#o %q", file.Path, file.Mode, file.Data, w.mode, w.data)
					}
				}
			}
			if got != len(tc.files) {
				t.Errorf("%d files, want %d", got, len(tc.files))
			}
		})
	}
}
