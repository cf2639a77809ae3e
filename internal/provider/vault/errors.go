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
	// login marks a login request, whose statuses mean what loginReasons
	// says.
	login bool
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

// statusReasons are Vault's exceptions to provider.ReasonForHTTP for one
// kind of request.
type statusReasons struct {
	// except maps single statuses.
	except map[int]provider.Reason
	// clientError is the Reason of a 4xx that neither except nor
	// provider.ReasonForHTTP names.
	clientError provider.Reason
}

var (
	// readReasons are those of reads (and of every request but a login).
	readReasons = statusReasons{
		// Vault refuses a request it cannot serve as sent with a 4xx of its
		// choosing (405 for an operation the path does not support, 412
		// when a performance standby lacks the index a client asked for,
		// which this provider never does): the class's path, method or
		// arguments are wrong, and a retry of the same request cannot help.
		clientError: provider.ReasonInvalidConfig,
	}
	// loginReasons are those of a login: a refused login is the
	// identity's failure, whatever 4xx Vault's auth method picks, unless
	// it is throttling (429) or Vault failing (5xx), as ReasonForHTTP says.
	loginReasons = statusReasons{
		except: map[int]provider.Reason{
			// An unknown role, or a JWT the auth method does not accept.
			http.StatusBadRequest: provider.ReasonUnauthenticated,
			// The role's bound service accounts or namespaces exclude the
			// pod's: the identity is refused, not a read by a policy.
			http.StatusForbidden: provider.ReasonUnauthenticated,
			// No auth method at the mount (vaultAuthMountPath): the
			// identity cannot log in there.
			http.StatusNotFound: provider.ReasonUnauthenticated,
		},
		clientError: provider.ReasonUnauthenticated,
	}
)

// classify returns err, the failure of the Vault request op, carrying its
// Reason (provider.WithReason), as an *apiError: one line naming op,
// Vault's status and its error strings, never a body. err is the client's
// error, or the *apiError newAPIError made of it for op when the answer
// was at hand (its status counts when the client could not read the body).
func classify(op string, err error) error {
	ae, ok := err.(*apiError) //nolint:errorlint // only newAPIError's own result is for op; a wrapped one is a cause
	if !ok {
		ae = newAPIError(op, nil, err)
	}
	return provider.WithReason(reasonOf(ae), ae)
}

// reasonOf is the Reason of err, a failure on the way to a fetch's result:
// the one decided where it happened (provider.WithReason or a
// *provider.Error), else that of a request's status (statusReasons), else,
// for a request without an answer, Unavailable.
func reasonOf(err error) provider.Reason {
	var re *provider.Reasoned
	if errors.As(err, &re) {
		return re.Reason
	}
	var pe *provider.Error
	if errors.As(err, &pe) {
		return pe.Reason
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return provider.ReasonUnavailable
	}
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status == 0 {
		return provider.ReasonUnavailable
	}
	reasons := readReasons
	if ae.login {
		reasons = loginReasons
	}
	r := provider.ReasonForHTTP(ae.Status, reasons.except)
	if r == provider.ReasonUnknown && ae.Status >= 400 && ae.Status < 500 {
		r = reasons.clientError
	}
	return r
}
