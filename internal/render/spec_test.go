package render

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseAnnotation(t *testing.T) {
	tests := map[string]struct {
		value   string
		want    []Spec
		wantErr string
	}{
		"empty": {value: "  \n"},
		"inline and configMap": {
			value: `
- path: config.json
  template: '{{ object "db" }}'
  mode: "0640"
  renderOnly: true
- path: conf/app.properties
  configMapKeyRef: {name: app-templates, key: app.properties.tmpl}
`,
			want: []Spec{
				{Path: "config.json", Template: `{{ object "db" }}`, Mode: 0o640, RenderOnly: true},
				{Path: "conf/app.properties", ConfigMapKeyRef: &ConfigMapKeyRef{Name: "app-templates", Key: "app.properties.tmpl"}},
			},
		},
		"not a list":        {value: "path: x", wantErr: "must be a YAML list"},
		"not YAML":          {value: "- [", wantErr: "not YAML"},
		"unknown field":     {value: "- {path: a, template: x, templat: y}", wantErr: `entry 0: unknown field "templat"`},
		"mode as a number":  {value: "- {path: a, template: x, mode: 0640}", wantErr: `entry 0: field mode: must be a quoted octal string`},
		"mode not octal":    {value: `- {path: a, template: x, mode: "0980"}`, wantErr: `entry 0: field mode: "0980" is not an octal permission`},
		"mode without 0":    {value: `- {path: a, template: x, mode: "640"}`, wantErr: `field mode: "640" is not an octal`},
		"YAML 1.1 boolean":  {value: "- {path: a, template: y}", wantErr: "field template: must be a string, not a JSON bool"},
		"mode setuid":       {value: `- {path: a, template: x, mode: "04755"}`, wantErr: "bits other than the permission bits"},
		"path wrong type":   {value: "- {path: [a], template: x}", wantErr: "entry 0: field path: must be a string, not a JSON array"},
		"renderOnly string": {value: "- {path: a, template: x, renderOnly: maybe}", wantErr: "field renderOnly: must be true or false"},
		"bad path":          {value: "- {path: a, template: x}\n- {path: ../etc, template: x}", wantErr: `entry 1: field path: path "../etc" contains ".."`},
		"reserved path":     {value: "- {path: ..data, template: x}", wantErr: "reserved"},
		"no path":           {value: "- {template: x}", wantErr: "entry 0: field path: path is empty"},
		"duplicate":         {value: "- {path: a, template: x}\n- {path: a, template: z}", wantErr: `entry 1: field path: "a" is also the path of entry 0`},
		"both sources":      {value: "- {path: a, template: x, configMapKeyRef: {name: cm, key: tmpl}}", wantErr: "exclusive"},
		"no source":         {value: "- {path: a}", wantErr: `template "a": needs template or configMapKeyRef`},
		"ref without key":   {value: "- {path: a, configMapKeyRef: {name: cm}}", wantErr: "needs name and key"},
		"ref unknown field": {value: "- {path: a, configMapKeyRef: {name: cm, key: tmpl, namespace: other}}", wantErr: `unknown field "namespace"`},
		"too many":          {value: strings.Repeat("- {path: a, template: x}\n", MaxTemplates+1), wantErr: "33 templates, more than the limit of 32"},
		"too long":          {value: "- {path: a, template: " + strings.Repeat("x", MaxTemplateBytes+1) + "}", wantErr: "more than the limit of 65536"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseAnnotation(tc.value)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), Annotation) {
					t.Fatalf("err = %v, want it to name the annotation and contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("specs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	cms := map[string]map[string]string{"tpl": {"k": "{{ object \"db\" }}", "empty": ""}}
	get := func(name, key string) (string, bool, error) {
		v, ok := cms[name][key]
		return v, ok, nil
	}
	specs := []Spec{
		{Path: "a", Template: "inline", Mode: 0o600},
		{Path: "b", ConfigMapKeyRef: &ConfigMapKeyRef{Name: "tpl", Key: "k"}, RenderOnly: true},
	}
	got, err := Resolve(specs, get)
	if err != nil {
		t.Fatal(err)
	}
	want := []Template{{Path: "a", Text: "inline", Mode: fs.FileMode(0o600)}, {Path: "b", Text: `{{ object "db" }}`, RenderOnly: true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("templates (-want +got):\n%s", diff)
	}
	errs := map[string]struct {
		ref  ConfigMapKeyRef
		get  ConfigMapGetter
		want string
	}{
		"missing key":   {ConfigMapKeyRef{"tpl", "nope"}, get, `ConfigMap tpl has no key nope`},
		"missing map":   {ConfigMapKeyRef{"other", "k"}, get, `ConfigMap other has no key k`},
		"empty value":   {ConfigMapKeyRef{"tpl", "empty"}, get, `key empty is empty`},
		"no getter":     {ConfigMapKeyRef{"tpl", "k"}, nil, "no ConfigMap reader"},
		"too long text": {ConfigMapKeyRef{"big", "k"}, func(string, string) (string, bool, error) { return strings.Repeat("x", MaxTemplateBytes+1), true, nil }, "more than the limit"},
	}
	for name, tc := range errs {
		t.Run(name, func(t *testing.T) {
			ref := tc.ref
			_, err := Resolve([]Spec{{Path: "p", ConfigMapKeyRef: &ref}}, tc.get)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `template "p"`) {
				t.Fatalf("err = %v, want %q naming the template", err, tc.want)
			}
		})
	}
}
