package spc

import (
	"fmt"
	"io/fs"
	"path"
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
	// ExactMode means FilePermission is written as it is even when it is
	// zero: upstream writes mode 0000 for a filePermission that is "0",
	// keeps no permission bits, or does not parse as octal.
	ExactMode bool `yaml:"-"`
	// FileName is the file, or with a version history the directory of
	// files "<FileName>/<i>".
	FileName string `yaml:"-"`
}

// ID is the upstream object id: "<type>/<name>".
func (o *AzureObject) ID() string { return o.ObjectType + "/" + o.ObjectName }

var azureVaultName = regexp.MustCompile(`^[-A-Za-z0-9]{3,24}$`)

// azureTenantID is the Azure SDK's rule for tenant IDs (azidentity
// validTenantID): it becomes a path element of the authority's URLs.
var azureTenantID = regexp.MustCompile(`^[-.A-Za-z0-9]+$`)

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
	if !az.UseVMManagedIdentity && len(az.Objects) > 0 && !azureTenantID.MatchString(az.TenantID) {
		// The Azure SDK refuses such a tenant when upstream builds the
		// credential, so every mount fails; a managed identity takes no
		// tenant, and a class without objects builds no credential.
		field := "parameters.tenantID"
		if strings.TrimSpace(p.get("tenantID")) == "" {
			field = "parameters.tenantId"
		}
		return nil, p.errf(field, "%q is not a tenant ID (letters, digits, '.' and '-', such as a GUID or contoso.onmicrosoft.com)", az.TenantID)
	}
	if !azureVaultName.MatchString(az.KeyvaultName) {
		// Upstream checks the name only when it builds the vault's URL,
		// which a class without objects never does: it is served, empty.
		if len(az.Objects) == 0 {
			p.warnf("parameters.keyvaultName", "%q is not a valid vault name (3 to 24 letters, digits or '-'); the class has no objects, so no vault is called and the volume stays empty, as upstream", az.KeyvaultName)
			return az, nil
		}
		return nil, p.errf("parameters.keyvaultName", "%q must be 3 to 24 letters, digits or '-'", az.KeyvaultName)
	}
	return az, nil
}

// azureObjectName is Key Vault's rule for secret, key and certificate names;
// upstream sends any other name to Key Vault, which never finds it.
var azureObjectName = regexp.MustCompile(`^[-A-Za-z0-9]{1,127}$`)

func validateAzureObject(p *parser, o *AzureObject, field string) error {
	if o.ObjectName == "" {
		return p.errf(field+".objectName", "is required")
	}
	if !azureObjectName.MatchString(o.ObjectName) {
		return p.errf(field+".objectName", "%q is not a Key Vault object name (1 to 127 letters, digits or '-'), so no such object can exist", o.ObjectName)
	}
	// Upstream compares objectType exactly ("Secret" fails every mount).
	switch o.ObjectType {
	case AzureSecret, AzureKey, AzureCert:
	case "":
		return p.errf(field+".objectType", "is required (secret, key or cert)")
	default:
		return p.errf(field+".objectType", "must be secret, key or cert (lower case), got %q", o.ObjectType)
	}
	if o.ObjectFormat != "" {
		// Upstream accepts pem and pfx in any case, but refuses only the
		// lower-case "pfx" for keys and certificates (an exact
		// comparison): "PFX" on a key is served, and ignored.
		f := strings.ToLower(o.ObjectFormat)
		if f != AzureFormatPEM && f != AzureFormatPFX {
			return p.errf(field+".objectFormat", "must be pem or pfx (any case), got %q", o.ObjectFormat)
		}
		if o.ObjectFormat == AzureFormatPFX && o.ObjectType != AzureSecret {
			return p.errf(field+".objectFormat", "pfx is only supported for objectType secret")
		}
		if f == AzureFormatPFX && o.ObjectType != AzureSecret {
			p.warnf(field+".objectFormat", "%q is ignored for objectType %s: the %s is written as PEM, as upstream does (it refuses only the lower-case \"pfx\" here)", o.ObjectFormat, o.ObjectType, azureTypeNoun(o.ObjectType))
		}
		o.ObjectFormat = f
	}
	if o.ObjectEncoding != "" {
		if o.ObjectType != AzureSecret {
			return p.errf(field+".objectEncoding", "is only supported for objectType secret")
		}
		e := strings.ToLower(o.ObjectEncoding)
		if e != AzureEncodingUTF8 && e != AzureEncodingBase64 && e != AzureEncodingHex {
			return p.errf(field+".objectEncoding", "must be utf-8, base64 or hex (any case), got %q", o.ObjectEncoding)
		}
		o.ObjectEncoding = e
	}
	if o.ObjectVersionHistory < 0 {
		// Upstream syncs a single version for any value up to 1.
		p.warnf(field+".objectVersionHistory", "%d is below 1: one version is written, as file %q, as upstream does for any value up to 1", o.ObjectVersionHistory, o.fileName())
	}
	if err := azureFileMode(p, o, field+".filePermission"); err != nil {
		return err
	}
	o.FileName = o.fileName()
	if strings.HasPrefix(o.FileName, "/") {
		return p.errf(field+".objectAlias", "file name %q must be a relative path", o.FileName)
	}
	if strings.Contains(o.FileName, "..") {
		return p.errf(field+".objectAlias", "file name %q must not contain \"..\"", o.FileName)
	}
	if o.ObjectVersionHistory > 1 {
		// Upstream joins the alias and the index with filepath.Join, which
		// cleans the alias ("dir/" and "./dir" become "dir").
		o.FileName = path.Clean(o.FileName)
		if o.FileName == "." {
			return p.errf(field+".objectAlias", "%q with objectVersionHistory would put the version files in the volume's top directory; name a directory", o.fileName())
		}
		// Upstream's loop stops one version late and writes N+1 files;
		// the number asked for is written here.
		n := o.ObjectVersionHistory
		p.warnf(field+".objectVersionHistory", "%d: the %d newest versions are written, as %s/0 to %s/%d; upstream writes one more (%s/%d) when the object has that many versions", n, n, o.FileName, o.FileName, n-1, o.FileName, n)
	}
	return nil
}

func (o *AzureObject) fileName() string {
	if o.ObjectAlias != "" {
		return o.ObjectAlias
	}
	return o.ObjectName
}

func azureTypeNoun(t string) string {
	if t == AzureKey {
		return "public key"
	}
	return "certificate"
}

// azureFileMode reads filePermission as upstream does (strconv.ParseInt in
// base 8) and ends with the mode upstream's files get: upstream ignores a
// parse error and writes the file with mode 0000, which is admitted here
// with a warning and written the same way.
func azureFileMode(p *parser, o *AzureObject, field string) error {
	if o.FilePermissionText == "" {
		return nil
	}
	v, err := strconv.ParseInt(o.FilePermissionText, 8, 32)
	if err != nil {
		o.FilePermission, o.ExactMode = 0, true
		p.warnf(field, "%q is not an octal number such as \"0644\"; the file is written with mode 0000 (unreadable), as upstream writes it", o.FilePermissionText)
		return nil
	}
	if v < 0 || v > 0o7777 {
		return p.errf(field, "must be an octal permission between 0000 and 07777 such as \"0644\", got %q", o.FilePermissionText)
	}
	if v&0o777 == 0 {
		o.FilePermission, o.ExactMode = 0, true
		p.warnf(field, "%q leaves no permission bits; the file is written with mode 0000 (unreadable), as upstream writes it", o.FilePermissionText)
		return nil
	}
	m, err := p.specialMode(field, uint32(v))
	if err != nil {
		return err
	}
	o.FilePermission = m
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
		out = append(out, FileSpec{Path: o.FileName, Mode: o.FilePermission, ExactMode: o.ExactMode, Dir: o.ObjectVersionHistory > 1})
	}
	return out
}
