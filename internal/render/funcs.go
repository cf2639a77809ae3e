package render

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"unicode/utf8"

	sprig "github.com/Masterminds/sprig/v3"
	"go.yaml.in/yaml/v3"
)

// sprigFuncs is the allow-list of sprig v3 functions, by the name a
// template uses and the sprig name it maps to. It is an allow-list so that a
// sprig upgrade adds nothing silently. Left out on purpose: everything that
// reads the environment, files, the network or the clock, or is random
// (env, expandenv, getHostByName, now, date*, ago, duration*, toDate, unixEpoch, htmlDate*,
// rand*, shuffle, uuidv4, bcrypt, htpasswd, encryptAES, genPrivateKey,
// genCA*, genSelfSignedCert*, genSignedCert*, buildCustomCert,
// derivePassword, randBytes); the os* path functions (they depend on the
// node's OS); the functions whose result depends on map order (keys, values:
// ours sort); and the decoders that swallow errors (fromJson, b64dec, b32dec:
// ours fail). The JSON encoders map to sprig's must* forms, which fail
// instead of printing nothing.
var sprigFuncs = map[string]string{
	// strings
	"abbrev": "abbrev", "abbrevboth": "abbrevboth", "trunc": "trunc", "trim": "trim",
	"upper": "upper", "lower": "lower", "title": "title", "untitle": "untitle",
	"substr": "substr", "trimAll": "trimAll", "trimSuffix": "trimSuffix",
	"trimPrefix": "trimPrefix", "nospace": "nospace", "initials": "initials",
	"swapcase": "swapcase", "snakecase": "snakecase", "camelcase": "camelcase",
	"kebabcase": "kebabcase", "wrap": "wrap", "wrapWith": "wrapWith",
	"contains": "contains", "hasPrefix": "hasPrefix", "hasSuffix": "hasSuffix",
	"quote": "quote", "squote": "squote", "cat": "cat", "indent": "indent",
	"nindent": "nindent", "replace": "replace", "plural": "plural",
	"toString": "toString", "toStrings": "toStrings", "split": "split",
	"splitList": "splitList", "splitn": "splitn", "join": "join",
	"sortAlpha": "sortAlpha",
	// hashes and deterministic crypto
	"sha1sum": "sha1sum", "sha256sum": "sha256sum", "sha512sum": "sha512sum",
	"adler32sum": "adler32sum", "decryptAES": "decryptAES",
	// numbers
	"atoi": "atoi", "int": "int", "int64": "int64", "float64": "float64",
	"toDecimal": "toDecimal", "add1": "add1", "add": "add", "sub": "sub",
	"div": "div", "mod": "mod", "mul": "mul", "add1f": "add1f", "addf": "addf",
	"subf": "subf", "divf": "divf", "mulf": "mulf", "biggest": "biggest",
	"max": "max", "min": "min", "maxf": "maxf", "minf": "minf", "ceil": "ceil",
	"floor": "floor", "round": "round",
	// defaults and logic
	"default": "default", "empty": "empty", "coalesce": "coalesce", "all": "all",
	"any": "any", "compact": "compact", "ternary": "ternary",
	// JSON encoding (failing forms)
	"toJson": "mustToJson", "toPrettyJson": "mustToPrettyJson", "toRawJson": "mustToRawJson",
	// reflection
	"typeOf": "typeOf", "typeIs": "typeIs", "typeIsLike": "typeIsLike",
	"kindOf": "kindOf", "kindIs": "kindIs", "deepEqual": "deepEqual",
	// slash-separated paths (pure string functions)
	"base": "base", "dir": "dir", "clean": "clean", "ext": "ext", "isAbs": "isAbs",
	// encodings
	"b64enc": "b64enc", "b32enc": "b32enc",
	// lists and dicts
	"tuple": "tuple", "list": "list", "dict": "dict", "get": "get", "set": "set",
	"unset": "unset", "hasKey": "hasKey", "pluck": "pluck", "pick": "pick",
	"omit": "omit", "merge": "mustMerge", "mergeOverwrite": "mustMergeOverwrite",
	"append": "mustAppend", "prepend": "mustPrepend", "first": "mustFirst",
	"rest": "mustRest", "last": "mustLast", "initial": "mustInitial",
	"reverse": "mustReverse", "uniq": "mustUniq", "without": "mustWithout",
	"has": "mustHas", "slice": "mustSlice", "concat": "concat", "dig": "dig",
	"chunk": "mustChunk", "deepCopy": "mustDeepCopy",
	// regular expressions (RE2: linear time)
	"regexMatch": "mustRegexMatch", "regexFindAll": "mustRegexFindAll",
	"regexFind": "mustRegexFind", "regexReplaceAll": "mustRegexReplaceAll",
	"regexReplaceAllLiteral": "mustRegexReplaceAllLiteral", "regexSplit": "mustRegexSplit",
	"regexQuoteMeta": "regexQuoteMeta",
	// versions and URLs
	"semver": "semver", "semverCompare": "semverCompare", "urlParse": "urlParse", "urlJoin": "urlJoin",
}

// builtins are text/template's own functions a template may call. "call"
// is left out: no value a template can reach is a function.
var builtins = map[string]bool{
	"and": true, "or": true, "not": true, "len": true, "index": true, "slice": true,
	"print": true, "printf": true, "println": true, "html": true, "js": true,
	"urlquery": true, "eq": true, "ne": true, "lt": true, "le": true, "gt": true, "ge": true,
}

// maxList caps the lists until, untilStep and seq build and the count of
// repeat's copies, so a template cannot make the shim allocate gigabytes
// before the output cap is reached.
const (
	maxList        = 10000
	maxRepeatBytes = 1 << 20
)

// ownFuncs are this package's functions, documented in docs/templates.md.
// "object" is bound per render (see newFuncs).
func ownFuncs() map[string]any {
	return map[string]any{
		"fromJson": fromJSON, "fromYaml": fromYAML, "toYaml": toYAML,
		"jsonField": jsonField, "yamlField": yamlField,
		"b64dec": b64dec, "b64urlenc": b64urlenc, "b64urldec": b64urldec,
		"hexenc": hexenc, "hexdec": hexdec,
		"shellQuote": shellQuote, "propertiesKey": propertiesKey, "propertiesValue": propertiesValue,
		"jsonString": jsonString, "yamlScalar": yamlScalar, "pgpassField": pgpassField,
		"pemCertificate": pemCertificate, "pemChain": pemChain, "pemCertificates": pemCertificates,
		"pemPrivateKey":     pemPrivateKey,
		"pkcs12Certificate": pkcs12Certificate, "pkcs12CertificatePass": pkcs12CertificatePass,
		"pkcs12Key": pkcs12Key, "pkcs12KeyPass": pkcs12KeyPass,
		"pkcs12Chain": pkcs12Chain, "pkcs12ChainPass": pkcs12ChainPass,
		"required": required, "fail": fail, "keys": sortedKeys, "values": sortedValues,
		"repeat": repeat, "until": until, "untilStep": untilStep, "seq": seq,
	}
}

// baseFuncs is the wrapped function map without "object"; built once.
var baseFuncs = func() template.FuncMap {
	sp := sprig.GenericFuncMap()
	fm := template.FuncMap{}
	for name, from := range sprigFuncs {
		fn, ok := sp[from]
		if !ok {
			panic("render: sprig has no function " + from)
		}
		fm[name] = wrap(name, fn)
	}
	for name, fn := range ownFuncs() {
		fm[name] = wrap(name, fn)
	}
	fm["object"] = wrap("object", func(string) (string, error) { return "", safeError("no objects bound") })
	return fm
}()

// FuncNames returns the names of every function a template may call,
// sorted: the builtins of text/template, sprig's allowed ones and ours.
func FuncNames() []string {
	names := make([]string, 0, len(baseFuncs)+len(builtins))
	for n := range baseFuncs {
		names = append(names, n)
	}
	for n := range builtins {
		if _, dup := baseFuncs[n]; !dup {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

func known(name string) bool {
	_, ok := baseFuncs[name]
	return ok || builtins[name]
}

// --- decoding and field extraction

func fromJSON(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, safeError("the text is not valid JSON")
	}
	if dec.More() {
		return nil, safeError("the text has data after the JSON value")
	}
	return v, nil
}

func fromYAML(s string) (any, error) {
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		return nil, safeError("the text is not valid YAML")
	}
	return v, nil
}

func toYAML(v any) (string, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(numbers(v)); err != nil {
		return "", safeError("the value cannot be encoded as YAML")
	}
	if err := enc.Close(); err != nil {
		return "", safeError("the value cannot be encoded as YAML")
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// numbers replaces fromJson's json.Number (kept for exact printing) by
// the int64 or float64 it holds, so that toYaml writes a number.
func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return x.String()
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = numbers(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = numbers(e)
		}
		return out
	}
	return v
}

// jsonField decodes text as JSON and returns the value at path, a
// dot-separated list of keys and list indexes ("db.hosts.0"). Strings are
// returned as they are, other values as compact JSON.
func jsonField(path, text string) (string, error) {
	v, err := fromJSON(text)
	if err != nil {
		return "", err
	}
	return field(path, v)
}

// yamlField is jsonField for YAML text.
func yamlField(path, text string) (string, error) {
	v, err := fromYAML(text)
	if err != nil {
		return "", err
	}
	return field(path, v)
}

func field(path string, v any) (string, error) {
	if path == "" {
		return "", safeError("the path is empty")
	}
	walked := ""
	for _, el := range strings.Split(path, ".") {
		if walked != "" {
			walked += "."
		}
		walked += el
		switch c := v.(type) {
		case map[string]any:
			next, ok := c[el]
			if !ok {
				return "", safeError(fmt.Sprintf("no field %q", walked))
			}
			v = next
		case []any:
			i, err := strconv.Atoi(el)
			if err != nil || i < 0 || i >= len(c) {
				return "", safeError(fmt.Sprintf("%q: not an index of the list (length %d)", walked, len(c)))
			}
			v = c[i]
		default:
			return "", safeError(fmt.Sprintf("%q: the value is not a mapping or a list", walked))
		}
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case nil:
		return "", safeError(fmt.Sprintf("field %q is null", path))
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", safeError(fmt.Sprintf("field %q cannot be encoded as JSON", path))
	}
	return string(b), nil
}

// --- binary encodings

func b64dec(s string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return "", safeError("the text is not valid standard base64")
	}
	return string(b), nil
}

func b64urlenc(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func b64urldec(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(s), "="))
	if err != nil {
		return "", safeError("the text is not valid URL-safe base64")
	}
	return string(b), nil
}

func hexenc(s string) string { return hex.EncodeToString([]byte(s)) }

func hexdec(s string) (string, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return "", safeError("the text is not valid hexadecimal")
	}
	return string(b), nil
}

// --- quoting

// shellQuote quotes s for a POSIX shell in single quotes; a single quote
// inside is closed, escaped with a backslash and reopened.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// propertiesValue escapes s as the value of a Java .properties line: the
// backslash, line breaks, a leading space, and non-ASCII as \uXXXX so that
// the file reads the same in ISO-8859-1 (Properties.load) and UTF-8.
func propertiesValue(s string) string { return properties(s, false) }

// propertiesKey escapes s as a key: also the separators = : and spaces.
func propertiesKey(s string) string { return properties(s, true) }

func properties(s string, key bool) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == ' ' && (key || i == 0):
			b.WriteString(`\ `)
		case key && (r == '=' || r == ':' || r == '#' || r == '!'):
			b.WriteByte('\\')
			b.WriteRune(r)
		case !key && i == 0 && (r == '#' || r == '!'):
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r > 0x7e:
			if r > 0xffff {
				r1, r2 := utf16Pair(r)
				fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func utf16Pair(r rune) (rune, rune) {
	r -= 0x10000
	return 0xd800 + (r>>10)&0x3ff, 0xdc00 + r&0x3ff
}

// jsonString returns s as a JSON string literal, quotes included. Invalid
// UTF-8 is an error: encoding/json would replace it silently.
func jsonString(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", safeError("the text is not valid UTF-8")
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return "", safeError("the text cannot be encoded as JSON")
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// yamlScalar returns s as a double-quoted YAML scalar, which YAML never
// reinterprets (no number, boolean, null or anchor): non-printable
// characters are escaped.
func yamlScalar(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", safeError("the text is not valid UTF-8")
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0xfeff || r == 0x2028 || r == 0x2029:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String(), nil
}

// pgpassField escapes s as one field of a PostgreSQL .pgpass line: the
// backslash and the colon. A line break cannot be written in the format.
func pgpassField(s string) (string, error) {
	if strings.ContainsAny(s, "\r\n") {
		return "", safeError("a .pgpass field cannot contain a line break")
	}
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(s), nil
}

// --- defaults

// required returns v, or fails with msg (a constant of the template, which
// Compile checks) when v is nil, an empty string or an empty collection.
func required(msg string, v any) (any, error) {
	if isEmpty(v) {
		return nil, safeError(msg)
	}
	return v, nil
}

// fail always fails with msg (a constant of the template).
func fail(msg string) (string, error) { return "", safeError(msg) }

func isEmpty(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String, reflect.Slice, reflect.Map, reflect.Array:
		return rv.Len() == 0
	case reflect.Pointer, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// --- map order and size bounds

func sortedKeys(dicts ...map[string]any) []string {
	var ks []string
	seen := map[string]bool{}
	for _, d := range dicts {
		for k := range d {
			if !seen[k] {
				seen[k] = true
				ks = append(ks, k)
			}
		}
	}
	sort.Strings(ks)
	return ks
}

func sortedValues(d map[string]any) []any {
	ks := sortedKeys(d)
	vs := make([]any, len(ks))
	for i, k := range ks {
		vs[i] = d[k]
	}
	return vs
}

func repeat(count int, s string) (string, error) {
	if count < 0 || count > maxList || len(s)*count > maxRepeatBytes {
		return "", safeError(fmt.Sprintf("the count is outside 0..%d or the result over %d bytes", maxList, maxRepeatBytes))
	}
	return strings.Repeat(s, count), nil
}

func until(n int) ([]int, error) { return untilStep(0, n, 1) }

func untilStep(start, stop, step int) ([]int, error) {
	if step == 0 {
		return nil, safeError("the step is zero")
	}
	var out []int
	for i := start; (step > 0 && i < stop) || (step < 0 && i > stop); i += step {
		if len(out) == maxList {
			return nil, safeError(fmt.Sprintf("the list would have more than %d elements", maxList))
		}
		out = append(out, i)
	}
	return out, nil
}

// seq is sprig's seq (like the shell's): seq LAST, seq FIRST LAST,
// seq FIRST STEP LAST, as a space-separated string.
func seq(params ...int) (string, error) {
	start, step, end := 1, 1, 0
	switch len(params) {
	case 1:
		end = params[0]
	case 2:
		start, end = params[0], params[1]
	case 3:
		start, step, end = params[0], params[1], params[2]
	default:
		return "", safeError("takes one to three numbers")
	}
	if start > end && len(params) < 3 {
		step = -1
	}
	if step == 0 || (step > 0 && start > end) || (step < 0 && start < end) {
		return "", nil
	}
	var out []string
	for i := start; (step > 0 && i <= end) || (step < 0 && i >= end); i += step {
		if len(out) == maxList {
			return "", safeError(fmt.Sprintf("the list would have more than %d elements", maxList))
		}
		out = append(out, strconv.Itoa(i))
	}
	return strings.Join(out, " "), nil
}
