package inject

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/identity"
)

// Prefix is the prefix of every annotation and label of the product.
const Prefix = "secrets-store-injector.io/"

// Namespace label and pod annotations (docs/annotations.md describes each).
const (
	// LabelInjection on a namespace: "enabled" opts every pod in it in;
	// "disabled" keeps the webhook from being called for it at all.
	LabelInjection = Prefix + "injection"

	AnnotationInject              = Prefix + "inject"
	AnnotationStatus              = Prefix + "status"
	AnnotationSecretProviderClass = Prefix + "secret-provider-class"
	AnnotationMountPath           = Prefix + "mount-path"
	AnnotationContainers          = Prefix + "containers"
	AnnotationRotationInterval    = Prefix + "rotation-interval"
	AnnotationMode                = Prefix + "mode"
	AnnotationAgentCPURequest     = Prefix + "agent-cpu-request"
	AnnotationAgentMemoryRequest  = Prefix + "agent-memory-request"
	AnnotationAgentMemoryLimit    = Prefix + "agent-memory-limit"
	AnnotationReloadSignal        = Prefix + "reload-signal"
	AnnotationReloadContainers    = Prefix + "reload-containers"
	AnnotationAgentRunAsUser      = Prefix + "agent-run-as-user"
	AnnotationVolumeSizeLimit     = Prefix + "volume-size-limit"
	// AnnotationRevokeOnShutdown ("true" or "false") makes the agent
	// revoke the pod's Vault leases and token when it stops.
	AnnotationRevokeOnShutdown = Prefix + "revoke-on-shutdown"
	// AnnotationRevokeOnShutdownGrace (a Go duration) bounds that
	// revocation; the default is agentconfig.DefaultRevokeGrace.
	AnnotationRevokeOnShutdownGrace = Prefix + "revoke-on-shutdown-grace"
)

// Values of the namespace label and of the status annotation.
const (
	LabelValueEnabled  = "enabled"
	LabelValueDisabled = "disabled"
	StatusInjected     = "injected"
)

// The annotations that decide a volume's identity, on the service account
// and on the pod (identity.AnnotationGCPWorkloadIdentityProvider), are
// defined in package identity, whose Decide reads them.

const (
	// DefaultMountPath is where the shorthand mounts its volume.
	DefaultMountPath            = "/mnt/secrets-store"
	minRotationInterval         = time.Second
	adviseRotationIntervalAbove = 30 * time.Second
)

// Mode is the per-pod choice of the mode annotation.
type Mode string

// Values of the mode annotation.
const (
	// ModeSidecar fetches before the app starts and keeps rotating.
	ModeSidecar Mode = "sidecar"
	// ModeInitOnly fetches once before the app starts; no rotation.
	ModeInitOnly Mode = "init-only"
)

// reloadSignals are the signals reload-signal accepts: those an
// application can catch to re-read its configuration.
var reloadSignals = map[string]bool{
	"SIGHUP": true, "SIGUSR1": true, "SIGUSR2": true, "SIGINT": true,
	"SIGTERM": true, "SIGQUIT": true, "SIGWINCH": true,
}

// settings are the validated per-pod annotations.
type settings struct {
	// explicitInject is true when the pod carries inject: "true".
	explicitInject bool
	mode           Mode
	rotation       time.Duration // zero: the configured default
	cpuRequest     *resource.Quantity
	memRequest     *resource.Quantity
	memLimit       *resource.Quantity
	sizeLimit      *resource.Quantity
	reloadSignal   string
	// reloadContainers are the containers reload-signal reaches when the
	// annotation names them; nil: those that mount a secrets volume.
	reloadContainers []string
	runAsUser        *int64
	// revoke is set by revoke-on-shutdown: "true".
	revoke *agentconfig.RevokeOnShutdown
	// certRenewAt is cert-renew-at as a fraction; zero: not set.
	certRenewAt float64
	shorthand   *shorthand
}

// shorthand is the annotation form of declaring a secrets volume.
type shorthand struct {
	class      string
	mountPath  string
	containers []string // empty: every app container
}

// annotationError names the annotation and the problem.
func annotationError(key, format string, args ...any) error {
	return &Error{Reason: ReasonInvalidAnnotation, Message: fmt.Sprintf("annotation %s: %s", key, fmt.Sprintf(format, args...))}
}

// wantsInjection reads the inject annotation: (true, true) opt in,
// (false, true) opt out, (_, false) not set.
func wantsInjection(ann map[string]string) (want, set bool, err error) {
	v, ok := ann[AnnotationInject]
	if !ok {
		return false, false, nil
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true":
		return true, true, nil
	case "false":
		return false, true, nil
	}
	return false, false, annotationError(AnnotationInject, "%q is neither \"true\" nor \"false\"", v)
}

// parseSettings validates the tuning annotations of a pod that is going to
// be injected.
func parseSettings(ann map[string]string) (*settings, []string, error) {
	var warnings []string
	s := &settings{mode: ModeSidecar}
	s.explicitInject, _, _ = wantsInjection(ann)

	if v, ok := ann[AnnotationMode]; ok {
		switch Mode(strings.TrimSpace(v)) {
		case ModeSidecar:
		case ModeInitOnly:
			s.mode = ModeInitOnly
		default:
			return nil, nil, annotationError(AnnotationMode, "%q is neither %q nor %q", v, ModeSidecar, ModeInitOnly)
		}
	}
	if v, ok := ann[AnnotationRotationInterval]; ok {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return nil, nil, annotationError(AnnotationRotationInterval, "%q is not a Go duration such as \"2m\" or \"90s\"", v)
		}
		if d < minRotationInterval {
			return nil, nil, annotationError(AnnotationRotationInterval, "%s is shorter than %s (use mode: init-only to fetch once)", d, minRotationInterval)
		}
		if s.mode == ModeInitOnly {
			warnings = append(warnings, fmt.Sprintf("annotation %s is ignored: mode is init-only, which never rotates", AnnotationRotationInterval))
		} else if d < adviseRotationIntervalAbove {
			warnings = append(warnings, fmt.Sprintf("annotation %s is %s: every pod fetches every object that often; consider %s or more", AnnotationRotationInterval, d, adviseRotationIntervalAbove))
		}
		s.rotation = d
	}
	var err error
	if s.cpuRequest, err = quantity(ann, AnnotationAgentCPURequest); err != nil {
		return nil, nil, err
	}
	if s.memRequest, err = quantity(ann, AnnotationAgentMemoryRequest); err != nil {
		return nil, nil, err
	}
	if s.memLimit, err = quantity(ann, AnnotationAgentMemoryLimit); err != nil {
		return nil, nil, err
	}
	if s.sizeLimit, err = quantity(ann, AnnotationVolumeSizeLimit); err != nil {
		return nil, nil, err
	}
	if s.sizeLimit != nil && s.sizeLimit.IsZero() {
		return nil, nil, annotationError(AnnotationVolumeSizeLimit, "must be larger than zero")
	}
	if v, ok := ann[AnnotationReloadSignal]; ok {
		sig := strings.ToUpper(strings.TrimSpace(v))
		if sig != "" && !strings.HasPrefix(sig, "SIG") {
			sig = "SIG" + sig
		}
		if !reloadSignals[sig] {
			return nil, nil, annotationError(AnnotationReloadSignal, "%q is not one of SIGHUP, SIGUSR1, SIGUSR2, SIGINT, SIGTERM, SIGQUIT, SIGWINCH", v)
		}
		if s.mode == ModeInitOnly {
			warnings = append(warnings, fmt.Sprintf("annotation %s is ignored: mode is init-only, which never rotates", AnnotationReloadSignal))
		} else {
			s.reloadSignal = sig
		}
	}
	if v, ok := ann[AnnotationReloadContainers]; ok {
		names := nameList(v)
		if len(names) == 0 {
			return nil, nil, annotationError(AnnotationReloadContainers, "names no container")
		}
		if s.reloadSignal == "" {
			warnings = append(warnings, fmt.Sprintf("annotation %s is ignored: no %s is sent", AnnotationReloadContainers, AnnotationReloadSignal))
		} else {
			s.reloadContainers = names
		}
	}
	if v, ok := ann[AnnotationAgentRunAsUser]; ok {
		uid, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || uid <= 0 || uid > 1<<31-1 {
			return nil, nil, annotationError(AnnotationAgentRunAsUser, "%q is not a non-zero user ID (the agent never runs as root)", v)
		}
		s.runAsUser = &uid
	}
	if s.revoke, warnings, err = parseRevoke(ann, s.mode, warnings); err != nil {
		return nil, nil, err
	}
	if s.certRenewAt, warnings, err = parseCertRenewAt(ann, s.mode, warnings); err != nil {
		return nil, nil, err
	}
	if v, ok := ann[identity.AnnotationGCPWorkloadIdentityProvider]; ok {
		// identity.Decide reads it; a pod naming no valid provider is denied.
		if _, err := identity.ParseGCPWorkloadIdentityProvider(v); err != nil {
			return nil, nil, annotationError(identity.AnnotationGCPWorkloadIdentityProvider, "%v", err)
		}
	}

	class, hasClass := ann[AnnotationSecretProviderClass]
	mountPath, hasPath := ann[AnnotationMountPath]
	containers, hasContainers := ann[AnnotationContainers]
	if !hasClass {
		if hasPath || hasContainers {
			warnings = append(warnings, fmt.Sprintf("annotations %s and %s are ignored without %s", AnnotationMountPath, AnnotationContainers, AnnotationSecretProviderClass))
		}
		return s, warnings, nil
	}
	class = strings.TrimSpace(class)
	if errs := validation.IsDNS1123Subdomain(class); len(errs) > 0 {
		return nil, nil, annotationError(AnnotationSecretProviderClass, "%q is not a SecretProviderClass name: %s", class, strings.Join(errs, "; "))
	}
	sh := &shorthand{class: class, mountPath: DefaultMountPath}
	if hasPath {
		p := strings.TrimSpace(mountPath)
		if !path.IsAbs(p) || path.Clean(p) != p || p == "/" || strings.Contains(p, ":") {
			return nil, nil, annotationError(AnnotationMountPath, "%q is not a clean absolute path other than /", mountPath)
		}
		sh.mountPath = p
	}
	if hasContainers {
		sh.containers = nameList(containers)
		if len(sh.containers) == 0 {
			return nil, nil, annotationError(AnnotationContainers, "names no container")
		}
	}
	s.shorthand = sh
	return s, warnings, nil
}

// nameList splits a comma-separated list of container names, dropping
// blanks and repetitions.
func nameList(v string) []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range strings.Split(v, ",") {
		c = strings.TrimSpace(c)
		if c == "" || seen[c] {
			continue
		}
		seen[c] = true
		out = append(out, c)
	}
	return out
}

func quantity(ann map[string]string, key string) (*resource.Quantity, error) {
	v, ok := ann[key]
	if !ok {
		return nil, nil
	}
	q, err := resource.ParseQuantity(strings.TrimSpace(v))
	if err != nil {
		return nil, annotationError(key, "%q is not a quantity such as \"10m\" or \"32Mi\"", v)
	}
	if q.Sign() < 0 {
		return nil, annotationError(key, "%q is negative", v)
	}
	return &q, nil
}
