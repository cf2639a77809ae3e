package azure

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/spc"
)

// Environment variables the provider reads.
const (
	// EnvAuthorityHost is the standard Azure SDK variable that overrides the
	// Microsoft Entra authority host (for example a private login endpoint).
	EnvAuthorityHost = "AZURE_AUTHORITY_HOST"
	// EnvKeyVaultEndpoint is this project's variable that overrides the
	// Key Vault URL https://<keyvaultName>.<DNS suffix>/ for every class. It
	// points the provider at a compatible endpoint (an emulator, a private
	// proxy); challenge resource verification is then off because such an
	// endpoint's host never ends in the cloud's Key Vault DNS suffix.
	EnvKeyVaultEndpoint = "SSI_AZURE_KEYVAULT_ENDPOINT"
)

// cloudEndpoints are the endpoints of one Azure cloud that the provider uses.
type cloudEndpoints struct {
	// name is the canonical cloud name.
	name string
	// authorityHost is the Microsoft Entra login endpoint, with a trailing
	// slash.
	authorityHost string
	// keyVaultSuffix is the DNS suffix of vaults: https://<name>.<suffix>/.
	keyVaultSuffix string
	// knownAuthority is true for the public and sovereign clouds whose
	// authority hosts MSAL knows; other hosts skip instance discovery.
	knownAuthority bool
}

var clouds = map[string]cloudEndpoints{
	spc.AzurePublicCloud:       {spc.AzurePublicCloud, "https://login.microsoftonline.com/", "vault.azure.net", true},
	spc.AzureUSGovernmentCloud: {spc.AzureUSGovernmentCloud, "https://login.microsoftonline.us/", "vault.usgovcloudapi.net", true},
	spc.AzureChinaCloud:        {spc.AzureChinaCloud, "https://login.chinacloudapi.cn/", "vault.azure.cn", true},
}

// stackEnvironment is the part of an Azure environment file that the
// provider reads. The file is the JSON document of go-autorest's
// azure.Environment (the format AKS engine and Azure Stack Hub write, for
// example /etc/kubernetes/akscustom.json); other fields are ignored.
type stackEnvironment struct {
	Name                    string `json:"name"`
	ActiveDirectoryEndpoint string `json:"activeDirectoryEndpoint"`
	KeyVaultDNSSuffix       string `json:"keyVaultDNSSuffix"`
}

// resolveCloud returns the endpoints for the class: its cloud, the
// environment file for AzureStackCloud (read through files), and the
// overrides from the environment.
func resolveCloud(az *spc.Azure, getenv func(string) string, files limits.Files) (cloudEndpoints, error) {
	var ce cloudEndpoints
	if az.Cloud == spc.AzureStackCloud {
		b, err := files.ReadFile("cloudEnvFileName", az.CloudEnvFileName)
		if err != nil {
			return ce, err
		}
		var env stackEnvironment
		if err := json.Unmarshal(b, &env); err != nil {
			// The decoder's message quotes the offending byte: describe
			// the defect without the file's content.
			return ce, fmt.Errorf("cloudEnvFileName %s is not an Azure environment JSON document (%s)", az.CloudEnvFileName, jsonDefect(err))
		}
		if env.ActiveDirectoryEndpoint == "" || env.KeyVaultDNSSuffix == "" {
			return ce, fmt.Errorf("cloudEnvFileName %s must set activeDirectoryEndpoint and keyVaultDNSSuffix", az.CloudEnvFileName)
		}
		ce = cloudEndpoints{name: spc.AzureStackCloud, authorityHost: env.ActiveDirectoryEndpoint, keyVaultSuffix: strings.TrimPrefix(env.KeyVaultDNSSuffix, ".")}
	} else {
		var ok bool
		if ce, ok = clouds[az.Cloud]; !ok {
			return ce, fmt.Errorf("cloud %q is not supported", az.Cloud)
		}
	}
	if h := getenv(EnvAuthorityHost); h != "" {
		ce.authorityHost = h
		ce.knownAuthority = false
	}
	if !strings.HasSuffix(ce.authorityHost, "/") {
		ce.authorityHost += "/"
	}
	u, err := url.Parse(ce.authorityHost)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		if az.Cloud == spc.AzureStackCloud && getenv(EnvAuthorityHost) == "" {
			// From the file: its content is not quoted.
			return ce, fmt.Errorf("activeDirectoryEndpoint of cloudEnvFileName %s is not an https URL", az.CloudEnvFileName)
		}
		return ce, fmt.Errorf("authority host %q is not an https URL", ce.authorityHost)
	}
	return ce, nil
}

// jsonDefect describes a JSON decoding error by its position or field,
// never by the bytes found.
func jsonDefect(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q is not a %s", te.Field, te.Type)
	}
	return "invalid JSON"
}

// vaultURL is the Key Vault to read, and whether the Key Vault challenge's
// resource must match its host.
func vaultURL(az *spc.Azure, ce cloudEndpoints, getenv func(string) string) (string, bool, error) {
	if e := getenv(EnvKeyVaultEndpoint); e != "" {
		u, err := url.Parse(e)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return "", false, fmt.Errorf("%s=%q is not an https URL (the Key Vault SDK requires TLS)", EnvKeyVaultEndpoint, e)
		}
		return strings.TrimSuffix(e, "/") + "/", false, nil
	}
	return "https://" + az.KeyvaultName + "." + ce.keyVaultSuffix + "/", true, nil
}
