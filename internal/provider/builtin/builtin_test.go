package builtin

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/spc"
)

func TestNew(t *testing.T) {
	for name, where := range map[string]Where{"run": InPod, "fetch": Local, "csi and sync": OutsidePod} {
		t.Run(name, func(t *testing.T) {
			set := New(slog.New(slog.DiscardHandler), where, time.Minute, limits.Config{}, Shared{})
			var names []string
			for n, p := range set {
				if p.Name() != n {
					t.Errorf("provider %q registered as %q", p.Name(), n)
				}
				names = append(names, n)
				if c, ok := p.(io.Closer); ok {
					_ = c.Close()
				}
			}
			sort.Strings(names)
			if got := strings.Join(names, ","); got != "aws,azure,gcp,vault" {
				t.Errorf("built-in providers %s, want aws,azure,gcp,vault", got)
			}
		})
	}
}

// refusal is what the per-class error of a refused process identity says.
const refusal = "lends to no class unless the operator allows it"

// TestProcessIdentity feeds the classes that ask for the fetching
// process's own identity to the providers of every process: in the pod
// that identity is the pod's and is used; in the shim and the sync
// controller it is refused with a per-class error unless the operator set
// Shared.AllowProcessIdentity. The context is cancelled so that a fetch
// that is not refused stops before it reaches any network.
func TestProcessIdentity(t *testing.T) {
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", t.TempDir()+"/none.json")
	classes := map[string]struct{ provider, key, field string }{
		"azure useVMManagedIdentity": {provider: "azure", key: "useVMManagedIdentity", field: "parameters.useVMManagedIdentity"},
		"gcp auth provider-adc":      {provider: "gcp", key: "auth", field: "auth: provider-adc"},
	}
	params := map[string]map[string]string{
		"azure": {"useVMManagedIdentity": "true", "keyvaultName": "kv-lender", "tenantID": "t",
			"objects": "array:\n  - |\n    objectName: db\n    objectType: secret\n"},
		"gcp": {"auth": "provider-adc", "secrets": "- resourceName: projects/p/secrets/db/versions/latest\n  path: db\n"},
	}
	processes := map[string]struct {
		where   Where
		shared  Shared
		refused bool
	}{
		"in the pod":                        {where: InPod},
		"local fetch":                       {where: Local},
		"shared process":                    {where: OutsidePod, refused: true},
		"shared process, operator allowed":  {where: OutsidePod, shared: Shared{AllowProcessIdentity: true}},
		"in the pod, allowance meaningless": {where: InPod, shared: Shared{AllowProcessIdentity: true}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for cname, cl := range classes {
		class, err := spc.ParseSpec("team-a", "lender", cl.provider, params[cl.provider])
		if err != nil {
			t.Fatalf("%s: %v", cname, err)
		}
		for pname, pc := range processes {
			t.Run(cname+"/"+pname, func(t *testing.T) {
				set := New(slog.New(slog.DiscardHandler), pc.where, time.Minute, limits.Config{}, pc.shared)
				defer func() { _ = set.Close() }()
				_, err := set[cl.provider].Fetch(ctx, provider.Request{Class: class,
					Identity: identity.Identity{Pod: identity.Pod{Namespace: "team-a", Name: "p", UID: "u", ServiceAccount: "default"}}})
				if err == nil {
					t.Fatal("fetch succeeded without any backend")
				}
				msg := err.Error()
				if got := strings.Contains(msg, refusal); got != pc.refused {
					t.Fatalf("refused = %v, want %v: %v", got, pc.refused, err)
				}
				if !pc.refused {
					return
				}
				if r := provider.ReasonOf(err); r != provider.ReasonInvalidConfig {
					t.Errorf("reason %q, want %q", r, provider.ReasonInvalidConfig)
				}
				for _, want := range []string{"team-a/lender", cl.field, "--" + FlagAllowProcessIdentity} {
					if !strings.Contains(msg, want) {
						t.Errorf("error %q does not name %q", msg, want)
					}
				}
			})
		}
	}
}

func TestSharedFlags(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want Shared
	}{
		"default": {want: Shared{}},
		"allowed": {args: []string{"--allow-process-identity"}, want: Shared{AllowProcessIdentity: true}},
	} {
		t.Run(name, func(t *testing.T) {
			var s Shared
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			s.AddFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if s != tc.want {
				t.Errorf("parsed %+v, want %+v", s, tc.want)
			}
		})
	}
}

// TestFilesFor: only the shared processes (node shim, sync controller)
// restrict class files to the operator's directory; every process caps
// them at the object limit.
func TestFilesFor(t *testing.T) {
	lim := limits.Config{Sizes: limits.Sizes{ObjectBytes: 4096}, ClassFilesDir: "/etc/ssi/class-files"}
	cases := map[string]struct {
		where Where
		want  limits.Files
	}{
		"run":          {InPod, limits.Files{Dir: "/etc/ssi/class-files", MaxBytes: 4096}},
		"fetch":        {Local, limits.Files{Dir: "/etc/ssi/class-files", MaxBytes: 4096}},
		"csi and sync": {OutsidePod, limits.Files{Shared: true, Dir: "/etc/ssi/class-files", MaxBytes: 4096}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := FilesFor(tc.where, lim); got != tc.want {
				t.Errorf("FilesFor = %+v, want %+v", got, tc.want)
			}
		})
	}
	if got := FilesFor(OutsidePod, limits.Config{}); !got.Shared || got.Dir != "" || got.MaxBytes != limits.DefaultObjectBytes {
		t.Errorf("defaults outside a pod: %+v", got)
	}
}
