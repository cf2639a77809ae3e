package aws

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
)

// callError is the failure of one backend call for one object in one
// region. Its err never holds secret material: AWS error messages name
// resources, never values, and response bodies that fail to decode are
// replaced by a fixed text.
type callError struct {
	region string
	reason provider.Reason
	// fatal marks failures the failover region cannot fix: client
	// faults (not found, access denied, bad request, bad content) and
	// identity failures. The upstream provider treats every 4xx the same.
	fatal bool
	err   error
}

func (e *callError) Error() string {
	if e.region == "" {
		return e.err.Error()
	}
	return fmt.Sprintf("region %s: %v", e.region, e.err)
}

func (e *callError) Unwrap() error { return e.err }

// withPrimary prefixes the primary region's failure when the failover
// region failed too, so the message tells the whole story.
func (e *callError) withPrimary(primary *callError) error {
	if primary == nil {
		return e
	}
	return fmt.Errorf("failed in every region: %w; before that: %w", e, primary)
}

// credentialError marks a failure to obtain credentials for the identity.
type credentialError struct{ err error }

func (e *credentialError) Error() string { return "obtain AWS credentials: " + e.err.Error() }
func (e *credentialError) Unwrap() error { return e.err }

// decodeError replaces an SDK deserialization failure, whose cause may
// quote part of a response body that carries secret values.
var errDecode = errors.New("the response could not be decoded")

// newCallError classifies the failure err of the call what in region.
func newCallError(region, what string, err error) *callError {
	reason := provider.ReasonUnknown
	err = classify(what, err)
	var r *provider.Reasoned
	if errors.As(err, &r) {
		reason, err = r.Reason, r.Err
	}
	return &callError{region: region, reason: reason, fatal: fatalReason(reason), err: err}
}

// codeError is a failure reported by an error code in a successful
// response (BatchGetSecretValue errors, GetParameters invalid names): a
// client fault, so an unknown code is InvalidConfig.
func codeError(region, what, code, message string) *callError {
	return newCallError(region, what, &smithy.GenericAPIError{Code: code, Message: message, Fault: smithy.FaultClient})
}

// fatalReason is false for the reasons another region may not share.
func fatalReason(r provider.Reason) bool {
	return r != provider.ReasonThrottled && r != provider.ReasonUnavailable
}

// classify returns err, the failure of the call op, carrying its Reason
// (provider.WithReason) under a message that names op: AWS error messages
// name resources, never values; the size cap's error names the limit; a
// response that failed to decode, whose cause may quote part of a body
// that carries secret values, is replaced by errDecode.
func classify(op string, err error) error {
	reason := reasonOf(err)
	var tl *limits.TooLargeError
	var de *smithy.DeserializationError
	switch {
	case errors.As(err, &tl):
		// The size cap: what and the limit, no content.
		reason, err = provider.ReasonInvalidContent, tl
	case errors.As(err, &de):
		err = errDecode
	}
	return provider.WithReason(reason, fmt.Errorf("%s: %w", op, err))
}

// statusReasons are AWS's exceptions to provider.ReasonForHTTP, for an
// answer whose error code codeReasons does not list.
var statusReasons = map[int]provider.Reason{
	// AWS answers most client errors with 400, throttling and missing
	// resources included: the error code tells them apart, and for a code
	// this provider does not know, the fault the SDK gives the error
	// decides (see reasonOf), not the status.
	http.StatusBadRequest: provider.ReasonUnknown,
}

// reasonOf classifies an SDK error: by its error code, else its HTTP
// status, else its fault. Whether the failover region may help follows
// from the Reason (fatalReason).
func reasonOf(err error) provider.Reason {
	var ce *credentialError
	if errors.As(err, &ce) {
		return provider.ReasonUnauthenticated
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		// No answer: DNS, TLS, a refused or reset connection.
		return provider.ReasonUnavailable
	}
	if scheduledForDeletion(ae) {
		return provider.ReasonNotFound
	}
	if r, ok := codeReasons[ae.ErrorCode()]; ok {
		return r
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		if r := provider.ReasonForHTTP(re.HTTPStatusCode(), statusReasons); r != provider.ReasonUnknown {
			return r
		}
	}
	if ae.ErrorFault() == smithy.FaultClient {
		return provider.ReasonInvalidConfig
	}
	return provider.ReasonUnavailable
}

// scheduledForDeletion reports Secrets Manager's refusal to read a secret
// deleted with a recovery window: it answers InvalidRequestException, but
// for the reader the secret is gone (as for an optional object, see
// spc.AnnotationOptionalObjects) until it is restored. AWS says "marked
// for deletion", moto "marked deleted".
func scheduledForDeletion(ae smithy.APIError) bool {
	if ae.ErrorCode() != "InvalidRequestException" {
		return false
	}
	m := ae.ErrorMessage()
	return strings.Contains(m, "marked for deletion") || strings.Contains(m, "marked deleted")
}

// codeReasons are the error codes of Secrets Manager, SSM, STS and KMS that
// matter for a read. AWS answers most of them with 400, so the code, not
// the status, says what failed; a code not listed falls to the status and
// the fault (reasonOf).
var codeReasons = map[string]provider.Reason{
	// The secret, parameter or version does not exist; SSM lists the
	// names it does not know under InvalidParameters.
	"ResourceNotFoundException": provider.ReasonNotFound,
	"ParameterNotFound":         provider.ReasonNotFound,
	"ParameterVersionNotFound":  provider.ReasonNotFound,
	"InvalidParameters":         provider.ReasonNotFound,

	// A policy refuses the read, including KMS's refusal of the key that
	// encrypts the value (DecryptionFailure, KMS*): a permission or the
	// key's state, not the content.
	"AccessDeniedException":    provider.ReasonAccessDenied,
	"AccessDenied":             provider.ReasonAccessDenied,
	"UnauthorizedOperation":    provider.ReasonAccessDenied,
	"DecryptionFailure":        provider.ReasonAccessDenied,
	"KMSAccessDeniedException": provider.ReasonAccessDenied,
	"KMSDisabledException":     provider.ReasonAccessDenied,
	"KMSInvalidStateException": provider.ReasonAccessDenied,
	"KMSNotFoundException":     provider.ReasonAccessDenied,

	// The credentials or the web identity token are refused.
	"UnrecognizedClientException": provider.ReasonUnauthenticated,
	"InvalidSignatureException":   provider.ReasonUnauthenticated,
	"IncompleteSignature":         provider.ReasonUnauthenticated,
	"SignatureDoesNotMatch":       provider.ReasonUnauthenticated,
	"ExpiredTokenException":       provider.ReasonUnauthenticated,
	"ExpiredToken":                provider.ReasonUnauthenticated,
	"InvalidClientTokenId":        provider.ReasonUnauthenticated,
	"MissingAuthenticationToken":  provider.ReasonUnauthenticated,
	"InvalidIdentityToken":        provider.ReasonUnauthenticated,
	"IDPRejectedClaim":            provider.ReasonUnauthenticated,
	"IDPCommunicationError":       provider.ReasonUnauthenticated,

	// The service failed; another region or a later attempt may not.
	"InternalServiceError":        provider.ReasonUnavailable,
	"InternalServerError":         provider.ReasonUnavailable,
	"InternalFailure":             provider.ReasonUnavailable,
	"ServiceUnavailable":          provider.ReasonUnavailable,
	"ServiceUnavailableException": provider.ReasonUnavailable,

	// The request as the class shaped it is refused: a secret scheduled
	// for deletion, a bad version stage or key ID.
	"InvalidRequestException":   provider.ReasonInvalidConfig,
	"InvalidParameterException": provider.ReasonInvalidConfig,
	"ValidationException":       provider.ReasonInvalidConfig,
	"InvalidKeyId":              provider.ReasonInvalidConfig,

	// AWS's throttling codes, most of them answered with 400.
	"ThrottlingException":                    provider.ReasonThrottled,
	"Throttling":                             provider.ReasonThrottled,
	"ThrottledException":                     provider.ReasonThrottled,
	"TooManyRequestsException":               provider.ReasonThrottled,
	"RequestLimitExceeded":                   provider.ReasonThrottled,
	"RequestThrottled":                       provider.ReasonThrottled,
	"RequestThrottledException":              provider.ReasonThrottled,
	"SlowDown":                               provider.ReasonThrottled,
	"ProvisionedThroughputExceededException": provider.ReasonThrottled,
	"LimitExceededException":                 provider.ReasonThrottled,
}

// batchUnsupported says a whole BatchGetSecretValue call failed because
// the identity may not call it (the seed guide's policy grants only
// GetSecretValue and DescribeSecret) or the endpoint does not know it.
func batchUnsupported(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "AccessDeniedException", "AccessDenied", "UnauthorizedOperation",
		"UnknownOperationException", "InvalidAction", "NotImplemented", "UnsupportedOperation":
		return true
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		s := re.HTTPStatusCode()
		return s == http.StatusForbidden || s == http.StatusNotImplemented
	}
	return false
}
