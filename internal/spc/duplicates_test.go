package spc

import (
	"strings"
	"testing"
)

// TestDuplicateFileNames: two objects producing exactly one path are
// admitted with a warning naming the fields and the one served (the last,
// as the upstream driver's map-by-path writer keeps it), and Files lists
// the path once with the served object's mode; a path that needs another
// object's file to be a directory stays denied.
func TestDuplicateFileNames(t *testing.T) {
	azure := func(docs ...string) map[string]string {
		s := "array:\n"
		for _, d := range docs {
			s += "  - |\n" + indent(d, "    ")
		}
		return map[string]string{"keyvaultName": "kv1", "tenantId": "t", "objects": s}
	}
	tests := map[string]struct {
		provider string
		params   map[string]string
		// deny is the field a denial must name; empty for an admission.
		deny string
		// warn are the strings the single warning must contain.
		warn  []string
		files []FileSpec
	}{
		"gcp two entries with one path": {
			provider: "gcp",
			params:   map[string]string{"secrets": "- {resourceName: projects/p/secrets/s/versions/1, path: a, mode: 0400}\n- {resourceName: projects/p/secrets/t/versions/1, path: a, mode: 0600}"},
			warn:     []string{"parameters.secrets[1].path:", `"a"`, "parameters.secrets[0].path, parameters.secrets[1].path", "last"},
			files:    []FileSpec{{Path: "a", Mode: 0o600}},
		},
		"gcp three entries": {
			provider: "gcp",
			params:   map[string]string{"secrets": "- {resourceName: projects/p/secrets/s/versions/1, path: a}\n- {resourceName: projects/p/secrets/t/versions/1, path: b}\n- {resourceName: projects/p/secrets/u/versions/1, path: a, mode: 0440}"},
			warn:     []string{"parameters.secrets[2].path:", "2 objects"},
			files:    []FileSpec{{Path: "a", Mode: 0o440}, {Path: "b"}},
		},
		"azure secret and key of one name": {
			provider: "azure",
			params:   azure("objectName: x\nobjectType: secret\n", "objectName: x\nobjectType: key\nfilePermission: \"0640\"\n"),
			warn:     []string{"parameters.objects.array[1].objectAlias:", "array[0].objectAlias, parameters.objects.array[1].objectAlias"},
			files:    []FileSpec{{Path: "x", Mode: 0o640}},
		},
		"azure alias equal to another name": {
			provider: "azure",
			params:   azure("objectName: x\nobjectType: secret\nfilePermission: \"0600\"\n", "objectName: y\nobjectType: secret\nobjectAlias: x\n"),
			warn:     []string{"parameters.objects.array[1].objectAlias:", `"x"`},
			files:    []FileSpec{{Path: "x"}},
		},
		"azure file under a file is denied": {
			provider: "azure",
			params:   azure("objectName: x\nobjectType: secret\n", "objectName: y\nobjectType: secret\nobjectAlias: x/y\n"),
			deny:     "parameters.objects.array[1].objectAlias",
		},
		"azure file and history directory is denied": {
			provider: "azure",
			params:   azure("objectName: x\nobjectType: secret\nobjectVersionHistory: 3\n", "objectName: y\nobjectType: secret\nobjectAlias: x\n"),
			deny:     "parameters.objects.array[0].objectAlias",
		},
		"gcp file under a file is denied": {
			provider: "gcp",
			params:   map[string]string{"secrets": "- {resourceName: projects/p/secrets/s/versions/1, path: a}\n- {resourceName: projects/p/secrets/t/versions/1, path: a/b}"},
			deny:     "parameters.secrets[1].path",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := ParseSpec("team", "cls", tc.provider, tc.params)
			if tc.deny != "" {
				if err == nil {
					t.Fatalf("admitted, files %+v", c.Files())
				}
				if !strings.Contains(err.Error(), tc.deny) || !strings.Contains(err.Error(), "SecretProviderClass team/cls") {
					t.Fatalf("error %q does not name the class and %s", err, tc.deny)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Warnings) != 1 {
				t.Fatalf("warnings = %q, want one", c.Warnings)
			}
			for _, w := range append(tc.warn, "SecretProviderClass team/cls") {
				if !strings.Contains(c.Warnings[0], w) {
					t.Errorf("warning %q does not contain %q", c.Warnings[0], w)
				}
			}
			got := c.Files()
			if len(got) != len(tc.files) {
				t.Fatalf("files = %+v, want %+v", got, tc.files)
			}
			for i := range got {
				if got[i] != tc.files[i] {
					t.Fatalf("files = %+v, want %+v", got, tc.files)
				}
			}
		})
	}
}
