package provider

import (
	"testing"

	"google.golang.org/grpc/codes"
)

// TestReasonForHTTP covers every status class: the statuses with a shared
// meaning, the rest of 4xx, the statuses that report no failure, those
// above 5xx, and a backend's exception overriding the shared meaning.
func TestReasonForHTTP(t *testing.T) {
	except := map[int]Reason{403: ReasonUnauthenticated, 400: ReasonUnknown, 409: ReasonInvalidConfig}
	cases := map[string]struct {
		status int
		except map[int]Reason
		want   Reason
	}{
		"no status":            {0, nil, ReasonUnknown},
		"1xx":                  {100, nil, ReasonUnknown},
		"2xx":                  {200, nil, ReasonUnknown},
		"204":                  {204, nil, ReasonUnknown},
		"3xx":                  {304, nil, ReasonUnknown},
		"399":                  {399, nil, ReasonUnknown},
		"400":                  {400, nil, ReasonInvalidConfig},
		"401":                  {401, nil, ReasonUnauthenticated},
		"402":                  {402, nil, ReasonUnknown},
		"403":                  {403, nil, ReasonAccessDenied},
		"404":                  {404, nil, ReasonNotFound},
		"405":                  {405, nil, ReasonUnknown},
		"408":                  {408, nil, ReasonUnknown},
		"409":                  {409, nil, ReasonUnknown},
		"412":                  {412, nil, ReasonUnknown},
		"429":                  {429, nil, ReasonThrottled},
		"499":                  {499, nil, ReasonUnknown},
		"500":                  {500, nil, ReasonUnavailable},
		"501":                  {501, nil, ReasonUnavailable},
		"502":                  {502, nil, ReasonUnavailable},
		"503":                  {503, nil, ReasonUnavailable},
		"504":                  {504, nil, ReasonUnavailable},
		"599":                  {599, nil, ReasonUnavailable},
		"600":                  {600, nil, ReasonUnavailable},
		"exception overrides":  {403, except, ReasonUnauthenticated},
		"exception to Unknown": {400, except, ReasonUnknown},
		"exception adds":       {409, except, ReasonInvalidConfig},
		"no exception":         {404, except, ReasonNotFound},
		"empty exceptions":     {429, map[int]Reason{}, ReasonThrottled},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := ReasonForHTTP(tc.status, tc.except); got != tc.want {
				t.Errorf("ReasonForHTTP(%d) = %s, want %s", tc.status, got, tc.want)
			}
		})
	}
}

// TestReasonForGRPC covers every gRPC code, a code beyond them and a
// backend's exception.
func TestReasonForGRPC(t *testing.T) {
	want := map[codes.Code]Reason{
		codes.OK:                 ReasonUnknown,
		codes.Canceled:           ReasonUnknown,
		codes.Unknown:            ReasonUnknown,
		codes.InvalidArgument:    ReasonInvalidConfig,
		codes.DeadlineExceeded:   ReasonUnavailable,
		codes.NotFound:           ReasonNotFound,
		codes.AlreadyExists:      ReasonUnknown,
		codes.PermissionDenied:   ReasonAccessDenied,
		codes.ResourceExhausted:  ReasonThrottled,
		codes.FailedPrecondition: ReasonInvalidConfig,
		codes.Aborted:            ReasonUnavailable,
		codes.OutOfRange:         ReasonUnknown,
		codes.Unimplemented:      ReasonUnknown,
		codes.Internal:           ReasonUnavailable,
		codes.Unavailable:        ReasonUnavailable,
		codes.DataLoss:           ReasonUnknown,
		codes.Unauthenticated:    ReasonUnauthenticated,
		codes.Code(17):           ReasonUnknown,
	}
	// Every code gRPC defines is in the table.
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if _, ok := want[c]; !ok {
			t.Errorf("code %s is not covered", c)
		}
	}
	cases := map[string]struct {
		code   codes.Code
		except map[codes.Code]Reason
		want   Reason
	}{
		"exception overrides": {codes.FailedPrecondition, map[codes.Code]Reason{codes.FailedPrecondition: ReasonNotFound}, ReasonNotFound},
		"no exception":        {codes.NotFound, map[codes.Code]Reason{codes.FailedPrecondition: ReasonNotFound}, ReasonNotFound},
		"exception adds":      {codes.DataLoss, map[codes.Code]Reason{codes.DataLoss: ReasonInvalidContent}, ReasonInvalidContent},
	}
	for c, r := range want {
		cases[c.String()] = struct {
			code   codes.Code
			except map[codes.Code]Reason
			want   Reason
		}{c, nil, r}
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := ReasonForGRPC(tc.code, tc.except); got != tc.want {
				t.Errorf("ReasonForGRPC(%s) = %s, want %s", tc.code, got, tc.want)
			}
		})
	}
}
