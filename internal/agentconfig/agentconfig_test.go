package agentconfig

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// previousReloadConfig is a configuration exactly as the webhook wrote it
// before reloadContainers existed (internal/offline's reload-signal golden
// file at that time): a reload signal and no list of containers.
const previousReloadConfig = `{"apiVersion":"agent.secrets-store-injector.io/v1","mode":"sidecar","volumes":[{"name":"tls","path":"/var/run/secrets-store-injector/volumes/tls","class":{"namespace":"production","name":"vault-secrets","provider":"vault","parameters":{"roleName":"app-role","vaultAddress":"http://vault.vault.svc:8200"}},"permission":420}],"rotationInterval":"10m0s","firstFetchTimeout":"1m0s","tokens":[{"audience":"","path":"/var/run/secrets-store-injector/tokens/default"}],"cloud":{},"reloadSignal":"SIGHUP","healthAddr":":9811","logLevel":"info","logFormat":"json"}`

// TestDecodePreviousVersion: a configuration written by the previous
// webhook still decodes, with no reload containers (which the agent reads
// as "every container's main process", the behaviour of that time).
func TestDecodePreviousVersion(t *testing.T) {
	c, err := Decode(previousReloadConfig)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if c.ReloadSignal != "SIGHUP" || c.ReloadContainers != nil {
		t.Errorf("reloadSignal %q, reloadContainers %#v; want SIGHUP and nil", c.ReloadSignal, c.ReloadContainers)
	}
	if c.Mode != ModeSidecar || c.RotationInterval.Duration != 10*time.Minute || len(c.Volumes) != 1 || c.Volumes[0].Class.Name != "vault-secrets" {
		t.Errorf("decoded %+v", c)
	}
}

// TestReloadContainersRoundTrip: the field survives Encode and Decode, and
// an empty list is left out, so configurations without a reload signal
// are byte for byte what the previous version wrote.
func TestReloadContainersRoundTrip(t *testing.T) {
	base := func() *Config {
		return &Config{Mode: ModeSidecar, Volumes: []Volume{{Name: "v", Path: "/v", Class: Class{Namespace: "ns", Name: "c", Provider: "vault"}}}}
	}
	with := base()
	with.ReloadSignal, with.ReloadContainers = "SIGHUP", []string{"web", "worker"}
	enc, err := with.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(enc, `"reloadSignal":"SIGHUP","reloadContainers":["web","worker"]`) {
		t.Errorf("encoded %s", enc)
	}
	got, err := Decode(enc)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if !reflect.DeepEqual(got.ReloadContainers, []string{"web", "worker"}) {
		t.Errorf("reloadContainers = %#v", got.ReloadContainers)
	}
	without, err := base().Encode()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(without, "reload") {
		t.Errorf("configuration without a reload signal mentions it: %s", without)
	}
}

func TestValidateReloadContainers(t *testing.T) {
	tests := map[string]struct {
		signal     string
		containers []string
		wantErr    string
	}{
		"none":             {},
		"signal only":      {signal: "SIGHUP"},
		"signal and names": {signal: "SIGHUP", containers: []string{"web", "worker"}},
		"names, no signal": {containers: []string{"web"}, wantErr: "reloadContainers without reloadSignal"},
		"empty name":       {signal: "SIGHUP", containers: []string{""}, wantErr: `reloadContainers: "" is empty or listed twice`},
		"twice":            {signal: "SIGHUP", containers: []string{"web", "web"}, wantErr: `reloadContainers: "web" is empty or listed twice`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := &Config{Mode: ModeSidecar, ReloadSignal: tc.signal, ReloadContainers: tc.containers,
				Volumes: []Volume{{Name: "v", Path: "/v", Class: Class{Namespace: "ns", Name: "c", Provider: "vault"}}}}
			err := c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Validate = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
