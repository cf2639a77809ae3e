package security

// Issue 14, finding 4, in the node shim: the shim fetches for every
// namespace, and a Vault class names the address it fetches from
// (vaultAddress). A tenant who names its own server there receives the
// shim's requests, with the pod's service-account token in the login;
// one who names an internal address (the metadata server, another
// tenant's Vault) makes the shim a proxy into the node's network. With
// --allowed-backend-hosts (Helm linux.allowedBackendHosts) the operator
// lists the backends the shim may contact; a class naming any other host
// is refused before the provider is called. The shim is driven as in
// netid_test.go: the driver `ssi-agent csi` builds, with the built-in
// providers of a shared process, over a kubelet root in a temporary
// directory.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	ssiv1 "github.com/ssinjector/ssi/api/v1"
	ssicsi "github.com/ssinjector/ssi/internal/csi"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/provider/builtin"
	"github.com/ssinjector/ssi/internal/scheme"
)

// hostsJWT is the tenant pod's service-account token, which a Vault
// login carries: it must never reach a host outside the operator's list.
const hostsJWT = "tenant-pod-jwt"

// hostsVault is a Vault stand-in on ip: it answers the Kubernetes login
// and serves secret/data/db, counting requests and the logins' tokens.
type hostsVault struct {
	URL    string
	hits   atomic.Int64
	mu     gosync.Mutex
	logins []string
}

func hostsStartVault(t *testing.T, ip, password string) *hostsVault {
	t.Helper()
	v := &hostsVault{}
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Skipf("cannot listen on %s (loopback): %v", ip, err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v.hits.Add(1)
		if strings.HasSuffix(r.URL.Path, "/login") {
			var body struct {
				JWT string `json:"jwt"`
			}
			_ = json.NewDecoder(r.Body).Decode(&body)
			v.mu.Lock()
			v.logins = append(v.logins, body.JWT)
			v.mu.Unlock()
			_ = json.NewEncoder(w).Encode(map[string]any{"auth": map[string]any{"client_token": "s.tenant", "lease_duration": 3600, "renewable": false}})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"data": map[string]any{"password": password}, "metadata": map[string]any{"version": 1}}})
	}))
	_ = srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	v.URL = srv.URL
	return v
}

func (v *hostsVault) loginTokens() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.logins...)
}

// hostsShim is the node shim with the operator's --allowed-backend-hosts
// entries and a clock (clk; nil is the real clock), serving the tenant's
// classes.
func hostsShim(t *testing.T, entries []string, clk clock.WithTicker, classes ...client.Object) (*ssicsi.Driver, *netidMounter, string, client.Client) {
	t.Helper()
	hosts, err := provider.ParseBackendHosts(entries)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	c := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(classes...).Build()
	mnt := &netidMounter{mounted: map[string]bool{}}
	set := builtin.New(nil, builtin.OutsidePod, time.Minute, limits.Config{}, builtin.Shared{})
	t.Cleanup(func() { _ = set.Close() })
	d, err := ssicsi.NewDriver(ssicsi.Options{NodeID: "node-1", KubeletRootDir: root, Endpoint: "unix:///unused.sock",
		EnableRotation: true, RotationPollInterval: time.Minute, AllowedBackendHosts: hosts, Providers: set},
		ssicsi.Deps{Mounter: mnt, Classes: c, APIReader: c, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return d, mnt, root, c
}

// hostsClass is the tenant's Vault class naming addr.
func hostsClass(name, addr string) *ssiv1.SecretProviderClass {
	return netidClass("tenant", name, "vault", map[string]string{
		"vaultAddress": addr, "roleName": "tenant",
		"objects": "- objectName: password\n  secretPath: secret/data/db\n  secretKey: password\n"})
}

// hostsPublish publishes class for a new pod of the tenant, as kubelet
// does, with the pod's token for the default audience.
func hostsPublish(ctx context.Context, t *testing.T, d *ssicsi.Driver, root, class string) (string, error) {
	t.Helper()
	req := netidPublish(root, "uid-"+class, class, `{"":{"token":"`+hostsJWT+`","expirationTimestamp":"2030-01-01T00:00:00Z"}}`)
	if err := os.MkdirAll(filepath.Dir(req.TargetPath), 0o750); err != nil {
		t.Fatal(err)
	}
	_, err := d.NodePublishVolume(ctx, req)
	return req.TargetPath, err
}

// TestHostsShimRefusesBackendOutsideList: the operator allows its own
// Vault (127.0.0.2 here, standing for vault.platform.example's address);
// the tenant runs a Vault of its own on 127.0.0.1 and writes classes that
// name it directly, by a name that resolves to it, behind userinfo that
// names the allowed address, and as an IPv4-mapped IPv6 address (every
// address here is a loopback one, so the test sends nothing off the
// machine even against a shim without the check; the metadata server and
// look-alike names are internal/csi TestAllowedBackendHosts cases, where
// no provider dials). Each publish fails with FailedPrecondition and
// a message naming the class, the host, the flag and the Helm value,
// without the pod's token; the tenant's server never sees a request and
// nothing stays mounted. A class naming the operator's Vault is served.
func TestHostsShimRefusesBackendOutsideList(t *testing.T) {
	operator := hostsStartVault(t, "127.0.0.2", "operator-value")
	tenant := hostsStartVault(t, "127.0.0.1", "tenant-value")
	port := hostsPort(t, tenant.URL)
	entries := []string{"vault.platform.example", "127.0.0.2"}
	attacks := map[string]struct {
		addr, host string
	}{
		"tenants-vault":  {tenant.URL, "127.0.0.1"},
		"a-name-for-it":  {"http://localhost:" + port, "localhost"},
		"userinfo-decoy": {"http://127.0.0.2@127.0.0.1:" + port, "127.0.0.1"},
		"ipv4-mapped":    {"http://[::ffff:127.0.0.1]:" + port, "::ffff:127.0.0.1"},
	}
	classes := []client.Object{hostsClass("operators-vault", operator.URL)}
	for name, a := range attacks {
		classes = append(classes, hostsClass(name, a.addr))
	}
	d, mnt, root, _ := hostsShim(t, entries, nil, classes...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for name, a := range attacks {
		t.Run(name, func(t *testing.T) {
			target, err := hostsPublish(ctx, t, d, root, name)
			if status.Code(err) != codes.FailedPrecondition {
				t.Fatalf("publish naming %s = %v, want FailedPrecondition", a.addr, err)
			}
			for _, want := range []string{"SecretProviderClass tenant/" + name, "parameters.vaultAddress", fmt.Sprintf("host %q", a.host),
				"--allowed-backend-hosts vault.platform.example,127.0.0.2", "linux.allowedBackendHosts"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if strings.Contains(err.Error(), hostsJWT) {
				t.Error("the error quotes the pod's token")
			}
			if mnt.mounted[target] {
				t.Error("the refused volume is mounted")
			}
		})
	}
	if n := tenant.hits.Load(); n != 0 {
		t.Errorf("the tenant's server received %d requests (logins with tokens %q)", n, tenant.loginTokens())
	}

	// The control: the shim under test does fetch, from the allowed host.
	target, err := hostsPublish(ctx, t, d, root, "operators-vault")
	if err != nil {
		t.Fatalf("a class naming the operator's Vault: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(target, "password")); err != nil || string(b) != "operator-value" {
		t.Errorf("served volume holds %q, %v; want the operator's Vault's value", b, err)
	}
	if got := operator.loginTokens(); len(got) != 1 || got[0] != hostsJWT {
		t.Errorf("the operator's Vault saw logins %q, want one with the pod's token", got)
	}
}

// TestHostsShimRefusesSwitchedClass is the bait and switch: the tenant's
// class names the operator's Vault until its volume is mounted, then is
// edited to name the tenant's own. The next refresh must not contact it:
// the republish keeps the files fetched before (a refresh never fails a
// volume) and the tenant's server sees nothing, not even the login.
func TestHostsShimRefusesSwitchedClass(t *testing.T) {
	operator := hostsStartVault(t, "127.0.0.2", "operator-value")
	tenant := hostsStartVault(t, "127.0.0.1", "tenant-value")
	clk := clocktesting.NewFakeClock(time.Now())
	d, _, root, c := hostsShim(t, []string{"127.0.0.2"}, clk, hostsClass("app", operator.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	target, err := hostsPublish(ctx, t, d, root, "app")
	if err != nil {
		t.Fatalf("first publish from the operator's Vault: %v", err)
	}

	switched := &ssiv1.SecretProviderClass{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "tenant", Name: "app"}, switched); err != nil {
		t.Fatal(err)
	}
	switched.Spec.Parameters["vaultAddress"] = tenant.URL
	if err := c.Update(ctx, switched); err != nil {
		t.Fatal(err)
	}
	clk.Step(5 * time.Minute)
	if _, err := hostsPublish(ctx, t, d, root, "app"); err != nil {
		t.Fatalf("republish: %v (a failing refresh keeps the volume)", err)
	}
	if n := tenant.hits.Load(); n != 0 {
		t.Errorf("after the switch the tenant's server received %d requests (logins with tokens %q)", n, tenant.loginTokens())
	}
	if b, err := os.ReadFile(filepath.Join(target, "password")); err != nil || string(b) != "operator-value" {
		t.Errorf("volume holds %q, %v; want the files fetched from the operator's Vault", b, err)
	}
}

func hostsPort(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}
