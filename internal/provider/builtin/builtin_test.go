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
