package inject

import (
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/spc"
)

// Token audiences of the built-in providers.
const (
	AudienceAWSIRSA          = identity.AudienceAWSIRSA
	AudienceAWSPodIdentity   = identity.AudienceAWSPodIdentity
	AudienceAzureWorkload    = identity.AudienceAzureWorkloadIdentity
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
	cloud     identity.Cloud
	// maskAPIToken is set unless the pod opts out of the API token.
	maskAPIToken bool
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
	p.audiences, p.cloud, w = identityFor(vols, s, in)
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

// chooseUser applies the user rule: the agent-run-as-user annotation;
// otherwise, when every container reading the secrets runs as one explicit
// non-root user, that user (and its group, when they share one), so the
// agent can signal them and they can read files of any mode; otherwise the
// configured agent user.
func (p *plan) chooseUser(cfg *Config, spec *corev1.PodSpec, s *settings, consumers map[string]bool) []string {
	var warnings []string
	podUID, podGID := podUser(spec)
	var uids, gids []*int64
	var readers []string
	warnedReload := false
	for _, c := range allContainers(spec) {
		if !consumers[c.Name] {
			continue
		}
		readers = append(readers, c.Name)
		uid, gid := containerUser(c, podUID, podGID)
		uids, gids = append(uids, uid), append(gids, gid)
	}
	common := func(ids []*int64) *int64 {
		if len(ids) == 0 || ids[0] == nil {
			return nil
		}
		for _, id := range ids[1:] {
			if id == nil || *id != *ids[0] {
				return nil
			}
		}
		return ids[0]
	}
	uid, gid := common(uids), common(gids)
	switch {
	case s.runAsUser != nil:
		p.runAsUser = *s.runAsUser
	case uid != nil && *uid != 0:
		p.runAsUser = *uid
		if gid != nil {
			g := *gid
			p.runAsGroup = &g
		}
	default:
		p.runAsUser = cfg.AgentUID
		if p.reloadSignal != "" {
			warnings = append(warnings, fmt.Sprintf("annotation %s: the containers reading the secrets (%s) do not all run as one explicit non-root runAsUser, so the agent runs as %d and can signal only processes of that user; set runAsUser on them or annotation %s", AnnotationReloadSignal, strings.Join(readers, ", "), p.runAsUser, AnnotationAgentRunAsUser))
			warnedReload = true
		}
	}
	// The agent has no CAP_KILL: the kernel lets it signal only processes
	// of its own user.
	if p.reloadSignal != "" && !warnedReload {
		var refused []string
		for _, c := range allContainers(spec) {
			if !slices.Contains(p.reloadTargets, c.Name) {
				continue
			}
			if uid, _ := containerUser(c, podUID, podGID); uid == nil || *uid != p.runAsUser {
				refused = append(refused, c.Name)
			}
		}
		if len(refused) > 0 {
			warnings = append(warnings, fmt.Sprintf("annotation %s: containers %s do not run as the agent's user %d (runAsUser), so the kernel refuses the agent's signal to them; run them as that user or set annotation %s", AnnotationReloadSignal, strings.Join(refused, ", "), p.runAsUser, AnnotationAgentRunAsUser))
		}
	}
	warnings = append(warnings, p.modeWarnings(spec, consumers)...)
	return warnings
}

// modeWarnings names the files that some container reading them cannot
// read, with the kernel's rule: the owner's bits for the agent's user, else
// the group's bits for members of the file's group, else the others' bits.
// The files belong to the agent's user; their group is the pod's fsGroup
// when it sets one (kubelet makes the volume root setgid and the writer
// keeps that bit, so every file inherits the group, and kubelet adds the
// fsGroup to every container's groups), else the agent's group when it is
// known.
func (p *plan) modeWarnings(spec *corev1.PodSpec, consumers map[string]bool) []string {
	podUID, podGID := podUser(spec)
	var supplemental []int64
	var fsGroup *int64
	if sc := spec.SecurityContext; sc != nil {
		supplemental, fsGroup = sc.SupplementalGroups, sc.FSGroup
	}
	fileGroup := p.runAsGroup
	if fileGroup == nil {
		fileGroup = podGID
	}
	if fsGroup != nil {
		fileGroup = fsGroup
	}
	type reader struct {
		name   string
		uid    *int64
		groups map[int64]bool
	}
	var readers []reader
	for _, c := range allContainers(spec) {
		if !consumers[c.Name] {
			continue
		}
		r := reader{name: c.Name, uid: podUID, groups: map[int64]bool{}}
		gid := podGID
		if sc := c.SecurityContext; sc != nil {
			if sc.RunAsUser != nil {
				r.uid = sc.RunAsUser
			}
			if sc.RunAsGroup != nil {
				gid = sc.RunAsGroup
			}
		}
		if gid != nil {
			r.groups[*gid] = true
		}
		for _, g := range supplemental {
			r.groups[g] = true
		}
		if fsGroup != nil {
			r.groups[*fsGroup] = true
		}
		readers = append(readers, r)
	}
	// A reader whose user the image decides (uid nil) is taken to be
	// another user than the agent's.
	canRead := func(r reader, mode fs.FileMode) bool {
		switch {
		case r.uid != nil && *r.uid == p.runAsUser:
			return mode&0o400 != 0
		case fileGroup != nil && r.groups[*fileGroup]:
			return mode&0o040 != 0
		}
		return mode&0o004 != 0
	}
	group := "the agent's group"
	if fileGroup != nil {
		group = fmt.Sprintf("group %d", *fileGroup)
	}
	var warnings []string
	for _, v := range p.volumes {
		for _, f := range v.class.Files() {
			if f.Mode == 0 {
				continue
			}
			var denied []string
			for _, r := range readers {
				if !canRead(r, f.Mode) {
					denied = append(denied, r.name)
				}
			}
			if len(denied) == 0 {
				continue
			}
			hint := fmt.Sprintf("run them as user %d", p.runAsUser)
			if f.Mode&0o040 != 0 && fsGroup == nil {
				hint += ", or set the pod's fsGroup so that the group-readable mode applies to them"
			}
			warnings = append(warnings, fmt.Sprintf("SecretProviderClass %s: file %q has mode %04o and is written by user %d and %s, so containers %s cannot read it; %s", v.class.Name, f.Path, f.Mode, p.runAsUser, group, strings.Join(denied, ", "), hint))
		}
	}
	return warnings
}

// containerUser is the container's effective runAsUser and runAsGroup:
// its own, or the pod's.
func containerUser(c *corev1.Container, podUID, podGID *int64) (uid, gid *int64) {
	uid, gid = podUID, podGID
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
	}
	return uid, gid
}

func podUser(spec *corev1.PodSpec) (uid, gid *int64) {
	if sc := spec.SecurityContext; sc != nil {
		return sc.RunAsUser, sc.RunAsGroup
	}
	return nil, nil
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

// identityFor derives the token audiences and cloud identity settings the
// agent needs for the pod's classes, from the classes and the service
// account's annotations.
func identityFor(vols []secretVolume, s *settings, in *Input) ([]string, identity.Cloud, []string) {
	var warnings []string
	var cloud identity.Cloud
	auds := map[string]bool{}
	saName := serviceAccountName(&in.Pod.Spec)
	sa := map[string]string{}
	if in.ServiceAccount != nil {
		sa = in.ServiceAccount.Annotations
	}
	unknownSA := in.ServiceAccount == nil
	for _, v := range vols {
		c := v.class
		switch {
		case c.AWS != nil:
			if c.AWS.UsePodIdentity {
				auds[AudienceAWSPodIdentity] = true
				continue
			}
			auds[AudienceAWSIRSA] = true
			if arn := sa[SAAnnotationAWSRoleARN]; arn != "" {
				cloud.AWSRoleARN = arn
			} else if unknownSA {
				warnings = append(warnings, fmt.Sprintf("SecretProviderClass %s: service account %q is unknown, so no IRSA role is set; annotate it with %s", c.Name, saName, SAAnnotationAWSRoleARN))
			} else {
				warnings = append(warnings, fmt.Sprintf("SecretProviderClass %s: service account %q has no %s annotation, so the agent has no IRSA role to assume (set usePodIdentity: \"true\" for EKS Pod Identity)", c.Name, saName, SAAnnotationAWSRoleARN))
			}
			if c.AWS.Region == "" {
				warnings = append(warnings, fmt.Sprintf("SecretProviderClass %s: parameters.region is empty; the agent cannot read the node's region label and uses AWS_REGION from its environment (--agent-env AWS_REGION=...)", c.Name))
			}
		case c.Azure != nil:
			az := c.Azure
			if cloud.AzureTenantID == "" {
				cloud.AzureTenantID = az.TenantID
			}
			if cloud.AzureTenantID == "" {
				cloud.AzureTenantID = sa[SAAnnotationAzureTenantID]
			}
			if az.UseVMManagedIdentity {
				warnings = append(warnings, processIdentityWarning(c.Name, "parameters.useVMManagedIdentity", "the node's managed identity"))
			}
			if az.UseVMManagedIdentity || az.UsePodIdentity || az.UseAzureTokenProxy {
				// Node identities: no pod token. (The Azure provider
				// refuses aad-pod-identity and identity binding with a
				// message; the agent reports it.)
				continue
			}
			clientID := az.ClientID
			if clientID == "" {
				clientID = sa[SAAnnotationAzureClientID]
			}
			if cloud.AzureClientID == "" {
				cloud.AzureClientID = clientID
			}
			if clientID == "" && v.nodePublishSecret != "" {
				// Service principal from the nodePublishSecretRef Secret.
				continue
			}
			auds[AudienceAzureWorkload] = true
			if clientID == "" {
				warnings = append(warnings, fmt.Sprintf("SecretProviderClass %s: Azure workload identity needs a client ID: set parameters.clientID or annotate service account %q with %s", c.Name, saName, SAAnnotationAzureClientID))
			}
		case c.GCP != nil:
			if gsa := sa[SAAnnotationGCPServiceAcct]; gsa != "" {
				cloud.GCPServiceAccount = gsa
			}
			if c.GCP.Auth == spc.GCPAuthProviderADC {
				warnings = append(warnings, processIdentityWarning(c.Name, "parameters.auth: provider-adc", "the application default credentials of the process that fetches (the node's)"))
				continue
			}
			if s.gcpWIFProvider != "" {
				cloud.GCPWorkloadIdentityProvider = s.gcpWIFProvider
				auds[gcpTokenAudience(s.gcpWIFProvider)] = true
			}
		case c.Vault != nil:
			auds[c.Vault.Audience] = true
		}
	}
	out := make([]string, 0, len(auds))
	for a := range auds {
		out = append(out, a)
	}
	sort.Strings(out)
	return out, cloud, warnings
}

// processIdentityWarning warns about a class that fetches with the
// identity of the process that runs the provider: the agent in this pod
// uses the node's identity, and the node CSI shim and the sync controller,
// which serve every namespace, refuse the class unless the operator lets
// them lend their own identity (builtin.Shared).
func processIdentityWarning(class, field, whose string) string {
	return fmt.Sprintf("SecretProviderClass %s: %s fetches with %s, not the pod's; the node CSI shim (pods not injected) and the sync controller (secretObjects) refuse this class unless the operator allows it (--allow-process-identity, Helm value allowProcessIdentity)", class, field, whose)
}

// gcpTokenAudience is the audience of the token exchanged at Google's STS
// for a workload identity provider "//iam.googleapis.com/projects/…": the
// provider's default allowed audience "https://iam.googleapis.com/projects/…".
func gcpTokenAudience(fullName string) string { return "https:" + fullName }

// tokens names the projected token file of every audience.
func (p *plan) tokens() []agentconfig.Token {
	out := make([]agentconfig.Token, 0, len(p.audiences))
	used := map[string]bool{}
	for _, a := range p.audiences {
		base := tokenFileName(a)
		name := base
		for i := 2; used[name]; i++ {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		used[name] = true
		out = append(out, agentconfig.Token{Audience: a, Path: TokenDir + "/" + name})
	}
	return out
}

// tokenFileName turns an audience into a file name: runs of characters
// other than letters, digits, '.', '-' and '_' become '-'.
func tokenFileName(aud string) string {
	if aud == identity.DefaultAudience {
		return "default"
	}
	var b strings.Builder
	dash := false
	for _, r := range aud {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_'
		if ok {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.Trim(b.String(), "-.")
	if s == "" {
		return "token"
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
