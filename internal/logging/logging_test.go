package logging

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"strings"
	"testing"
)

// TestNew builds loggers from every accepted spelling and checks what they
// write: the level that passes, the one that does not, and the format.
func TestNew(t *testing.T) {
	tests := map[string]struct {
		level, format string
		wantJSON      bool
		debug, info   bool // whether a debug and an info line are written
		wantErr       []string
	}{
		"defaults":        {info: true},
		"debug json":      {level: "debug", format: "json", wantJSON: true, debug: true, info: true},
		"info text":       {level: "info", format: "text", info: true},
		"upper case":      {level: "DEBUG", format: "JSON", wantJSON: true, debug: true, info: true},
		"warn":            {level: "warn"},
		"warning":         {level: "warning"},
		"error":           {level: "error", format: "json", wantJSON: true},
		"bad level":       {level: "verbose", wantErr: []string{`log level "verbose" is not debug, info, warn or error`}},
		"bad format":      {format: "yaml", wantErr: []string{`log format "yaml" is not json or text`}},
		"both bad":        {level: "4", format: "pretty", wantErr: []string{`log level "4"`, `log format "pretty"`}},
		"v-style level":   {level: "-4", wantErr: []string{`log level "-4"`}},
		"trailing blank":  {level: "info ", wantErr: []string{`log level "info "`}},
		"format as level": {level: "json", wantErr: []string{`log level "json"`}},
		"level as format": {format: "debug", wantErr: []string{`log format "debug"`}},
		"warn upper case": {level: "WARN", format: "text"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			log, err := New(&b, tc.level, tc.format)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatal("no error")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("d-line")
			log.Info("i-line")
			log.Warn("w-line")
			log.Error("e-line")
			out := b.String()
			if got := strings.Contains(out, "d-line"); got != tc.debug {
				t.Errorf("debug line written %v, want %v:\n%s", got, tc.debug, out)
			}
			if got := strings.Contains(out, "i-line"); got != tc.info {
				t.Errorf("info line written %v, want %v:\n%s", got, tc.info, out)
			}
			if !strings.Contains(out, "e-line") {
				t.Errorf("error line not written:\n%s", out)
			}
			first := strings.SplitN(out, "\n", 2)[0]
			if got := json.Valid([]byte(first)); got != tc.wantJSON {
				t.Errorf("JSON %v, want %v: %s", got, tc.wantJSON, first)
			}
		})
	}
}

// TestAddFlags: the flags take the accepted values, refuse others naming
// the flag and the accepted values, and show each command's default.
func TestAddFlags(t *testing.T) {
	tests := map[string]struct {
		args                    []string
		wantLevel, wantFormat   string
		wantErr                 string
		defLevel, defaultFormat string
	}{
		"defaults kept":   {defLevel: "info", defaultFormat: "json", wantLevel: "info", wantFormat: "json"},
		"set":             {args: []string{"--log-level", "debug", "--log-format=text"}, defLevel: "info", defaultFormat: "json", wantLevel: "debug", wantFormat: "text"},
		"lower-cased":     {args: []string{"--log-level=WARN", "--log-format=JSON"}, defLevel: "info", defaultFormat: "text", wantLevel: "warn", wantFormat: "json"},
		"last one wins":   {args: []string{"--log-level=debug", "--log-level=error"}, defLevel: "info", defaultFormat: "text", wantLevel: "error", wantFormat: "text"},
		"bad level":       {args: []string{"--log-level=verbose"}, wantErr: `invalid value "verbose" for flag -log-level: log level "verbose" is not debug, info, warn or error`},
		"bad format":      {args: []string{"--log-format=yaml"}, wantErr: `invalid value "yaml" for flag -log-format: log format "yaml" is not json or text`},
		"empty level":     {args: []string{"--log-level="}, wantErr: `for flag -log-level`},
		"flag without it": {args: []string{"--log-level"}, wantErr: "flag needs an argument: -log-level"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			level, format := tc.defLevel, tc.defaultFormat
			fs := flag.NewFlagSet("cmd", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			AddFlags(fs, &level, &format)
			err := fs.Parse(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if level != tc.wantLevel || format != tc.wantFormat {
				t.Errorf("level %q format %q, want %q %q", level, format, tc.wantLevel, tc.wantFormat)
			}
		})
	}
}

func TestHelpShowsDefaults(t *testing.T) {
	for _, def := range []string{"json", "text"} {
		level, format := "info", def
		fs := flag.NewFlagSet("cmd", flag.ContinueOnError)
		var b bytes.Buffer
		fs.SetOutput(&b)
		AddFlags(fs, &level, &format)
		fs.PrintDefaults()
		for _, want := range []string{"-log-level level\n", "log level: debug, info, warn or error (default info)", "-log-format format\n", "log format: json or text (default " + def + ")"} {
			if !strings.Contains(b.String(), want) {
				t.Errorf("help lacks %q:\n%s", want, b.String())
			}
		}
	}
}
