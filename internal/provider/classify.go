package provider

import (
	"net/http"

	"google.golang.org/grpc/codes"
)

// ReasonForHTTP returns the Reason of a request that failed with the HTTP
// status. except holds a backend's special cases, each with a comment
// saying why, and is consulted first (nil for none); then come the
// meanings all backends share: 400 InvalidConfig, 401 Unauthenticated,
// 403 AccessDenied, 404 NotFound, 429 Throttled, 5xx (and anything above)
// Unavailable. Any other status is ReasonUnknown: the rest of 4xx, which
// the backends use differently, and what is below 400, which reports no
// failure. A backend gives ReasonUnknown its own fallback.
func ReasonForHTTP(status int, except map[int]Reason) Reason {
	if r, ok := except[status]; ok {
		return r
	}
	switch {
	case status == http.StatusBadRequest:
		return ReasonInvalidConfig
	case status == http.StatusUnauthorized:
		return ReasonUnauthenticated
	case status == http.StatusForbidden:
		return ReasonAccessDenied
	case status == http.StatusNotFound:
		return ReasonNotFound
	case status == http.StatusTooManyRequests:
		return ReasonThrottled
	case status >= http.StatusInternalServerError:
		return ReasonUnavailable
	}
	return ReasonUnknown
}

// ReasonForGRPC returns the Reason of a call that failed with the gRPC
// code. except holds a backend's special cases, each with a comment saying
// why, and is consulted first (nil for none); then come the meanings all
// backends share, as ReasonForHTTP's: InvalidArgument and
// FailedPrecondition InvalidConfig (the request as the class shaped it),
// Unauthenticated, PermissionDenied AccessDenied, NotFound,
// ResourceExhausted Throttled, and Unavailable, DeadlineExceeded, Aborted
// and Internal Unavailable (a retry may succeed). Any other code is
// ReasonUnknown.
func ReasonForGRPC(code codes.Code, except map[codes.Code]Reason) Reason {
	if r, ok := except[code]; ok {
		return r
	}
	switch code {
	case codes.InvalidArgument, codes.FailedPrecondition:
		return ReasonInvalidConfig
	case codes.Unauthenticated:
		return ReasonUnauthenticated
	case codes.PermissionDenied:
		return ReasonAccessDenied
	case codes.NotFound:
		return ReasonNotFound
	case codes.ResourceExhausted:
		return ReasonThrottled
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.Internal:
		return ReasonUnavailable
	}
	return ReasonUnknown
}
