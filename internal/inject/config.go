package inject

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/ssinjector/ssi/internal/agentconfig"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/logging"
)

// Config is the cluster-wide injection policy: what the webhook's flags (and
// the same flags of `ssi-webhook inject`) set. Per-pod annotations refine it.
type Config struct {
	// AgentImage is the ssi-agent image.
	AgentImage string
	// AgentImagePullPolicy is the agent container's pull policy.
	AgentImagePullPolicy corev1.PullPolicy
	// NativeSidecars selects the native sidecar shape (Kubernetes 1.29+);
	// false selects an init container plus a regular sidecar.
	NativeSidecars bool
	// RotationInterval is the default time between fetches.
	RotationInterval time.Duration
	// MinRotationInterval is the shortest rotation interval a pod may ask
	// for: every agent fetches every object that often, so it bounds the
	// load pods put on the backends. A shorter annotation is denied.
	MinRotationInterval time.Duration
	// FirstFetchTimeout bounds the agent's first fetch; the startup probe
	// allows a little more so that the agent's own termination message,
	// not a probe failure, explains a pod that cannot start.
	FirstFetchTimeout time.Duration
	// HealthPort is the agent's /healthz, /readyz and /metrics port; a
	// higher free port is taken when an app container declares it.
	HealthPort int32
	// AgentUID is the agent's user when the app's user does not decide it.
	AgentUID int64
	// CPURequest, MemoryRequest, MemoryLimit and CPULimit are the agent's
	// default resources; a zero CPULimit sets none.
	CPURequest, MemoryRequest, MemoryLimit, CPULimit resource.Quantity
	// VolumeSizeLimit is the default sizeLimit of each in-memory volume.
	VolumeSizeLimit resource.Quantity
	// TokenExpiration is the lifetime of the projected tokens; kubelet
	// refreshes them at 80% of it.
	TokenExpiration time.Duration
	// TokenRequests are the audiences of the node shim's CSIDriver
	// tokenRequests (--token-request, Helm value tokenRequests); with
	// "vault" among them a Vault class without `audience` is given a
	// projected token of audience "vault", as on the shim
	// (identity.VaultAudience).
	TokenRequests []string
	// ExcludedNamespaces are never touched (kube-system and the webhook's
	// own namespace are always added by the webhook).
	ExcludedNamespaces []string
	// LogLevel and LogFormat are handed to the agent.
	LogLevel, LogFormat string
	// AgentEnv are extra environment variables of the agent container,
	// in order: cluster-wide endpoints and settings such as VAULT_ADDR,
	// AWS_REGION, HTTPS_PROXY or SSL_CERT_FILE.
	AgentEnv []corev1.EnvVar
}

// DefaultConfig returns the defaults of the flags.
func DefaultConfig() Config {
	return Config{
		AgentImage:           "ghcr.io/ssinjector/ssi-agent:latest",
		AgentImagePullPolicy: corev1.PullIfNotPresent,
		NativeSidecars:       true,
		RotationInterval:     2 * time.Minute,
		MinRotationInterval:  10 * time.Second,
		FirstFetchTimeout:    time.Minute,
		HealthPort:           9811,
		AgentUID:             65532,
		CPURequest:           resource.MustParse("10m"),
		MemoryRequest:        resource.MustParse("24Mi"),
		MemoryLimit:          resource.MustParse("64Mi"),
		VolumeSizeLimit:      resource.MustParse("4Mi"),
		TokenExpiration:      time.Hour,
		ExcludedNamespaces:   []string{"kube-system"},
		LogLevel:             "info",
		LogFormat:            "json",
	}
}

// AddFlags registers the injection flags shared by `serve` and `inject`.
// Defaults are the receiver's current values.
func (c *Config) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.AgentImage, "agent-image", c.AgentImage, "ssi-agent image injected into pods")
	fs.Func("agent-image-pull-policy", "pull policy of the agent container: Always, IfNotPresent or Never (default "+string(c.AgentImagePullPolicy)+")", func(s string) error {
		switch p := corev1.PullPolicy(s); p {
		case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
			c.AgentImagePullPolicy = p
			return nil
		}
		return fmt.Errorf("%q is not Always, IfNotPresent or Never", s)
	})
	fs.DurationVar(&c.RotationInterval, "rotation-interval", c.RotationInterval, "default time between fetches (pod annotation "+AnnotationRotationInterval+" overrides)")
	fs.DurationVar(&c.MinRotationInterval, "min-rotation-interval", c.MinRotationInterval, "shortest rotation interval a pod may ask for (annotation "+AnnotationRotationInterval+"); pods asking for less are denied")
	fs.DurationVar(&c.FirstFetchTimeout, "first-fetch-timeout", c.FirstFetchTimeout, "how long the agent tries its first fetch before it exits with a termination message")
	fs.Func("agent-health-port", fmt.Sprintf("agent health and metrics port (default %d)", c.HealthPort), func(s string) error {
		var p int32
		if _, err := fmt.Sscan(s, &p); err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("%q is not a port", s)
		}
		c.HealthPort = p
		return nil
	})
	fs.Int64Var(&c.AgentUID, "agent-uid", c.AgentUID, "user ID of the agent when the app containers' user does not decide it")
	quantityFlag(fs, &c.CPURequest, "agent-cpu-request", "default CPU request of the agent")
	quantityFlag(fs, &c.MemoryRequest, "agent-memory-request", "default memory request of the agent")
	quantityFlag(fs, &c.MemoryLimit, "agent-memory-limit", "default memory limit of the agent (the in-memory volumes it writes count against it)")
	quantityFlag(fs, &c.CPULimit, "agent-cpu-limit", "CPU limit of the agent; 0 sets none")
	quantityFlag(fs, &c.VolumeSizeLimit, "volume-size-limit", "default sizeLimit of each in-memory secrets volume")
	fs.DurationVar(&c.TokenExpiration, "token-expiration", c.TokenExpiration, "lifetime of the service-account tokens projected into the agent (at least 10m)")
	identity.AddTokenRequestFlag(fs, &c.TokenRequests)
	fs.Func("exclude-namespace", "namespace never injected (repeatable; kube-system always is)", func(s string) error {
		c.ExcludedNamespaces = append(c.ExcludedNamespaces, s)
		return nil
	})
	fs.Func("agent-env", "NAME=VALUE environment variable of the agent container, e.g. VAULT_ADDR=https://vault.vault:8200 (repeatable)", func(s string) error {
		name, value, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("%q is not NAME=VALUE", s)
		}
		c.AgentEnv = append(c.AgentEnv, corev1.EnvVar{Name: name, Value: value})
		return nil
	})
	fs.StringVar(&c.LogLevel, "agent-log-level", c.LogLevel, "agent log level: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "agent-log-format", c.LogFormat, "agent log format: json or text")
}

func quantityFlag(fs *flag.FlagSet, q *resource.Quantity, name, usage string) {
	fs.Func(name, fmt.Sprintf("%s (default %s)", usage, q.String()), func(s string) error {
		v, err := resource.ParseQuantity(s)
		if err != nil {
			return fmt.Errorf("%q is not a quantity", s)
		}
		*q = v
		return nil
	})
}

// Validate checks the configuration once, at start.
func (c *Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.AgentImage) == "" {
		errs = append(errs, errors.New("--agent-image is empty"))
	}
	if c.MinRotationInterval < minRotationInterval {
		errs = append(errs, fmt.Errorf("--min-rotation-interval %s is shorter than %s", c.MinRotationInterval, minRotationInterval))
	}
	if c.RotationInterval < minRotationInterval || c.RotationInterval < c.MinRotationInterval {
		errs = append(errs, fmt.Errorf("--rotation-interval %s is shorter than --min-rotation-interval %s", c.RotationInterval, max(c.MinRotationInterval, minRotationInterval)))
	}
	if c.FirstFetchTimeout < time.Second {
		errs = append(errs, fmt.Errorf("--first-fetch-timeout %s is shorter than 1s", c.FirstFetchTimeout))
	}
	if c.AgentUID <= 0 {
		errs = append(errs, fmt.Errorf("--agent-uid %d: the agent never runs as root", c.AgentUID))
	}
	if c.HealthPort < 1 {
		errs = append(errs, fmt.Errorf("--agent-health-port %d is not a port", c.HealthPort))
	}
	if !c.MemoryLimit.IsZero() && c.MemoryLimit.Cmp(c.MemoryRequest) < 0 {
		errs = append(errs, fmt.Errorf("--agent-memory-limit %s is below --agent-memory-request %s", c.MemoryLimit.String(), c.MemoryRequest.String()))
	}
	if !c.CPULimit.IsZero() && c.CPULimit.Cmp(c.CPURequest) < 0 {
		errs = append(errs, fmt.Errorf("--agent-cpu-limit %s is below --agent-cpu-request %s", c.CPULimit.String(), c.CPURequest.String()))
	}
	if c.VolumeSizeLimit.Sign() <= 0 {
		errs = append(errs, errors.New("--volume-size-limit must be larger than zero"))
	}
	if c.TokenExpiration < 10*time.Minute {
		errs = append(errs, fmt.Errorf("--token-expiration %s is shorter than the API server's minimum of 10m", c.TokenExpiration))
	}
	seen := map[string]bool{}
	for _, e := range c.AgentEnv {
		switch {
		case len(validation.IsEnvVarName(e.Name)) > 0:
			errs = append(errs, fmt.Errorf("--agent-env %q: not an environment variable name", e.Name))
		case reservedEnv[e.Name]:
			errs = append(errs, fmt.Errorf("--agent-env %s: set by the webhook itself", e.Name))
		case seen[e.Name]:
			errs = append(errs, fmt.Errorf("--agent-env %s: given twice", e.Name))
		}
		seen[e.Name] = true
	}
	// The agent parses them with the same functions (logging.New).
	if _, err := logging.ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("--agent-log-level: %w", err))
	}
	if _, err := logging.ParseFormat(c.LogFormat); err != nil {
		errs = append(errs, fmt.Errorf("--agent-log-format: %w", err))
	}
	return errors.Join(errs...)
}

// reservedEnv are the agent variables the webhook sets.
var reservedEnv = map[string]bool{
	agentconfig.EnvConfig: true, agentconfig.EnvPodName: true, agentconfig.EnvPodNamespace: true,
	agentconfig.EnvPodUID: true, agentconfig.EnvServiceAccount: true, agentconfig.EnvNodeName: true,
	agentconfig.EnvPodIP: true,
}

func (c *Config) excluded(ns string) bool {
	for _, n := range c.ExcludedNamespaces {
		if n == ns {
			return true
		}
	}
	return ns == "kube-system"
}
