package chart

import (
	"strings"
	"testing"
)

// TestSplit decodes a rendered stream the way yamlstream.Split cuts it
// (the same splitter as `ssi-webhook inject` and `ssi-agent fetch`):
// Helm's "# Source" documents, a marker followed by a tab and a comment,
// empty templates, CRLF, and a refused marker line naming its line.
func TestSplit(t *testing.T) {
	tests := map[string]struct {
		stream  string
		want    []string // kind/name
		wantErr string
	}{
		"helm output": {stream: "---\n# Source: x/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n" +
			"---\n# Source: x/templates/empty.yaml\n---\t# Source: x/templates/b.yaml\napiVersion: v1\nkind: Secret\nmetadata:\n  name: b\n",
			want: []string{"ConfigMap/a", "Secret/b"}},
		"empty mapping skipped": {stream: "{}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", want: []string{"ConfigMap/c"}},
		"CRLF":                  {stream: "apiVersion: v1\r\nkind: ConfigMap\r\nmetadata: {name: d}\r\n---\r\n", want: []string{"ConfigMap/d"}},
		"bad marker":            {stream: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: e}\n--- !x\n", wantErr: `rendered stream: line 4: "!x" after the document marker`},
		"no kind":               {stream: "a: 1\n---\n  apiVersion: v1\n", wantErr: "rendered document at line 1 without apiVersion or kind"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			objs, err := Split([]byte(tc.stream))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, o.GetKind()+"/"+o.GetName())
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("objects %v, want %v", got, tc.want)
			}
		})
	}
}
