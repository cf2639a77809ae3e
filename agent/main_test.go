package main

import (
	"context"
	"strings"
	"testing"
)

func TestCommandLine(t *testing.T) {
	tests := map[string]struct {
		args    []string
		wantErr string
	}{
		"no command":          {args: nil, wantErr: "usage: ssi-agent run | fetch | csi"},
		"unknown command":     {args: []string{"serve"}, wantErr: `unknown command "serve"`},
		"fetch without flags": {args: []string{"fetch"}, wantErr: "--spc and --out are required"},
		"fetch extra args":    {args: []string{"fetch", "--spc", "a", "--out", "b", "c"}, wantErr: `unexpected arguments ["c"]`},
		"fetch bad flag":      {args: []string{"fetch", "--nope"}, wantErr: "flag provided but not defined: -nope"},
		"fetch help":          {args: []string{"fetch", "-h"}},
		"fetch bad log level": {args: []string{"fetch", "--log-level", "trace", "--spc", "a", "--out", "b"}, wantErr: `invalid value "trace" for flag -log-level: log level "trace" is not debug, info, warn or error`},
		"csi bad log format":  {args: []string{"csi", "--log-format", "yaml"}, wantErr: `invalid value "yaml" for flag -log-format: log format "yaml" is not json or text`},
		"run help":            {args: []string{"run", "-h"}},
		"run outside a pod":   {args: []string{"run", "--termination-log", "-"}, wantErr: "SSI_AGENT_CONFIG is empty"},
		"fetch missing file":  {args: []string{"fetch", "--spc", "/nonexistent.yaml", "--out", "/tmp/x"}, wantErr: "read SecretProviderClass file"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv("SSI_AGENT_CONFIG", "")
			err := run(context.Background(), tc.args)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
