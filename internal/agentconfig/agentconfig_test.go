package agentconfig

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/identity"
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

// previousTwoVolumeConfig is a configuration exactly as the webhook wrote
// it before volumes carried their own identity (internal/offline's
// two-volumes golden file at that time): one pod-wide cloud identity.
const previousTwoVolumeConfig = `{"apiVersion":"agent.secrets-store-injector.io/v1","mode":"sidecar","volumes":[{"name":"vault-secrets","path":"/var/run/secrets-store-injector/volumes/vault-secrets","class":{"namespace":"production","name":"vault-secrets","provider":"vault","parameters":{"objects":"- objectName: \"db-password\"\n  secretPath: \"secret/data/myapp/database\"\n  secretKey: \"password\"\n- objectName: \"api-token\"\n  secretPath: \"secret/data/myapp/api\"\n  secretKey: \"token\"","roleName":"app-role","vaultAddress":"http://vault.vault.svc:8200"}},"permission":420},{"name":"aws-secrets","path":"/var/run/secrets-store-injector/volumes/aws-secrets","class":{"namespace":"production","name":"aws-secrets","provider":"aws","parameters":{"objects":"- objectName: \"my-app-db-password\"\n  objectType: \"secretsmanager\"\n  objectAlias: \"db-password\"\n- objectName: \"my-app-api-key\"\n  objectType: \"secretsmanager\"\n  objectAlias: \"api-key\"\n","region":"us-west-2"}},"permission":420}],"rotationInterval":"2m0s","firstFetchTimeout":"1m0s","tokens":[{"audience":"","path":"/var/run/secrets-store-injector/tokens/default"},{"audience":"sts.amazonaws.com","path":"/var/run/secrets-store-injector/tokens/sts.amazonaws.com"}],"cloud":{"awsRoleARN":"arn:aws:iam::111122223333:role/app-secrets-reader"},"healthAddr":":9811","logLevel":"info","logFormat":"json"}`

// TestCloudOfPreviousVersion: for a configuration written before
// Volume.Cloud existed, every volume gets the pod-wide identity, as the
// agent of that version used it; a volume that carries its own identity
// gets exactly that, even when it is empty.
func TestCloudOfPreviousVersion(t *testing.T) {
	c, err := Decode(previousTwoVolumeConfig)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	pod := identity.Cloud{AWSRoleARN: "arn:aws:iam::111122223333:role/app-secrets-reader"}
	if len(c.Volumes) != 2 {
		t.Fatalf("volumes: %d", len(c.Volumes))
	}
	for i := range c.Volumes {
		v := &c.Volumes[i]
		if v.Cloud != nil {
			t.Errorf("volume %s: decoded a per-volume identity %+v from a configuration that has none", v.Name, *v.Cloud)
		}
		if got := c.CloudOf(v); got != pod {
			t.Errorf("volume %s: CloudOf = %+v, want the pod-wide %+v", v.Name, got, pod)
		}
	}

	// The same configuration as this version writes it.
	c.Volumes[0].Cloud = &identity.Cloud{}
	c.Volumes[1].Cloud = &identity.Cloud{AWSRoleARN: "arn:aws:iam::111122223333:role/other"}
	enc, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(enc, `"permission":420,"cloud":{}}`) {
		t.Errorf("an empty per-volume identity is not written as {}: %s", enc)
	}
	d, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	want := []identity.Cloud{{}, {AWSRoleARN: "arn:aws:iam::111122223333:role/other"}}
	for i := range d.Volumes {
		if got := d.CloudOf(&d.Volumes[i]); got != want[i] {
			t.Errorf("volume %s: CloudOf = %+v, want its own %+v", d.Volumes[i].Name, got, want[i])
		}
	}
}
