package inject

import (
	"maps"
	"strings"
	"testing"

	"github.com/ssinjector/ssi/internal/spc"
)

// The optional-objects annotations of a class are checked at admission and
// handed to the agent in its configuration (so the agent, which reads no
// class, parses it as admission did); other annotations are not.
func TestOptionalObjectsAdmission(t *testing.T) {
	in := input(podWith(nil, "vault"))
	c := in.Classes["vault"]
	c.Annotations = map[string]string{spc.AnnotationOptionalObjects: "db-password", spc.AnnotationOptionalOnDelete: "keep", "example.com/other": "x"}
	res := rewrite(t, in)
	got := decodeAgent(t, *agentOf(t, res.Pod)).Volumes[0].Class.Annotations
	want := map[string]string{spc.AnnotationOptionalObjects: "db-password", spc.AnnotationOptionalOnDelete: "keep"}
	if !maps.Equal(got, want) {
		t.Errorf("agent configuration carries %v, want %v", got, want)
	}

	// Without the annotations the configuration has none (unchanged
	// golden files).
	if got := decodeAgent(t, *agentOf(t, rewrite(t, input(podWith(nil, "vault"))).Pod)).Volumes[0].Class.Annotations; got != nil {
		t.Errorf("annotations %v for a class without them", got)
	}

	for name, tc := range map[string]struct{ value, onDelete, msg string }{
		"unknown name":  {value: "db-password, nope", msg: `volume "v-vault": SecretProviderClass production/vault (provider vault): metadata.annotations[secrets-store-injector.io/optional-objects]: "nope" names no object of the class (its objects: db-password)`},
		"bad on-delete": {value: "db-password", onDelete: "forget", msg: `"forget" is neither "remove" nor "keep"`},
	} {
		t.Run(name, func(t *testing.T) {
			in := input(podWith(nil, "vault"))
			in.Classes["vault"].Annotations = map[string]string{spc.AnnotationOptionalObjects: tc.value}
			if tc.onDelete != "" {
				in.Classes["vault"].Annotations[spc.AnnotationOptionalOnDelete] = tc.onDelete
			}
			cfg := DefaultConfig()
			_, err := Rewrite(&cfg, in)
			if err == nil || ReasonOf(err) != ReasonClassInvalid || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v (reason %q), want class-invalid with %q", err, ReasonOf(err), tc.msg)
			}
		})
	}
}
