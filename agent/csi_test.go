package main

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/csi"
	"github.com/ssinjector/ssi/internal/limits"
)

func TestCSIOptions(t *testing.T) {
	tests := map[string]struct {
		args    []string
		env     string
		check   func(t *testing.T, o csi.Options)
		wantErr bool
	}{
		"defaults": {
			args: []string{"--nodeid", "node-1"},
			check: func(t *testing.T, o csi.Options) {
				want := csi.Options{
					DriverName: csi.DriverName, Endpoint: csi.DefaultEndpoint, NodeID: "node-1",
					KubeletRootDir: "/var/lib/kubelet", EnableRotation: true, RotationPollInterval: 2 * time.Minute,
					ProviderDirs:              []string{"/etc/kubernetes/secrets-store-csi-providers", "/var/run/secrets-store-csi-providers"},
					ServiceAccountAnnotations: true, MetricsAddr: ":8095",
				}
				o.Logger = nil
				if !reflect.DeepEqual(o, want) {
					t.Errorf("options =\n%+v\nwant\n%+v", o, want)
				}
			},
		},
		"node from the environment": {
			env:   "node-env",
			check: func(t *testing.T, o csi.Options) { eq(t, o.NodeID, "node-env") },
		},
		"everything set": {
			args: []string{"--endpoint", "unix:///k/plugins/x/csi.sock", "--nodeid", "n", "--kubelet-root-dir", "/k",
				"--provider-volume", "/p", "--additional-provider-volume-paths", "/a, /b", "--plugin-providers", "aws,gcp",
				"--enable-secret-rotation=false", "--rotation-poll-interval", "30s", "--metrics-addr", "", "--plugins-registry-dir", "-",
				"--kubelet-registration-path", "/host/csi.sock", "--max-call-recv-msg-size", "8388608", "--plugin-timeout", "5s",
				"--gcp-workload-identity-provider", "projects/1/locations/global/workloadIdentityPools/p/providers/k",
				"--max-object-bytes", "2Mi", "--max-volume-bytes", "8Mi", "--class-files-dir", "/etc/ssi/class-files"},
			check: func(t *testing.T, o csi.Options) {
				eq(t, o.Endpoint, "unix:///k/plugins/x/csi.sock")
				eq(t, o.KubeletRootDir, "/k")
				eq(t, o.RegistrationDir, "-")
				eq(t, o.KubeletRegistrationPath, "/host/csi.sock")
				eq(t, o.MetricsAddr, "")
				eq(t, o.GCPWorkloadIdentityProvider, "projects/1/locations/global/workloadIdentityPools/p/providers/k")
				if want := (limits.Config{Sizes: limits.Sizes{ObjectBytes: 2 << 20, VolumeBytes: 8 << 20}, ClassFilesDir: "/etc/ssi/class-files"}); o.Limits != want {
					t.Errorf("limits = %+v, want %+v", o.Limits, want)
				}
				if !reflect.DeepEqual(o.ProviderDirs, []string{"/a", "/b", "/p"}) || !reflect.DeepEqual(o.PluginProviders, []string{"aws", "gcp"}) {
					t.Errorf("dirs %v routes %v", o.ProviderDirs, o.PluginProviders)
				}
				if o.EnableRotation || o.RotationPollInterval != 30*time.Second || o.MaxCallRecvMsgSize != 8<<20 || o.PluginTimeout != 5*time.Second {
					t.Errorf("options = %+v", o)
				}
			},
		},
		"stray argument": {args: []string{"extra"}, wantErr: true},
		"bad size":       {args: []string{"--max-object-bytes", "big"}, wantErr: true},
		"unknown flag":   {args: []string{"--nope"}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv("SSI_NODE_NAME", tc.env)
			o, _, err := csiOptions(tc.args, io.Discard)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if tc.check != nil {
				tc.check(t, o)
			}
		})
	}
}

func eq(t *testing.T, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestCSIAllowProcessIdentity(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want bool
	}{
		"off by default": {args: []string{"--nodeid", "n"}, want: false},
		"allowed":        {args: []string{"--nodeid", "n", "--allow-process-identity"}, want: true},
	} {
		t.Run(name, func(t *testing.T) {
			_, shared, err := csiOptions(tc.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if shared.AllowProcessIdentity != tc.want {
				t.Errorf("AllowProcessIdentity = %v, want %v", shared.AllowProcessIdentity, tc.want)
			}
		})
	}
}

// TestCSIAllowedBackendHosts: `ssi-agent csi --allowed-backend-hosts`
// parses into the list the shim checks classes against, with the syntax
// and errors of the sync controller's flag (provider.AddBackendHostsFlag).
func TestCSIAllowedBackendHosts(t *testing.T) {
	for name, tc := range map[string]struct {
		args    []string
		want    string // BackendHosts.String(); "" is no limit
		allowed string // a host the list allows
		wantErr string
	}{
		"no limit by default": {args: []string{"--nodeid", "n"}, allowed: "attacker.example.net"},
		"the chart's form":    {args: []string{"--nodeid", "n", "--allowed-backend-hosts=*.vault.example.com,10.20.0.0/16"}, want: "*.vault.example.com,10.20.0.0/16", allowed: "a.vault.example.com"},
		"repeated":            {args: []string{"--nodeid", "n", "--allowed-backend-hosts", "vault.corp", "--allowed-backend-hosts", "fd00::7"}, want: "vault.corp,fd00::7", allowed: "fd00::7"},
		"bad entry":           {args: []string{"--nodeid", "n", "--allowed-backend-hosts", "vault.corp,10.0.0.0/40"}, wantErr: `allowed backend host "10.0.0.0/40": not a CIDR prefix`},
	} {
		t.Run(name, func(t *testing.T) {
			o, _, err := csiOptions(tc.args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := o.AllowedBackendHosts.String(); got != tc.want {
				t.Errorf("allowed backend hosts %q, want %q", got, tc.want)
			}
			if !o.AllowedBackendHosts.Allows(tc.allowed) {
				t.Errorf("list %q refuses %s", tc.want, tc.allowed)
			}
			if tc.want != "" && o.AllowedBackendHosts.Allows("attacker.example.net") {
				t.Errorf("list %q allows attacker.example.net", tc.want)
			}
		})
	}
}

// TestCSILogFlags: `ssi-agent csi` takes --log-level and --log-format like
// every command (default text at info), and the upstream driver's -v and
// --log-format-json as deprecated aliases, the last flag given winning.
// Each case writes a debug line and checks what the logger printed.
func TestCSILogFlags(t *testing.T) {
	for name, tc := range map[string]struct {
		args       []string
		debug      bool
		json       bool
		deprecated []string // flags the shim warns about
		wantErr    string
	}{
		"defaults":                  {},
		"new flags":                 {args: []string{"--log-level=debug", "--log-format=json"}, debug: true, json: true},
		"new flags, text":           {args: []string{"--log-level", "info", "--log-format", "text"}},
		"v 4 is debug":              {args: []string{"-v", "4"}, debug: true, deprecated: []string{"-v"}},
		"v 5 as the chart had it":   {args: []string{"--v=5", "--log-format-json=true"}, debug: true, json: true, deprecated: []string{"-v", "--log-format-json"}},
		"v 3 is info":               {args: []string{"--v=3"}, deprecated: []string{"-v"}},
		"log-format-json alone":     {args: []string{"--log-format-json"}, json: true, deprecated: []string{"--log-format-json"}},
		"log-format-json=false":     {args: []string{"--log-format=json", "--log-format-json=false"}, deprecated: []string{"--log-format-json"}},
		"new flag after the alias":  {args: []string{"--v=4", "--log-level=info"}, deprecated: []string{"-v"}},
		"alias after the new flag":  {args: []string{"--log-level=info", "--v=4"}, debug: true, deprecated: []string{"-v"}},
		"bad level":                 {args: []string{"--log-level=trace"}, wantErr: `invalid value "trace" for flag -log-level: log level "trace" is not debug, info, warn or error`},
		"bad format":                {args: []string{"--log-format=yaml"}, wantErr: `invalid value "yaml" for flag -log-format: log format "yaml" is not json or text`},
		"bad verbosity":             {args: []string{"-v", "high"}, wantErr: `invalid value "high" for flag -v: not an integer`},
		"bad log-format-json value": {args: []string{"--log-format-json=yes"}, wantErr: `invalid boolean value "yes" for -log-format-json: not a boolean`},
	} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			o, _, err := csiOptions(append([]string{"--nodeid", "n"}, tc.args...), &b)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			warnings := b.String()
			for _, f := range tc.deprecated {
				if !strings.Contains(warnings, "deprecated flag") || !strings.Contains(warnings, f) {
					t.Errorf("no deprecation warning for %s:\n%s", f, warnings)
				}
			}
			if len(tc.deprecated) == 0 && warnings != "" {
				t.Errorf("logged before any call:\n%s", warnings)
			}
			b.Reset()
			o.Logger.Debug("debug-line")
			o.Logger.Info("info-line")
			out := b.String()
			if got := strings.Contains(out, "debug-line"); got != tc.debug {
				t.Errorf("debug line written %v, want %v:\n%s", got, tc.debug, out)
			}
			last := strings.Split(strings.TrimSpace(out), "\n")
			if got := json.Valid([]byte(last[len(last)-1])); !strings.Contains(out, "info-line") || got != tc.json {
				t.Errorf("JSON %v, want %v:\n%s", got, tc.json, out)
			}
		})
	}
}
