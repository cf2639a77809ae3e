package aws

import (
	"encoding/json"
	"fmt"

	"github.com/ssinjector/ssi/internal/spc"
)

// extract evaluates the object's jmesPath entries on its value and returns
// one content per entry, in order. As upstream, the value must be JSON and
// every expression must yield a string. Errors name the object, the
// expression and the alias, never the value (the JSON decoder's and the
// evaluator's own messages can quote it, so they are not wrapped).
func extract(o *spc.AWSObject, value []byte) ([][]byte, error) {
	if len(o.JMESPath) == 0 {
		return nil, nil
	}
	var data any
	if err := json.Unmarshal(value, &data); err != nil {
		return nil, fmt.Errorf("jmesPath is set but the value of %q is not valid JSON", o.ObjectName)
	}
	out := make([][]byte, len(o.JMESPath))
	for i, jp := range o.JMESPath {
		// The same compiler admission used, so a class admitted never
		// fails here on syntax; its error describes the expression only.
		expr, err := spc.CompileAWSJMESPath(jp.Path)
		if err != nil {
			return nil, fmt.Errorf("objectAlias %q: %w", jp.ObjectAlias, err)
		}
		res, err := expr.Search(data)
		if err != nil {
			return nil, fmt.Errorf("JMES path %q for objectAlias %q could not be evaluated on the value of %q", jp.Path, jp.ObjectAlias, o.ObjectName)
		}
		if res == nil {
			return nil, fmt.Errorf("JMES path %q for objectAlias %q does not point to a value in %q", jp.Path, jp.ObjectAlias, o.ObjectName)
		}
		s, ok := res.(string)
		if !ok {
			return nil, fmt.Errorf("JMES path %q for objectAlias %q yields a %s in %q; only a string is allowed", jp.Path, jp.ObjectAlias, jsonKind(res), o.ObjectName)
		}
		out[i] = []byte(s)
	}
	return out, nil
}

// jsonKind names the JSON type of a decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "JSON object"
	case []any:
		return "JSON array"
	case float64:
		return "JSON number"
	case bool:
		return "JSON boolean"
	}
	return "non-string value"
}
