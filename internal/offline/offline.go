// Package offline is `ssi-webhook inject`: it reads a YAML stream of pods and
// workloads, rewrites their pod templates with the same inject.Rewrite the
// admission webhook uses, and prints the stream. SecretProviderClasses,
// ServiceAccounts and Namespaces found in the stream (or in --spc files)
// stand in for what the webhook reads from the cluster.
package offline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/inject"
)

// Options are the command's flags.
type Options struct {
	// Files are the input streams; "-" is standard input.
	Files []string
	// SPCFiles hold SecretProviderClasses that are not printed.
	SPCFiles []string
	// Namespace is the namespace of objects that set none; when set, an
	// object naming another namespace is an error (as with kubectl -n).
	Namespace string
	// NamespaceLabels are labels of every namespace, on top of those of
	// Namespace objects in the stream.
	NamespaceLabels map[string]string
	// Config is the injection policy, the same flags as the webhook's.
	Config inject.Config
}

// ParseLabel parses one --namespace-label value "key=value".
func ParseLabel(s string) (string, string, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", fmt.Errorf("%q is not key=value", s)
	}
	if errs := validation.IsQualifiedName(k); len(errs) > 0 {
		return "", "", fmt.Errorf("label key %q: %s", k, strings.Join(errs, "; "))
	}
	if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
		return "", "", fmt.Errorf("label value %q: %s", v, strings.Join(errs, "; "))
	}
	return k, v, nil
}

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

// Run reads the inputs, rewrites and writes the stream to out; warnings
// and notes go to diag.
func Run(opts Options, stdin io.Reader, out, diag io.Writer) error {
	if len(opts.Files) == 0 {
		return errors.New("no input: pass -f FILE or -f - for standard input")
	}
	if err := opts.Config.Validate(); err != nil {
		return err
	}
	stdinUsed := false
	read := func(name string) ([]*doc, error) {
		if name == "-" {
			if stdinUsed {
				return nil, errors.New("-f - given more than once")
			}
			stdinUsed = true
			b, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("read standard input: %w", err)
			}
			return split("<stdin>", b)
		}
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		return split(name, b)
	}
	var docs, spcDocs []*doc
	for _, f := range opts.Files {
		ds, err := read(f)
		if err != nil {
			return err
		}
		docs = append(docs, ds...)
	}
	for _, f := range opts.SPCFiles {
		ds, err := read(f)
		if err != nil {
			return err
		}
		spcDocs = append(spcDocs, ds...)
	}
	w := &world{opts: opts, classes: map[string]map[string]*ssiv1.SecretProviderClass{}, accounts: map[string]map[string]*metav1.ObjectMeta{}, labels: map[string]map[string]string{}}
	for _, d := range spcDocs {
		if err := w.learn(d, true); err != nil {
			return err
		}
	}
	for _, d := range docs {
		if err := w.learn(d, false); err != nil {
			return err
		}
	}
	var buf bytes.Buffer
	for i, d := range docs {
		b, err := w.process(d, diag)
		if err != nil {
			return err
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(b)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			buf.WriteByte('\n')
		}
	}
	_, err := out.Write(buf.Bytes())
	return err
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

// world is what the webhook would read from the cluster.
type world struct {
	opts     Options
	classes  map[string]map[string]*ssiv1.SecretProviderClass
	accounts map[string]map[string]*metav1.ObjectMeta
	labels   map[string]map[string]string
}

// namespace resolves an object's namespace like kubectl does.
func (w *world) namespace(d *doc, ns string) (string, error) {
	switch {
	case ns == "" && w.opts.Namespace != "":
		return w.opts.Namespace, nil
	case ns == "":
		return "default", nil
	case w.opts.Namespace != "" && ns != w.opts.Namespace:
		return "", d.errorf("metadata.namespace %q does not match --namespace %q", ns, w.opts.Namespace)
	}
	return ns, nil
}

// learn records the classes, service accounts and namespaces of a document.
func (w *world) learn(d *doc, spcOnly bool) error {
	gv, kind := d.meta.APIVersion, d.meta.Kind
	switch {
	case kind == "List" && gv == "v1":
		items, err := listItems(d)
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := w.learn(it, spcOnly); err != nil {
				return err
			}
		}
		return nil
	case kind == "SecretProviderClass" && strings.HasPrefix(gv, ssiv1.GroupVersion.Group+"/"):
		var c ssiv1.SecretProviderClass
		if err := strict(d, &c); err != nil {
			return err
		}
		ns, err := w.namespace(d, c.Namespace)
		if err != nil {
			return err
		}
		c.Namespace = ns
		if w.classes[ns] == nil {
			w.classes[ns] = map[string]*ssiv1.SecretProviderClass{}
		}
		if _, dup := w.classes[ns][c.Name]; dup {
			return d.errorf("SecretProviderClass %s/%s is given more than once", ns, c.Name)
		}
		w.classes[ns][c.Name] = &c
		return nil
	case spcOnly:
		return d.errorf("--spc files hold SecretProviderClasses only, not %s %s", gv, kind)
	case kind == "ServiceAccount" && gv == "v1":
		var sa corev1.ServiceAccount
		if err := strict(d, &sa); err != nil {
			return err
		}
		ns, err := w.namespace(d, sa.Namespace)
		if err != nil {
			return err
		}
		if w.accounts[ns] == nil {
			w.accounts[ns] = map[string]*metav1.ObjectMeta{}
		}
		w.accounts[ns][sa.Name] = &sa.ObjectMeta
	case kind == "Namespace" && gv == "v1":
		var n corev1.Namespace
		if err := strict(d, &n); err != nil {
			return err
		}
		w.labels[n.Name] = n.Labels
	}
	return nil
}

// nsLabels are the labels the namespace would have in the cluster.
func (w *world) nsLabels(ns string) map[string]string {
	out := map[string]string{}
	for k, v := range w.labels[ns] {
		out[k] = v
	}
	for k, v := range w.opts.NamespaceLabels {
		out[k] = v
	}
	return out
}

// template locates the pod template of a workload object.
type template struct {
	obj runtime.Object
	pod func() *corev1.PodTemplateSpec
	set func(*corev1.PodTemplateSpec)
}

func templateOf(gv, kind string) (func() template, bool) {
	switch gv + "/" + kind {
	case "v1/Pod":
		return func() template {
			p := &corev1.Pod{}
			return template{p,
				func() *corev1.PodTemplateSpec { return &corev1.PodTemplateSpec{ObjectMeta: p.ObjectMeta, Spec: p.Spec} },
				func(t *corev1.PodTemplateSpec) { p.ObjectMeta, p.Spec = t.ObjectMeta, t.Spec }}
		}, true
	case "v1/PodTemplate":
		return func() template {
			p := &corev1.PodTemplate{}
			return template{p, func() *corev1.PodTemplateSpec { return &p.Template }, func(t *corev1.PodTemplateSpec) { p.Template = *t }}
		}, true
	case "v1/ReplicationController":
		return func() template {
			p := &corev1.ReplicationController{}
			return template{p, func() *corev1.PodTemplateSpec { return p.Spec.Template }, func(t *corev1.PodTemplateSpec) { p.Spec.Template = t }}
		}, true
	case "apps/v1/Deployment":
		return func() template {
			p := &appsv1.Deployment{}
			return template{p, func() *corev1.PodTemplateSpec { return &p.Spec.Template }, func(t *corev1.PodTemplateSpec) { p.Spec.Template = *t }}
		}, true
	case "apps/v1/StatefulSet":
		return func() template {
			p := &appsv1.StatefulSet{}
			return template{p, func() *corev1.PodTemplateSpec { return &p.Spec.Template }, func(t *corev1.PodTemplateSpec) { p.Spec.Template = *t }}
		}, true
	case "apps/v1/DaemonSet":
		return func() template {
			p := &appsv1.DaemonSet{}
			return template{p, func() *corev1.PodTemplateSpec { return &p.Spec.Template }, func(t *corev1.PodTemplateSpec) { p.Spec.Template = *t }}
		}, true
	case "apps/v1/ReplicaSet":
		return func() template {
			p := &appsv1.ReplicaSet{}
			return template{p, func() *corev1.PodTemplateSpec { return &p.Spec.Template }, func(t *corev1.PodTemplateSpec) { p.Spec.Template = *t }}
		}, true
	case "batch/v1/Job":
		return func() template {
			p := &batchv1.Job{}
			return template{p, func() *corev1.PodTemplateSpec { return &p.Spec.Template }, func(t *corev1.PodTemplateSpec) { p.Spec.Template = *t }}
		}, true
	case "batch/v1/CronJob":
		return func() template {
			p := &batchv1.CronJob{}
			return template{p, func() *corev1.PodTemplateSpec { return &p.Spec.JobTemplate.Spec.Template }, func(t *corev1.PodTemplateSpec) { p.Spec.JobTemplate.Spec.Template = *t }}
		}, true
	}
	return nil, false
}

// workloadKinds are kinds whose older API versions are recognised only to
// say that they are not rewritten.
var workloadKinds = map[string]bool{"Deployment": true, "StatefulSet": true, "DaemonSet": true, "ReplicaSet": true, "Job": true, "CronJob": true, "Pod": true}

// process returns the output text of a document.
func (w *world) process(d *doc, diag io.Writer) ([]byte, error) {
	gv, kind := d.meta.APIVersion, d.meta.Kind
	if kind == "List" && gv == "v1" {
		return w.processList(d, diag)
	}
	mk, ok := templateOf(gv, kind)
	if !ok {
		if workloadKinds[kind] {
			_, _ = fmt.Fprintf(diag, "warning: %s: %s %s is not rewritten (only core/v1, apps/v1 and batch/v1 workloads are)\n", d.where(), gv, kind)
		}
		return d.raw, nil
	}
	t := mk()
	if err := strict(d, t.obj); err != nil {
		return nil, err
	}
	meta := t.obj.(metav1.Object)
	ns, err := w.namespace(d, meta.GetNamespace())
	if err != nil {
		return nil, err
	}
	pod := t.pod()
	if pod == nil {
		return nil, d.errorf("spec.template is required")
	}
	classes, sa := inject.References(pod)
	in := inject.Input{
		Namespace:       ns,
		NamespaceLabels: w.nsLabels(ns),
		Pod:             pod,
		Classes:         map[string]*ssiv1.SecretProviderClass{},
		ServiceAccount:  w.accounts[ns][sa],
	}
	for _, c := range classes {
		if obj := w.classes[ns][c]; obj != nil {
			in.Classes[c] = obj
		}
	}
	res, err := inject.Rewrite(&w.opts.Config, in)
	if err != nil {
		return nil, d.errorf("%w", err)
	}
	for _, warn := range res.Warnings {
		_, _ = fmt.Fprintf(diag, "warning: %s: %s\n", d.where(), warn)
	}
	if res.Pod == nil {
		if res.Skipped == inject.SkipNotEnabled && len(classes) > 0 {
			_, _ = fmt.Fprintf(diag, "note: %s: not rewritten: namespace %s is not labelled %s=%s (pass --namespace-label %s=%s) and the pod has no %s: \"true\" annotation\n",
				d.where(), ns, inject.LabelInjection, inject.LabelValueEnabled, inject.LabelInjection, inject.LabelValueEnabled, inject.AnnotationInject)
		}
		return d.raw, nil
	}
	t.set(res.Pod)
	return render(t.obj)
}

func (w *world) processList(d *doc, diag io.Writer) ([]byte, error) {
	items, err := listItems(d)
	if err != nil {
		return nil, err
	}
	var list map[string]any
	if err := unmarshalNumbers(d.json, &list); err != nil {
		return nil, d.errorf("%v", err)
	}
	changed := false
	out := make([]any, 0, len(items))
	for _, it := range items {
		b, err := w.process(it, diag)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(b, it.raw) {
			changed = true
		}
		j, err := yaml.YAMLToJSON(b)
		if err != nil {
			return nil, it.errorf("%v", err)
		}
		var m map[string]any
		if err := unmarshalNumbers(j, &m); err != nil {
			return nil, it.errorf("%v", err)
		}
		out = append(out, m)
	}
	if !changed {
		return d.raw, nil
	}
	list["items"] = out
	j, err := json.Marshal(list)
	if err != nil {
		return nil, d.errorf("%v", err)
	}
	return yaml.JSONToYAML(j)
}

// listItems turns the items of a v1 List into documents.
func listItems(d *doc) ([]*doc, error) {
	var l struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(d.json, &l); err != nil {
		return nil, d.errorf("items: %v", err)
	}
	out := make([]*doc, 0, len(l.Items))
	for i, raw := range l.Items {
		it := &doc{source: d.source, index: d.index, line: d.line, json: raw}
		if err := json.Unmarshal(raw, &it.meta); err != nil {
			return nil, d.errorf("items[%d]: %v", i, err)
		}
		if it.meta.APIVersion == "" || it.meta.Kind == "" {
			return nil, d.errorf("items[%d]: apiVersion and kind are required", i)
		}
		y, err := yaml.JSONToYAML(raw)
		if err != nil {
			return nil, d.errorf("items[%d]: %v", i, err)
		}
		it.raw = y
		out = append(out, it)
	}
	return out, nil
}

// strict decodes a document into a typed object, refusing unknown and
// duplicate fields with their paths.
func strict(d *doc, obj any) error {
	strictErrs, err := kjson.UnmarshalStrict(d.json, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return d.errorf("%v", err)
	}
	if len(strictErrs) > 0 {
		msgs := make([]string, 0, len(strictErrs))
		for _, e := range strictErrs {
			msgs = append(msgs, e.Error())
		}
		sort.Strings(msgs)
		return d.errorf("%s", strings.Join(msgs, "; "))
	}
	return nil
}

// render prints a typed object as YAML with sorted keys, without the
// empty status and null creationTimestamps typed objects carry.
func render(obj runtime.Object) ([]byte, error) {
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := unmarshalNumbers(j, &m); err != nil {
		return nil, err
	}
	if s, ok := m["status"].(map[string]any); ok && len(s) == 0 {
		delete(m, "status")
	}
	dropNullTimestamps(m)
	if j, err = json.Marshal(m); err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(j)
}

func dropNullTimestamps(v any) {
	switch t := v.(type) {
	case map[string]any:
		if ts, ok := t["creationTimestamp"]; ok && ts == nil {
			delete(t, "creationTimestamp")
		}
		for _, c := range t {
			dropNullTimestamps(c)
		}
	case []any:
		for _, c := range t {
			dropNullTimestamps(c)
		}
	}
}

func unmarshalNumbers(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}
