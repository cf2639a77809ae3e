package provider

import (
	"errors"
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
