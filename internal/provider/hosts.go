package provider

import (
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"strings"

	"github.com/ssinjector/ssi/internal/spc"
)

// BackendHosts limits the backend addresses that a class may name in a
// process serving many tenants (the sync controller, the node shim): a
// class parameter such as the Vault provider's vaultAddress otherwise sends
// the process's requests, and the tokens it mints or receives for the
// tenant, to any host the class author likes. The cloud providers' endpoints
// are chosen by their SDKs from the region or cloud, not named by the
// class, and are not limited here.
//
// Entries are host names, which may hold * wildcards (path.Match syntax,
// case-insensitive: "*.vault.example.com", "vault.example.com"), IP
// addresses ("10.0.0.7", "fd00::7") and CIDR prefixes ("10.0.0.0/8"). A
// host name matches only name entries and an IP address only address and
// prefix entries: a name is not resolved, since what it resolves to at
// check time is not what it resolves to at dial time. Ports are ignored.
// A nil *BackendHosts allows every host.
type BackendHosts struct {
	entries []string
	globs   []string
	nets    []netip.Prefix
}

// FlagAllowedBackendHosts is the flag every shared process (`ssi-webhook
// sync`, `ssi-agent csi`) reads its BackendHosts from.
const FlagAllowedBackendHosts = "allowed-backend-hosts"

// AddBackendHostsFlag registers --allowed-backend-hosts on fs, the same
// name, syntax and help in every binary: each use appends its
// comma-separated entries to *entries, and an entry ParseBackendHosts
// refuses fails the flag, naming the entry. The caller parses *entries
// with ParseBackendHosts once the flags are parsed.
func AddBackendHostsFlag(fs *flag.FlagSet, entries *[]string) {
	fs.Func(FlagAllowedBackendHosts, "comma-separated host names (with * wildcards), IP addresses and CIDR prefixes that a class's backend address (vaultAddress) may name (repeatable; default: no limit)", func(s string) error {
		add := strings.Split(s, ",")
		if _, err := ParseBackendHosts(add); err != nil {
			return err
		}
		*entries = append(*entries, add...)
		return nil
	})
}

// ParseBackendHosts parses the entries of --allowed-backend-hosts; no
// entries means no limit (nil). Errors name the entry.
func ParseBackendHosts(entries []string) (*BackendHosts, error) {
	b := &BackendHosts{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		b.entries = append(b.entries, e)
		if strings.Contains(e, "/") {
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("allowed backend host %q: not a CIDR prefix: %w", e, err)
			}
			b.nets = append(b.nets, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(strings.Trim(e, "[]")); err == nil {
			b.nets = append(b.nets, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		g := strings.ToLower(strings.TrimSuffix(e, "."))
		if _, err := path.Match(g, ""); err != nil || strings.ContainsAny(g, ":[]\\ ") {
			return nil, fmt.Errorf("allowed backend host %q: not a host name pattern, IP address or CIDR prefix", e)
		}
		b.globs = append(b.globs, g)
	}
	if len(b.entries) == 0 {
		return nil, nil
	}
	return b, nil
}

// String lists the entries, comma-separated ("" for no limit).
func (b *BackendHosts) String() string {
	if b == nil {
		return ""
	}
	return strings.Join(b.entries, ",")
}

// Allows reports whether host (a name or an IP address, without port) may
// be contacted.
func (b *BackendHosts) Allows(host string) bool {
	if b == nil {
		return true
	}
	host = strings.Trim(strings.TrimSpace(host), "[]")
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		for _, p := range b.nets {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if name == "" {
		return false
	}
	for _, g := range b.globs {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// CheckClass returns an *Error (ReasonInvalidConfig) when the class names a
// backend address that is not allowed, naming the class, the parameter and
// the host; nil when it names none or b is nil.
func (b *BackendHosts) CheckClass(c *spc.Class) error {
	if b == nil || c == nil {
		return nil
	}
	if c.Vault != nil && c.Vault.Address != "" {
		if err := b.checkURL(c.Vault.Address); err != nil {
			return &Error{Class: c.Key(), Provider: c.Provider, Reason: ReasonInvalidConfig,
				Err: fmt.Errorf("parameters.vaultAddress: %w", err)}
		}
	}
	return nil
}

func (b *BackendHosts) checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not a URL with a host", raw)
	}
	host := u.Hostname()
	if h, _, err := net.SplitHostPort(u.Host); err == nil {
		host = h
	}
	if !b.Allows(host) {
		return fmt.Errorf("host %q is not among the backend hosts this process may contact (--allowed-backend-hosts %s)", host, b)
	}
	return nil
}
