package offline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
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

var separator = regexp.MustCompile(`^---(\s.*)?$`)

// split cuts a YAML stream into documents, keeping each document's text
// and first line for messages. Documents holding only comments are dropped.
func split(source string, b []byte) ([]*doc, error) {
	var out []*doc
	var cur bytes.Buffer
	start, line := 1, 0
	flush := func() error {
		raw := bytes.TrimRight(cur.Bytes(), "\n")
		cur.Reset()
		if isBlank(raw) {
			return nil
		}
		d := &doc{source: source, index: len(out) + 1, line: start, raw: append([]byte(nil), raw...)}
		j, err := yaml.YAMLToJSONStrict(d.raw)
		if err != nil {
			return d.errorf("not valid YAML: %s", strings.Join(strings.Fields(err.Error()), " "))
		}
		if bytes.Equal(j, []byte("null")) {
			return nil
		}
		if len(j) == 0 || j[0] != '{' {
			return d.errorf("not a Kubernetes object (a YAML mapping with apiVersion and kind)")
		}
		d.json = j
		if err := json.Unmarshal(j, &d.meta); err != nil {
			return d.errorf("metadata: %v", err)
		}
		if d.meta.APIVersion == "" || d.meta.Kind == "" {
			return d.errorf("apiVersion and kind are required")
		}
		out = append(out, d)
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line++
		t := sc.Text()
		if separator.MatchString(t) {
			if err := flush(); err != nil {
				return nil, err
			}
			start = line + 1
			continue
		}
		cur.WriteString(t)
		cur.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", source, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

func isBlank(b []byte) bool {
	for _, l := range bytes.Split(b, []byte("\n")) {
		t := bytes.TrimSpace(l)
		if len(t) > 0 && t[0] != '#' {
			return false
		}
	}
	return true
}
