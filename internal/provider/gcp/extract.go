package gcp

import (
	"encoding/json"
	"errors"
	"fmt"

	yaml "go.yaml.in/yaml/v3"
)

// extract returns the top-level string value of key in a JSON (or YAML)
// object payload, as the upstream provider does. Errors describe the shape
// of the payload only: parser messages can quote input, so they are never
// passed on.
func extract(payload []byte, jsonKey, yamlKey string) ([]byte, error) {
	switch {
	case jsonKey != "" && yamlKey != "":
		return nil, errors.New("extractJSONKey and extractYAMLKey cannot both be set")
	case jsonKey != "":
		var m map[string]any
		if err := json.Unmarshal(payload, &m); err != nil || m == nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				return nil, fmt.Errorf("extractJSONKey %q: the payload is not valid JSON (syntax error at byte %d)", jsonKey, se.Offset)
			}
			return nil, fmt.Errorf("extractJSONKey %q: the payload is not a JSON object", jsonKey)
		}
		return pick(m, jsonKey, "extractJSONKey", "JSON")
	case yamlKey != "":
		var m map[string]any
		if err := yaml.Unmarshal(payload, &m); err != nil || m == nil {
			return nil, fmt.Errorf("extractYAMLKey %q: the payload is not a YAML mapping", yamlKey)
		}
		return pick(m, yamlKey, "extractYAMLKey", "YAML")
	}
	return payload, nil
}

func pick(m map[string]any, key, field, format string) ([]byte, error) {
	v, ok := m[key]
	if !ok {
		return nil, fmt.Errorf("%s: key %q not found in the %s payload", field, key, format)
	}
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("%s: the value of key %q is a %s, not a string", field, key, kind(v))
	}
	return []byte(s), nil
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64, int, int64, uint64:
		return "number"
	case map[string]any:
		return "mapping"
	case []any:
		return "list"
	}
	return fmt.Sprintf("%T", v)
}
