package render

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzRender compiles random template text and renders it over random
// object contents: no panic, no planted value in any error, and the same
// output for the same input.
func FuzzRender(f *testing.F) {
	for _, c := range funcCases {
		f.Add(c.text, "planted-secret-1", `{"k":"planted-secret-2"}`)
	}
	for _, p := range []string{"config.json", "application.properties", "pgpass", "env", "bundle.pem"} {
		f.Add(string(readFile(f, "testdata/examples/"+p+".tmpl")), "planted-secret-3", "k: planted-secret-4")
	}
	f.Add(`{{ range $k, $v := object "b" | fromJson }}{{ $k }}={{ $v }}{{ end }}`, "x", `{"b":1,"a":2}`)
	f.Add(`{{ object "a" | atoi | add 1 }}{{ index (list 1) (object "a" | atoi) }}`, "12345678", "")
	base := testObjects(f)
	f.Fuzz(func(t *testing.T, text, a, b string) {
		objects := make(map[string][]byte, len(base)+2)
		for k, v := range base {
			objects[k] = v
		}
		objects["a"], objects["b"] = []byte(a), []byte(b)
		set, err := Compile([]Template{{Path: "out", Text: text}}, names(objects))
		if err != nil {
			return
		}
		r1, err1 := set.Render(objects, nil)
		r2, err2 := set.Render(objects, nil)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("one render failed, the other not: %v / %v", err1, err2)
		}
		if err1 != nil {
			if err1.Error() != err2.Error() {
				t.Fatalf("errors differ: %v / %v", err1, err2)
			}
			msg := err1.Error()
			// Values the template text does not contain must not appear.
			for _, v := range []string{a, b} {
				if len(v) >= 8 && strings.Contains(msg, v) && !strings.Contains(text, v) {
					t.Fatalf("the error holds an object value: %v", err1)
				}
			}
			for _, v := range []string{"planted-secret", "s3cr3t:pa", "hunter2-xyz", "AKIA-0123"} {
				if strings.Contains(msg, v) && !strings.Contains(text, v) {
					t.Fatalf("the error holds an object value: %v", err1)
				}
			}
			return
		}
		if !bytes.Equal(r1.Files[0].Data, r2.Files[0].Data) {
			t.Fatal("the same input rendered twice differs")
		}
	})
}
