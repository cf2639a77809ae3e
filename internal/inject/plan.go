package inject

import (
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/identity"
)

const (
	defaultPermission        = fs.FileMode(0o644)
	startupProbeGraceSeconds = 30
)

// shape is how the agent is placed in the pod.
type shape int

const (
	// shapeNativeSidecar: one init container with restartPolicy Always
	// whose startup probe gates the containers after it.
	shapeNativeSidecar shape = iota
	// shapeInitOnly: one plain init container, no rotation.
	shapeInitOnly
	// shapeLegacy: an init container that fetches once and a regular
	// container that rotates, for clusters without native sidecars.
	shapeLegacy
)

// plan is the validated, complete description of the rewrite.
type plan struct {
	cfg          *Config
	volumes      []secretVolume
	shape        shape
	rotation     time.Duration
	reloadSignal string
	// reloadTargets are the containers whose main processes the agent
	// signals (set with reloadSignal).
	reloadTargets []string
	sizeLimit     resource.Quantity
	resources     corev1.ResourceRequirements
	runAsUser     int64
	runAsGroup    *int64
	healthPort    int32
	// insertAt is the index in initContainers the agent goes to.
	insertAt int
	// audiences are the token audiences, sorted ("" = API server default).
	audiences []string
	// cloud is the pod-wide identity of agents that read no per-volume
	// identity (identity.Merge of the volumes').
	cloud identity.Cloud
	// maskAPIToken is set unless the pod opts out of the API token.
	maskAPIToken bool
	// revoke is the pod's revoke-on-shutdown, nil without it.
	revoke *agentconfig.RevokeOnShutdown
	// certRenewAt is the pod's cert-renew-at; zero: the classes' own.
	certRenewAt float64
}

// newPlan decides everything the builders need.
func newPlan(cfg *Config, in *Input, s *settings, vols []secretVolume) (*plan, []string, error) {
	var warnings []string
	spec := &in.Pod.Spec
	p := &plan{cfg: cfg, volumes: vols, sizeLimit: cfg.VolumeSizeLimit}
	p.maskAPIToken = spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken
	if s.sizeLimit != nil {
		p.sizeLimit = *s.sizeLimit
	}

	switch {
	case s.mode == ModeInitOnly:
		p.shape = shapeInitOnly
	case cfg.NativeSidecars:
		p.shape = shapeNativeSidecar
	case spec.RestartPolicy == corev1.RestartPolicyNever || spec.RestartPolicy == corev1.RestartPolicyOnFailure:
		p.shape = shapeInitOnly
		warnings = append(warnings, fmt.Sprintf("the cluster has no native sidecars and the pod's restartPolicy is %s: a rotating sidecar would keep it from completing, so the agent only fetches once (mode %s)", spec.RestartPolicy, ModeInitOnly))
	default:
		p.shape = shapeLegacy
	}
	if p.shape != shapeInitOnly {
		p.rotation = cfg.RotationInterval
		if s.rotation > 0 {
			if s.rotation < cfg.MinRotationInterval {
				return nil, nil, annotationError(AnnotationRotationInterval, "%s is shorter than this cluster's minimum of %s (the webhook's --min-rotation-interval); ask for %s or more, or use mode: init-only to fetch once", s.rotation, cfg.MinRotationInterval, cfg.MinRotationInterval)
			}
			p.rotation = s.rotation
		}
		p.reloadSignal = s.reloadSignal
		p.revoke = s.revoke
		p.certRenewAt = s.certRenewAt
		if err := checkRevokeGrace(p.revoke, spec.TerminationGracePeriodSeconds); err != nil {
			return nil, nil, err
		}
	}

	consumers, err := consumerContainers(spec, vols)
	if err != nil {
		return nil, nil, err
	}
	if err := checkNames(spec, vols); err != nil {
		return nil, nil, err
	}
	if p.reloadSignal != "" {
		if p.reloadTargets, err = reloadTargets(spec, s.reloadContainers, consumers); err != nil {
			return nil, nil, err
		}
	}
	p.insertAt = len(spec.InitContainers)
	for i, c := range spec.InitContainers {
		if consumers[c.Name] {
			p.insertAt = i
			break
		}
	}
	warnings = append(warnings, mountWarnings(spec, vols)...)

	var w []string
	if p.resources, w, err = resources(cfg, s); err != nil {
		return nil, nil, err
	}
	warnings = append(warnings, w...)
	w = p.chooseUser(cfg, spec, s, consumers)
	warnings = append(warnings, w...)
	p.healthPort = freePort(spec, cfg.HealthPort)
	if spec.HostNetwork {
		warnings = append(warnings, fmt.Sprintf("the pod uses the host network: the agent's health port %d must be free on the node", p.healthPort))
	}
	p.audiences, p.cloud, w, err = identityFor(p.volumes, in, cfg)
	if err != nil {
		return nil, nil, err
	}
	warnings = append(warnings, w...)
	return p, warnings, nil
}

// consumerContainers are the containers (init or regular) that read a
// secrets volume: those mounting one, and those the shorthand selects.
func consumerContainers(spec *corev1.PodSpec, vols []secretVolume) (map[string]bool, error) {
	names := map[string]bool{}
	for _, v := range vols {
		if v.shorthand == nil {
			names[v.name] = true
		}
	}
	out := map[string]bool{}
	for _, c := range allContainers(spec) {
		for _, m := range c.VolumeMounts {
			if names[m.Name] {
				out[c.Name] = true
			}
		}
	}
	for _, v := range vols {
		if v.shorthand == nil {
			continue
		}
		sel, err := v.shorthand.selected(spec)
		if err != nil {
			return nil, err
		}
		for _, n := range sel {
			out[n] = true
		}
	}
	return out, nil
}

// reloadTargets are the containers reload-signal reaches: the ones the
// reload-containers annotation names, or else those that read a secrets
// volume, in the pod's order. Only containers that run beside the agent
// count: regular containers and native sidecars (init containers with
// restartPolicy Always); a plain init container has exited before any
// rotation.
func reloadTargets(spec *corev1.PodSpec, named []string, consumers map[string]bool) ([]string, error) {
	var running, all []string
	exited := map[string]bool{}
	for _, c := range allContainers(spec) {
		all = append(all, c.Name)
		if isInit(spec, c.Name) && (c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways) {
			exited[c.Name] = true
			continue
		}
		running = append(running, c.Name)
	}
	if named != nil {
		for _, n := range named {
			switch {
			case exited[n]:
				return nil, annotationError(AnnotationReloadContainers, "container %q is an init container, which has exited before any rotation", n)
			case !slices.Contains(running, n):
				return nil, annotationError(AnnotationReloadContainers, "container %q does not exist (the pod has %s)", n, strings.Join(all, ", "))
			}
		}
		return named, nil
	}
	var out []string
	for _, n := range running {
		if consumers[n] {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, annotationError(AnnotationReloadSignal, "no container that runs beside the agent mounts a secrets volume, so the signal would reach nobody; name the containers to signal in annotation %s", AnnotationReloadContainers)
	}
	return out, nil
}

// isInit reports whether name is one of the pod's init containers.
func isInit(spec *corev1.PodSpec, name string) bool {
	for _, c := range spec.InitContainers {
		if c.Name == name {
			return true
		}
	}
	return false
}

// selected returns the names of the containers the shorthand mounts into:
// the named ones (init or regular), or every regular container.
func (sh *shorthand) selected(spec *corev1.PodSpec) ([]string, error) {
	if len(sh.containers) == 0 {
		var out []string
		for _, c := range spec.Containers {
			out = append(out, c.Name)
		}
		return out, nil
	}
	known := map[string]bool{}
	var all []string
	for _, c := range allContainers(spec) {
		known[c.Name] = true
		all = append(all, c.Name)
	}
	for _, n := range sh.containers {
		if !known[n] {
			return nil, &Error{Reason: ReasonInvalidAnnotation, Message: fmt.Sprintf("annotation %s: container %q does not exist (the pod has %s)", AnnotationContainers, n, strings.Join(all, ", "))}
		}
	}
	return sh.containers, nil
}

func allContainers(spec *corev1.PodSpec) []*corev1.Container {
	out := make([]*corev1.Container, 0, len(spec.InitContainers)+len(spec.Containers))
	for i := range spec.InitContainers {
		out = append(out, &spec.InitContainers[i])
	}
	for i := range spec.Containers {
		out = append(out, &spec.Containers[i])
	}
	return out
}

// checkNames refuses pods that already use a name the rewrite adds.
func checkNames(spec *corev1.PodSpec, vols []secretVolume) error {
	for _, c := range allContainers(spec) {
		if c.Name == AgentContainerName || c.Name == AgentInitContainerName {
			return &Error{Reason: ReasonConflict, Message: fmt.Sprintf("container name %q is reserved for the injected agent, but the pod already has it without annotation %s: %s", c.Name, AnnotationStatus, StatusInjected)}
		}
	}
	for _, v := range spec.Volumes {
		if reservedVolume(v.Name) {
			return &Error{Reason: ReasonConflict, Message: fmt.Sprintf("volume name %q is reserved for the injected agent, but the pod already has it", v.Name)}
		}
	}
	// A mount of a volume the pod does not have fails validation, unless
	// the rewrite adds that volume: an app container naming the agent's
	// token volume would be handed the agent's provider tokens.
	for _, c := range allContainers(spec) {
		for _, m := range c.VolumeMounts {
			if reservedVolume(m.Name) {
				return &Error{Reason: ReasonConflict, Message: fmt.Sprintf("container %q mounts volume %q, which is reserved for the injected agent (it holds the agent's tokens or credentials); app containers may not mount it", c.Name, m.Name)}
			}
		}
	}
	for _, v := range vols {
		sh := v.shorthand
		if sh == nil {
			continue
		}
		sel, _ := sh.selected(spec)
		in := map[string]bool{}
		for _, n := range sel {
			in[n] = true
		}
		for _, c := range allContainers(spec) {
			if !in[c.Name] {
				continue
			}
			for _, m := range c.VolumeMounts {
				if m.MountPath == sh.mountPath {
					return &Error{Reason: ReasonConflict, Message: fmt.Sprintf("annotation %s: container %q already mounts volume %q at %s", AnnotationMountPath, c.Name, m.Name, sh.mountPath)}
				}
			}
		}
	}
	return nil
}

// reservedVolume reports whether name is one of the agent-only volumes the
// rewrite adds: the projected tokens, the mask over the API token, and the
// nodePublishSecretRef Secrets (every name with their prefix, so that no
// pod volume can ever take one).
func reservedVolume(name string) bool {
	return name == TokenVolumeName || name == NoAPITokenVolumeName || strings.HasPrefix(name, nodePublishPrefix)
}

// mountWarnings flags mounts that will not behave as the user expects.
func mountWarnings(spec *corev1.PodSpec, vols []secretVolume) []string {
	var warnings []string
	mounted := map[string]bool{}
	names := map[string]bool{}
	for _, v := range vols {
		names[v.name] = true
		if v.shorthand != nil {
			mounted[v.name] = true
		}
	}
	for _, c := range allContainers(spec) {
		for _, m := range c.VolumeMounts {
			if !names[m.Name] {
				continue
			}
			mounted[m.Name] = true
			if m.SubPath != "" || m.SubPathExpr != "" {
				warnings = append(warnings, fmt.Sprintf("container %q mounts secrets volume %q with subPath: a subPath mount is a copy taken at start and never sees a rotation; mount the volume and read the file by path", c.Name, m.Name))
			}
			if !m.ReadOnly {
				warnings = append(warnings, fmt.Sprintf("container %q mounts secrets volume %q read-write; set readOnly: true so that only the agent writes it", c.Name, m.Name))
			}
		}
	}
	for _, v := range vols {
		if !mounted[v.name] {
			warnings = append(warnings, fmt.Sprintf("secrets volume %q is not mounted by any container", v.name))
		}
	}
	return warnings
}

// resources merges the defaults with the annotations; a request above the
// default limit raises the limit, an explicit limit below a request is an
// error.
func resources(cfg *Config, s *settings) (corev1.ResourceRequirements, []string, error) {
	cpu, mem := cfg.CPURequest, cfg.MemoryRequest
	if s.cpuRequest != nil {
		cpu = *s.cpuRequest
	}
	if s.memRequest != nil {
		mem = *s.memRequest
	}
	memLimit, cpuLimit := cfg.MemoryLimit, cfg.CPULimit
	if s.memLimit != nil {
		memLimit = *s.memLimit
		if !memLimit.IsZero() && memLimit.Cmp(mem) < 0 {
			return corev1.ResourceRequirements{}, nil, annotationError(AnnotationAgentMemoryLimit, "%s is below the memory request %s", memLimit.String(), mem.String())
		}
	} else if !memLimit.IsZero() && memLimit.Cmp(mem) < 0 {
		memLimit = mem
	}
	if !cpuLimit.IsZero() && cpuLimit.Cmp(cpu) < 0 {
		cpuLimit = cpu
	}
	r := corev1.ResourceRequirements{Requests: corev1.ResourceList{}}
	if !cpu.IsZero() {
		r.Requests[corev1.ResourceCPU] = cpu
	}
	if !mem.IsZero() {
		r.Requests[corev1.ResourceMemory] = mem
	}
	if !memLimit.IsZero() || !cpuLimit.IsZero() {
		r.Limits = corev1.ResourceList{}
		if !memLimit.IsZero() {
			r.Limits[corev1.ResourceMemory] = memLimit
		}
		if !cpuLimit.IsZero() {
			r.Limits[corev1.ResourceCPU] = cpuLimit
		}
	}
	if len(r.Requests) == 0 {
		r.Requests = nil
	}
	return r, nil, nil
}

// freePort returns the first port from want that no container declares.
func freePort(spec *corev1.PodSpec, want int32) int32 {
	used := map[int32]bool{}
	for _, c := range allContainers(spec) {
		for _, p := range c.Ports {
			used[p.ContainerPort] = true
		}
	}
	for used[want] && want < 65535 {
		want++
	}
	return want
}
