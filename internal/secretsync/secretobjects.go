package secretsync

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/render"
	"github.com/ssinjector/ssi/internal/spc"
)

// Labels and annotations the controller puts on the Secrets it writes.
const (
	// LabelManaged is the upstream driver's mark of a synced Secret; the
	// controller only ever watches, changes or deletes Secrets carrying it.
	LabelManaged = "secrets-store.csi.k8s.io/managed"
	// AnnotationSyncedFrom names the SecretProviderClass (same namespace)
	// a Secret was written for; it marks the Secrets this controller
	// created, the only ones it deletes.
	AnnotationSyncedFrom = inject.Prefix + "synced-from"
	// AnnotationAdopt on an existing Secret labelled managed (written by
	// the upstream driver, say) names the one SecretProviderClass of its
	// namespace that may adopt it. Without it such a Secret is left alone:
	// the managed label alone is anyone's to set.
	AnnotationAdopt = inject.Prefix + "adopt"
)

// Keys of a kubernetes.io/tls Secret.
const (
	keyTLSCert = corev1.TLSCertKey
	keyTLSKey  = corev1.TLSPrivateKeyKey
)

// requiredKeys are the data keys the API server requires of a Secret of
// each type (k8s.io/kubernetes pkg/apis/core/validation, ValidateSecret):
// each entry is a set of keys of which the Secret must hold at least one.
// A declaration lacking one is refused (parseSecretObject); a Secret
// whose every key of an entry comes from optional objects the backend
// does not have is not written (buildSecret), since the API server would
// refuse it at every reconcile.
var requiredKeys = map[corev1.SecretType][][]string{
	corev1.SecretTypeTLS:              {{keyTLSCert}, {keyTLSKey}},
	corev1.SecretTypeDockerConfigJson: {{corev1.DockerConfigJsonKey}},
	corev1.SecretTypeDockercfg:        {{corev1.DockerConfigKey}},
	corev1.SecretTypeSSHAuth:          {{corev1.SSHAuthPrivateKey}},
	corev1.SecretTypeBasicAuth:        {{corev1.BasicAuthUsernameKey, corev1.BasicAuthPasswordKey}},
}

// item is one key of a Secret and the object file it is taken from.
type item struct {
	objectName string
	key        string
}

// secretSpec is one validated secretObjects entry.
type secretSpec struct {
	index       int
	name        string
	typ         corev1.SecretType
	labels      map[string]string
	annotations map[string]string
	items       []item
}

// parseSecretObjects validates spec.secretObjects the way the upstream
// driver does (secretName, type and data required; objectName and key
// trimmed and required; kubernetes.io/tls takes only tls.crt and tls.key),
// and beyond it rejects what the API server would reject later with a
// less precise message (invalid names, keys, labels and annotations, a
// key its type requires missing: requiredKeys), a
// key declared twice in one Secret, and a Secret declared twice. Each
// problem names the entry and field and never contains object content.
func parseSecretObjects(objs []*ssiv1.SecretObject) ([]secretSpec, []string) {
	var specs []secretSpec
	var problems []string
	first := map[string]int{}
	dup := map[string]bool{}
	for i, o := range objs {
		if o == nil {
			problems = append(problems, fmt.Sprintf("secretObjects[%d] is null", i))
			continue
		}
		s, errs := parseSecretObject(i, o)
		if len(errs) > 0 {
			problems = append(problems, errs...)
			continue
		}
		if j, ok := first[s.name]; ok {
			dup[s.name] = true
			problems = append(problems, fmt.Sprintf("secretObjects[%d]: Secret %q is already declared by secretObjects[%d]; declare each Secret once", i, s.name, j))
			continue
		}
		first[s.name] = i
		specs = append(specs, s)
	}
	// A Secret declared twice is ambiguous: sync neither declaration.
	out := specs[:0]
	for _, s := range specs {
		if !dup[s.name] {
			out = append(out, s)
		}
	}
	return out, problems
}

func parseSecretObject(i int, o *ssiv1.SecretObject) (secretSpec, []string) {
	s := secretSpec{index: i, name: strings.TrimSpace(o.SecretName), typ: corev1.SecretType(strings.TrimSpace(o.Type))}
	where := fmt.Sprintf("secretObjects[%d]", i)
	if s.name != "" {
		where = fmt.Sprintf("secretObjects[%d] (Secret %q)", i, s.name)
	}
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, where+": "+fmt.Sprintf(format, args...)) }
	if s.name == "" {
		fail("secretName is empty")
	} else if msgs := validation.IsDNS1123Subdomain(s.name); len(msgs) > 0 {
		fail("secretName is not a valid Secret name: %s", strings.Join(msgs, "; "))
	}
	if s.typ == "" {
		fail("type is empty; set it, for example to Opaque or kubernetes.io/tls")
	} else if err := spc.CheckSecretType(string(s.typ)); err != nil {
		// Kubernetes fills a service-account-token or bootstrap token
		// Secret with credentials of its own; the controller never
		// writes one.
		fail("%v", err)
	}
	if len(o.Data) == 0 {
		fail("data is empty; list at least one objectName and key")
	}
	keys := map[string]int{}
	for j, d := range o.Data {
		if d == nil {
			fail("data[%d] is null", j)
			continue
		}
		it := item{objectName: strings.TrimSpace(d.ObjectName), key: strings.TrimSpace(d.Key)}
		if it.objectName == "" {
			fail("data[%d].objectName is empty; name an object of the class", j)
		}
		switch {
		case it.key == "":
			fail("data[%d].key is empty; name the key of the Secret", j)
		case s.typ == corev1.SecretTypeTLS && it.key != keyTLSCert && it.key != keyTLSKey:
			fail("data[%d].key %q is not supported for type kubernetes.io/tls: only %s and %s are", j, it.key, keyTLSCert, keyTLSKey)
		default:
			if msgs := validation.IsConfigMapKey(it.key); len(msgs) > 0 {
				fail("data[%d].key %q is not a valid Secret key: %s", j, it.key, strings.Join(msgs, "; "))
			}
		}
		if it.key != "" {
			if k, ok := keys[it.key]; ok {
				fail("data[%d].key %q is already used by data[%d]; each key of a Secret must be unique", j, it.key, k)
				continue
			}
			keys[it.key] = j
		}
		s.items = append(s.items, it)
	}
	if len(errs) == 0 {
		for _, oneOf := range requiredKeys[s.typ] {
			if !slices.ContainsFunc(oneOf, func(k string) bool { _, ok := keys[k]; return ok }) {
				fail("type %s needs a data entry with key %s", s.typ, strings.Join(oneOf, " or "))
			}
		}
	}
	if el := metav1validation.ValidateLabels(o.Labels, field.NewPath("labels")); len(el) > 0 {
		fail("%s", el.ToAggregate().Error())
	}
	if el := apivalidation.ValidateAnnotations(o.Annotations, field.NewPath("annotations")); len(el) > 0 {
		fail("%s", el.ToAggregate().Error())
	}
	for _, a := range []string{AnnotationSyncedFrom, AnnotationAdopt} {
		if _, ok := o.Annotations[a]; ok {
			fail("annotations: %s is set by the sync controller and cannot be declared", a)
		}
	}
	s.labels = copyMap(o.Labels)
	s.annotations = copyMap(o.Annotations)
	return s, errs
}

// checkObjects reports the items whose objectName is not a file the class
// produces. Classes of plugin providers declare no files before a fetch;
// for them the check runs on the fetched files only.
func checkObjects(s secretSpec, class *spc.Class, have func(string) bool, known []string) []string {
	var errs []string
	for j, it := range s.items {
		if have(it.objectName) {
			continue
		}
		list := "it produces no files"
		if len(known) > 0 {
			list = "its objects are " + strings.Join(quoteAll(known), ", ")
		}
		errs = append(errs, fmt.Sprintf("secretObjects[%d] (Secret %q): data[%d].objectName %q is not an object of SecretProviderClass %s (%s)",
			s.index, s.name, j, it.objectName, class.Key(), list))
	}
	return errs
}

// classFiles returns a lookup of the file paths a built-in class produces
// and their sorted list, from the parsed parameters (no fetch), with the
// paths of its rendered templates.
func classFiles(class *spc.Class, rendered []string) (func(string) bool, []string) {
	files := class.Files()
	names := make([]string, 0, len(files)+len(rendered))
	exact := map[string]bool{}
	var dirs []string
	for _, f := range files {
		names = append(names, f.Path)
		if f.Dir {
			dirs = append(dirs, f.Path)
		} else {
			exact[f.Path] = true
		}
	}
	for _, p := range rendered {
		names = append(names, p)
		exact[p] = true
	}
	sort.Strings(names)
	return func(p string) bool {
		if exact[p] {
			return true
		}
		// A version-history directory holds "<dir>/<i>".
		for _, d := range dirs {
			if rest, ok := strings.CutPrefix(p, d+"/"); ok {
				if _, err := strconv.Atoi(rest); err == nil {
					return true
				}
			}
		}
		return false
	}, names
}

// templatePaths are the rendered paths of set (nil for none).
func templatePaths(set *render.Set) []string {
	if set == nil {
		return nil
	}
	return set.Paths()
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}

func copyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
