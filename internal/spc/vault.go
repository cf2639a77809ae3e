package spc

import (
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Vault encodings of secretKey values.
const (
	VaultEncodingUTF8   = "utf-8"
	VaultEncodingBase64 = "base64"
	VaultEncodingHex    = "hex"
)

// DefaultVaultAuthMount is the auth mount used when the class names none.
const DefaultVaultAuthMount = "kubernetes"

// Vault is the parameters of provider "vault", as the upstream Vault CSI
// provider reads them.
type Vault struct {
	// Address is vaultAddress; empty means VAULT_ADDR of the agent.
	Address  string
	RoleName string
	// AuthMountPath is vaultAuthMountPath or vaultKubernetesMountPath.
	AuthMountPath     string
	Namespace         string
	CACertPath        string
	CADirectory       string
	TLSServerName     string
	TLSClientCertPath string
	TLSClientKeyPath  string
	SkipTLSVerify     bool
	// Audience of the service-account token used to log in. When empty
	// the token's audience is "vault" if the installation's token
	// requests include it, else the API server's default
	// (identity.VaultAudience, vault-csi-provider's rule).
	Audience string

	Objects []VaultObject
}

// VaultObject is one entry of the "objects" list.
type VaultObject struct {
	ObjectName     string         `yaml:"objectName"`
	SecretPath     string         `yaml:"secretPath"`
	SecretKey      string         `yaml:"secretKey"`
	Method         string         `yaml:"method"`
	SecretArgs     map[string]any `yaml:"secretArgs"`
	FilePermission fs.FileMode    `yaml:"filePermission"`
	Encoding       string         `yaml:"encoding"`
	// ExactMode means FilePermission is written as it is, zero included:
	// a filePermission with no permission bits (01000) is written 0000, as
	// upstream writes it. A filePermission of 0 is the default (0644).
	ExactMode bool `yaml:"-"`

	// APIPath is secretPath normalised to start with "/v1/", without query.
	APIPath string `yaml:"-"`
	// Query is the query string of secretPath, e.g. version=2.
	Query url.Values `yaml:"-"`
}

func parseVault(p *parser) (*Vault, error) {
	v := &Vault{
		Address:           strings.TrimSpace(p.get("vaultAddress")),
		RoleName:          strings.TrimSpace(p.get("roleName")),
		Namespace:         strings.TrimSpace(p.get("vaultNamespace")),
		CACertPath:        p.get("vaultCACertPath"),
		CADirectory:       p.get("vaultCADirectory"),
		TLSServerName:     p.get("vaultTLSServerName"),
		TLSClientCertPath: p.get("vaultTLSClientCertPath"),
		TLSClientKeyPath:  p.get("vaultTLSClientKeyPath"),
		Audience:          p.get("audience"),
	}
	if p.has("vaultKubernetesMountPath") && p.has("vaultAuthMountPath") {
		return nil, p.errf("parameters.vaultAuthMountPath", "cannot be set together with vaultKubernetesMountPath")
	}
	v.AuthMountPath = strings.Trim(p.get("vaultAuthMountPath")+p.get("vaultKubernetesMountPath"), "/ ")
	if v.AuthMountPath == "" {
		v.AuthMountPath = DefaultVaultAuthMount
	}
	if v.Address != "" {
		u, err := url.Parse(v.Address)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, p.errf("parameters.vaultAddress", "%q is not an http(s) URL", v.Address)
		}
	}
	var err error
	if raw, ok := p.params["vaultSkipTLSVerify"]; ok {
		// Upstream parses the value as given, with strconv.ParseBool: an
		// empty or padded value fails every mount, so it is refused here.
		if v.SkipTLSVerify, err = strconv.ParseBool(raw); err != nil {
			return nil, p.errf("parameters.vaultSkipTLSVerify", "%q is not a boolean (use \"true\" or \"false\"; upstream refuses an empty or padded value)", raw)
		}
	}
	if v.RoleName == "" {
		return nil, p.errf("parameters.roleName", "is required")
	}
	if (v.TLSClientCertPath == "") != (v.TLSClientKeyPath == "") {
		return nil, p.errf("parameters.vaultTLSClientCertPath", "vaultTLSClientCertPath and vaultTLSClientKeyPath must be set together")
	}
	raw := p.get("objects")
	if strings.TrimSpace(raw) == "" {
		return nil, p.errf("parameters.objects", "is empty; list at least one object")
	}
	var objs []VaultObject
	if err := yaml.Unmarshal([]byte(raw), &objs); err != nil {
		return nil, p.errf("parameters.objects", "is not a YAML list of objects: %v", err)
	}
	// An explicit empty list (objects: "[]") is a class with no objects:
	// the volume stays empty, and the mount does not fail.
	seen := map[string]bool{}
	var dups []string
	for i := range objs {
		o := &objs[i]
		field := fmt.Sprintf("parameters.objects[%d]", i)
		if o.ObjectName == "" {
			return nil, p.errf(field+".objectName", "is required")
		}
		if seen[o.ObjectName] {
			dups = append(dups, o.ObjectName)
		}
		seen[o.ObjectName] = true
		if strings.TrimSpace(o.SecretPath) == "" {
			return nil, p.errf(field+".secretPath", "is required")
		}
		pathPart, query, _ := strings.Cut(o.SecretPath, "?")
		if o.Query, err = url.ParseQuery(query); err != nil {
			return nil, p.errf(field+".secretPath", "query %q does not parse: %v", query, err)
		}
		o.APIPath = vaultAPIPath(pathPart)
		if o.APIPath == "/v1/" {
			return nil, p.errf(field+".secretPath", "%q names no secret", o.SecretPath)
		}
		if o.Method == "" {
			o.Method = "GET"
		}
		switch o.Method {
		case "GET", "PUT", "POST":
		default:
			// Upstream sends the method as written; Vault answers 405 to
			// any other spelling ("get"), so the class could never mount.
			// LIST and DELETE are refused on purpose (docs/providers/vault.md).
			if up := strings.ToUpper(o.Method); up == "GET" || up == "PUT" || up == "POST" {
				return nil, p.errf(field+".method", "%q must be upper case (%s): Vault answers 405 Method Not Allowed to %q", o.Method, up, o.Method)
			}
			return nil, p.errf(field+".method", "must be GET, PUT or POST, got %q", o.Method)
		}
		if o.FilePermission != 0 {
			raw := uint32(o.FilePermission)
			if o.FilePermission, err = p.specialMode(field+".filePermission", raw); err != nil {
				return nil, err
			}
			if o.FilePermission == 0 {
				// Upstream writes mode 0000 for e.g. 01000; so is it here,
				// with a warning.
				p.warnf(field+".filePermission", zeroModeWarning, raw)
				o.ExactMode = true
			}
		}
		if o.SecretKey == "" {
			// Upstream writes the whole response as JSON and never looks at
			// encoding then, whatever its value.
			if o.Encoding != "" && !strings.EqualFold(o.Encoding, VaultEncodingUTF8) {
				p.warnf(field+".encoding", "%q is ignored without secretKey, as upstream ignores it: the whole response is written as JSON", o.Encoding)
			}
			o.Encoding = ""
		} else {
			switch e := strings.ToLower(o.Encoding); e {
			case "", VaultEncodingUTF8, VaultEncodingBase64, VaultEncodingHex:
				o.Encoding = e
			default:
				return nil, p.errf(field+".encoding", "must be utf-8, base64 or hex, got %q", o.Encoding)
			}
		}
		p.file(o.ObjectName, field+".objectName")
	}
	if len(dups) > 0 {
		sort.Strings(dups)
		return nil, p.errf("parameters.objects", "each objectName must be unique; duplicated: %s", strings.Join(dups, ", "))
	}
	v.Objects = objs
	return v, nil
}

// vaultAPIPath normalises secretPath the way the upstream provider does:
// "x", "/x", "v1/x" and "/v1/x" all become "/v1/x".
func vaultAPIPath(p string) string {
	p = strings.TrimPrefix(p, "/")
	p = strings.TrimPrefix(p, "v1/")
	return "/v1/" + p
}

func (v *Vault) files() []FileSpec {
	var out []FileSpec
	for _, o := range v.Objects {
		out = append(out, FileSpec{Path: o.ObjectName, Mode: o.FilePermission, ExactMode: o.ExactMode})
	}
	return out
}
