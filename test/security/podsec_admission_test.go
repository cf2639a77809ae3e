package security

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	"github.com/ssinjector/ssi/internal/inject"
	"github.com/ssinjector/ssi/internal/webhook"
)

const podsecNamespace = "tenant-a"

// podsecLookup is an enabled namespace with one Vault class, "real";
// it counts class lookups (each miss is a read from the API server).
type podsecLookup struct{ classReads atomic.Int32 }

func (*podsecLookup) NamespaceLabels(context.Context, string) (map[string]string, error) {
	return map[string]string{inject.LabelInjection: inject.LabelValueEnabled}, nil
}

func (l *podsecLookup) Class(_ context.Context, ns, name string) (*ssiv1.SecretProviderClass, error) {
	l.classReads.Add(1)
	if name != "real" {
		return nil, nil
	}
	return &ssiv1.SecretProviderClass{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: ssiv1.SecretProviderClassSpec{
		Provider: "vault", Parameters: map[string]string{"roleName": "app", "objects": "- objectName: db\n  secretPath: secret/data/db\n  secretKey: password\n"},
	}}, nil
}

func (*podsecLookup) ConfigMap(context.Context, string, string) (*corev1.ConfigMap, error) {
	return nil, nil
}

func (*podsecLookup) ServiceAccount(context.Context, string, string) (*metav1.ObjectMeta, error) {
	return &metav1.ObjectMeta{Name: "default", Namespace: podsecNamespace}, nil
}

// podsecPod is a tenant's pod whose app mounts one CSI volume per class.
func podsecPod(classes ...string) *corev1.Pod {
	yes := true
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "attacker", Namespace: podsecNamespace},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}
	for i, c := range classes {
		name := fmt.Sprintf("v%d", i)
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
			Driver: inject.CSIDriver, ReadOnly: &yes, VolumeAttributes: map[string]string{inject.ClassAttribute: c},
		}}})
		p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: name, MountPath: "/mnt/" + name, ReadOnly: true})
	}
	return p
}

// podsecAdmit runs the webhook's defaulter on pod, as the API server
// would call it, and returns the denial (nil when admitted).
func podsecAdmit(t *testing.T, l webhook.Lookup, cfg inject.Config, pod *corev1.Pod) error {
	t.Helper()
	inj := &webhook.Injector{Config: &cfg, Lookup: l, FailurePolicy: admissionregistrationv1.Fail, Log: logr.Discard()}
	return inj.Default(context.Background(), pod)
}

// TestPodsecMissingClassesAmplification is part of finding 10 of issue 14:
// a tenant's pod naming 1,000 classes that do not exist made the webhook
// do 1,000 lookups, each a live read from the API server. Now a pod names
// at most inject.MaxClassesPerPod classes, and the lookups stop at the
// first missing one.
func TestPodsecMissingClassesAmplification(t *testing.T) {
	many := make([]string, 1000)
	for i := range many {
		many[i] = fmt.Sprintf("missing-%d", i)
	}
	l := &podsecLookup{}
	err := podsecAdmit(t, l, inject.DefaultConfig(), podsecPod(many...))
	if err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("a pod naming 1000 classes: %v, want the per-pod cap", err)
	}
	if n := l.classReads.Load(); n != 0 {
		t.Errorf("the webhook looked up %d classes for a pod over the cap", n)
	}

	l = &podsecLookup{}
	few := append([]string{"real"}, many[:inject.MaxClassesPerPod-1]...)
	err = podsecAdmit(t, l, inject.DefaultConfig(), podsecPod(few...))
	if err == nil || !strings.Contains(err.Error(), `SecretProviderClass "missing-0" not found`) {
		t.Fatalf("a pod naming missing classes: %v, want the first missing one named", err)
	}
	if n := l.classReads.Load(); n != 2 {
		t.Errorf("the webhook looked up %d classes, want 2 (the existing one and the first missing)", n)
	}
}

// TestPodsecRotationFloor is part of finding 10: a tenant asking every
// agent to fetch every second is denied below the operator's
// --min-rotation-interval (default 10s).
func TestPodsecRotationFloor(t *testing.T) {
	pod := podsecPod("real")
	pod.Annotations = map[string]string{inject.AnnotationRotationInterval: "1s"}
	err := podsecAdmit(t, &podsecLookup{}, inject.DefaultConfig(), pod)
	if err == nil || !strings.Contains(err.Error(), "--min-rotation-interval") {
		t.Fatalf("rotation-interval 1s: %v, want a denial naming the minimum", err)
	}
}

// TestPodsecAppMountsAgentVolumes is part of finding 10: an app container
// naming an agent-only volume in its mounts (a volume the pod does not
// have, which the rewrite adds) would get the agent's provider tokens or
// nodePublishSecretRef credentials. Such a pod is denied.
func TestPodsecAppMountsAgentVolumes(t *testing.T) {
	for _, vol := range []string{inject.TokenVolumeName, inject.NoAPITokenVolumeName, "ssi-nps-v0"} {
		t.Run(vol, func(t *testing.T) {
			pod := podsecPod("real")
			pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: vol, MountPath: "/stolen", ReadOnly: true})
			err := podsecAdmit(t, &podsecLookup{}, inject.DefaultConfig(), pod)
			if err == nil || !strings.Contains(err.Error(), "reserved for the injected agent") {
				t.Fatalf("app mounting %s: %v, want a denial", vol, err)
			}
		})
	}
}
