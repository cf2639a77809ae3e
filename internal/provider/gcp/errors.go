package gcp

import (
	"context"
	"errors"
	"fmt"
	"regexp"

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
	reason := provider.ReasonForGRPC(st.Code(), nil)
	if st.Code() == codes.FailedPrecondition && versionGone.MatchString(st.Message()) {
		// Secret Manager answers an access to a disabled or destroyed
		// version (or to "latest" of a secret without an enabled one)
		// with FailedPrecondition: the version the class names is not
		// there to be read, as for NotFound. Other FailedPrecondition
		// answers (a customer-managed key disabled or not granted) are
		// not: an optional object must not be taken for missing then.
		reason = provider.ReasonNotFound
	}
	return provider.WithReason(reason, provider.Summarize(msg, err))
}

// versionGone matches Secret Manager's FailedPrecondition messages for a
// version that is not there to be read.
var versionGone = regexp.MustCompile(`^Secret Version \[[^\]]+\] is in (DISABLED|DESTROYED) state\.?$|^Secret \[[^\]]+\] has no enabled versions\.?$`)
