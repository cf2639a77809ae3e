package provider

import (
	"errors"
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/ssinjector/ssi/internal/spc"
)

func TestBackendHosts(t *testing.T) {
	b, err := ParseBackendHosts([]string{" vault.example.com ", "*.vault.corp.", "10.1.0.0/16", "fd00::7", ""})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]bool{
		"vault.example.com":      true,
		"VAULT.example.com.":     true,
		"a.vault.corp":           true,
		"vault.corp":             false, // *. needs a label
		"evil.example.com":       false,
		"vault.example.com.evil": false,
		"10.1.2.3":               true,
		"10.2.0.1":               false,
		"::ffff:10.1.0.9":        true,
		"[fd00::7]":              true,
		"fd00::8":                false,
		"169.254.169.254":        false,
		"":                       false,
		"10.1.2.3.nip.io":        false, // a name never matches a prefix
		"kubernetes.default.svc": false,
	}
	for host, want := range cases {
		if got := b.Allows(host); got != want {
			t.Errorf("Allows(%q) = %v, want %v", host, got, want)
		}
	}
	var none *BackendHosts
	if !none.Allows("anything.example") || none.CheckClass(&spc.Class{}) != nil || none.String() != "" {
		t.Error("a nil list must allow every host")
	}
	if l, err := ParseBackendHosts([]string{"", " "}); err != nil || l != nil {
		t.Errorf("no entries: %v, %v; want nil (no limit)", l, err)
	}
}

func TestParseBackendHostsErrors(t *testing.T) {
	for entry, want := range map[string]string{
		"10.0.0.0/33":      `allowed backend host "10.0.0.0/33": not a CIDR prefix`,
		"vault.corp:8200":  `allowed backend host "vault.corp:8200": not a host name pattern`,
		"[a":               `allowed backend host "[a": not a host name pattern`,
		"https://vault.io": `allowed backend host "https://vault.io": not a CIDR prefix`,
	} {
		if _, err := ParseBackendHosts([]string{entry}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseBackendHosts(%q) = %v, want %q", entry, err, want)
		}
	}
}

func TestBackendHostsCheckClass(t *testing.T) {
	b, err := ParseBackendHosts([]string{"vault.example.com", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{ // vaultAddress -> error fragment ("" allowed)
		"":                               "",
		"https://vault.example.com:8200": "",
		"http://127.0.0.1:8200":          "",
		"https://attacker.example.net":   `SecretProviderClass ns/db (provider vault): InvalidConfig: parameters.vaultAddress: host "attacker.example.net" is not among the backend hosts this process may contact (--allowed-backend-hosts vault.example.com,127.0.0.1)`,
		"http://[::1]:8200":              `host "::1" is not among`,
	}
	for addr, want := range cases {
		c := &spc.Class{Namespace: "ns", Name: "db", Provider: "vault", Vault: &spc.Vault{Address: addr}}
		err := b.CheckClass(c)
		if want == "" {
			if err != nil {
				t.Errorf("%q: %v", addr, err)
			}
			continue
		}
		var pe *Error
		if !errors.As(err, &pe) || pe.Reason != ReasonInvalidConfig || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want InvalidConfig containing %q", addr, err, want)
		}
	}
	if err := b.CheckClass(&spc.Class{Namespace: "ns", Name: "a", Provider: "aws", AWS: &spc.AWS{}}); err != nil {
		t.Errorf("aws class: %v (cloud endpoints are not limited)", err)
	}
}

// TestAddBackendHostsFlag: the flag both shared processes register
// appends the entries of every use and refuses a bad entry by name, at
// the flag.
func TestAddBackendHostsFlag(t *testing.T) {
	tests := map[string]struct {
		args    []string
		want    []string
		wantErr string
	}{
		"unset":      {want: nil},
		"one list":   {args: []string{"--allowed-backend-hosts", "vault.corp,10.0.0.0/8"}, want: []string{"vault.corp", "10.0.0.0/8"}},
		"repeated":   {args: []string{"--allowed-backend-hosts=vault.corp", "--allowed-backend-hosts=*.vault.corp, fd00::7"}, want: []string{"vault.corp", "*.vault.corp", " fd00::7"}},
		"bad prefix": {args: []string{"--allowed-backend-hosts", "vault.corp,10.0.0.0/40"}, wantErr: `invalid value "vault.corp,10.0.0.0/40" for flag -allowed-backend-hosts: allowed backend host "10.0.0.0/40": not a CIDR prefix`},
		"a URL":      {args: []string{"--allowed-backend-hosts", "https://vault.corp"}, wantErr: `allowed backend host "https://vault.corp"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var entries []string
			AddBackendHostsFlag(fs, &entries)
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
			if !reflect.DeepEqual(entries, tc.want) {
				t.Errorf("entries %q, want %q", entries, tc.want)
			}
			if _, err := ParseBackendHosts(entries); err != nil {
				t.Errorf("the flag accepted entries ParseBackendHosts refuses: %v", err)
			}
		})
	}
	f := flag.NewFlagSet("x", flag.ContinueOnError)
	AddBackendHostsFlag(f, new([]string))
	if fl := f.Lookup(FlagAllowedBackendHosts); fl == nil || !strings.Contains(fl.Usage, "vaultAddress") {
		t.Errorf("flag %q not registered with its help", FlagAllowedBackendHosts)
	}
}
