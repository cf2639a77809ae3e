package render

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExamples renders every testdata/examples/*.tmpl over testObjects
// into its .golden, and requires docs/templates.md to show each template
// verbatim and its output (except the PEM bundle's, which the docs
// abbreviate).
func TestExamples(t *testing.T) {
	doc := string(readFile(t, "../../docs/templates.md"))
	tmpls, err := filepath.Glob("testdata/examples/*.tmpl")
	if err != nil || len(tmpls) < 5 {
		t.Fatalf("examples: %v %v", tmpls, err)
	}
	objects := testObjects(t)
	for _, p := range tmpls {
		name := strings.TrimSuffix(filepath.Base(p), ".tmpl")
		t.Run(name, func(t *testing.T) {
			text := string(readFile(t, p))
			out, err := renderOne(t, text, objects)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("examples", name+".golden"), []byte(out))
			if !strings.Contains(doc, text) {
				t.Errorf("docs/templates.md does not show %s verbatim", p)
			}
			if name != "bundle.pem" && !strings.Contains(doc, out) {
				t.Errorf("docs/templates.md does not show the output of %s verbatim", p)
			}
			again, err := renderOne(t, text, objects)
			if err != nil || again != out {
				t.Errorf("a second render differs (err %v)", err)
			}
		})
	}
	if _, err := os.Stat("testdata/examples/bundle.pem.tmpl"); err != nil {
		t.Error(err)
	}
}
