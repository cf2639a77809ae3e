package agent

import (
	"bytes"
	"strings"
	"testing"
)

// TestNewLogger: the agent reads its configuration's logLevel and
// logFormat as every command reads --log-level and --log-format; a
// configuration without them logs text at info, and a bad value names the
// agent configuration.
func TestNewLogger(t *testing.T) {
	tests := map[string]struct {
		format, level string
		wantDebug     bool
		wantPrefix    string // how a line starts
		wantErr       string
	}{
		"written by an older webhook": {wantPrefix: "time="},
		"debug json":                  {format: "json", level: "debug", wantDebug: true, wantPrefix: `{"time":`},
		"warn":                        {format: "text", level: "warn", wantPrefix: "time="},
		"bad level":                   {level: "trace", wantErr: `agent config: log level "trace" is not debug, info, warn or error`},
		"bad format":                  {format: "xml", wantErr: `agent config: log format "xml" is not json or text`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			log, err := newLogger(&b, tc.format, tc.level)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("debug-line")
			log.Warn("warn-line")
			if got := strings.Contains(b.String(), "debug-line"); got != tc.wantDebug {
				t.Errorf("debug written %v, want %v:\n%s", got, tc.wantDebug, b.String())
			}
			if !strings.HasPrefix(b.String(), tc.wantPrefix) || !strings.Contains(b.String(), "warn-line") {
				t.Errorf("output %q, want lines starting %q", b.String(), tc.wantPrefix)
			}
		})
	}
}
