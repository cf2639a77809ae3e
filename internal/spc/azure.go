package spc

import (
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Azure object types, formats and encodings.
const (
	AzureSecret = "secret"
	AzureKey    = "key"
	AzureCert   = "cert"

	AzureFormatPEM = "pem"
	AzureFormatPFX = "pfx"

	AzureEncodingUTF8   = "utf-8"
	AzureEncodingBase64 = "base64"
	AzureEncodingHex    = "hex"
)

// Azure clouds as cloudName selects them (case-insensitive, go-autorest
// names and aliases).
const (
	AzurePublicCloud       = "AzurePublicCloud"
	AzureUSGovernmentCloud = "AzureUSGovernmentCloud"
	AzureChinaCloud        = "AzureChinaCloud"
	AzureStackCloud        = "AzureStackCloud"
)

// Azure is the parameters of provider "azure", as the upstream Azure Key
// Vault provider reads them.
type Azure struct {
	KeyvaultName string
	TenantID     string
	ClientID     string
	// Cloud is one of the Azure*Cloud constants.
	Cloud            string
	CloudEnvFileName string

	// Legacy identity switches.
	UsePodIdentity         bool
	UseVMManagedIdentity   bool
	UseAzureTokenProxy     bool
	UserAssignedIdentityID string

	Objects []AzureObject
}

// AzureObject is one item of the objects "array".
type AzureObject struct {
	ObjectName           string `yaml:"objectName"`
	ObjectAlias          string `yaml:"objectAlias"`
	ObjectType           string `yaml:"objectType"`
	ObjectVersion        string `yaml:"objectVersion"`
	ObjectVersionHistory int32  `yaml:"objectVersionHistory"`
	ObjectFormat         string `yaml:"objectFormat"`
	ObjectEncoding       string `yaml:"objectEncoding"`
	FilePermissionText   string `yaml:"filePermission"`

	FilePermission fs.FileMode `yaml:"-"`
	// FileName is the file, or with a version history the directory of
	// files "<FileName>/<i>".
	FileName string `yaml:"-"`
}

// ID is the upstream object id: "<type>/<name>".
func (o *AzureObject) ID() string { return o.ObjectType + "/" + o.ObjectName }

var azureVaultName = regexp.MustCompile(`^[-A-Za-z0-9]{3,24}$`)

func parseAzure(p *parser) (*Azure, error) {
	az := &Azure{
		KeyvaultName:           strings.TrimSpace(p.get("keyvaultName")),
		TenantID:               strings.TrimSpace(p.get("tenantID")),
		ClientID:               strings.TrimSpace(p.get("clientID")),
		CloudEnvFileName:       strings.TrimSpace(p.get("cloudEnvFileName")),
		UserAssignedIdentityID: strings.TrimSpace(p.get("userAssignedIdentityID")),
	}
	if az.TenantID == "" {
		az.TenantID = strings.TrimSpace(p.get("tenantId"))
	}
	if az.KeyvaultName == "" {
		return nil, p.errf("parameters.keyvaultName", "is required")
	}
	if !azureVaultName.MatchString(az.KeyvaultName) {
		return nil, p.errf("parameters.keyvaultName", "%q must be 3 to 24 letters, digits or '-'", az.KeyvaultName)
	}
	if az.TenantID == "" {
		return nil, p.errf("parameters.tenantId", "is required (tenantID or tenantId)")
	}
	var err error
	if az.Cloud, err = azureCloud(strings.TrimSpace(p.get("cloudName")), az.CloudEnvFileName); err != nil {
		return nil, p.errf("parameters.cloudName", "%v", err)
	}
	if az.UsePodIdentity, err = p.boolParam("usePodIdentity"); err != nil {
		return nil, err
	}
	if az.UseVMManagedIdentity, err = p.boolParam("useVMManagedIdentity"); err != nil {
		return nil, err
	}
	if az.UseAzureTokenProxy, err = p.boolParam("useAzureTokenProxy"); err != nil {
		return nil, err
	}
	n := 0
	for _, b := range []bool{az.UsePodIdentity, az.UseVMManagedIdentity, az.UseAzureTokenProxy} {
		if b {
			n++
		}
	}
	if n > 1 {
		return nil, p.errf("parameters.usePodIdentity", "only one of usePodIdentity, useVMManagedIdentity and useAzureTokenProxy can be \"true\"")
	}

	raw := p.get("objects")
	if strings.TrimSpace(raw) == "" {
		return nil, p.errf("parameters.objects", "is required")
	}
	var wrapper struct {
		Array []string `yaml:"array"`
	}
	if err := yaml.Unmarshal([]byte(raw), &wrapper); err != nil {
		return nil, p.errf("parameters.objects", "must be a YAML map with key \"array\" listing one YAML document string per object: %v", err)
	}
	// An explicit empty array (objects: "array: []") is a class with no
	// objects: the volume stays empty, and the mount does not fail.
	for i, doc := range wrapper.Array {
		field := fmt.Sprintf("parameters.objects.array[%d]", i)
		var o AzureObject
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			return nil, p.errf(field, "is not a YAML object: %v", err)
		}
		trim(&o.ObjectName, &o.ObjectAlias, &o.ObjectType, &o.ObjectVersion, &o.ObjectFormat, &o.ObjectEncoding, &o.FilePermissionText)
		if err := validateAzureObject(p, &o, field); err != nil {
			return nil, err
		}
		p.file(o.FileName, field+".objectAlias")
		az.Objects = append(az.Objects, o)
	}
	return az, nil
}

func validateAzureObject(p *parser, o *AzureObject, field string) error {
	if o.ObjectName == "" {
		return p.errf(field+".objectName", "is required")
	}
	switch o.ObjectType {
	case AzureSecret, AzureKey, AzureCert:
	case "":
		return p.errf(field+".objectType", "is required (secret, key or cert)")
	default:
		return p.errf(field+".objectType", "must be secret, key or cert, got %q", o.ObjectType)
	}
	if o.ObjectFormat != "" {
		f := strings.ToLower(o.ObjectFormat)
		if f != AzureFormatPEM && f != AzureFormatPFX {
			return p.errf(field+".objectFormat", "must be pem or pfx, got %q", o.ObjectFormat)
		}
		if f == AzureFormatPFX && o.ObjectType != AzureSecret {
			return p.errf(field+".objectFormat", "pfx is only supported for objectType secret")
		}
		o.ObjectFormat = f
	}
	if o.ObjectEncoding != "" {
		if o.ObjectType != AzureSecret {
			return p.errf(field+".objectEncoding", "is only supported for objectType secret")
		}
		e := strings.ToLower(o.ObjectEncoding)
		if e != AzureEncodingUTF8 && e != AzureEncodingBase64 && e != AzureEncodingHex {
			return p.errf(field+".objectEncoding", "must be utf-8, base64 or hex, got %q", o.ObjectEncoding)
		}
		o.ObjectEncoding = e
	}
	if o.ObjectVersionHistory < 0 {
		return p.errf(field+".objectVersionHistory", "must not be negative, got %d", o.ObjectVersionHistory)
	}
	if o.FilePermissionText != "" {
		v, err := strconv.ParseUint(o.FilePermissionText, 8, 32)
		if err != nil || v > 0o777 {
			return p.errf(field+".filePermission", "must be an octal permission such as \"0644\", got %q", o.FilePermissionText)
		}
		o.FilePermission = fs.FileMode(v)
	}
	o.FileName = o.ObjectAlias
	if o.FileName == "" {
		o.FileName = o.ObjectName
	}
	if strings.HasPrefix(o.FileName, "/") {
		return p.errf(field+".objectAlias", "file name %q must be a relative path", o.FileName)
	}
	if strings.Contains(o.FileName, "..") {
		return p.errf(field+".objectAlias", "file name %q must not contain \"..\"", o.FileName)
	}
	return nil
}

// azureCloud maps cloudName to a canonical cloud, accepting the names and
// aliases of go-autorest's environment table (case-insensitive).
func azureCloud(name, envFile string) (string, error) {
	switch strings.ToUpper(name) {
	case "", "AZURECLOUD", "AZUREPUBLICCLOUD":
		return AzurePublicCloud, nil
	case "AZUREUSGOVERNMENT", "AZUREUSGOVERNMENTCLOUD":
		return AzureUSGovernmentCloud, nil
	case "AZURECHINACLOUD":
		return AzureChinaCloud, nil
	case "AZURESTACKCLOUD":
		if envFile == "" {
			return "", fmt.Errorf("AzureStackCloud needs parameters.cloudEnvFileName, the JSON file describing the cloud's endpoints")
		}
		return AzureStackCloud, nil
	case "AZUREGERMANCLOUD":
		return "", fmt.Errorf("AzureGermanCloud was closed by Microsoft; use AzurePublicCloud")
	}
	return "", fmt.Errorf("%q is not a known cloud (AzurePublicCloud, AzureUSGovernmentCloud, AzureChinaCloud, or AzureStackCloud with cloudEnvFileName)", name)
}

func trim(ss ...*string) {
	for _, s := range ss {
		*s = strings.TrimSpace(*s)
	}
}

func (az *Azure) files() []FileSpec {
	var out []FileSpec
	for _, o := range az.Objects {
		out = append(out, FileSpec{Path: o.FileName, Mode: o.FilePermission, Dir: o.ObjectVersionHistory > 1})
	}
	return out
}
