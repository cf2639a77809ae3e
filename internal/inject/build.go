package inject

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ssinjector/ssi/internal/agentconfig"
)

// Names and paths the rewrite adds. Only the agent container mounts the
// token and node-publish-secret volumes.
const (
	AgentContainerName     = "ssi-agent"
	AgentInitContainerName = "ssi-agent-init"
	TokenVolumeName        = "ssi-tokens"
	// NoAPITokenVolumeName is an empty volume mounted over the API token
	// path in the agent: the ServiceAccount admission plugin, re-run after
	// the webhook changed the pod, skips containers that already have a
	// mount there, so the agent gets no Kubernetes API credentials.
	NoAPITokenVolumeName = "ssi-no-api-token" //nolint:gosec // a volume name, not a credential
	// APITokenPath is where the ServiceAccount admission plugin mounts the
	// pod's API token.
	APITokenPath      = "/var/run/secrets/kubernetes.io/serviceaccount" //nolint:gosec // a path, not a credential
	nodePublishPrefix = "ssi-nps-"
	agentRoot         = "/var/run/secrets-store-injector"
	// VolumeDir/<volume> is where each secrets volume is mounted in the agent.
	VolumeDir = agentRoot + "/volumes"
	// TokenDir holds the projected service-account tokens, one file per audience.
	TokenDir = agentRoot + "/tokens"
	// SecretsDir/<volume> holds the keys of the volume's nodePublishSecretRef.
	SecretsDir = agentRoot + "/node-publish-secrets"
	// healthPortName names the agent's health and metrics port.
	healthPortName = "ssi-agent"
)

// apply rewrites pod according to the plan.
func (p *plan) apply(pod *corev1.PodTemplateSpec) error {
	spec := &pod.Spec
	// Volumes: each secrets-store CSI volume becomes an in-memory emptyDir
	// under the same name, so app mounts stay as they are.
	for _, v := range p.volumes {
		if v.shorthand != nil {
			continue
		}
		for i := range spec.Volumes {
			if spec.Volumes[i].Name == v.name {
				spec.Volumes[i].VolumeSource = p.emptyDir()
			}
		}
	}
	for _, v := range p.volumes {
		if v.shorthand == nil {
			continue
		}
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: v.name, VolumeSource: p.emptyDir()})
		sel, err := v.shorthand.selected(spec)
		if err != nil {
			return err
		}
		for _, c := range allContainers(spec) {
			for _, n := range sel {
				if c.Name == n {
					c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: v.name, MountPath: v.shorthand.mountPath, ReadOnly: true})
				}
			}
		}
	}
	tokens := p.tokens()
	if len(tokens) > 0 {
		spec.Volumes = append(spec.Volumes, p.tokenVolume(tokens))
	}
	for _, v := range p.volumes {
		if v.nodePublishSecret != "" {
			spec.Volumes = append(spec.Volumes, corev1.Volume{
				Name:         nodePublishVolumeName(v.name),
				VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: v.nodePublishSecret}},
			})
		}
	}
	if p.maskAPIToken {
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: NoAPITokenVolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	}

	// Containers.
	var first corev1.Container
	var err error
	switch p.shape {
	case shapeNativeSidecar:
		first, err = p.agent(AgentContainerName, agentconfig.ModeSidecar, tokens)
	case shapeInitOnly:
		first, err = p.agent(AgentContainerName, agentconfig.ModeInitOnly, tokens)
	case shapeLegacy:
		first, err = p.agent(AgentInitContainerName, agentconfig.ModeInit, tokens)
	}
	if err != nil {
		return err
	}
	spec.InitContainers = append(spec.InitContainers[:p.insertAt], append([]corev1.Container{first}, spec.InitContainers[p.insertAt:]...)...)
	if p.shape == shapeLegacy {
		rotate, err := p.agent(AgentContainerName, agentconfig.ModeRotate, tokens)
		if err != nil {
			return err
		}
		spec.Containers = append(spec.Containers, rotate)
	}
	if p.reloadSignal != "" {
		share := true
		spec.ShareProcessNamespace = &share
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[AnnotationStatus] = StatusInjected
	return nil
}

func (p *plan) emptyDir() corev1.VolumeSource {
	size := p.sizeLimit.DeepCopy()
	return corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &size}}
}

func (p *plan) tokenVolume(tokens []agentconfig.Token) corev1.Volume {
	exp := int64(p.cfg.TokenExpiration.Seconds())
	sources := make([]corev1.VolumeProjection, 0, len(tokens))
	for _, t := range tokens {
		sources = append(sources, corev1.VolumeProjection{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
			Audience:          t.Audience,
			ExpirationSeconds: &exp,
			Path:              t.Path[len(TokenDir)+1:],
		}})
	}
	return corev1.Volume{Name: TokenVolumeName, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: sources}}}
}

// nodePublishVolumeName is the agent-only volume of a volume's
// nodePublishSecretRef, kept within the 63 characters of a volume name.
func nodePublishVolumeName(vol string) string {
	n := nodePublishPrefix + vol
	if len(n) <= 63 {
		return n
	}
	sum := sha256.Sum256([]byte(vol))
	return n[:63-9] + "-" + hex.EncodeToString(sum[:4])
}

// agentConfig is the configuration handed to one agent container.
func (p *plan) agentConfig(mode agentconfig.Mode, tokens []agentconfig.Token) agentconfig.Config {
	c := agentconfig.Config{
		Mode:       mode,
		Tokens:     tokens,
		Cloud:      p.cloud,
		HealthAddr: fmt.Sprintf(":%d", p.healthPort),
		LogLevel:   p.cfg.LogLevel,
		LogFormat:  p.cfg.LogFormat,
	}
	switch mode {
	case agentconfig.ModeSidecar:
		c.RotationInterval.Duration = p.rotation
		c.FirstFetchTimeout.Duration = p.cfg.FirstFetchTimeout
		c.ReloadSignal, c.ReloadContainers = p.reloadSignal, p.reloadTargets
		c.RevokeOnShutdown = p.revoke
		c.CertRenewAt = p.certRenewAt
	case agentconfig.ModeRotate:
		c.RotationInterval.Duration = p.rotation
		c.ReloadSignal, c.ReloadContainers = p.reloadSignal, p.reloadTargets
		c.RevokeOnShutdown = p.revoke
		c.CertRenewAt = p.certRenewAt
	case agentconfig.ModeInit, agentconfig.ModeInitOnly:
		c.FirstFetchTimeout.Duration = p.cfg.FirstFetchTimeout
	}
	for _, v := range p.volumes {
		cloud := v.cloud
		av := agentconfig.Volume{
			Name: v.name,
			Path: VolumeDir + "/" + v.name,
			Class: agentconfig.Class{
				Namespace:  v.class.Namespace,
				Name:       v.class.Name,
				Provider:   v.class.Provider,
				Parameters: v.class.Parameters,
				// Only the annotations our parser reads (optional
				// objects), so the agent parses the class as admission
				// did.
				Annotations: v.class.Annotations,
			},
			Permission: defaultPermission,
			Cloud:      &cloud,
			Templates:  v.templates,
		}
		if v.nodePublishSecret != "" {
			av.SecretsDir = SecretsDir + "/" + v.name
		}
		c.Volumes = append(c.Volumes, av)
	}
	return c
}

// agent builds one agent container.
func (p *plan) agent(name string, mode agentconfig.Mode, tokens []agentconfig.Token) (corev1.Container, error) {
	cfg := p.agentConfig(mode, tokens)
	if err := cfg.Validate(); err != nil {
		return corev1.Container{}, fmt.Errorf("internal error: agent configuration: %w", err)
	}
	enc, err := cfg.Encode()
	if err != nil {
		return corev1.Container{}, fmt.Errorf("internal error: encode agent configuration: %w", err)
	}
	no, yes := false, true
	uid := p.runAsUser
	c := corev1.Container{
		Name:            name,
		Image:           p.cfg.AgentImage,
		ImagePullPolicy: p.cfg.AgentImagePullPolicy,
		Args:            []string{"run"},
		Env: []corev1.EnvVar{
			{Name: agentconfig.EnvConfig, Value: enc},
			fieldEnv(agentconfig.EnvPodName, "metadata.name"),
			fieldEnv(agentconfig.EnvPodNamespace, "metadata.namespace"),
			fieldEnv(agentconfig.EnvPodUID, "metadata.uid"),
			fieldEnv(agentconfig.EnvServiceAccount, "spec.serviceAccountName"),
			fieldEnv(agentconfig.EnvNodeName, "spec.nodeName"),
			fieldEnv(agentconfig.EnvPodIP, "status.podIP"),
		},
		Resources: *p.resources.DeepCopy(),
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                &uid,
			RunAsNonRoot:             &yes,
			AllowPrivilegeEscalation: &no,
			ReadOnlyRootFilesystem:   &yes,
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	c.Env = append(c.Env, p.cfg.AgentEnv...)
	c.Env = append(c.Env, RuntimeEnv(c.Resources, c.Env)...)
	if p.runAsGroup != nil {
		g := *p.runAsGroup
		c.SecurityContext.RunAsGroup = &g
	}
	for _, v := range p.volumes {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: v.name, MountPath: VolumeDir + "/" + v.name})
	}
	if len(tokens) > 0 {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: TokenVolumeName, MountPath: TokenDir, ReadOnly: true})
	}
	for _, v := range p.volumes {
		if v.nodePublishSecret != "" {
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: nodePublishVolumeName(v.name), MountPath: SecretsDir + "/" + v.name, ReadOnly: true})
		}
	}
	if p.maskAPIToken {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: NoAPITokenVolumeName, MountPath: APITokenPath, ReadOnly: true})
	}
	if mode == agentconfig.ModeSidecar || mode == agentconfig.ModeRotate {
		c.Ports = []corev1.ContainerPort{{Name: healthPortName, ContainerPort: p.healthPort, Protocol: corev1.ProtocolTCP}}
		c.LivenessProbe = p.probe("/healthz", 10, 6)
	}
	if mode == agentconfig.ModeSidecar {
		always := corev1.ContainerRestartPolicyAlways
		c.RestartPolicy = &always
		c.StartupProbe = p.probe("/readyz", 1, int32(p.cfg.FirstFetchTimeout.Seconds())+startupProbeGraceSeconds)
	}
	return c, nil
}

func (p *plan) probe(path string, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path:   path,
			Port:   intstr.FromInt32(p.healthPort),
			Scheme: corev1.URISchemeHTTP,
		}},
		PeriodSeconds:    period,
		TimeoutSeconds:   1,
		SuccessThreshold: 1,
		FailureThreshold: failures,
	}
}

// RuntimeEnv tunes the agent's Go runtime for a fast start, unless the
// operator set the variables through --agent-env: GOGC=off holds the
// collector back while package initialisation and the first fetch allocate
// (about a quarter of the agent's start-up CPU otherwise), and the agent
// restores the default collector once the first write is done. GOMEMLIMIT,
// three quarters of the memory limit, makes the collector run anyway if
// start-up ever approached the limit, and stays as a soft ceiling.
func RuntimeEnv(res corev1.ResourceRequirements, set []corev1.EnvVar) []corev1.EnvVar {
	has := map[string]bool{}
	for _, e := range set {
		has[e.Name] = true
	}
	var out []corev1.EnvVar
	if !has["GOGC"] {
		out = append(out, corev1.EnvVar{Name: "GOGC", Value: "off"})
	}
	if lim, ok := res.Limits[corev1.ResourceMemory]; ok && !has["GOMEMLIMIT"] && lim.Value() > 0 {
		out = append(out, corev1.EnvVar{Name: "GOMEMLIMIT", Value: strconv.FormatInt(lim.Value()/4*3, 10)})
	}
	return out
}

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
}
