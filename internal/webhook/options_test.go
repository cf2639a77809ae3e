package webhook

import (
	"flag"
	"io"
	"strings"
	"testing"
)

// TestOptionsLogging: `ssi-webhook serve` logs JSON at info by default;
// its --log-level and --log-format take the values of every command, and
// Validate names the flag of a bad value set without flags.
func TestOptionsLogging(t *testing.T) {
	tests := map[string]struct {
		args          []string
		level, format string // set after parsing, as a program would
		wantLevel     string
		wantFormat    string
		wantErr       []string
	}{
		"defaults":      {wantLevel: "info", wantFormat: "json"},
		"flags":         {args: []string{"--log-level=debug", "--log-format=text"}, wantLevel: "debug", wantFormat: "text"},
		"warn":          {args: []string{"--log-level=warn"}, wantLevel: "warn", wantFormat: "json"},
		"empty is fine": {level: "-", format: "-", wantLevel: "", wantFormat: ""},
		"bad values":    {level: "trace", format: "yaml", wantErr: []string{`--log-level: log level "trace" is not debug, info, warn or error`, `--log-format: log format "yaml" is not json or text`}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := DefaultOptions()
			o.Namespace = "ssi"
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			o.AddFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			switch tc.level {
			case "":
			case "-":
				o.LogLevel = ""
			default:
				o.LogLevel = tc.level
			}
			switch tc.format {
			case "":
			case "-":
				o.LogFormat = ""
			default:
				o.LogFormat = tc.format
			}
			err := o.Validate()
			if len(tc.wantErr) > 0 {
				for _, w := range tc.wantErr {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("error %v lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.LogLevel != tc.wantLevel || o.LogFormat != tc.wantFormat {
				t.Errorf("level %q format %q, want %q %q", o.LogLevel, o.LogFormat, tc.wantLevel, tc.wantFormat)
			}
		})
	}
}
