package azure

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
)

var aadCode = regexp.MustCompile(`AADSTS[0-9]+`)

// aadHints explain the Entra errors a misconfigured workload identity gets.
var aadHints = map[string]string{
	"AADSTS700211": "no federated identity credential matches the token's issuer: check the issuer URL of the cluster in the federated credential",
	"AADSTS700213": "no federated identity credential matches the token's subject: it must be system:serviceaccount:<namespace>:<service account>",
	"AADSTS700212": "no federated identity credential matches the token's audience: it must be api://AzureADTokenExchange",
	"AADSTS700016": "the client ID is not an application or managed identity of this tenant",
	"AADSTS90002":  "the tenant does not exist",
}

// classify returns err, the failure of the Key Vault or Entra call op,
// carrying its Reason (provider.WithReason) under a summary that names the
// operation, the HTTP status and the service's error code
// (provider.Summarize): response bodies of Key Vault and Entra are never
// part of a message, so no server (or proxy) can make a value appear in a
// log line.
func classify(op string, err error) error {
	var re *azcore.ResponseError
	var af *azidentity.AuthenticationFailedError
	switch {
	case errors.As(err, &af):
		msg := op + ": Microsoft Entra authentication failed"
		if af.RawResponse != nil {
			// The response body is Entra's; only its error code is kept.
			msg += fmt.Sprintf(": HTTP %d", af.RawResponse.StatusCode)
			if code := aadCode.FindString(af.Error()); code != "" {
				msg += " " + code
				if h, ok := aadHints[code]; ok {
					msg += " (" + h + ")"
				}
			}
		} else {
			// No response: the failure is local, for example the pod's
			// token could not be read; its text is the provider's own.
			msg += ": " + strings.SplitN(af.Error(), "\n", 2)[0]
		}
		return provider.WithReason(provider.ReasonUnauthenticated, provider.Summarize(msg, err))
	case errors.Is(err, identity.ErrNoToken):
		return provider.WithReason(provider.ReasonUnauthenticated, fmt.Errorf("%s: %w", op, err))
	case errors.As(err, &re):
		msg := fmt.Sprintf("%s: HTTP %d", op, re.StatusCode)
		if re.ErrorCode != "" {
			msg += " " + re.ErrorCode
		}
		// Key Vault's statuses have the meanings all backends share (no
		// exceptions); the rest of 4xx stays ReasonUnknown.
		return provider.WithReason(provider.ReasonForHTTP(re.StatusCode, nil), provider.Summarize(msg, err))
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return provider.WithReason(provider.ReasonUnavailable, fmt.Errorf("%s: %w", op, err))
	}
	// Transport errors (DNS, TLS, connection refused) name hosts, not data.
	return provider.WithReason(provider.ReasonUnavailable, fmt.Errorf("%s: %w", op, err))
}
