package secretsync

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/scheme"
)

// PodClasses returns the names of the SecretProviderClasses a pod consumes,
// sorted and without duplicates: the classes of its secrets-store csi
// volumes (pods the node shim serves, and plugin-provider volumes the
// webhook leaves in place), and, for a pod the webhook rewrote, the classes
// of the volumes in its agent configuration. Only names are returned: a
// class is always looked up in the pod's own namespace, whatever namespace
// the agent configuration records.
func PodClasses(pod *corev1.Pod) []string {
	seen := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		if v.CSI == nil || v.CSI.Driver != inject.CSIDriver {
			continue
		}
		if n := strings.TrimSpace(v.CSI.VolumeAttributes[inject.ClassAttribute]); n != "" {
			seen[n] = true
		}
	}
	if pod.Annotations[inject.AnnotationStatus] == inject.StatusInjected {
		for _, c := range agentContainers(&pod.Spec) {
			for _, e := range c.Env {
				if e.Name != agentconfig.EnvConfig {
					continue
				}
				for _, n := range agentConfigClasses(e.Value) {
					seen[n] = true
				}
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// agentContainers are the containers (init or regular) that carry an agent
// configuration.
func agentContainers(spec *corev1.PodSpec) []*corev1.Container {
	var out []*corev1.Container
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range list {
			for _, e := range list[i].Env {
				if e.Name == agentconfig.EnvConfig {
					out = append(out, &list[i])
					break
				}
			}
		}
	}
	return out
}

// agentConfigSummary is the part of agentconfig.Config the controller
// reads. It is decoded leniently: a configuration of another version still
// names its classes the same way.
type agentConfigSummary struct {
	Volumes []struct {
		Name  string `json:"name"`
		Class struct {
			Name string `json:"name"`
		} `json:"class"`
	} `json:"volumes"`
}

func agentConfigClasses(s string) []string {
	var c agentConfigSummary
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		return nil
	}
	var out []string
	for _, v := range c.Volumes {
		if n := strings.TrimSpace(v.Class.Name); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// Live reports whether a pod still consumes its classes: not being deleted
// and not finished. Pending pods are live: they may be waiting for the
// Secret to start.
func Live(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil {
		return false
	}
	switch pod.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed:
		return false
	}
	return true
}

// ServiceAccountName is the pod's service account ("default" when unset,
// as the API server's admission sets it).
func ServiceAccountName(pod *corev1.Pod) string {
	if pod.Spec.ServiceAccountName != "" {
		return pod.Spec.ServiceAccountName
	}
	return "default"
}

// TrimPod reduces a pod to what the controller reads, for the informer
// cache: identity, owners, liveness, service account, node, the
// secrets-store csi volumes, the product's annotations, and for rewritten
// pods an agent configuration reduced to its volume and class names.
// Everything else (containers, env, status details, managed fields) is
// dropped, so that caching every pod of a large cluster stays cheap.
// TrimPod is idempotent.
func TrimPod(pod *corev1.Pod) *corev1.Pod {
	out := &corev1.Pod{
		TypeMeta: pod.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name:              pod.Name,
			Namespace:         pod.Namespace,
			UID:               pod.UID,
			ResourceVersion:   pod.ResourceVersion,
			Generation:        pod.Generation,
			CreationTimestamp: pod.CreationTimestamp,
			DeletionTimestamp: pod.DeletionTimestamp,
			OwnerReferences:   pod.OwnerReferences,
		},
		Spec: corev1.PodSpec{
			ServiceAccountName: pod.Spec.ServiceAccountName,
			NodeName:           pod.Spec.NodeName,
		},
		Status: corev1.PodStatus{Phase: pod.Status.Phase},
	}
	for k, v := range pod.Annotations {
		if strings.HasPrefix(k, inject.Prefix) {
			if out.Annotations == nil {
				out.Annotations = map[string]string{}
			}
			out.Annotations[k] = v
		}
	}
	for _, v := range pod.Spec.Volumes {
		if v.CSI != nil && v.CSI.Driver == inject.CSIDriver {
			out.Spec.Volumes = append(out.Spec.Volumes, corev1.Volume{Name: v.Name, VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
				Driver:           v.CSI.Driver,
				VolumeAttributes: map[string]string{inject.ClassAttribute: v.CSI.VolumeAttributes[inject.ClassAttribute]},
			}}})
		}
	}
	if pod.Annotations[inject.AnnotationStatus] == inject.StatusInjected {
		var sum agentConfigSummary
		for _, c := range agentContainers(&pod.Spec) {
			for _, e := range c.Env {
				if e.Name != agentconfig.EnvConfig {
					continue
				}
				var one agentConfigSummary
				if json.Unmarshal([]byte(e.Value), &one) == nil {
					sum.Volumes = append(sum.Volumes, one.Volumes...)
				}
			}
		}
		if b, err := json.Marshal(sum); err == nil && len(sum.Volumes) > 0 {
			out.Spec.InitContainers = []corev1.Container{{Name: inject.AgentContainerName, Env: []corev1.EnvVar{{Name: agentconfig.EnvConfig, Value: string(b)}}}}
		}
	}
	return out
}

// trimTransform is TrimPod as a cache transform.
func trimTransform(obj any) (any, error) {
	if pod, ok := obj.(*corev1.Pod); ok {
		return TrimPod(pod), nil
	}
	return obj, nil
}

// consumers returns the live pods of the class's namespace that consume
// it, oldest first, then the pod-less service account if the class names
// one that allows sync.
func (r *Reconciler) consumers(ctx context.Context, class *ssiv1.SecretProviderClass) ([]consumer, error) {
	var pods corev1.PodList
	if err := r.own.List(ctx, &pods, client.InNamespace(class.Namespace), client.MatchingFields{indexPodClasses: class.Name}); err != nil {
		return nil, fmt.Errorf("list pods consuming SecretProviderClass %s/%s: %w", class.Namespace, class.Name, err)
	}
	var out []consumer
	for i := range pods.Items {
		p := &pods.Items[i]
		if Live(p) {
			out = append(out, consumer{pod: p, serviceAccount: ServiceAccountName(p)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].pod, out[j].pod
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Name < b.Name
	})
	if sa := strings.TrimSpace(class.Annotations[AnnotationSyncServiceAccount]); sa != "" {
		ok, why, err := r.allowsSync(ctx, class.Namespace, sa, class.Name)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, consumer{serviceAccount: sa})
		} else {
			r.warn(class, ReasonSyncServiceAccount, "Sync", "annotation %s names service account %q, but %s; the class is synced only while pods consume it",
				AnnotationSyncServiceAccount, sa, why)
		}
	}
	return out, nil
}

// allowsSync reports whether a service account exists and its allow-sync
// annotation names the class; why says what is missing.
func (r *Reconciler) allowsSync(ctx context.Context, namespace, name, class string) (bool, string, error) {
	m := scheme.Metadata("ServiceAccount")
	if err := r.shared.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, m); apierrors.IsNotFound(err) {
		return false, fmt.Sprintf("it does not exist in namespace %s", namespace), nil
	} else if err != nil {
		return false, "", fmt.Errorf("get service account %s/%s: %w", namespace, name, err)
	}
	ok, why := AllowsSyncOf(m.Annotations, class)
	return ok, why, nil
}
