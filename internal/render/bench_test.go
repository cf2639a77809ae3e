package render

import (
	"fmt"
	"strings"
	"testing"
)

// benchSet is 10 templates over 20 objects (JSON secrets and plain
// values), each template reading four objects, in the style of the
// documented examples.
func benchSet(b *testing.B) (*Set, map[string][]byte) {
	objects := map[string][]byte{}
	var files []string
	for i := range 20 {
		name := fmt.Sprintf("obj-%02d", i)
		if i%2 == 0 {
			objects[name] = []byte(fmt.Sprintf(`{"username":"user-%d","password":"p%032d","host":"db%d.internal","port":"5432"}`, i, i, i))
		} else {
			objects[name] = []byte(strings.Repeat("v", 40))
		}
		files = append(files, name)
	}
	var templates []Template
	for i := range 10 {
		j, k := 2*i, 2*i+1
		templates = append(templates, Template{
			Path: fmt.Sprintf("conf-%d.json", i),
			Text: fmt.Sprintf(`{{- $db := object %q | fromJson -}}
{"host": {{ $db.host | jsonString }}, "port": {{ $db.port | atoi }},
 "user": {{ $db.username | jsonString }}, "password": {{ $db.password | jsonString }},
 "token": {{ object %q | jsonString }}, "other": {{ object %q | jsonField "username" | jsonString }},
 "key": {{ object %q | b64enc | jsonString }}}
`, files[j], files[k], files[(j+2)%20], files[(k+2)%20]),
		})
	}
	set, err := Compile(templates, files)
	if err != nil {
		b.Fatal(err)
	}
	return set, objects
}

// BenchmarkRender is the render cost per rotation for 10 templates over
// 20 objects: when nothing changed (every file reused: the objects are
// hashed and compared) and when one object changed (the templates that
// read it run again).
func BenchmarkRender(b *testing.B) {
	set, objects := benchSet(b)
	prior, err := set.Render(objects, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("nothing-changed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			res, err := set.Render(objects, prior)
			if err != nil || len(res.Rendered) != 0 {
				b.Fatalf("rendered %v, err %v", res.Rendered, err)
			}
		}
	})
	b.Run("one-changed", func(b *testing.B) {
		b.ReportAllocs()
		rotated := make(map[string][]byte, len(objects))
		for k, v := range objects {
			rotated[k] = v
		}
		rotated["obj-04"] = []byte(`{"username":"user-4","password":"rotated","host":"db4.internal","port":"5432"}`)
		for b.Loop() {
			res, err := set.Render(rotated, prior)
			if err != nil || len(res.Rendered) != 2 {
				b.Fatalf("rendered %v, err %v", res.Rendered, err)
			}
		}
	})
	b.Run("all", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := set.Render(objects, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
