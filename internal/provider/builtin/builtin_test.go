package builtin

import (
	"io"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/limits"
)

func TestNew(t *testing.T) {
	for name, where := range map[string]Where{"run": InPod, "fetch": Local, "csi and sync": OutsidePod} {
		t.Run(name, func(t *testing.T) {
			set := New(slog.New(slog.DiscardHandler), where, time.Minute, limits.Config{})
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
