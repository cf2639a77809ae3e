package gcp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
)

// TestClassify pins the Reason of every gRPC code and of the failures
// that are no gRPC status, and that the message names the operation and
// the code.
func TestClassify(t *testing.T) {
	cases := map[string]struct {
		err    error
		reason provider.Reason
		want   string
	}{
		"Canceled":           {status.Error(codes.Canceled, "m"), provider.ReasonUnknown, "Canceled"},
		"Unknown":            {status.Error(codes.Unknown, "m"), provider.ReasonUnknown, "Unknown"},
		"InvalidArgument":    {status.Error(codes.InvalidArgument, "m"), provider.ReasonInvalidConfig, "InvalidArgument"},
		"DeadlineExceeded":   {status.Error(codes.DeadlineExceeded, "m"), provider.ReasonUnavailable, "DeadlineExceeded"},
		"NotFound":           {status.Error(codes.NotFound, "m"), provider.ReasonNotFound, "NotFound"},
		"AlreadyExists":      {status.Error(codes.AlreadyExists, "m"), provider.ReasonUnknown, "AlreadyExists"},
		"PermissionDenied":   {status.Error(codes.PermissionDenied, "m"), provider.ReasonAccessDenied, "PermissionDenied"},
		"ResourceExhausted":  {status.Error(codes.ResourceExhausted, "m"), provider.ReasonThrottled, "ResourceExhausted"},
		"FailedPrecondition": {status.Error(codes.FailedPrecondition, "m"), provider.ReasonInvalidConfig, "FailedPrecondition"},
		// A version that is not there to be read is NotFound (an optional
		// object is then missing); a key problem is not.
		"disabled version":   {status.Error(codes.FailedPrecondition, "Secret Version [projects/1/secrets/s/versions/2] is in DISABLED state."), provider.ReasonNotFound, "DISABLED"},
		"destroyed version":  {status.Error(codes.FailedPrecondition, "Secret Version [projects/1/secrets/s/versions/2] is in DESTROYED state."), provider.ReasonNotFound, "DESTROYED"},
		"no enabled version": {status.Error(codes.FailedPrecondition, "Secret [projects/1/secrets/s] has no enabled versions."), provider.ReasonNotFound, "no enabled versions"},
		"CMEK key disabled": {status.Error(codes.FailedPrecondition, "Cloud KMS key projects/1/locations/global/keyRings/r/cryptoKeys/k is disabled or destroyed."),
			provider.ReasonInvalidConfig, "Cloud KMS key"},
		"Aborted":         {status.Error(codes.Aborted, "m"), provider.ReasonUnavailable, "Aborted"},
		"OutOfRange":      {status.Error(codes.OutOfRange, "m"), provider.ReasonUnknown, "OutOfRange"},
		"Unimplemented":   {status.Error(codes.Unimplemented, "m"), provider.ReasonUnknown, "Unimplemented"},
		"Internal":        {status.Error(codes.Internal, "m"), provider.ReasonUnavailable, "Internal"},
		"Unavailable":     {status.Error(codes.Unavailable, "m"), provider.ReasonUnavailable, "Unavailable"},
		"DataLoss":        {status.Error(codes.DataLoss, "m"), provider.ReasonUnknown, "DataLoss"},
		"Unauthenticated": {status.Error(codes.Unauthenticated, "m"), provider.ReasonUnauthenticated, "Unauthenticated"},
		"code 99":         {status.Error(codes.Code(99), "m"), provider.ReasonUnknown, "Code(99)"},
		"no token":        {fmt.Errorf("pod token: %w", identity.ErrNoToken), provider.ReasonUnauthenticated, "pod token"},
		"token exchange":  {&authError{"exchange the pod's token", errors.New("STS said no")}, provider.ReasonUnauthenticated, "exchange the pod's token: STS said no"},
		"deadline":        {fmt.Errorf("x: %w", context.DeadlineExceeded), provider.ReasonUnavailable, "deadline exceeded"},
		"canceled":        {context.Canceled, provider.ReasonUnavailable, "context canceled"},
		"no status":       {errors.New("dial tcp: connection refused"), provider.ReasonUnknown, "connection refused"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := classify("access secret version projects/p/secrets/s/versions/1", tc.err)
			e := provider.Fail("ns/c", "gcp", "s", err)
			if e.Reason != tc.reason {
				t.Errorf("reason %s, want %s", e.Reason, tc.reason)
			}
			msg := e.Err.Error()
			if !strings.HasPrefix(msg, "access secret version projects/p/secrets/s/versions/1: ") || !strings.Contains(msg, tc.want) {
				t.Errorf("message %q does not name the operation and %q", msg, tc.want)
			}
			if !errors.Is(err, tc.err) {
				t.Error("the cause is not in the chain")
			}
		})
	}
}
