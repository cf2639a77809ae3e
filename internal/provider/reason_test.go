package provider

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

func TestFailTakesTheReason(t *testing.T) {
	sdk := fmt.Errorf("HTTP 403: {\"value\":\"body a server sent\"}: %w", fs.ErrPermission)
	err := fmt.Errorf("get secret: %w", WithReason(ReasonAccessDenied, Summarize("get secret db: HTTP 403", sdk)))
	e := Fail("ns/app", "azure", "secret/db", err)
	if e.Reason != ReasonAccessDenied || e.Class != "ns/app" || e.Provider != "azure" || e.Object != "secret/db" {
		t.Errorf("Fail = %+v", e)
	}
	if e.Err.Error() != "get secret db: HTTP 403" {
		t.Errorf("cause %q, want the provider's summary only", e.Err.Error())
	}
	if !errors.Is(e, fs.ErrPermission) {
		t.Error("the summarised error is not in the chain")
	}
	if got := Fail("ns/app", "gcp", "", errors.New("plain")); got.Reason != ReasonUnknown || got.Err.Error() != "plain" {
		t.Errorf("without a reason: %+v", got)
	}
}
