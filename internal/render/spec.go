package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strconv"

	"sigs.k8s.io/yaml"

	"github.com/ssinjector/ssi/internal/atomicdir"
)

// Annotation is the SecretProviderClass annotation that declares the
// templates of the class. The upstream driver ignores annotations, so a class
// that carries it keeps working there (without rendering).
const Annotation = "secrets-store-injector.io/templates"

// Limits of one class's templates. They bound what one tenant's class can
// make the shared node shim parse, hold and write.
const (
	// MaxTemplates is the number of templates one class may declare.
	MaxTemplates = 32
	// MaxTemplateBytes caps the text of one template (inline or from a
	// ConfigMap).
	MaxTemplateBytes = 64 << 10
)

// Spec is one entry of the annotation, as declared: the template text is
// either inline or a reference to a ConfigMap key, which Resolve reads.
type Spec struct {
	// Path is the file written in the volume, with the path rules of the
	// objects' files.
	Path string `json:"path"`
	// Template is the inline template text.
	Template string `json:"template,omitempty"`
	// ConfigMapKeyRef names a key of a ConfigMap in the class's namespace
	// that holds the template text.
	ConfigMapKeyRef *ConfigMapKeyRef `json:"configMapKeyRef,omitempty"`
	// Mode is the permission of the rendered file; zero means the volume's
	// file permission.
	Mode Mode `json:"mode,omitempty"`
	// RenderOnly hides the raw files of the objects the template uses.
	RenderOnly bool `json:"renderOnly,omitempty"`
}

// ConfigMapKeyRef is a key of a ConfigMap in the class's namespace.
type ConfigMapKeyRef struct {
	// Name of the ConfigMap.
	Name string `json:"name"`
	// Key in its data.
	Key string `json:"key"`
}

// Mode is a file permission written in the annotation as a quoted octal
// string ("0640"); a YAML number is refused because YAML 1.1 and 1.2 read
// 0640 differently.
type Mode fs.FileMode

// UnmarshalJSON reads a quoted octal string.
func (m *Mode) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`field mode: must be a quoted octal string such as "0640"`)
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || len(s) < 2 || s[0] != '0' {
		return fmt.Errorf(`field mode: %q is not an octal permission such as "0640"`, s)
	}
	if fs.FileMode(v)&^fs.ModePerm != 0 {
		return fmt.Errorf("field mode: %q has bits other than the permission bits (0777)", s)
	}
	*m = Mode(v)
	return nil
}

// MarshalJSON writes the quoted octal string.
func (m Mode) MarshalJSON() ([]byte, error) {
	return json.Marshal(fmt.Sprintf("%04o", uint32(m)))
}

// Template is a resolved template: its text is known. Its JSON form is
// what admission can hand to the in-pod agent, which cannot read
// ConfigMaps.
type Template struct {
	// Path is the file written in the volume.
	Path string `json:"path"`
	// Text is the template source.
	Text string `json:"text"`
	// Mode is the permission of the rendered file; zero means the volume's.
	Mode fs.FileMode `json:"mode,omitempty"`
	// RenderOnly hides the raw files of the objects the template uses.
	RenderOnly bool `json:"renderOnly,omitempty"`
}

// ParseAnnotation parses the value of Annotation strictly: unknown fields,
// an entry with both or neither of template and configMapKeyRef, invalid or
// duplicate paths and the limits are errors naming the annotation, the entry
// and the field. An empty value declares no templates.
func ParseAnnotation(value string) ([]Spec, error) {
	if len(bytes.TrimSpace([]byte(value))) == 0 {
		return nil, nil
	}
	js, err := yaml.YAMLToJSON([]byte(value))
	if err != nil {
		return nil, fmt.Errorf("annotation %s: not YAML: %w", Annotation, err)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(js, &raw); err != nil {
		return nil, fmt.Errorf("annotation %s: must be a YAML list of templates", Annotation)
	}
	if len(raw) > MaxTemplates {
		return nil, fmt.Errorf("annotation %s: %d templates, more than the limit of %d", Annotation, len(raw), MaxTemplates)
	}
	specs := make([]Spec, 0, len(raw))
	seen := map[string]int{}
	for i, r := range raw {
		var s Spec
		dec := json.NewDecoder(bytes.NewReader(r))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return nil, fmt.Errorf("annotation %s: entry %d: %s", Annotation, i, decodeError(err))
		}
		if err := s.validate(); err != nil {
			return nil, fmt.Errorf("annotation %s: entry %d: %w", Annotation, i, err)
		}
		if j, dup := seen[s.Path]; dup {
			return nil, fmt.Errorf("annotation %s: entry %d: field path: %q is also the path of entry %d", Annotation, i, s.Path, j)
		}
		seen[s.Path] = i
		specs = append(specs, s)
	}
	return specs, nil
}

// decodeError turns encoding/json's errors into "field X: cause".
func decodeError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %s: must be %s, not a JSON %s", te.Field, kindOf(te.Type.Kind().String()), te.Value)
	}
	// Unknown fields (json: unknown field "x") and Mode's own errors.
	return trimJSON(err.Error())
}

func kindOf(k string) string {
	switch k {
	case "struct", "ptr":
		return "a mapping"
	case "bool":
		return "true or false"
	}
	return "a " + k
}

func trimJSON(s string) string {
	const p = "json: "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

func (s Spec) validate() error {
	if err := atomicdir.ValidatePath(s.Path); err != nil {
		return fmt.Errorf("field path: %w", err)
	}
	switch {
	case s.Template != "" && s.ConfigMapKeyRef != nil:
		return fmt.Errorf("template %q: template and configMapKeyRef are exclusive", s.Path)
	case s.Template == "" && s.ConfigMapKeyRef == nil:
		return fmt.Errorf("template %q: needs template or configMapKeyRef", s.Path)
	case len(s.Template) > MaxTemplateBytes:
		return fmt.Errorf("template %q: field template: %d bytes, more than the limit of %d", s.Path, len(s.Template), MaxTemplateBytes)
	case s.ConfigMapKeyRef != nil && (s.ConfigMapKeyRef.Name == "" || s.ConfigMapKeyRef.Key == ""):
		return fmt.Errorf("template %q: field configMapKeyRef: needs name and key", s.Path)
	}
	return nil
}

// ConfigMapGetter returns the value of key in the ConfigMap name of the
// class's namespace; found is false when the ConfigMap or the key is absent.
type ConfigMapGetter func(name, key string) (value string, found bool, err error)

// Resolve reads the text of every spec: inline text as is, a
// configMapKeyRef through get (which may be nil when no spec uses one).
func Resolve(specs []Spec, get ConfigMapGetter) ([]Template, error) {
	out := make([]Template, 0, len(specs))
	for _, s := range specs {
		t := Template{Path: s.Path, Text: s.Template, Mode: fs.FileMode(s.Mode), RenderOnly: s.RenderOnly}
		if ref := s.ConfigMapKeyRef; ref != nil {
			if get == nil {
				return nil, fmt.Errorf("template %q: configMapKeyRef %s/%s: no ConfigMap reader on this path", s.Path, ref.Name, ref.Key)
			}
			v, found, err := get(ref.Name, ref.Key)
			if err != nil {
				return nil, fmt.Errorf("template %q: reading ConfigMap %s key %s: %w", s.Path, ref.Name, ref.Key, err)
			}
			if !found {
				return nil, fmt.Errorf("template %q: ConfigMap %s has no key %s", s.Path, ref.Name, ref.Key)
			}
			if len(v) > MaxTemplateBytes {
				return nil, fmt.Errorf("template %q: ConfigMap %s key %s: %d bytes, more than the limit of %d", s.Path, ref.Name, ref.Key, len(v), MaxTemplateBytes)
			}
			if v == "" {
				return nil, fmt.Errorf("template %q: ConfigMap %s key %s is empty", s.Path, ref.Name, ref.Key)
			}
			t.Text = v
		}
		out = append(out, t)
	}
	return out, nil
}
