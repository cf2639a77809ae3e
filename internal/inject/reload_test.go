package inject

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

// reloadPod is a pod running as user 1000 whose "app" container mounts the
// vault class's volume, next to a mesh proxy that mounts nothing, a
// "worker" that mounts nothing, and the init containers extra adds.
func reloadPod(ann map[string]string, extra ...corev1.Container) *corev1.PodTemplateSpec {
	p := podWith(ann, "vault")
	uid := int64(1000)
	p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: &uid}
	p.Spec.Containers = append(p.Spec.Containers,
		corev1.Container{Name: "istio-proxy", Image: "proxyv2:1"},
		corev1.Container{Name: "worker", Image: "worker:1"})
	p.Spec.InitContainers = append(p.Spec.InitContainers, extra...)
	return p
}

func initContainer(name string, mounts, sidecar bool) corev1.Container {
	c := corev1.Container{Name: name, Image: "x"}
	if mounts {
		c.VolumeMounts = []corev1.VolumeMount{{Name: "v-vault", MountPath: "/s", ReadOnly: true}}
	}
	if sidecar {
		always := corev1.ContainerRestartPolicyAlways
		c.RestartPolicy = &always
	}
	return c
}

// TestReloadTargets checks which containers the agent configuration tells
// the agent to signal.
func TestReloadTargets(t *testing.T) {
	const sig, names = AnnotationReloadSignal, AnnotationReloadContainers
	tests := map[string]struct {
		pod    *corev1.PodTemplateSpec
		legacy bool
		// want is the agent configuration's reloadContainers (and
		// reloadSignal is SIGHUP when want is set).
		want []string
		warn string
	}{
		"the mounting container, not the mesh proxy": {pod: reloadPod(map[string]string{sig: "SIGHUP"}), want: []string{"app"}},
		"a native sidecar that mounts counts, a plain init container does not": {
			pod:  reloadPod(map[string]string{sig: "SIGHUP"}, initContainer("setup", true, false), initContainer("log-shipper", true, true)),
			want: []string{"log-shipper", "app"}},
		"the shorthand's selected containers": {
			pod:  reloadPod(map[string]string{sig: "SIGHUP", AnnotationSecretProviderClass: "aws", AnnotationContainers: "worker"}),
			want: []string{"app", "worker"}},
		"the annotation's names, in its order": {
			pod:  reloadPod(map[string]string{sig: "SIGHUP", names: " worker, app ,worker"}),
			want: []string{"worker", "app"}},
		"the annotation names a native sidecar": {
			pod:  reloadPod(map[string]string{sig: "SIGHUP", names: "log-shipper"}, initContainer("log-shipper", false, true)),
			want: []string{"log-shipper"}},
		"legacy shape: the rotating sidecar carries them": {pod: reloadPod(map[string]string{sig: "SIGHUP"}), legacy: true, want: []string{"app"}},
		"no reload signal":        {pod: reloadPod(nil)},
		"names without a signal":  {pod: reloadPod(map[string]string{names: "app"}), warn: "annotation secrets-store-injector.io/reload-containers is ignored: no secrets-store-injector.io/reload-signal is sent"},
		"init-only never signals": {pod: reloadPod(map[string]string{sig: "SIGHUP", names: "app", AnnotationMode: "init-only"}), warn: "reload-containers is ignored"},
		"a target of another user than the agent": {
			pod: func() *corev1.PodTemplateSpec {
				p := reloadPod(map[string]string{sig: "SIGHUP", names: "app,worker"})
				other := int64(2000)
				p.Spec.Containers[2].SecurityContext = &corev1.SecurityContext{RunAsUser: &other}
				return p
			}(),
			want: []string{"app", "worker"},
			warn: "annotation secrets-store-injector.io/reload-signal: containers worker do not run as the agent's user 1000 (runAsUser), so the kernel refuses the agent's signal to them",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.NativeSidecars = !tc.legacy
			res, err := Rewrite(&cfg, input(tc.pod))
			if err != nil {
				t.Fatalf("Rewrite: %v", err)
			}
			var agent *corev1.Container
			if tc.legacy {
				_, agent = findContainer(res.Pod.Spec.Containers, AgentContainerName)
				_, init := findContainer(res.Pod.Spec.InitContainers, AgentInitContainerName)
				if c := decodeAgent(t, *init); c.ReloadSignal != "" || c.ReloadContainers != nil {
					t.Errorf("the fetching init container has reload settings %q %v", c.ReloadSignal, c.ReloadContainers)
				}
			} else {
				_, agent = findContainer(res.Pod.Spec.InitContainers, AgentContainerName)
			}
			ac := decodeAgent(t, *agent)
			if diff := cmp.Diff(tc.want, ac.ReloadContainers); diff != "" {
				t.Errorf("reloadContainers (-want +got):\n%s", diff)
			}
			if wantSig := map[bool]string{true: "SIGHUP"}[tc.want != nil]; ac.ReloadSignal != wantSig {
				t.Errorf("reloadSignal = %q, want %q", ac.ReloadSignal, wantSig)
			}
			all := strings.Join(res.Warnings, "\n")
			if tc.warn != "" && !strings.Contains(all, tc.warn) {
				t.Errorf("warnings %q lack %q", res.Warnings, tc.warn)
			}
			if tc.warn == "" && strings.Contains(all, "reload") {
				t.Errorf("unexpected reload warning: %q", res.Warnings)
			}
		})
	}
}

func TestReloadTargetDenials(t *testing.T) {
	const sig, names = AnnotationReloadSignal, AnnotationReloadContainers
	tests := map[string]struct {
		pod *corev1.PodTemplateSpec
		msg string
	}{
		"unknown name": {reloadPod(map[string]string{sig: "SIGHUP", names: "app,web"}),
			`annotation secrets-store-injector.io/reload-containers: container "web" does not exist (the pod has app, istio-proxy, worker)`},
		"a plain init container": {reloadPod(map[string]string{sig: "SIGHUP", names: "setup"}, initContainer("setup", true, false)),
			`annotation secrets-store-injector.io/reload-containers: container "setup" is an init container, which has exited before any rotation`},
		"an empty list": {reloadPod(map[string]string{sig: "SIGHUP", names: " , "}),
			`annotation secrets-store-injector.io/reload-containers: names no container`},
		"nobody to signal": {func() *corev1.PodTemplateSpec {
			p := reloadPod(map[string]string{sig: "SIGHUP"}, initContainer("setup", true, false))
			p.Spec.Containers[0].VolumeMounts = nil
			return p
		}(), `annotation secrets-store-injector.io/reload-signal: no container that runs beside the agent mounts a secrets volume, so the signal would reach nobody; name the containers to signal in annotation secrets-store-injector.io/reload-containers`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			_, err := Rewrite(&cfg, input(tc.pod))
			if err == nil {
				t.Fatal("admitted, want denial")
			}
			if ReasonOf(err) != ReasonInvalidAnnotation {
				t.Errorf("reason = %q, want %q (%v)", ReasonOf(err), ReasonInvalidAnnotation, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("message %q lacks %q", err.Error(), tc.msg)
			}
		})
	}
}

// TestReloadTargetsAgreeWithMounts: the default targets are exactly the
// running containers the rewritten pod gives a secrets volume mount, so
// the rewrite and the targets cannot drift apart.
func TestReloadTargetsAgreeWithMounts(t *testing.T) {
	pod := reloadPod(map[string]string{AnnotationReloadSignal: "SIGHUP", AnnotationSecretProviderClass: "aws", AnnotationContainers: "worker,log-shipper"},
		initContainer("setup", true, false), initContainer("log-shipper", false, true))
	cfg := DefaultConfig()
	res, err := Rewrite(&cfg, input(pod))
	if err != nil {
		t.Fatalf("Rewrite: %v", err)
	}
	secrets := map[string]bool{"v-vault": true, ShorthandVolumeName: true}
	var mounting []string
	for _, c := range append(append([]corev1.Container{}, res.Pod.Spec.InitContainers...), res.Pod.Spec.Containers...) {
		running := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways || !isInit(&pod.Spec, c.Name)
		if c.Name == AgentContainerName || !running {
			continue
		}
		for _, m := range c.VolumeMounts {
			if secrets[m.Name] {
				mounting = append(mounting, c.Name)
				break
			}
		}
	}
	_, agent := findContainer(res.Pod.Spec.InitContainers, AgentContainerName)
	got := decodeAgent(t, *agent).ReloadContainers
	if diff := cmp.Diff(mounting, got); diff != "" || len(got) != 3 {
		t.Errorf("reloadContainers %v, containers mounting a secrets volume %v", got, mounting)
	}
}
