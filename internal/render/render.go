// Package render renders the templates of a SecretProviderClass (declared
// in the Annotation) into files published next to the objects: Go
// text/template with a curated, deterministic function set (docs/templates.md).
//
// The flow is ParseAnnotation (at the edge), Resolve (reads ConfigMap
// texts), Compile (refuses what can be refused before any value exists:
// syntax, unknown functions, unknown objects) and Render (per fetch or
// rotation; re-renders only the templates whose objects changed). No error
// of this package contains a value of an object.
package render

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"path"
	"reflect"
	"sort"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"

	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/limits"
)

// Set is the compiled templates of one class. Render is safe for concurrent
// use (calls are serialised).
type Set struct {
	templates []*compiled
	maxOutput int64

	mu      sync.Mutex
	objects map[string][]byte // bound for the duration of one Render
	budget  int               // range iterations left in this Render
}

// MaxIterations caps the range iterations of one Render (all templates):
// text/template ranges over integers and nested lists, and a template
// must not make the shared shim spin.
const MaxIterations = 1 << 20

type compiled struct {
	Template
	tmpl *template.Template
	deps []string // sorted object file names it reads
}

// Compile checks and compiles templates against the object files of the
// class: a template that does not parse, calls a function that is not in
// FuncNames, calls object with anything but one constant name, names an
// object that is not in objectFiles, calls required or fail without a
// constant message, or whose path is not valid, repeats another's or
// collides with an object's file is an *Error with its path and position.
func Compile(templates []Template, objectFiles []string) (*Set, error) {
	objects := make(map[string]bool, len(objectFiles))
	for _, f := range objectFiles {
		objects[f] = true
	}
	return compileSet(templates, objects)
}

// CompileUnknownObjects is Compile for a class whose object files are known
// only after a fetch (a plugin provider's): everything but the object names
// is checked; a name that no fetched file has fails Render, and a path that
// collides with a fetched file fails the atomic write's validation.
func CompileUnknownObjects(templates []Template) (*Set, error) {
	return compileSet(templates, nil)
}

func compileSet(templates []Template, objects map[string]bool) (*Set, error) {
	if len(templates) > MaxTemplates {
		return nil, fmt.Errorf("%d templates, more than the limit of %d", len(templates), MaxTemplates)
	}
	s := &Set{maxOutput: limits.DefaultObjectBytes}
	paths := map[string]bool{}
	for _, t := range templates {
		if err := checkPath(t.Path, objects, paths); err != nil {
			return nil, &Error{Path: t.Path, Cause: err.Error()}
		}
		paths[t.Path] = true
		if len(t.Text) > MaxTemplateBytes {
			return nil, &Error{Path: t.Path, Cause: fmt.Sprintf("%d bytes of text, more than the limit of %d", len(t.Text), MaxTemplateBytes)}
		}
		if t.Mode&^fs.ModePerm != 0 {
			return nil, &Error{Path: t.Path, Cause: fmt.Sprintf("mode %o has bits other than permissions", t.Mode)}
		}
		c, err := s.compile(t, objects)
		if err != nil {
			return nil, err
		}
		s.templates = append(s.templates, c)
	}
	return s, nil
}

// checkPath refuses a path that atomicdir would refuse, that another
// template has, or that is, contains or sits inside an object's file.
func checkPath(p string, objects, templates map[string]bool) error {
	if err := atomicdir.ValidatePath(p); err != nil {
		return err
	}
	if templates[p] {
		return fmt.Errorf("the path is also another template's")
	}
	if objects[p] {
		return fmt.Errorf("the path is also an object's file")
	}
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		if objects[d] || templates[d] {
			return fmt.Errorf("the path is inside the file %q", d)
		}
	}
	for o := range objects {
		if strings.HasPrefix(o, p+"/") {
			return fmt.Errorf("the path is the directory of the object file %q", o)
		}
	}
	for o := range templates {
		if strings.HasPrefix(o, p+"/") {
			return fmt.Errorf("the path is the directory of the template %q", o)
		}
	}
	return nil
}

func (s *Set) compile(t Template, objects map[string]bool) (*compiled, error) {
	trees := map[string]*parse.Tree{}
	tr := parse.New(t.Path)
	tr.Mode = parse.SkipFuncCheck
	if _, err := tr.Parse(t.Text, "", "", trees); err != nil {
		return nil, parseError(t.Path, err)
	}
	deps := map[string]bool{}
	names := make([]string, 0, len(trees))
	for n := range trees {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := check(t, trees[n], trees, objects, deps); err != nil {
			return nil, err
		}
	}
	if r := recursion(trees, names); r != "" {
		return nil, &Error{Path: t.Path, Cause: fmt.Sprintf("template %q calls itself (recursion is not allowed)", r)}
	}
	for _, n := range names {
		guardRanges(trees[n].Root)
	}
	tmpl := template.New(t.Path).Option("missingkey=error").Funcs(baseFuncs).Funcs(template.FuncMap{
		"object":   wrap("object", s.object),
		rangeGuard: wrap("range", s.guard),
	})
	for _, n := range names {
		if _, err := tmpl.AddParseTree(n, trees[n]); err != nil {
			return nil, &Error{Path: t.Path, Cause: "cannot compile: " + err.Error()}
		}
	}
	if main := trees[t.Path]; main == nil || main.Root == nil || len(main.Root.Nodes) == 0 {
		return nil, &Error{Path: t.Path, Cause: "the template is empty"}
	}
	c := &compiled{Template: t, tmpl: tmpl}
	for d := range deps {
		c.deps = append(c.deps, d)
	}
	sort.Strings(c.deps)
	return c, nil
}

// parseError keeps the parser's line and message: both come from the
// template text, which holds no value.
func parseError(p string, err error) error {
	msg := err.Error()
	e := &Error{Path: p, Cause: msg}
	rest, ok := strings.CutPrefix(msg, "template: "+p+":")
	if !ok {
		return e
	}
	var line int
	if n, _ := fmt.Sscanf(rest, "%d:", &line); n == 1 {
		e.Line = line
		_, e.Cause, _ = strings.Cut(rest, ": ")
	}
	return e
}

// SetMaxOutput caps the size of one rendered file (default
// limits.DefaultObjectBytes, a Secret's size); use the process's
// limits.Sizes.Object().
func (s *Set) SetMaxOutput(n int64) { s.maxOutput = n }

// Paths returns the rendered files' paths in declaration order.
func (s *Set) Paths() []string {
	out := make([]string, len(s.templates))
	for i, c := range s.templates {
		out[i] = c.Path
	}
	return out
}

// Deps returns the object files the template at path reads, sorted; nil
// for an unknown path.
func (s *Set) Deps(path string) []string {
	for _, c := range s.templates {
		if c.Path == path {
			return append([]string(nil), c.deps...)
		}
	}
	return nil
}

// Hidden returns the object files that the renderOnly templates read,
// sorted: they are not published.
func (s *Set) Hidden() []string {
	seen := map[string]bool{}
	for _, c := range s.templates {
		if c.RenderOnly {
			for _, d := range c.deps {
				seen[d] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// Result is one Render's outcome.
type Result struct {
	// Files are the rendered files, one per template in declaration order
	// (but for the Skipped ones).
	// A zero Mode means the volume's file permission (see Payload).
	Files []atomicdir.File
	// Rendered lists the paths executed by this Render, sorted; the others
	// were taken from the prior result because none of their objects
	// changed.
	Rendered []string
	// Hidden lists the object files not to publish (renderOnly), sorted.
	Hidden []string
	// Skipped lists the paths of templates not rendered because an object
	// file they read is absent (RenderWithout), sorted; Files has none of
	// them.
	Skipped []string

	digests map[string][sha256.Size]byte // of each object read, by file
	set     *Set                         // that rendered it: another Set's files are never reused
}

// Render executes the templates with objects (file name to content). A
// template whose objects all have the content they had in prior (the
// previous Result of this Set, or nil) is not executed: its file is
// reused. A prior from another Set (the class was compiled again) is
// ignored. On error no Result is returned, so the caller keeps its last good
// files; the *Error names the template, the position and a value-free
// cause.
func (s *Set) Render(objects map[string][]byte, prior *Result) (*Result, error) {
	return s.RenderWithout(objects, prior, nil)
}

// RenderWithout is Render where the object files in absent (the files of
// optional objects the backend does not have) are allowed to be missing:
// a template that reads one of them is not rendered and publishes no file
// (Result.Skipped), rather than failing the render.
func (s *Set) RenderWithout(objects map[string][]byte, prior *Result, absent map[string]bool) (*Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := &Result{
		Files:   make([]atomicdir.File, 0, len(s.templates)),
		Hidden:  s.Hidden(),
		digests: make(map[string][sha256.Size]byte),
		set:     s,
	}
	if prior != nil && prior.set != s {
		prior = nil
	}
	skip := make([]bool, len(s.templates))
	for i, c := range s.templates {
		for _, d := range c.deps {
			if _, ok := objects[d]; !ok && absent[d] {
				skip[i] = true
				res.Skipped = append(res.Skipped, c.Path)
				break
			}
		}
	}
	for i, c := range s.templates {
		if skip[i] {
			continue
		}
		for _, d := range c.deps {
			if _, done := res.digests[d]; done {
				continue
			}
			data, ok := objects[d]
			if !ok {
				return nil, &Error{Path: c.Path, Cause: fmt.Sprintf("object %q is not in this fetch", d)}
			}
			res.digests[d] = sha256.Sum256(data)
		}
	}
	s.objects = objects
	s.budget = MaxIterations
	defer func() { s.objects = nil }()
	var buf bytes.Buffer
	for i, c := range s.templates {
		if skip[i] {
			continue
		}
		if pf, ok := prior.file(c.Path); ok && s.unchanged(c, prior, res) {
			res.Files = append(res.Files, pf)
			continue
		}
		buf.Reset()
		w := &capWriter{buf: &buf, max: s.maxOutput}
		if err := c.tmpl.Execute(w, nil); err != nil {
			return nil, execError(c.Path, err)
		}
		res.Files = append(res.Files, atomicdir.File{Path: c.Path, Mode: c.Mode, Data: bytes.Clone(buf.Bytes())})
		res.Rendered = append(res.Rendered, c.Path)
	}
	sort.Strings(res.Rendered)
	sort.Strings(res.Skipped)
	return res, nil
}

// file is the file r rendered at path; false for a nil r or a template r
// skipped.
func (r *Result) file(path string) (atomicdir.File, bool) {
	if r == nil {
		return atomicdir.File{}, false
	}
	for _, f := range r.Files {
		if f.Path == path {
			return f, true
		}
	}
	return atomicdir.File{}, false
}

func (s *Set) unchanged(c *compiled, prior, cur *Result) bool {
	for _, d := range c.deps {
		old, ok := prior.digests[d]
		if !ok || old != cur.digests[d] {
			return false
		}
	}
	return true
}

// guard is called on the value of every range pipeline (see guardRanges):
// it charges the number of iterations to the render's budget and refuses
// what cannot be counted (iterator functions, channels).
func (s *Set) guard(v any) (any, error) {
	n := 0
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Invalid:
	case reflect.Slice, reflect.Array, reflect.Map, reflect.String:
		n = rv.Len()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if rv.Int() > int64(MaxIterations) {
			return nil, safeError(fmt.Sprintf("range over more than %d iterations", MaxIterations))
		}
		n = max(int(rv.Int()), 0)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if rv.Uint() > uint64(MaxIterations) {
			return nil, safeError(fmt.Sprintf("range over more than %d iterations", MaxIterations))
		}
		n = int(rv.Uint()) //nolint:gosec // at most MaxIterations, checked above
	default:
		return nil, safeError("range over a value of kind " + rv.Kind().String() + " is not allowed")
	}
	s.budget -= n
	if s.budget < 0 {
		return nil, safeError(fmt.Sprintf("the templates' ranges together run more than %d iterations", MaxIterations))
	}
	return v, nil
}

// object is the template function: the content of an object file.
func (s *Set) object(name string) (string, error) {
	data, ok := s.objects[name]
	if !ok {
		return "", safeError(fmt.Sprintf("object %q is not in this fetch", name))
	}
	return string(data), nil
}

// Payload returns the files to publish in one atomicdir.Write: objects
// without the hidden ones, then the rendered files; a rendered file with no
// mode gets defaultMode.
func (r *Result) Payload(objects []atomicdir.File, defaultMode fs.FileMode) []atomicdir.File {
	hidden := make(map[string]bool, len(r.Hidden))
	for _, h := range r.Hidden {
		hidden[h] = true
	}
	out := make([]atomicdir.File, 0, len(objects)+len(r.Files))
	for _, f := range objects {
		if !hidden[f.Path] {
			out = append(out, f)
		}
	}
	for _, f := range r.Files {
		if f.Mode == 0 {
			f.Mode = defaultMode
		}
		out = append(out, f)
	}
	return out
}

// capWriter fails the render when the output passes max bytes.
type capWriter struct {
	buf *bytes.Buffer
	max int64
}

func (w *capWriter) Write(p []byte) (int, error) {
	if int64(w.buf.Len()+len(p)) > w.max {
		return 0, safeError(fmt.Sprintf("the rendered file is larger than the limit of %d bytes", w.max))
	}
	return w.buf.Write(p)
}
