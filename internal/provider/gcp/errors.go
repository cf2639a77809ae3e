package gcp

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
)

// classify maps an error of a Secret Manager call (or of obtaining its
// token) to a Reason and a summary naming the operation and the gRPC code.
func classify(op string, err error) error {
	if errors.Is(err, identity.ErrNoToken) {
		return provider.WithReason(provider.ReasonUnauthenticated, fmt.Errorf("%s: %w", op, err))
	}
	var authErr *authError
	if errors.As(err, &authErr) {
		return provider.WithReason(provider.ReasonUnauthenticated, fmt.Errorf("%s: %w", op, authErr))
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return provider.WithReason(provider.ReasonUnavailable, fmt.Errorf("%s: %w", op, err))
	}
	st, ok := status.FromError(err)
	if !ok {
		return provider.WithReason(provider.ReasonUnknown, fmt.Errorf("%s: %w", op, err))
	}
	// Secret Manager's status messages name resources, never payloads.
	msg := fmt.Sprintf("%s: %s: %s", op, st.Code(), st.Message())
	return provider.WithReason(provider.ReasonForGRPC(st.Code(), codeReasons), provider.Summarize(msg, err))
}

// codeReasons are Secret Manager's exceptions to provider.ReasonForGRPC.
var codeReasons = map[codes.Code]provider.Reason{
	// Secret Manager answers an access to a disabled or destroyed
	// version with FailedPrecondition: the version the class names is not
	// there to be read, as for NotFound.
	codes.FailedPrecondition: provider.ReasonNotFound,
}
