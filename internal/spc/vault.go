package spc

import (
	"fmt"
	"io/fs"
	"net/url"
	"sort"
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
	if v.SkipTLSVerify, err = p.boolParam("vaultSkipTLSVerify"); err != nil {
		return nil, err
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
	if len(objs) == 0 {
		return nil, p.errf("parameters.objects", "is empty; list at least one object")
	}
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
		switch strings.ToUpper(o.Method) {
		case "GET", "PUT", "POST":
			o.Method = strings.ToUpper(o.Method)
		default:
			return nil, p.errf(field+".method", "must be GET, PUT or POST, got %q", o.Method)
		}
		if o.FilePermission > 0o777 {
			return nil, p.errf(field+".filePermission", "must be a permission between 0000 and 0777 (a YAML integer such as 0600), got %d", uint32(o.FilePermission))
		}
		switch e := strings.ToLower(o.Encoding); e {
		case "", VaultEncodingUTF8, VaultEncodingBase64, VaultEncodingHex:
			o.Encoding = e
		default:
			return nil, p.errf(field+".encoding", "must be utf-8, base64 or hex, got %q", o.Encoding)
		}
		if o.Encoding != "" && o.Encoding != VaultEncodingUTF8 && o.SecretKey == "" {
			p.warnf(field+".encoding", "is ignored without secretKey, as upstream ignores it: the whole response is written as JSON")
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
		out = append(out, FileSpec{Path: o.ObjectName, Mode: o.FilePermission})
	}
	return out
}
