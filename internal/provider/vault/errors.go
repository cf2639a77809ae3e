package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/ssinjector/ssi/internal/provider"
)

// errNoLease is a renewal answer without lease information.
var errNoLease = errors.New("the answer carries no lease")

// maxErrorText bounds what of Vault's own error text goes into a message.
const maxErrorText = 300

// apiError is a failed request to Vault, described on one line: the
// operation, the path and Vault's answer. It never quotes request or
// response bodies beyond Vault's error strings.
type apiError struct {
	// Op says what was attempted, e.g. `GET /v1/secret/data/app`.
	Op string
	// Status is the HTTP status, 0 for transport failures.
	Status int
	// Errors is Vault's error list.
	Errors []string
	// Err is the underlying error.
	Err error
	// Hint is appended for the user, e.g. on a 404.
	Hint string
}

func (e *apiError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("%s: %v", e.Op, e.Err)
	}
	text := strings.Join(strings.Fields(strings.Join(e.Errors, "; ")), " ")
	if len(text) > maxErrorText {
		text = text[:maxErrorText] + "..."
	}
	if text == "" {
		text = http.StatusText(e.Status)
	}
	if e.Hint != "" {
		text += " (" + e.Hint + ")"
	}
	return fmt.Sprintf("%s: Vault answered %d: %s", e.Op, e.Status, text)
}

func (e *apiError) Unwrap() error { return e.Err }

// newAPIError describes err, returned for a request described by op.
func newAPIError(op string, resp *vaultapi.Response, err error) *apiError {
	ae := &apiError{Op: op, Err: err}
	var re *vaultapi.ResponseError
	switch {
	case errors.As(err, &re):
		ae.Status = re.StatusCode
		if re.RawError {
			// Not Vault's JSON (a proxy's page, say): say so, quote nothing.
			ae.Errors = []string{"a non-Vault error body"}
		} else {
			ae.Errors = re.Errors
		}
	case resp != nil && resp.StatusCode >= 400:
		ae.Status = resp.StatusCode
	}
	return ae
}

// statusOf is the HTTP status of a failed request, 0 when there was none.
func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// reasonOf classifies a failed read (login failures are classified by
// the caller).
func reasonOf(err error) provider.Reason {
	var pe *provider.Error
	if errors.As(err, &pe) {
		return pe.Reason
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return provider.ReasonUnavailable
	}
	switch s := statusOf(err); {
	case s == 0:
		return provider.ReasonUnavailable
	case s == http.StatusForbidden:
		return provider.ReasonAccessDenied
	case s == http.StatusUnauthorized:
		return provider.ReasonUnauthenticated
	case s == http.StatusNotFound:
		return provider.ReasonNotFound
	case s == http.StatusTooManyRequests:
		return provider.ReasonThrottled
	case s >= 500:
		return provider.ReasonUnavailable
	case s >= 400:
		return provider.ReasonInvalidConfig
	}
	return provider.ReasonUnknown
}

// classify returns the reason of err, preferring one set with
// provider.WithReason.
func classify(err error) provider.Reason {
	var re *provider.Reasoned
	if errors.As(err, &re) {
		return re.Reason
	}
	return reasonOf(err)
}
