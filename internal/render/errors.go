package render

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"text/template"
)

// Error is a template that failed to compile or to render. Its message
// names the template's path, the position (line:col, 1-based; col 0 when
// the parser reports only a line) and a cause that never contains a value.
type Error struct {
	// Path is the template's path in the volume.
	Path string
	// Line and Col locate the cause in the template text; zero when unknown.
	Line, Col int
	// Context is the template text at the position (never a value).
	Context string
	// Cause is the value-free reason.
	Cause string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "template %q", e.Path)
	if e.Line > 0 {
		fmt.Fprintf(&b, " at %d:%d", e.Line, e.Col)
	}
	if e.Context != "" {
		fmt.Fprintf(&b, " (%s)", e.Context)
	}
	b.WriteString(": ")
	b.WriteString(e.Cause)
	return b.String()
}

// safeError is an error of this package's own functions whose text names
// no value (only the function's arguments' kinds, or template-side names).
type safeError string

func (e safeError) Error() string { return string(e) }

// funcError is what every template function returns (or panics with)
// instead of its own error: its text is the function's name and a
// value-free reason.
type funcError struct{ fn, reason string }

func (e *funcError) Error() string { return e.fn + ": " + e.reason }

var errorType = reflect.TypeFor[error]()

// wrap returns fn with the same signature whose errors and panics are
// replaced by a *funcError: sprig's and the standard library's errors quote
// their input (strconv, encoding/json, regexp, base64 print what they could
// not read), which is a secret here.
func wrap(name string, fn any) any {
	v := reflect.ValueOf(fn)
	t := v.Type()
	withErr := t.NumOut() == 2 && t.Out(1) == errorType
	return reflect.MakeFunc(t, func(args []reflect.Value) (out []reflect.Value) {
		defer func() {
			r := recover()
			if r == nil {
				return
			}
			var fe error = &funcError{fn: name, reason: reasonOf(r)}
			if !withErr {
				panic(fe)
			}
			out = []reflect.Value{reflect.Zero(t.Out(0)), reflect.ValueOf(&fe).Elem()}
		}()
		if t.IsVariadic() {
			out = v.CallSlice(args)
		} else {
			out = v.Call(args)
		}
		if withErr && !out[1].IsNil() {
			var fe error = &funcError{fn: name, reason: reasonOf(out[1].Interface())}
			out[1] = reflect.ValueOf(&fe).Elem()
		}
		return out
	}).Interface()
}

// reasonOf keeps the text of this package's own errors and replaces any
// other with a fixed text.
func reasonOf(r any) string {
	if err, ok := r.(error); ok {
		var s safeError
		if errors.As(err, &s) {
			return string(s)
		}
	}
	return "invalid argument (the function's own message is withheld: it may quote a value)"
}

var execPrefix = regexp.MustCompile(`^:(\d+):(\d+): executing ".*?" at <(.*?)>: `)

// execError turns an error of template.Execute into an *Error that names
// the position and the template text there but none of the values: the
// cause is rebuilt from a fixed list, never copied.
func execError(path string, err error) error {
	var te *Error
	if errors.As(err, &te) {
		return te
	}
	var ee template.ExecError
	if !errors.As(err, &ee) {
		// A write error: the output cap.
		var s safeError
		if errors.As(err, &s) {
			return &Error{Path: path, Cause: string(s)}
		}
		return &Error{Path: path, Cause: "rendering failed"}
	}
	out := &Error{Path: path, Cause: "rendering failed"}
	msg := ee.Err.Error()
	rest, ok := strings.CutPrefix(msg, "template: "+path)
	if !ok {
		return out
	}
	m := execPrefix.FindStringSubmatchIndex(rest)
	if m == nil {
		return out
	}
	out.Line, _ = strconv.Atoi(rest[m[2]:m[3]])
	col, _ := strconv.Atoi(rest[m[4]:m[5]])
	out.Col = col + 1
	out.Context = truncate(rest[m[6]:m[7]])
	if strings.Contains(out.Context, rangeGuard) {
		out.Context = "range"
	}
	out.Cause = cause(rest[m[1]:], ee.Err)
	return out
}

// execCauses are text/template's own execution messages whose text is
// template-side only (field names, types, function names from the source).
// Anything else, notably "range can't iterate over <value>" and
// "if/with can't use <value>", is replaced by its fixed form.
var execCauses = []struct{ prefix, fixed string }{
	{"map has no entry for key ", ""},
	{"nil data; no entry for key ", ""},
	{"can't evaluate field ", ""},
	{"nil pointer evaluating ", ""},
	{"wrong number of args for ", ""},
	{"wrong type for value; expected ", ""},
	{"invalid value; expected ", ""},
	{"undefined variable: ", ""},
	{"exceeded maximum template depth", ""},
	{"range can't iterate over ", "range can't iterate over this value"},
	{"if/with can't use ", "if/with can't use this value"},
	{"can't use ", "can't iterate over this value with two variables"},
	{"range over send-only channel", "range can't iterate over this value"},
	{"error calling ", ""},
}

func cause(msg string, err error) string {
	var fe *funcError
	if errors.As(err, &fe) {
		return "error calling " + fe.Error()
	}
	for _, c := range execCauses {
		if !strings.HasPrefix(msg, c.prefix) {
			continue
		}
		if c.prefix == "error calling " {
			// A builtin (index, slice, len, eq, printf, ...): its message may
			// print an index or a value; keep the function's name only.
			name, _, _ := strings.Cut(strings.TrimPrefix(msg, c.prefix), ":")
			return "error calling " + name + ": invalid argument (out of range or of the wrong type)"
		}
		if c.fixed != "" {
			return c.fixed
		}
		// The rest of these messages name fields, variables, types and
		// functions written in the template, never a value.
		return msg
	}
	return "rendering failed"
}

func truncate(s string) string {
	const max = 60
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
