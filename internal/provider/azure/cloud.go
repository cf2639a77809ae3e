package azure

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"

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
// environment file for AzureStackCloud, and the overrides from the
// environment.
func resolveCloud(az *spc.Azure, getenv func(string) string) (cloudEndpoints, error) {
	var ce cloudEndpoints
	if az.Cloud == spc.AzureStackCloud {
		b, err := os.ReadFile(az.CloudEnvFileName)
		if err != nil {
			return ce, fmt.Errorf("read cloudEnvFileName %s: %w", az.CloudEnvFileName, err)
		}
		var env stackEnvironment
		if err := json.Unmarshal(b, &env); err != nil {
			return ce, fmt.Errorf("cloudEnvFileName %s is not an Azure environment JSON document: %w", az.CloudEnvFileName, err)
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
		return ce, fmt.Errorf("authority host %q is not an https URL", ce.authorityHost)
	}
	return ce, nil
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
