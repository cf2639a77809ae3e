// Package agentconfig is the versioned contract between the webhook, which
// writes it into the agent container's environment at admission, and the
// agent, which decodes it at start. The agent needs nothing else: no API
// access, no flags. Adding a field is compatible; changing the meaning of
// one needs a new APIVersion.
package agentconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/render"
)

// APIVersion is the version of Config this build writes and reads.
const APIVersion = "agent.secrets-store-injector.io/v1"

// Environment variables the webhook sets on the agent container.
const (
	EnvConfig         = "SSI_AGENT_CONFIG"
	EnvPodName        = "SSI_POD_NAME"
	EnvPodNamespace   = "SSI_POD_NAMESPACE"
	EnvPodUID         = "SSI_POD_UID"
	EnvServiceAccount = "SSI_SERVICE_ACCOUNT"
	EnvNodeName       = "SSI_NODE_NAME"
	// EnvPodIP is the pod's IP (status.podIP), the one address kubelet's
	// probes connect to; the agent serves its health port only there.
	EnvPodIP = "SSI_POD_IP"
)

// Mode is how the agent runs in the pod.
type Mode string

// Modes.
const (
	// ModeSidecar: native sidecar; fetch, write, report ready, rotate.
	ModeSidecar Mode = "sidecar"
	// ModeInitOnly: init container; fetch, write, exit. No rotation.
	ModeInitOnly Mode = "init-only"
	// ModeInit: the init container of the legacy shape (clusters without
	// native sidecars); fetch, write, exit.
	ModeInit Mode = "init"
	// ModeRotate: the regular sidecar of the legacy shape; the init
	// container already wrote the files, so it only rotates.
	ModeRotate Mode = "rotate"
)

// Config is everything the agent needs.
type Config struct {
	APIVersion string `json:"apiVersion"`
	Mode       Mode   `json:"mode"`
	// Volumes are the secrets volumes the agent fills.
	Volumes []Volume `json:"volumes"`
	// RotationInterval is the time between fetches; zero disables rotation.
	RotationInterval Duration `json:"rotationInterval,omitempty"`
	// FirstFetchTimeout bounds the first fetch; when it passes without a
	// complete write the agent exits non-zero with a termination message.
	FirstFetchTimeout Duration `json:"firstFetchTimeout,omitempty"`
	// Tokens are the projected service-account token files by audience.
	Tokens []Token `json:"tokens,omitempty"`
	// Cloud is the pod-wide cloud identity of the configurations written
	// before Volume.Cloud existed: each field's first non-empty value
	// across the volumes (identity.Merge). The agent uses it only for a
	// volume without Volume.Cloud (CloudOf). The webhook keeps writing it
	// so that an agent of that earlier version, which reads only this
	// field, keeps fetching as it did: during an upgrade the webhook may
	// be newer than the agent image of a running or restarted pod.
	Cloud identity.Cloud `json:"cloud,omitempty"`
	// ReloadSignal, e.g. "SIGHUP", is sent to the main processes of the
	// ReloadContainers after a rotation changed files.
	ReloadSignal string `json:"reloadSignal,omitempty"`
	// ReloadContainers names the containers whose main processes receive
	// ReloadSignal: those that mount a secrets volume, or the ones the
	// pod's reload-containers annotation lists. Configurations written
	// before the field existed have none; for them the agent keeps the
	// behaviour of that time and signals every container's main process.
	ReloadContainers []string `json:"reloadContainers,omitempty"`
	// RevokeOnShutdown, when set, makes the agent revoke what its
	// providers hold for the pod (Vault: the dynamic-secret leases it
	// read, then its Vault token) when it is stopped after the first
	// fetch, within RevokeOnShutdown.Grace (added to v1 compatibly:
	// absent means nothing is revoked, as before).
	RevokeOnShutdown *RevokeOnShutdown `json:"revokeOnShutdown,omitempty"`
	// CertRenewAt, in (0, 1), is the pod's cert-renew-at annotation: the
	// fraction of a certificate's validity after which it is fetched
	// again, for every volume, over the class's parameters.ssiCertRenewAt
	// (added to v1 compatibly: absent means the class's or the default).
	CertRenewAt float64 `json:"certRenewAt,omitempty"`
	// HealthAddr serves /healthz, /readyz and /metrics, e.g. ":9811".
	HealthAddr string `json:"healthAddr,omitempty"`
	// LogLevel (debug, info, warn, error; empty is info) and LogFormat
	// (json, text; empty is text), as logging.New reads them.
	LogLevel  string `json:"logLevel,omitempty"`
	LogFormat string `json:"logFormat,omitempty"`
}

// RevokeOnShutdown is the pod's revoke-on-shutdown request.
type RevokeOnShutdown struct {
	// Grace bounds the revocation; zero is DefaultRevokeGrace.
	Grace Duration `json:"grace,omitempty"`
}

// DefaultRevokeGrace bounds revoke-on-shutdown when no grace is given.
const DefaultRevokeGrace = 5 * time.Second

// GraceOrDefault is r's grace, or DefaultRevokeGrace when it has none.
func (r *RevokeOnShutdown) GraceOrDefault() time.Duration {
	if r.Grace.Duration <= 0 {
		return DefaultRevokeGrace
	}
	return r.Grace.Duration
}

// Volume is one secrets volume of the pod.
type Volume struct {
	// Name is the pod's volume name.
	Name string `json:"name"`
	// Path is where the volume is mounted in the agent container.
	Path string `json:"path"`
	// Class is a snapshot of the SecretProviderClass taken at admission.
	Class Class `json:"class"`
	// Permission is the mode of files whose object sets none.
	Permission fs.FileMode `json:"permission,omitempty"`
	// SecretsDir, when set, holds the keys of the CSI volume's
	// nodePublishSecretRef Secret, one file per key (a Secret volume
	// mounted into the agent only). It is what the upstream driver passes
	// to a provider as the mount request's secrets, e.g. an Azure service
	// principal's clientid and clientsecret, or GCP's key.json.
	SecretsDir string `json:"secretsDir,omitempty"`
	// Cloud is the volume's cloud identity, decided at admission by
	// identity.Decide (added to v1 compatibly: configurations written
	// before it have none, and the agent then uses Config.Cloud). A
	// pointer, so that a decided empty identity ({}) is told apart from
	// an absent one.
	Cloud *identity.Cloud `json:"cloud,omitempty"`
	// Templates are the class's templates (render.Annotation), resolved
	// and checked at admission (added to v1 compatibly: absent means
	// none). The agent compiles and renders them into the volume.
	Templates []render.Template `json:"templates,omitempty"`
}

// Class is the part of a SecretProviderClass the agent needs.
type Class struct {
	Namespace  string            `json:"namespace"`
	Name       string            `json:"name"`
	Provider   string            `json:"provider"`
	Parameters map[string]string `json:"parameters,omitempty"`
	// Annotations are the class annotations the parser owns
	// (spc.AnnotationOptionalObjects, spc.AnnotationOptionalOnDelete),
	// added to v1 compatibly: absent means none.
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Token is a projected token file for one audience ("" is the API
// server's default audience).
type Token struct {
	Audience string `json:"audience"`
	Path     string `json:"path"`
}

// Duration is a time.Duration written as a Go duration string.
type Duration struct{ time.Duration }

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"2m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// Encode returns the compact JSON form placed in EnvConfig.
func (c *Config) Encode() (string, error) {
	c.APIVersion = APIVersion
	b, err := json.Marshal(c)
	return string(b), err
}

// Decode parses and validates a configuration.
func Decode(s string) (*Config, error) {
	if s == "" {
		return nil, fmt.Errorf("%s is empty: the agent runs only in pods rewritten by ssi-webhook (use `ssi-agent fetch` locally)", EnvConfig)
	}
	var c Config
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		return nil, fmt.Errorf("decode %s: %w", EnvConfig, err)
	}
	if c.APIVersion != APIVersion {
		return nil, fmt.Errorf("%s has apiVersion %q; this agent understands %q (agent image older than the webhook?)", EnvConfig, c.APIVersion, APIVersion)
	}
	return &c, c.Validate()
}

// Validate checks the fields the agent relies on.
func (c *Config) Validate() error {
	switch c.Mode {
	case ModeSidecar, ModeInitOnly, ModeInit, ModeRotate:
	default:
		return fmt.Errorf("agent config: unknown mode %q", c.Mode)
	}
	if len(c.Volumes) == 0 {
		return errors.New("agent config: no volumes")
	}
	seen := map[string]bool{}
	for _, v := range c.Volumes {
		if v.Name == "" || v.Path == "" || v.Class.Name == "" || v.Class.Provider == "" {
			return fmt.Errorf("agent config: volume %q is incomplete", v.Name)
		}
		if seen[v.Path] {
			return fmt.Errorf("agent config: two volumes at %s", v.Path)
		}
		seen[v.Path] = true
	}
	if len(c.ReloadContainers) > 0 && c.ReloadSignal == "" {
		return errors.New("agent config: reloadContainers without reloadSignal")
	}
	names := map[string]bool{}
	for _, n := range c.ReloadContainers {
		if n == "" || names[n] {
			return fmt.Errorf("agent config: reloadContainers: %q is empty or listed twice", n)
		}
		names[n] = true
	}
	if c.RevokeOnShutdown != nil && c.RevokeOnShutdown.Grace.Duration < 0 {
		return errors.New("agent config: revokeOnShutdown: negative grace")
	}
	if c.CertRenewAt < 0 || c.CertRenewAt >= 1 {
		return fmt.Errorf("agent config: certRenewAt: %v is not a fraction between 0 and 1", c.CertRenewAt)
	}
	if c.RotationInterval.Duration < 0 || c.FirstFetchTimeout.Duration < 0 {
		return errors.New("agent config: negative duration")
	}
	return nil
}

// PodFromEnv reads the pod identity the downward API provides.
func PodFromEnv() identity.Pod {
	return identity.Pod{
		Namespace:      os.Getenv(EnvPodNamespace),
		Name:           os.Getenv(EnvPodName),
		UID:            os.Getenv(EnvPodUID),
		ServiceAccount: os.Getenv(EnvServiceAccount),
		NodeName:       os.Getenv(EnvNodeName),
	}
}

// CloudOf returns the cloud identity the agent fetches volume v with: the
// volume's own, or for a configuration written before volumes carried one,
// the pod-wide Config.Cloud, as the agent of that version used it.
func (c *Config) CloudOf(v *Volume) identity.Cloud {
	if v.Cloud != nil {
		return *v.Cloud
	}
	return c.Cloud
}

// TokenSource returns the projected token files as a token source.
func (c *Config) TokenSource() identity.FileTokens {
	t := identity.FileTokens{}
	for _, tok := range c.Tokens {
		t[tok.Audience] = tok.Path
	}
	return t
}
