// Package logging builds the logger of every command of the product
// (ssi-webhook serve and sync, ssi-agent run, fetch and csi) from one
// vocabulary: a level (--log-level) and a format (--log-format), with the
// same values and meanings everywhere. The agent configuration's logLevel
// and logFormat, which the webhook's --agent-log-level and
// --agent-log-format write, take the same values and go through the same
// parsers.
//
// Levels are debug, info, warn and error (case does not matter; "warning"
// is also read as warn, the spelling the agent accepted before this
// package). debug is slog.LevelDebug: for the logr loggers of the webhook
// and the sync controller it enables V(1) to V(4). Formats are json and
// text. Each command keeps its own default format, which its help shows.
package logging

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// The flag names, the same in every command.
const (
	FlagLevel  = "log-level"
	FlagFormat = "log-format"
)

// The formats.
const (
	FormatJSON = "json"
	FormatText = "text"
)

// The levels, as they are written in flags and the agent configuration.
const (
	LevelDebug = "debug"
	LevelInfo  = "info"
	LevelWarn  = "warn"
	LevelError = "error"
)

// ParseLevel parses a level name: debug, info, warn or error, in any case.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case LevelDebug:
		return slog.LevelDebug, nil
	case LevelInfo:
		return slog.LevelInfo, nil
	case LevelWarn, "warning":
		return slog.LevelWarn, nil
	case LevelError:
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q is not %s, %s, %s or %s", s, LevelDebug, LevelInfo, LevelWarn, LevelError)
}

// ParseFormat parses a format name, json or text in any case, and returns
// it in lower case.
func ParseFormat(s string) (string, error) {
	switch f := strings.ToLower(s); f {
	case FormatJSON, FormatText:
		return f, nil
	}
	return "", fmt.Errorf("log format %q is not %s or %s", s, FormatJSON, FormatText)
}

// New returns a logger writing to w (standard error when nil) at level in
// format. An empty level is info and an empty format text: the agent
// configuration leaves both out when the webhook was given neither.
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	if w == nil {
		w = os.Stderr
	}
	lv, f := slog.LevelInfo, FormatText
	var errs []error
	if level != "" {
		var err error
		if lv, err = ParseLevel(level); err != nil {
			errs = append(errs, err)
		}
	}
	if format != "" {
		var err error
		if f, err = ParseFormat(format); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lv}
	if f == FormatJSON {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// AddFlags registers --log-level and --log-format on fs, with the same help
// in every command. They write into level and format, whose values at the
// call are the command's defaults (shown in its help); a value that does
// not parse is refused when the flags are parsed, naming the flag and the
// accepted values.
func AddFlags(fs *flag.FlagSet, level, format *string) {
	fs.Var(choice{level, func(s string) (string, error) {
		if _, err := ParseLevel(s); err != nil {
			return "", err
		}
		return strings.ToLower(s), nil
	}}, FlagLevel, "log `level`: debug, info, warn or error")
	fs.Var(choice{format, ParseFormat}, FlagFormat, "log `format`: json or text")
}

// choice is a string flag whose values are checked by parse.
type choice struct {
	p     *string
	parse func(string) (string, error)
}

func (c choice) String() string {
	if c.p == nil { // the zero value flag.PrintDefaults makes
		return ""
	}
	return *c.p
}

func (c choice) Set(s string) error {
	v, err := c.parse(s)
	if err != nil {
		return err
	}
	*c.p = v
	return nil
}
