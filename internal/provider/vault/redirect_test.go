package vault

import (
	"errors"
	"testing"

	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/providertest"
	"github.com/ssinjector/ssi/internal/spc"
)

// TestClientRefusesCrossHostRedirects reads through the Vault client from
// a server that redirects to another host: the api client's own redirect
// handling would follow it once, token header included.
func TestClientRefusesCrossHostRedirects(t *testing.T) {
	t.Setenv("VAULT_DISABLE_REDIRECTS", "false")
	// One attempt: the client would retry the refused redirect twice, a
	// second or more apart, to the same answer.
	t.Setenv("VAULT_MAX_RETRIES", "0")
	r := providertest.NewRedirector(t)
	c, _, err := New(Options{}).newClient(&spc.Vault{Address: r.URL})
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("tenant-token")
	s, err := c.Logical().Read("secret/data/db")
	if err == nil {
		t.Fatalf("a redirect to another host was followed: %v", s)
	}
	if !errors.Is(err, provider.ErrRedirectRefused) {
		t.Errorf("error %v does not wrap provider.ErrRedirectRefused", err)
	}
	if n := r.OtherHits(); n != 0 {
		t.Errorf("the other host was reached %d times", n)
	}
}
