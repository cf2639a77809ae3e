package inject

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
)

// TestModeWarnings checks the admission warning for file modes against the
// kernel's rule, with and without an fsGroup: the files belong to the
// agent's user and, when the pod sets one, to the fsGroup.
func TestModeWarnings(t *testing.T) {
	id := func(v int64) *int64 { return &v }
	modeClass := func(mode string) *ssiv1.SecretProviderClass {
		return class("modes", "vault", map[string]string{"roleName": "app", "objects": "- objectName: key\n  secretPath: secret/data/k\n  secretKey: k\n  filePermission: " + mode + "\n"})
	}
	tests := map[string]struct {
		mode      string
		pod       *corev1.PodSecurityContext
		appUID    *int64
		agentUser string // agent-run-as-user annotation
		warn      bool
	}{
		"0440, fsGroup, app is another user":           {mode: "0440", pod: &corev1.PodSecurityContext{FSGroup: id(3000)}, appUID: id(1001), agentUser: "2002"},
		"0400, fsGroup, app is another user":           {mode: "0400", pod: &corev1.PodSecurityContext{FSGroup: id(3000)}, appUID: id(1001), agentUser: "2002", warn: true},
		"0440, fsGroup, app user unknown":              {mode: "0440", pod: &corev1.PodSecurityContext{FSGroup: id(3000)}},
		"0400, fsGroup, app user unknown":              {mode: "0400", pod: &corev1.PodSecurityContext{FSGroup: id(3000)}, warn: true},
		"0440, no fsGroup, app is another user":        {mode: "0440", appUID: id(1001), agentUser: "2002", warn: true},
		"0440, no fsGroup, shared pod group":           {mode: "0440", pod: &corev1.PodSecurityContext{RunAsGroup: id(3000)}, appUID: id(1001), agentUser: "2002"},
		"0440, no fsGroup, supplemental agent's group": {mode: "0440", pod: &corev1.PodSecurityContext{RunAsGroup: id(3000), SupplementalGroups: []int64{3000}}, appUID: id(1001), agentUser: "2002"},
		"0400, same user":                              {mode: "0400", appUID: id(1001)},
		"0040, same user (owner bits apply)":           {mode: "0040", pod: &corev1.PodSecurityContext{FSGroup: id(3000)}, appUID: id(1001), warn: true},
		"0444, anyone":                                 {mode: "0444", appUID: id(1001), agentUser: "2002"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ann := map[string]string{}
			if tc.agentUser != "" {
				ann[AnnotationAgentRunAsUser] = tc.agentUser
			}
			pod := podWith(ann, "modes")
			pod.Spec.SecurityContext = tc.pod
			if tc.appUID != nil {
				pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: tc.appUID}
			}
			in := input(pod)
			in.Classes["modes"] = modeClass(tc.mode)
			res := rewrite(t, in)
			var got []string
			for _, w := range res.Warnings {
				if strings.Contains(w, "cannot read it") {
					got = append(got, w)
				}
			}
			if tc.warn != (len(got) > 0) {
				t.Errorf("mode warnings %q, want one: %v", got, tc.warn)
			}
			if tc.warn && len(got) > 0 && !strings.Contains(got[0], `containers app cannot read it`) {
				t.Errorf("warning does not name the container: %q", got[0])
			}
		})
	}
}

// TestAppCannotMountAgentVolumes: an app container that mounts the agent's
// token volume by name (a mount of a volume the pod lacks, which the
// rewrite would add) is denied, and so is a pod volume with a reserved
// name.
func TestAppCannotMountAgentVolumes(t *testing.T) {
	tests := map[string]func(p *corev1.PodTemplateSpec){
		"token volume": func(p *corev1.PodTemplateSpec) {
			p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: TokenVolumeName, MountPath: "/steal"})
		},
		"API token mask": func(p *corev1.PodTemplateSpec) {
			p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: NoAPITokenVolumeName, MountPath: "/x"})
		},
		"nodePublish secret": func(p *corev1.PodTemplateSpec) {
			p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: nodePublishPrefix + "v-vault", MountPath: "/sp"})
		},
		"init container": func(p *corev1.PodTemplateSpec) {
			p.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: "x", VolumeMounts: []corev1.VolumeMount{{Name: TokenVolumeName, MountPath: "/steal"}}}}
		},
		"pod volume with the prefix": func(p *corev1.PodTemplateSpec) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: nodePublishPrefix + "mine"})
		},
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			pod := podWith(nil, "vault")
			pod.Spec.Volumes[0].CSI.NodePublishSecretRef = &corev1.LocalObjectReference{Name: "sp"}
			mutate(pod)
			cfg := DefaultConfig()
			_, err := Rewrite(&cfg, input(pod))
			if ReasonOf(err) != ReasonConflict || !strings.Contains(err.Error(), "reserved for the injected agent") {
				t.Fatalf("Rewrite = %v, want a conflict naming the reserved volume", err)
			}
		})
	}
}

// TestMinRotationInterval: the operator's floor denies shorter pod
// intervals with a message naming the minimum; a lower floor admits them.
func TestMinRotationInterval(t *testing.T) {
	tests := map[string]struct {
		min      time.Duration
		interval string
		deny     bool
	}{
		"default floor denies 5s":     {min: 0, interval: "5s", deny: true},
		"default floor admits 10s":    {min: 0, interval: "10s"},
		"raised floor denies 30s":     {min: time.Minute, interval: "30s", deny: true},
		"lowered floor admits 5s":     {min: 5 * time.Second, interval: "5s"},
		"init-only ignores the floor": {min: time.Minute, interval: "2s"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tc.min > 0 {
				cfg.MinRotationInterval = tc.min
				cfg.RotationInterval = max(cfg.RotationInterval, tc.min)
			}
			ann := map[string]string{AnnotationRotationInterval: tc.interval}
			if strings.HasPrefix(name, "init-only") {
				ann[AnnotationMode] = string(ModeInitOnly)
			}
			_, err := Rewrite(&cfg, input(podWith(ann, "vault")))
			if !tc.deny {
				if err != nil {
					t.Fatalf("denied: %v", err)
				}
				return
			}
			want := fmt.Sprintf("is shorter than this cluster's minimum of %s (the webhook's --min-rotation-interval)", cfg.MinRotationInterval)
			if ReasonOf(err) != ReasonInvalidAnnotation || !strings.Contains(err.Error(), want) {
				t.Fatalf("Rewrite = %v, want a denial containing %q", err, want)
			}
		})
	}

	cfg := DefaultConfig()
	cfg.MinRotationInterval = 5 * time.Minute
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--rotation-interval 2m0s is shorter than --min-rotation-interval 5m0s") {
		t.Errorf("Validate with a default below the floor = %v", err)
	}
	cfg.MinRotationInterval = 100 * time.Millisecond
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--min-rotation-interval 100ms is shorter than 1s") {
		t.Errorf("Validate with a floor below 1s = %v", err)
	}
}

// TestClassesPerPodCap: a pod naming more than MaxClassesPerPod classes is
// denied before any lookup, whether the classes exist or not.
func TestClassesPerPodCap(t *testing.T) {
	names := make([]string, MaxClassesPerPod+1)
	for i := range names {
		names[i] = fmt.Sprintf("missing-%d", i)
	}
	cfg := DefaultConfig()
	_, err := Rewrite(&cfg, input(podWith(nil, names...)))
	if ReasonOf(err) != ReasonTooManyClasses || !strings.Contains(err.Error(), fmt.Sprintf("names %d SecretProviderClasses; at most %d", MaxClassesPerPod+1, MaxClassesPerPod)) {
		t.Fatalf("Rewrite = %v, want the cap", err)
	}
	if err := CheckReferences(names[:MaxClassesPerPod]); err != nil {
		t.Errorf("%d classes denied: %v", MaxClassesPerPod, err)
	}
	// References keeps the volumes' order, which Rewrite resolves in.
	got, _ := References(podWith(map[string]string{AnnotationSecretProviderClass: "a-shorthand"}, "zeta", "alpha", "zeta"))
	if want := []string{"zeta", "alpha", "a-shorthand"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("References = %v, want %v", got, want)
	}
}
