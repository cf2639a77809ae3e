package offline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/ssinjector/ssi/internal/yamlstream"
)

// doc is one YAML document of the input.
type doc struct {
	source string
	index  int // 1-based within its source
	line   int // first line within its source
	raw    []byte
	json   []byte
	meta   objectHeader
}

type objectHeader struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        struct {
		Name         string `json:"name"`
		GenerateName string `json:"generateName"`
		Namespace    string `json:"namespace"`
	} `json:"metadata"`
}

func (d *doc) where() string {
	s := fmt.Sprintf("%s: document %d (line %d)", d.source, d.index, d.line)
	if d.meta.Kind != "" {
		name := d.meta.Metadata.Name
		if name == "" {
			name = d.meta.Metadata.GenerateName + "*"
		}
		if d.meta.Metadata.Namespace != "" {
			name = d.meta.Metadata.Namespace + "/" + name
		}
		s += fmt.Sprintf(" %s %s", d.meta.Kind, name)
	}
	return s
}

func (d *doc) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: %w", d.where(), fmt.Errorf(format, args...))
}

// split cuts a YAML stream into documents (yamlstream.Split), keeping each
// document's text and first line for messages. Documents holding only
// comments are dropped.
func split(source string, b []byte) ([]*doc, error) {
	parts, err := yamlstream.Split(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	var out []*doc
	for _, p := range parts {
		raw := bytes.TrimRight(p.Text, "\n")
		d := &doc{source: source, index: len(out) + 1, line: p.Line, raw: raw}
		j, err := yaml.YAMLToJSONStrict(d.raw)
		if err != nil {
			return nil, d.errorf("not valid YAML: %s", strings.Join(strings.Fields(err.Error()), " "))
		}
		if bytes.Equal(j, []byte("null")) {
			continue
		}
		if len(j) == 0 || j[0] != '{' {
			return nil, d.errorf("not a Kubernetes object (a YAML mapping with apiVersion and kind)")
		}
		d.json = j
		if err := json.Unmarshal(j, &d.meta); err != nil {
			return nil, d.errorf("metadata: %v", err)
		}
		if d.meta.APIVersion == "" || d.meta.Kind == "" {
			return nil, d.errorf("apiVersion and kind are required")
		}
		out = append(out, d)
	}
	return out, nil
}
