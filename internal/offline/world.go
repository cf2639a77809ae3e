package offline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/inject"
)

// world is what the webhook would read from the cluster.
type world struct {
	opts     Options
	classes  map[string]map[string]*ssiv1.SecretProviderClass
	accounts map[string]map[string]*metav1.ObjectMeta
	labels   map[string]map[string]string
	// configMaps are the stream's ConfigMaps' data by namespace and name
	// (the text of classes' templates).
	configMaps map[string]map[string]map[string]string
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
	case kind == ssiv1.KindSecretProviderClass && strings.HasPrefix(gv, ssiv1.GroupVersion.Group+"/"):
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
	case kind == "ConfigMap" && gv == "v1":
		// Read leniently: ConfigMaps pass through unchanged, and only
		// their data matters here.
		var cm corev1.ConfigMap
		if err := json.Unmarshal(d.json, &cm); err != nil {
			return nil
		}
		ns, err := w.namespace(d, cm.Namespace)
		if err != nil {
			return err
		}
		if w.configMaps == nil {
			w.configMaps = map[string]map[string]map[string]string{}
		}
		if w.configMaps[ns] == nil {
			w.configMaps[ns] = map[string]map[string]string{}
		}
		w.configMaps[ns][cm.Name] = cm.Data
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
		ConfigMap: func(name, key string) (string, bool, error) {
			v, ok := w.configMaps[ns][name][key]
			return v, ok, nil
		},
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
