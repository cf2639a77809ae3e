package render

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ssinjector/ssi/internal/atomicdir"
)

func TestCompileErrors(t *testing.T) {
	objects := []string{"db", "api-key", "dir/nested"}
	tests := map[string]struct {
		templates []Template
		want      string
	}{
		"syntax":               {[]Template{{Path: "a.json", Text: "line1\n{{ if }}"}}, `template "a.json" at 2:0: missing value for if`},
		"unclosed":             {[]Template{{Path: "a", Text: "{{ object \"db\" "}}, `template "a" at 1:0: unclosed action`},
		"unknown function":     {[]Template{{Path: "a", Text: "x\n  {{ env \"HOME\" }}"}}, `template "a" at 2:6 (env): function "env" is not defined`},
		"unknown as argument":  {[]Template{{Path: "a", Text: `{{ printf "%s" now }}`}}, `template "a" at 1:16 (now): function "now" is not defined`},
		"unknown in a range":   {[]Template{{Path: "a", Text: `{{ range list 1 }}{{ else }}{{ randAlpha 3 }}{{ end }}`}}, `function "randAlpha" is not defined`},
		"unknown in a define":  {[]Template{{Path: "a", Text: `{{ define "x" }}{{ uuidv4 }}{{ end }}{{ template "x" }}`}}, `function "uuidv4" is not defined`},
		"call":                 {[]Template{{Path: "a", Text: `{{ call . }}`}}, `function "call" is not available`},
		"unknown object":       {[]Template{{Path: "a", Text: "\n\n {{ object \"db-pass\" }}"}}, `template "a" at 3:12 ("db-pass"): object "db-pass" is not a file of the class's objects`},
		"non-constant object":  {[]Template{{Path: "a", Text: `{{ $n := "db" }}{{ object $n }}`}}, `the object name must be a quoted constant`},
		"piped object":         {[]Template{{Path: "a", Text: `{{ "db" | object }}`}}, `object takes one quoted object name`},
		"object as argument":   {[]Template{{Path: "a", Text: `{{ printf "%s" object }}`}}, `object must be called in its own parentheses`},
		"required non-const":   {[]Template{{Path: "a", Text: `{{ object "db" | required (object "db") }}`}}, `the message of required must be a quoted constant`},
		"non-constant path":    {[]Template{{Path: "a", Text: `{{ jsonField (object "db") (object "db") }}`}}, `the path of jsonField must be a quoted constant`},
		"range guard by hand":  {[]Template{{Path: "a", Text: `{{ _rangeGuard 1 }}`}}, `function "_rangeGuard" is not defined`},
		"fail without message": {[]Template{{Path: "a", Text: `{{ "x" | fail }}`}}, `fail needs a quoted message`},
		"recursion":            {[]Template{{Path: "a", Text: `{{ define "x" }}{{ if true }}{{ template "y" }}{{ end }}{{ end }}{{ define "y" }}{{ template "x" }}{{ end }}{{ template "x" }}`}}, `calls itself`},
		"undefined template":   {[]Template{{Path: "a", Text: `{{ template "nope" }}`}}, `template "nope" is not defined`},
		"empty":                {[]Template{{Path: "a", Text: `{{ define "x" }}y{{ end }}`}}, `template "a": the template is empty`},
		"object file path":     {[]Template{{Path: "db", Text: "x"}}, `template "db": the path is also an object's file`},
		"inside an object":     {[]Template{{Path: "db/x", Text: "x"}}, `the path is inside the file "db"`},
		"over an object dir":   {[]Template{{Path: "dir", Text: "x"}}, `the path is the directory of the object file "dir/nested"`},
		"duplicate":            {[]Template{{Path: "a", Text: "x"}, {Path: "a", Text: "y"}}, `template "a": the path is also another template's`},
		"under a template":     {[]Template{{Path: "a", Text: "x"}, {Path: "a/b", Text: "y"}}, `the path is inside the file "a"`},
		"invalid path":         {[]Template{{Path: "/abs", Text: "x"}}, `is absolute`},
		"bad mode":             {[]Template{{Path: "a", Text: "x", Mode: fs.ModeSetuid | 0o644}}, `bits other than permissions`},
		"too long":             {[]Template{{Path: "a", Text: strings.Repeat("x", MaxTemplateBytes+1)}}, `more than the limit of 65536`},
		"too many":             {make([]Template, MaxTemplates+1), "33 templates"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Compile(tc.templates, objects)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Compile = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestDepsAndHidden(t *testing.T) {
	set, err := Compile([]Template{
		{Path: "a", Text: `{{ object "db" }}{{ define "x" }}{{ object "api-key" }}{{ end }}{{ template "x" }}`, RenderOnly: true},
		{Path: "b", Text: `{{ if true }}{{ with object "cert" | pemCertificate }}{{ . }}{{ end }}{{ end }}`},
		{Path: "c", Text: `static`},
	}, []string{"db", "api-key", "cert", "unused"})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string][]string{"a": {"api-key", "db"}, "b": {"cert"}, "c": nil, "nope": nil} {
		if diff := cmp.Diff(want, set.Deps(p)); diff != "" {
			t.Errorf("Deps(%q) (-want +got):\n%s", p, diff)
		}
	}
	if diff := cmp.Diff([]string{"api-key", "db"}, set.Hidden()); diff != "" {
		t.Errorf("Hidden (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, set.Paths()); diff != "" {
		t.Errorf("Paths (-want +got):\n%s", diff)
	}
}

func TestRenderReusesUnchanged(t *testing.T) {
	set, err := Compile([]Template{
		{Path: "db.conf", Text: `pw={{ object "db" }}`, Mode: 0o600, RenderOnly: true},
		{Path: "key.conf", Text: `key={{ object "api-key" }}`},
		{Path: "static", Text: `fixed`},
	}, []string{"db", "api-key"})
	if err != nil {
		t.Fatal(err)
	}
	objects := map[string][]byte{"db": []byte("one"), "api-key": []byte("k1")}
	first, err := set.Render(objects, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"db.conf", "key.conf", "static"}, first.Rendered); diff != "" {
		t.Errorf("first Rendered (-want +got):\n%s", diff)
	}
	same, err := set.Render(map[string][]byte{"db": []byte("one"), "api-key": []byte("k1")}, first)
	if err != nil {
		t.Fatal(err)
	}
	if len(same.Rendered) != 0 {
		t.Errorf("nothing changed, yet Rendered = %v", same.Rendered)
	}
	rotated, err := set.Render(map[string][]byte{"db": []byte("two"), "api-key": []byte("k1")}, same)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"db.conf"}, rotated.Rendered); diff != "" {
		t.Errorf("after rotating db, Rendered (-want +got):\n%s", diff)
	}
	want := []atomicdir.File{
		{Path: "db.conf", Mode: 0o600, Data: []byte("pw=two")},
		{Path: "key.conf", Data: []byte("key=k1")},
		{Path: "static", Data: []byte("fixed")},
	}
	if diff := cmp.Diff(want, rotated.Files); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}
	payload := rotated.Payload([]atomicdir.File{{Path: "db", Data: []byte("two")}, {Path: "api-key", Data: []byte("k1")}}, 0o640)
	wantPayload := []atomicdir.File{
		{Path: "api-key", Data: []byte("k1")},
		{Path: "db.conf", Mode: 0o600, Data: []byte("pw=two")},
		{Path: "key.conf", Mode: 0o640, Data: []byte("key=k1")},
		{Path: "static", Mode: 0o640, Data: []byte("fixed")},
	}
	if diff := cmp.Diff(wantPayload, payload); diff != "" {
		t.Errorf("Payload (-want +got):\n%s", diff)
	}
	if err := atomicdir.ValidatePayload(payload); err != nil {
		t.Error(err)
	}
	// A recompiled class (same path and objects, new text) renders anew.
	set2, err := Compile([]Template{{Path: "db.conf", Text: `password={{ object "db" }}`}}, []string{"db"})
	if err != nil {
		t.Fatal(err)
	}
	re, err := set2.Render(map[string][]byte{"db": []byte("two")}, rotated)
	if err != nil || string(re.Files[0].Data) != "password=two" {
		t.Errorf("recompiled Render = %q, %v", re.Files[0].Data, err)
	}
	// An object missing from a fetch fails the render, naming it.
	if _, err := set.Render(map[string][]byte{"db": []byte("x")}, rotated); err == nil || !strings.Contains(err.Error(), `object "api-key" is not in this fetch`) {
		t.Errorf("Render without api-key = %v", err)
	}
}

func TestRenderOutputCap(t *testing.T) {
	set, err := Compile([]Template{{Path: "big", Text: `{{ range until 100 }}{{ object "db" }}{{ end }}`}}, []string{"db"})
	if err != nil {
		t.Fatal(err)
	}
	set.SetMaxOutput(1000)
	if _, err := set.Render(map[string][]byte{"db": []byte(strings.Repeat("v", 10))}, nil); err != nil {
		t.Fatalf("1000 bytes: %v", err)
	}
	_, err = set.Render(map[string][]byte{"db": []byte(strings.Repeat("v", 11))}, nil)
	var re *Error
	if !errors.As(err, &re) || !strings.Contains(err.Error(), `template "big": the rendered file is larger than the limit of 1000 bytes`) {
		t.Fatalf("1100 bytes: %v", err)
	}
}

func TestCompileUnknownObjects(t *testing.T) {
	set, err := CompileUnknownObjects([]Template{{Path: "out", Text: `{{ object "from-plugin" }}`}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"from-plugin"}, set.Deps("out")); diff != "" {
		t.Errorf("Deps (-want +got):\n%s", diff)
	}
	if _, err := set.Render(map[string][]byte{"other": nil}, nil); err == nil || !strings.Contains(err.Error(), `object "from-plugin" is not in this fetch`) {
		t.Errorf("Render without the object = %v", err)
	}
	res, err := set.Render(map[string][]byte{"from-plugin": []byte("v")}, nil)
	if err != nil || string(res.Files[0].Data) != "v" {
		t.Errorf("Render = %v, %v", res, err)
	}
	if _, err := CompileUnknownObjects([]Template{{Path: "out", Text: `{{ env "x" }}`}}); err == nil {
		t.Error("an unknown function passed")
	}
}
