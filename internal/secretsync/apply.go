package secretsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/atomicdir"
)

// ownedSecrets are the managed Secrets this controller created for key.
func (r *Reconciler) ownedSecrets(ctx context.Context, key types.NamespacedName) (map[string]*corev1.Secret, error) {
	var list corev1.SecretList
	if err := r.own.List(ctx, &list, client.InNamespace(key.Namespace), client.MatchingFields{indexSyncedFrom: key.Name}); err != nil {
		return nil, fmt.Errorf("list Secrets synced from SecretProviderClass %s: %w", key, err)
	}
	out := map[string]*corev1.Secret{}
	for i := range list.Items {
		s := &list.Items[i]
		if s.Labels[LabelManaged] == "true" {
			out[s.Name] = s
		}
	}
	return out, nil
}

// deleteSecrets deletes the owned Secrets whose names are not in keep.
func (r *Reconciler) deleteSecrets(ctx context.Context, class *ssiv1.SecretProviderClass, owned map[string]*corev1.Secret, keep map[string]bool) error {
	var errs []error
	for _, name := range sortedKeys(owned) {
		if keep[name] {
			continue
		}
		s := owned[name]
		uid, rv := s.UID, s.ResourceVersion
		err := r.client.Delete(ctx, s, client.Preconditions{UID: &uid, ResourceVersion: &rv})
		switch {
		case err == nil:
			r.event(class, s, corev1.EventTypeNormal, ReasonSecretDeleted, "Delete", "deleted Secret %s: no consumer of the class remains or the class no longer declares it", name)
		case apierrors.IsNotFound(err):
		case apierrors.IsConflict(err):
			// Changed since the cache saw it; the change requeues.
			errs = append(errs, fmt.Errorf("delete Secret %s/%s: %w", s.Namespace, name, err))
		default:
			r.metrics.Errors.WithLabelValues(ReasonFailedToDeleteSecret).Inc()
			r.event(class, s, corev1.EventTypeWarning, ReasonFailedToDeleteSecret, "Delete", "delete Secret %s: %s", name, apiCause(err))
			errs = append(errs, fmt.Errorf("delete Secret %s/%s: %w", s.Namespace, name, err))
		}
	}
	return errors.Join(errs...)
}

func fileMap(files []atomicdir.File) map[string][]byte {
	m := make(map[string][]byte, len(files))
	for _, f := range files {
		m[f.Path] = f.Data
	}
	return m
}

// buildSecret returns the Secret a spec declares, from the fetched files.
// A data entry whose object is an optional one the backend does not have
// (absent holds the class's optional files, spc.Class.OptionalPaths, and
// the templates not rendered for want of one) is left out of the Secret.
// When that leaves out every key of one of requiredKeys of the Secret's
// type (both keys of kubernetes.io/tls, .dockerconfigjson, username and
// password ...), which the API server would refuse, no Secret is built:
// held says why (naming the Secret, its type, the keys and their objects,
// never content) and the Secret keeps what it held.
func buildSecret(class *ssiv1.SecretProviderClass, s secretSpec, files map[string][]byte, absent map[string]bool, owners []metav1.OwnerReference) (sec *corev1.Secret, msgs []string, held string) {
	missing := func(it item) bool {
		_, ok := files[it.objectName]
		return !ok && absent[it.objectName]
	}
	if why := heldBack(s, missing); why != "" {
		return nil, nil, why
	}
	sec = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       class.Namespace,
			Name:            s.name,
			Labels:          map[string]string{},
			Annotations:     map[string]string{},
			OwnerReferences: owners,
		},
		Type: s.typ,
		Data: map[string][]byte{},
	}
	for k, v := range s.labels {
		sec.Labels[k] = v
	}
	sec.Labels[LabelManaged] = "true"
	for k, v := range s.annotations {
		sec.Annotations[k] = v
	}
	sec.Annotations[AnnotationSyncedFrom] = class.Name
	for j, it := range s.items {
		if missing(it) {
			continue
		}
		content := files[it.objectName]
		if s.typ == corev1.SecretTypeTLS {
			v, err := tlsValue(it.key, content)
			if err != nil {
				msgs = append(msgs, fmt.Sprintf("secretObjects[%d] (Secret %q): data[%d]: %s from object %q: %v", s.index, s.name, j, it.key, it.objectName, err))
				continue
			}
			content = v
		}
		sec.Data[it.key] = content
	}
	return sec, msgs, ""
}

// heldBack says why the Secret of s cannot be written while the items
// missing reports are left out: the keys of requiredKeys it would lack,
// and their missing optional objects. Empty when it can be written.
func heldBack(s secretSpec, missing func(item) bool) string {
	var keys, objs []string
	for _, oneOf := range requiredKeys[s.typ] {
		var from []string
		for _, it := range s.items {
			if !slices.Contains(oneOf, it.key) {
				continue
			}
			if !missing(it) {
				from = nil
				break
			}
			from = append(from, fmt.Sprintf("%s from %q", it.key, it.objectName))
		}
		if len(from) > 0 {
			keys = append(keys, strings.Join(oneOf, " or "))
			objs = append(objs, from...)
		}
	}
	if len(keys) == 0 {
		return ""
	}
	return fmt.Sprintf("secretObjects[%d] (Secret %q): type %s requires key %s, and the backend does not have the optional object (%s); the Secret is not written and keeps what it held until the object exists",
		s.index, s.name, s.typ, strings.Join(keys, " and "), strings.Join(objs, ", "))
}

// ownerReferences are the owners of the consuming pods (or the pods
// themselves when they have none), and the class for pod-less sync;
// apiVersion, kind, name and uid only, as upstream. Sorted, deduplicated.
func ownerReferences(class *ssiv1.SecretProviderClass, consumers []consumer) []metav1.OwnerReference {
	byUID := map[types.UID]metav1.OwnerReference{}
	for _, c := range consumers {
		switch {
		case c.pod == nil:
			byUID[class.UID] = metav1.OwnerReference{APIVersion: ssiv1.GroupVersion.String(), Kind: ssiv1.KindSecretProviderClass, Name: class.Name, UID: class.UID}
		case len(c.pod.OwnerReferences) == 0:
			byUID[c.pod.UID] = metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: c.pod.Name, UID: c.pod.UID}
		default:
			for _, o := range c.pod.OwnerReferences {
				byUID[o.UID] = metav1.OwnerReference{APIVersion: o.APIVersion, Kind: o.Kind, Name: o.Name, UID: o.UID}
			}
		}
	}
	out := make([]metav1.OwnerReference, 0, len(byUID))
	for _, o := range byUID {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].UID < out[j].UID
	})
	return out
}

// errConflict reports a Secret the controller must leave alone; the
// conflict is already reported.
var errConflict = errors.New("secret name taken")

// applySecret creates or updates one Secret; changed reports a write.
func (r *Reconciler) applySecret(ctx context.Context, class *ssiv1.SecretProviderClass, want *corev1.Secret, owned map[string]*corev1.Secret) (bool, error) {
	cur := owned[want.Name]
	if cur == nil {
		// Not ours (yet): a managed Secret of the upstream driver is
		// adopted; anything else is left alone.
		var other corev1.Secret
		err := r.own.Get(ctx, client.ObjectKeyFromObject(want), &other)
		switch {
		case apierrors.IsNotFound(err):
			return r.create(ctx, class, want)
		case err != nil:
			return false, fmt.Errorf("get Secret %s/%s from the cache: %w", want.Namespace, want.Name, err)
		}
		if from := other.Annotations[AnnotationSyncedFrom]; from != "" && from != class.Name {
			r.conflict(class, want.Name, fmt.Sprintf("Secret %s is synced from SecretProviderClass %s; a Secret can be declared by one class only", want.Name, from))
			return false, errConflict
		}
		if other.Annotations[AnnotationSyncedFrom] == "" && strings.TrimSpace(other.Annotations[AnnotationAdopt]) != class.Name {
			// The managed label alone proves nothing: anyone who may
			// create Secrets in the namespace may set it, and any class
			// of the namespace could then take the Secret over.
			r.conflict(class, want.Name, fmt.Sprintf("Secret %s is labelled %s=true but was not created by the sync controller; annotate it %s: %q to let this class adopt it",
				want.Name, LabelManaged, AnnotationAdopt, class.Name))
			return false, errConflict
		}
		cur = &other
		r.event(class, cur, corev1.EventTypeNormal, ReasonSecretAdopted, "Update", "adopting Secret %s, labelled %s=true and annotated %s: %q", want.Name, LabelManaged, AnnotationAdopt, class.Name)
	}
	if cur.Type != want.Type {
		// The type of a Secret is immutable: replace it.
		uid, rv := cur.UID, cur.ResourceVersion
		if err := r.client.Delete(ctx, cur, client.Preconditions{UID: &uid, ResourceVersion: &rv}); err != nil && !apierrors.IsNotFound(err) {
			r.metrics.Errors.WithLabelValues(ReasonFailedToUpdateSecret).Inc()
			r.event(class, cur, corev1.EventTypeWarning, ReasonFailedToUpdateSecret, "Update", "replace Secret %s (type %s to %s): %s", want.Name, cur.Type, want.Type, apiCause(err))
			return false, fmt.Errorf("replace Secret %s/%s: %w", want.Namespace, want.Name, err)
		}
		return r.create(ctx, class, want)
	}
	if equalSecret(cur, want) {
		return false, nil
	}
	upd := cur.DeepCopy()
	upd.Labels, upd.Annotations, upd.OwnerReferences, upd.Data, upd.StringData = want.Labels, want.Annotations, want.OwnerReferences, want.Data, nil
	if err := r.client.Update(ctx, upd); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return false, fmt.Errorf("update Secret %s/%s: %w", want.Namespace, want.Name, err)
		}
		r.metrics.Errors.WithLabelValues(ReasonFailedToUpdateSecret).Inc()
		r.event(class, cur, corev1.EventTypeWarning, ReasonFailedToUpdateSecret, "Update", "update Secret %s: %s", want.Name, apiCause(err))
		return false, fmt.Errorf("update Secret %s/%s: %w", want.Namespace, want.Name, err)
	}
	r.event(class, upd, corev1.EventTypeNormal, ReasonSecretUpdated, "Update", "updated Secret %s (%s)", want.Name, diffSummary(cur, want))
	return true, nil
}

func (r *Reconciler) create(ctx context.Context, class *ssiv1.SecretProviderClass, want *corev1.Secret) (bool, error) {
	err := r.client.Create(ctx, want)
	if apierrors.IsAlreadyExists(err) {
		// Not in the managed cache: either the cache lags behind a
		// Secret just written, or a Secret of someone else has the name.
		var live corev1.Secret
		if gerr := r.live.Get(ctx, client.ObjectKeyFromObject(want), &live); gerr == nil && live.Labels[LabelManaged] != "true" {
			r.conflict(class, want.Name, fmt.Sprintf("Secret %s already exists and is not labelled %s=true; the sync controller does not overwrite it", want.Name, LabelManaged))
			return false, errConflict
		}
		return false, fmt.Errorf("create Secret %s/%s: %w", want.Namespace, want.Name, err)
	}
	if err != nil {
		r.metrics.Errors.WithLabelValues(ReasonFailedToCreateSecret).Inc()
		r.event(class, want, corev1.EventTypeWarning, ReasonFailedToCreateSecret, "Create", "create Secret %s: %s", want.Name, apiCause(err))
		return false, fmt.Errorf("create Secret %s/%s: %w", want.Namespace, want.Name, err)
	}
	r.event(class, want, corev1.EventTypeNormal, ReasonSecretCreated, "Create", "created Secret %s with keys %s", want.Name, strings.Join(sortedKeys(want.Data), ", "))
	return true, nil
}

func (r *Reconciler) conflict(class *ssiv1.SecretProviderClass, name, msg string) {
	r.metrics.Errors.WithLabelValues(ReasonSecretConflict).Inc()
	r.warn(class, ReasonSecretConflict, "Sync", "%s", msg)
}

// equalSecret compares what the controller owns of a Secret.
func equalSecret(cur, want *corev1.Secret) bool {
	if !maps.Equal(cur.Labels, want.Labels) || !maps.Equal(cur.Annotations, want.Annotations) {
		return false
	}
	if len(cur.Data) != len(want.Data) || len(cur.StringData) > 0 {
		return false
	}
	for k, v := range want.Data {
		if c, ok := cur.Data[k]; !ok || !bytes.Equal(c, v) {
			return false
		}
	}
	return equalOwners(cur.OwnerReferences, want.OwnerReferences)
}

func equalOwners(a, b []metav1.OwnerReference) bool {
	if len(a) != len(b) {
		return false
	}
	key := func(o metav1.OwnerReference) string {
		return o.APIVersion + "|" + o.Kind + "|" + o.Name + "|" + string(o.UID)
	}
	m := map[string]bool{}
	for _, o := range a {
		if o.Controller != nil || o.BlockOwnerDeletion != nil {
			return false
		}
		m[key(o)] = true
	}
	for _, o := range b {
		if !m[key(o)] {
			return false
		}
	}
	return true
}

// diffSummary names what changed, without values.
func diffSummary(cur, want *corev1.Secret) string {
	var parts []string
	var keys []string
	for k, v := range want.Data {
		if c, ok := cur.Data[k]; !ok || !bytes.Equal(c, v) {
			keys = append(keys, k)
		}
	}
	for k := range cur.Data {
		if _, ok := want.Data[k]; !ok {
			keys = append(keys, k)
		}
	}
	if len(keys) > 0 {
		sort.Strings(keys)
		parts = append(parts, "data keys "+strings.Join(keys, ", "))
	}
	if !maps.Equal(cur.Labels, want.Labels) {
		parts = append(parts, "labels")
	}
	if !maps.Equal(cur.Annotations, want.Annotations) {
		parts = append(parts, "annotations")
	}
	if !equalOwners(cur.OwnerReferences, want.OwnerReferences) {
		parts = append(parts, "owner references")
	}
	return strings.Join(parts, ", ")
}

// apiCause is the API server's message of a failed write. Secret
// validation messages of the API server do not quote data values.
func apiCause(err error) string {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		return se.Status().Message
	}
	return err.Error()
}
