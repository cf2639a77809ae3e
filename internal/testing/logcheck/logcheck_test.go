package logcheck

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
)

func TestLeaks(t *testing.T) {
	const secret = `pa"ss\word-123`
	tests := map[string]struct {
		log  func(l *slog.Logger)
		text bool
		enc  string // "" means no leak
	}{
		"clean text":      {text: true, log: func(l *slog.Logger) { l.Info("fetched", "object", "db-password") }},
		"clean json":      {log: func(l *slog.Logger) { l.Info("fetched", "object", "db-password") }},
		"plain in msg":    {text: true, log: func(l *slog.Logger) { l.Info("value " + secret) }, enc: "quoted"},
		"json attribute":  {log: func(l *slog.Logger) { l.Info("x", "v", secret) }, enc: "json"},
		"text attribute":  {text: true, log: func(l *slog.Logger) { l.Info("x", "v", secret) }, enc: "quoted"},
		"base64":          {log: func(l *slog.Logger) { l.Info("x", "v", base64.StdEncoding.EncodeToString([]byte(secret))) }, enc: "base64"},
		"hex":             {log: func(l *slog.Logger) { l.Info("x", "v", hex.EncodeToString([]byte(secret))) }, enc: "hex"},
		"inside an error": {log: func(l *slog.Logger) { l.Error("x", "error", fmt.Errorf("bad %s", secret).Error()) }, enc: "json"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := New()
			r.Secret(secret)
			var l *slog.Logger
			if tc.text {
				l = slog.New(slog.NewTextHandler(r, nil))
			} else {
				l = slog.New(slog.NewJSONHandler(r, nil))
			}
			tc.log(l)
			leaks := r.Leaks()
			if tc.enc == "" {
				if len(leaks) != 0 {
					t.Fatalf("false positive: %+v", leaks)
				}
				return
			}
			if len(leaks) != 1 {
				t.Fatalf("leaks = %+v, want one", leaks)
			}
			escaped := map[string]bool{"plain": true, "json": true, "quoted": true}
			if leaks[0].Encoding != tc.enc && (!escaped[tc.enc] || !escaped[leaks[0].Encoding]) {
				t.Errorf("encoding %s, want %s", leaks[0].Encoding, tc.enc)
			}
			if contains(leaks[0].Line, secret) {
				t.Errorf("the report repeats the secret: %s", leaks[0].Line)
			}
		})
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestShortSecretRejected(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("a 3-byte secret was accepted")
		}
	}()
	New().Secret("abc")
}

func TestCaptureStderr(t *testing.T) {
	const secret = "stderr-secret-value"
	r := New()
	r.Secret(secret)
	t.Run("capture", func(t *testing.T) {
		r.CaptureStderr(t)
		// One line written in two pieces, as an unbuffered logger may.
		fmt.Fprint(os.Stderr, "logcheck test: a library writes stderr-secret")
		fmt.Fprintln(os.Stderr, "-value on its own")
		fmt.Fprint(os.Stderr, "logcheck test: an unterminated last line")
	})
	text := r.Text()
	if !strings.Contains(text, "a library writes stderr-secret-value on its own\n") || !strings.Contains(text, "an unterminated last line") {
		t.Fatalf("captured %q", text)
	}
	if leaks := r.Leaks(); len(leaks) != 1 || leaks[0].Encoding != "plain" {
		t.Errorf("leaks = %+v, want the one line", leaks)
	}
	// Standard error is back: a second capture is possible.
	t.Run("again", func(t *testing.T) { r.CaptureStderr(t) })
}
