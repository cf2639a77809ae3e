package aws

import (
	"errors"
	"fmt"
	"net/http"

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

// newCallError classifies an SDK error and wraps it with what was called.
func newCallError(region, what string, err error) *callError {
	reason, fatal := classify(err)
	var tl *limits.TooLargeError
	var de *smithy.DeserializationError
	switch {
	case errors.As(err, &tl):
		// The size cap: what and the limit, no content.
		reason, fatal, err = provider.ReasonInvalidContent, true, tl
	case errors.As(err, &de):
		err = errDecode
	}
	return &callError{region: region, reason: reason, fatal: fatal, err: fmt.Errorf("%s: %w", what, err)}
}

// codeError is a failure reported by an error code in a successful
// response (BatchGetSecretValue errors, GetParameters invalid names).
func codeError(region, what, code, message string) *callError {
	ae := &smithy.GenericAPIError{Code: code, Message: message, Fault: smithy.FaultClient}
	reason, _ := classifyCode(code)
	if reason == provider.ReasonUnknown {
		reason = provider.ReasonInvalidConfig
	}
	return &callError{region: region, reason: reason, fatal: fatalReason(reason), err: fmt.Errorf("%s: %w", what, ae)}
}

// fatalReason is false for the reasons another region may not share.
func fatalReason(r provider.Reason) bool {
	return r != provider.ReasonThrottled && r != provider.ReasonUnavailable
}

// classify maps an SDK error to a reason, and says whether the failover
// region should not be tried.
func classify(err error) (provider.Reason, bool) {
	var ce *credentialError
	if errors.As(err, &ce) {
		return provider.ReasonUnauthenticated, true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if r, ok := classifyCode(ae.ErrorCode()); ok {
			return r, fatalReason(r)
		}
		var re *awshttp.ResponseError
		if errors.As(err, &re) {
			switch s := re.HTTPStatusCode(); {
			case s == http.StatusTooManyRequests:
				return provider.ReasonThrottled, false
			case s == http.StatusUnauthorized:
				return provider.ReasonUnauthenticated, true
			case s == http.StatusForbidden:
				return provider.ReasonAccessDenied, true
			case s == http.StatusNotFound:
				return provider.ReasonNotFound, true
			case s >= 500:
				return provider.ReasonUnavailable, false
			}
		}
		if ae.ErrorFault() == smithy.FaultClient {
			return provider.ReasonInvalidConfig, true
		}
		return provider.ReasonUnavailable, false
	}
	return provider.ReasonUnavailable, false
}

// classifyCode knows the error codes of Secrets Manager, SSM, STS and KMS
// that matter for a read.
func classifyCode(code string) (provider.Reason, bool) {
	switch code {
	case "ResourceNotFoundException", "ParameterNotFound", "ParameterVersionNotFound", "InvalidParameters":
		return provider.ReasonNotFound, true
	case "AccessDeniedException", "AccessDenied", "UnauthorizedOperation", "DecryptionFailure",
		"KMSAccessDeniedException", "KMSDisabledException", "KMSInvalidStateException", "KMSNotFoundException":
		return provider.ReasonAccessDenied, true
	case "UnrecognizedClientException", "InvalidSignatureException", "IncompleteSignature", "SignatureDoesNotMatch",
		"ExpiredTokenException", "ExpiredToken", "InvalidClientTokenId", "MissingAuthenticationToken",
		"InvalidIdentityToken", "IDPRejectedClaim", "IDPCommunicationError":
		return provider.ReasonUnauthenticated, true
	case "InternalServiceError", "InternalServerError", "InternalFailure", "ServiceUnavailable", "ServiceUnavailableException":
		return provider.ReasonUnavailable, true
	case "InvalidRequestException", "InvalidParameterException", "ValidationException", "InvalidKeyId":
		return provider.ReasonInvalidConfig, true
	}
	if isThrottleCode(code) {
		return provider.ReasonThrottled, true
	}
	return provider.ReasonUnknown, false
}

func isThrottleCode(code string) bool {
	switch code {
	case "ThrottlingException", "Throttling", "ThrottledException", "TooManyRequestsException",
		"RequestLimitExceeded", "RequestThrottled", "RequestThrottledException", "SlowDown",
		"ProvisionedThroughputExceededException", "LimitExceededException":
		return true
	}
	return false
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
