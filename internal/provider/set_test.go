package provider

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

type named struct{ name string }

func (n named) Name() string                                   { return n.name }
func (named) Fetch(context.Context, Request) ([]Object, error) { return nil, nil }

type closing struct {
	named
	closed *int
	err    error
}

func (c closing) Close() error { *c.closed++; return c.err }

func TestSetNamesAndClose(t *testing.T) {
	var aws, vault int
	s := NewSet(named{"gcp"}, closing{named{"vault"}, &vault, errors.New("revoke failed")}, closing{named{"aws"}, &aws, nil})
	if got := s.Names(); !reflect.DeepEqual(got, []string{"aws", "gcp", "vault"}) {
		t.Errorf("Names = %q", got)
	}
	err := s.Close()
	if aws != 1 || vault != 1 {
		t.Errorf("closed aws %d, vault %d times; want once each", aws, vault)
	}
	if err == nil || !strings.Contains(err.Error(), "close provider vault: revoke failed") || strings.Contains(err.Error(), "aws") {
		t.Errorf("Close = %v, want the vault error only, naming it", err)
	}
	if err := (Set{}).Close(); err != nil {
		t.Errorf("empty set: %v", err)
	}
}
