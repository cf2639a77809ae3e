package identity

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if tok, err := ReadTokenFile(write("token", "  eyJ.token.sig\n")); err != nil || tok != "eyJ.token.sig" {
		t.Errorf("ReadTokenFile = %q, %v; want the trimmed token", tok, err)
	}
	empty := write("empty", " \n")
	if _, err := ReadTokenFile(empty); err == nil || !strings.Contains(err.Error(), empty+" is empty") {
		t.Errorf("empty file: %v", err)
	}
	missing := filepath.Join(dir, "missing")
	if _, err := ReadTokenFile(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v, want an error naming it", err)
	}
}

func TestLatest(t *testing.T) {
	var l Latest
	if _, err := l.Token(context.Background(), "vault"); !errors.Is(err, ErrNoToken) {
		t.Errorf("without a source: %v, want ErrNoToken", err)
	}
	l.Set(StaticTokens{"vault": "tok-1"})
	l.Set(StaticTokens{"vault": "tok-2"})
	if tok, err := l.Token(context.Background(), "vault"); err != nil || tok != "tok-2" {
		t.Errorf("Token = %q, %v; want the latest source's", tok, err)
	}
	l.Set(nil)
	if _, err := l.Token(context.Background(), "vault"); !errors.Is(err, ErrNoToken) {
		t.Errorf("after Set(nil): %v, want ErrNoToken", err)
	}
}

func TestFallback(t *testing.T) {
	var minted []string
	mint := FuncTokens(func(_ context.Context, aud string) (string, error) {
		minted = append(minted, aud)
		return "minted-" + aud, nil
	})
	f := Fallback{First: StaticTokens{"vault": "kubelet"}, Then: mint}
	if tok, err := f.Token(context.Background(), "vault"); err != nil || tok != "kubelet" {
		t.Errorf("kubelet's token: %q, %v", tok, err)
	}
	if tok, err := f.Token(context.Background(), DefaultAudience); err != nil || tok != "minted-" {
		t.Errorf("minted token: %q, %v", tok, err)
	}
	if len(minted) != 1 || minted[0] != DefaultAudience {
		t.Errorf("minted for %q, want only the default audience", minted)
	}
	// Another failure of the first source is not hidden by a mint.
	bad := Fallback{First: FuncTokens(func(context.Context, string) (string, error) { return "", errors.New("broken") }), Then: mint}
	if _, err := bad.Token(context.Background(), "vault"); err == nil || err.Error() != "broken" {
		t.Errorf("err = %v, want the first source's", err)
	}
}
