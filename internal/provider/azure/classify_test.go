package azure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
)

// reasonOfClassify is the Reason and message classify gives err.
func reasonOfClassify(op string, err error) (provider.Reason, string) {
	e := provider.Fail("ns/c", "azure", "db", classify(op, err))
	return e.Reason, e.Err.Error()
}

// TestClassify pins the Reason of a Key Vault answer of every status
// class and of the failures that carry no status, and that the message
// names the operation and the status but never the response body.
func TestClassify(t *testing.T) {
	const body = `{"error":{"code":"Odd","message":"p@ss-in-body"}}`
	answer := func(status int) error {
		return &azcore.ResponseError{StatusCode: status, ErrorCode: "Odd",
			RawResponse: &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader(body))}}
	}
	entra := &azidentity.AuthenticationFailedError{RawResponse: &http.Response{StatusCode: 400,
		Body: io.NopCloser(strings.NewReader(`{"error":"invalid_client","error_description":"AADSTS700213: p@ss-in-body"}`))}}
	cases := map[string]struct {
		err    error
		reason provider.Reason
		want   string
	}{
		"100":           {answer(100), provider.ReasonUnknown, "HTTP 100 Odd"},
		"200":           {answer(200), provider.ReasonUnknown, "HTTP 200 Odd"},
		"304":           {answer(304), provider.ReasonUnknown, "HTTP 304 Odd"},
		"400":           {answer(400), provider.ReasonInvalidConfig, "HTTP 400 Odd"},
		"401":           {answer(401), provider.ReasonUnauthenticated, "HTTP 401 Odd"},
		"402":           {answer(402), provider.ReasonUnknown, "HTTP 402 Odd"},
		"403":           {answer(403), provider.ReasonAccessDenied, "HTTP 403 Odd"},
		"404":           {answer(404), provider.ReasonNotFound, "HTTP 404 Odd"},
		"405":           {answer(405), provider.ReasonUnknown, "HTTP 405 Odd"},
		"408":           {answer(408), provider.ReasonUnknown, "HTTP 408 Odd"},
		"409":           {answer(409), provider.ReasonUnknown, "HTTP 409 Odd"},
		"412":           {answer(412), provider.ReasonUnknown, "HTTP 412 Odd"},
		"429":           {answer(429), provider.ReasonThrottled, "HTTP 429 Odd"},
		"499":           {answer(499), provider.ReasonUnknown, "HTTP 499 Odd"},
		"500":           {answer(500), provider.ReasonUnavailable, "HTTP 500 Odd"},
		"501":           {answer(501), provider.ReasonUnavailable, "HTTP 501 Odd"},
		"503":           {answer(503), provider.ReasonUnavailable, "HTTP 503 Odd"},
		"599":           {answer(599), provider.ReasonUnavailable, "HTTP 599 Odd"},
		"600":           {answer(600), provider.ReasonUnavailable, "HTTP 600 Odd"},
		"no error code": {&azcore.ResponseError{StatusCode: 404}, provider.ReasonNotFound, "get secret db: HTTP 404"},
		"entra refusal": {entra, provider.ReasonUnauthenticated, "Microsoft Entra authentication failed: HTTP 400 AADSTS700213 (no federated identity credential matches the token's subject"},
		"entra local":   {&azidentity.AuthenticationFailedError{}, provider.ReasonUnauthenticated, "Microsoft Entra authentication failed: "},
		"no token":      {fmt.Errorf("pod token: %w", identity.ErrNoToken), provider.ReasonUnauthenticated, "pod token"},
		"deadline":      {fmt.Errorf("x: %w", context.DeadlineExceeded), provider.ReasonUnavailable, "deadline exceeded"},
		"canceled":      {context.Canceled, provider.ReasonUnavailable, "context canceled"},
		"transport":     {errors.New("dial tcp: lookup vault.example: no such host"), provider.ReasonUnavailable, "no such host"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			reason, msg := reasonOfClassify("get secret db", tc.err)
			if reason != tc.reason {
				t.Errorf("reason %s, want %s", reason, tc.reason)
			}
			if !strings.HasPrefix(msg, "get secret db: ") || !strings.Contains(msg, tc.want) {
				t.Errorf("message %q does not name the operation and %q", msg, tc.want)
			}
			if strings.Contains(msg, "p@ss-in-body") {
				t.Errorf("message %q quotes the response body", msg)
			}
		})
	}
}
