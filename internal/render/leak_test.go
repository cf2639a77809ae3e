package render

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/ssinjector/ssi/internal/testing/logcheck"
)

// TestErrorsNeverHoldValues plants known values in objects (raw, inside
// JSON and YAML, encoded) and feeds them to every function in every
// argument position, to the builtins and to text/template's own failure
// paths; every error is captured and none may hold a value in any common
// encoding.
func TestErrorsNeverHoldValues(t *testing.T) {
	rec := logcheck.New()
	plain := rec.NewSecret("plain")
	number := "7391046285519"
	rec.Secret(number)
	inJSON := rec.NewSecret("json")
	inYAML := rec.NewSecret("yaml")
	objects := map[string][]byte{
		"s":      []byte(plain),
		"n":      []byte(number),
		"quoted": []byte(`"` + plain + `:\'` + "\n("),
		"json":   []byte(`{"k":"` + inJSON + `","n":` + number + `,"l":["` + inJSON + `"]}`),
		"yaml":   []byte("k: " + inYAML + "\nl: [" + inYAML + "]\n"),
		"b64":    []byte(base64.StdEncoding.EncodeToString([]byte(plain))),
		"hex":    []byte(hex.EncodeToString([]byte(plain))),
		"broken": []byte(`{"k": "` + plain + `", oops`),
	}
	args := []string{`(object "s")`, `(object "n")`, `(object "quoted")`, `(object "json")`, `(object "yaml")`,
		`(object "broken")`, `(object "b64" | b64dec)`, `(object "hex" | hexdec)`, `(object "json" | fromJson)`,
		`(object "yaml" | fromYaml)`, `(object "n" | atoi)`, `(list (object "s"))`, `(dict (object "s") (object "s"))`}
	var texts []string
	for _, fn := range FuncNames() {
		if constArgs[fn] || fn == "and" || fn == "or" {
			continue
		}
		for _, a := range args {
			texts = append(texts,
				fmt.Sprintf("{{ %s %s }}", fn, a),
				fmt.Sprintf("{{ %s %s %s }}", fn, a, a),
				fmt.Sprintf("{{ %s 1 %s }}", fn, a),
				fmt.Sprintf("{{ %s %s 1 }}", fn, a),
				fmt.Sprintf("{{ %s %s %s %s }}", fn, a, a, a),
				fmt.Sprintf("{{ %s | %s }}", a, fn))
		}
	}
	for _, a := range args {
		texts = append(texts,
			fmt.Sprintf("{{ range %s }}{{ end }}", a),
			fmt.Sprintf("{{ if %s }}{{ end }}{{ with %s }}{{ .x }}{{ end }}", a, a),
			fmt.Sprintf("{{ range $a, $b := %s }}{{ end }}", a),
			fmt.Sprintf("{{ %s.field }}", a),
			fmt.Sprintf("{{ index %s %s }}", a, a),
			fmt.Sprintf("{{ slice %s 5 1 }}", a),
			fmt.Sprintf("{{ index (list 1) (%s | atoi) }}", a),
			fmt.Sprintf("{{ eq %s 1 }}{{ lt %s (list) }}", a, a),
			fmt.Sprintf("{{ required \"x\" %s | fromJson }}", a),
			fmt.Sprintf("{{ (%s | fromJson).k.deeper }}", a),
			fmt.Sprintf("{{ jsonField \"k.x\" %s }}{{ yamlField \"l.9\" %s }}", a, a))
	}
	names := names(objects)
	var failed int
	for _, text := range texts {
		set, err := Compile([]Template{{Path: "t", Text: text}}, names)
		if err != nil {
			_, _ = fmt.Fprintln(rec, err)
			failed++
			continue
		}
		if _, err := set.Render(objects, nil); err != nil {
			_, _ = fmt.Fprintln(rec, err)
			failed++
		}
	}
	if failed < len(texts)/2 {
		t.Fatalf("only %d of %d templates failed: the test does not exercise the error paths", failed, len(texts))
	}
	rec.Check(t)
	t.Logf("%d templates, %d errors checked", len(texts), failed)
	if !strings.Contains(rec.Text(), "error calling") || !strings.Contains(rec.Text(), "range can't iterate") {
		t.Error("the captured errors lack the expected kinds")
	}
}
