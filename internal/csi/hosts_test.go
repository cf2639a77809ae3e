package csi

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ssinjector/ssi/internal/provider"
)

// hostsVaultClass is a Vault class of team-a naming addr.
func hostsVaultClass(addr string) client.Object {
	return spcObject("team-a", "db", "vault", map[string]string{
		"vaultAddress": addr, "roleName": "web",
		"objects": "- objectName: db-password\n  secretPath: secret/data/db\n  secretKey: password\n"})
}

// hostsHarness is a shim whose "vault" provider is the in-memory test
// provider (so a served class reaches it and a refused one does not),
// with the operator's --allowed-backend-hosts entries.
func hostsHarness(t *testing.T, entries []string, objs ...client.Object) *harness {
	t.Helper()
	hosts, err := provider.ParseBackendHosts(entries)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(o *Options) { o.AllowedBackendHosts = hosts }, objs...)
	h.prov.name = "vault"
	h.d.opts.Providers = provider.NewSet(h.prov)
	return h
}

// TestAllowedBackendHosts is issue 14 finding 4 in the node shim: with
// --allowed-backend-hosts set, a class whose vaultAddress names another
// host fails its publish with FailedPrecondition and a BackendNotAllowed
// event naming the class, the host and the flag and Helm value, before
// the provider is called or anything is mounted; a class inside the list,
// or any class without a list, is served.
func TestAllowedBackendHosts(t *testing.T) {
	list := []string{"vault.example.com", "*.vault.corp", "10.20.0.0/16"}
	tests := map[string]struct {
		entries []string
		addr    string
		refused string // the host named in the refusal; "" when served
	}{
		"name in the list":               {entries: list, addr: "https://vault.example.com:8200"},
		"wildcard in the list":           {entries: list, addr: "https://team-a.vault.corp"},
		"address in the prefix":          {entries: list, addr: "http://10.20.3.4:8200"},
		"no vaultAddress":                {entries: list, addr: ""},
		"name outside the list":          {entries: list, addr: "https://attacker.example.net:8200", refused: "attacker.example.net"},
		"metadata server":                {entries: list, addr: "http://169.254.169.254", refused: "169.254.169.254"},
		"name is not resolved":           {entries: []string{"127.0.0.1"}, addr: "http://localhost:8200", refused: "localhost"},
		"suffix of an allowed name":      {entries: list, addr: "https://vault.example.com.attacker.net", refused: "vault.example.com.attacker.net"},
		"no list: every host is allowed": {addr: "https://attacker.example.net:8200"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := hostsHarness(t, tc.entries, hostsVaultClass(tc.addr))
			target := kubeletTarget(t, h.root, "uid-1", "secrets")
			_, err := h.d.NodePublishVolume(context.Background(), publishReq(target, web))
			if tc.refused == "" {
				if err != nil {
					t.Fatalf("publish: %v", err)
				}
				if got, want := readVolume(t, target), map[string]string{"db-password": "s3cr3t", "api-key": "k1"}; !reflect.DeepEqual(got, want) {
					t.Errorf("volume = %v, want %v", got, want)
				}
				if h.prov.count() != 1 {
					t.Errorf("provider calls = %d, want 1", h.prov.count())
				}
				return
			}
			if status.Code(err) != codes.FailedPrecondition {
				t.Fatalf("publish = %v, want FailedPrecondition", err)
			}
			for _, want := range []string{"SecretProviderClass team-a/db", "parameters.vaultAddress", `host "` + tc.refused + `"`,
				"--allowed-backend-hosts " + strings.Join(tc.entries, ","), "linux.allowedBackendHosts"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if n := h.prov.count(); n != 0 {
				t.Errorf("the provider was called %d times for a refused class", n)
			}
			if h.mnt.mounts != 0 {
				t.Errorf("%d mounts for a refused class", h.mnt.mounts)
			}
			if e := h.event(); !strings.HasPrefix(e, "Warning "+ReasonBackendNotAllowed+" ") || !strings.Contains(e, tc.refused) {
				t.Errorf("event = %q, want Warning %s naming %s", e, ReasonBackendNotAllowed, tc.refused)
			}
			if n := len(h.status.all()); n != 0 {
				t.Errorf("%d status records for a refused class", n)
			}
		})
	}
}

// TestAllowedBackendHostsOnRepublish: a class edited after its volume was
// published to name a host outside the list is not fetched from on the
// next refresh; the files fetched from the allowed host stay.
func TestAllowedBackendHostsOnRepublish(t *testing.T) {
	h := hostsHarness(t, []string{"vault.example.com"}, hostsVaultClass("https://vault.example.com"))
	target := kubeletTarget(t, h.root, "uid-1", "secrets")
	ctx := context.Background()
	if _, err := h.d.NodePublishVolume(ctx, publishReq(target, web)); err != nil {
		t.Fatal(err)
	}
	c := h.d.deps.Classes.(client.Client)
	class := hostsVaultClass("https://attacker.example.net")
	cur := hostsVaultClass("")
	if err := c.Get(ctx, client.ObjectKeyFromObject(class), cur); err != nil {
		t.Fatal(err)
	}
	class.SetResourceVersion(cur.GetResourceVersion())
	if err := c.Update(ctx, class); err != nil {
		t.Fatal(err)
	}
	h.clk.Step(3 * h.d.opts.RotationPollInterval)
	if _, err := h.d.NodePublishVolume(ctx, publishReq(target, web)); err != nil {
		t.Fatalf("republish: %v (a failing refresh never fails the volume)", err)
	}
	if n := h.prov.count(); n != 1 {
		t.Errorf("provider calls = %d, want 1: the edited class must not be fetched", n)
	}
	if got := readVolume(t, target); got["db-password"] != "s3cr3t" {
		t.Errorf("volume = %v, want the files published before", got)
	}
	if e := h.event(); !strings.HasPrefix(e, "Warning "+ReasonRotationFailed+" ") || !strings.Contains(e, `host "attacker.example.net"`) {
		t.Errorf("event = %q, want Warning %s naming the host", e, ReasonRotationFailed)
	}
}
