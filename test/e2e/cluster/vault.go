package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// VaultPort is where Vault listens on the node address.
const VaultPort = 8200

// Vault is a real Vault server (dev mode, in memory) on the node address,
// published in the cluster as the Service vault.vault (so the seed guide's
// http://vault.vault.svc:8200 resolves and routes to it), with the
// Kubernetes auth method validating pod tokens against this cluster.
type Vault struct {
	// Addr is the address from the host, e.g. http://10.213.0.1:8200.
	Addr string
	// Client is authenticated with the root token.
	Client *vaultapi.Client
}

// StartVault runs bin (the Vault binary) and configures it.
func (c *Cluster) StartVault(ctx context.Context, bin string) (*Vault, error) {
	home := c.path("vault-home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("%s:%d", NodeIP, VaultPort)
	if _, err := c.procs.start("vault", bin, []string{
		"server", "-dev",
		"-dev-root-token-id=root",
		"-dev-listen-address=" + addr,
		"-dev-no-store-token",
	}, []string{
		// Vault 1.14 parses Kubernetes CA certificates with Go's x509,
		// which rejects negative serials unless told otherwise.
		"GODEBUG=x509negativeserial=1",
		"HOME=" + home,
		"VAULT_LOG_LEVEL=info",
	}); err != nil {
		return nil, err
	}
	v := &Vault{Addr: "http://" + addr}
	cfg := vaultapi.DefaultConfig()
	cfg.Address = v.Addr
	cl, err := vaultapi.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	cl.SetToken("root")
	v.Client = cl
	if err := c.waitProc(ctx, "vault", 60*time.Second, func() (bool, error) {
		h, err := cl.Sys().HealthWithContext(ctx)
		return err == nil && h.Initialized && !h.Sealed, nil
	}); err != nil {
		return nil, err
	}
	if err := c.publishVault(ctx); err != nil {
		return nil, err
	}
	if err := c.configureVaultAuth(ctx, cl); err != nil {
		return nil, err
	}
	return v, nil
}

// publishVault creates namespace vault with a selector-less Service and an
// EndpointSlice pointing at the host.
func (c *Cluster) publishVault(ctx context.Context) error {
	cs := c.Clientset
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "vault"}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace vault: %w", err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "vault", Namespace: "vault"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: VaultPort, Protocol: corev1.ProtocolTCP}}},
	}
	if _, err := cs.CoreV1().Services("vault").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create service vault/vault: %w", err)
	}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: "vault-host", Namespace: "vault",
			Labels: map[string]string{discoveryv1.LabelServiceName: "vault", discoveryv1.LabelManagedBy: "ssi-e2e"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{NodeIP}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(VaultPort)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	if _, err := cs.DiscoveryV1().EndpointSlices("vault").Create(ctx, es, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create endpointslice vault/vault-host: %w", err)
	}
	return nil
}

// configureVaultAuth enables the Kubernetes auth method with a reviewer
// service account allowed to create TokenReviews, the kv-v2 policy the seed
// guide's role names, and the seed guide's role.
func (c *Cluster) configureVaultAuth(ctx context.Context, cl *vaultapi.Client) error {
	cs := c.Clientset
	if _, err := cs.CoreV1().ServiceAccounts("vault").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "vault-reviewer", Namespace: "vault"}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create service account vault/vault-reviewer: %w", err)
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "ssi-e2e-vault-reviewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "vault-reviewer", Namespace: "vault"}},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create clusterrolebinding: %w", err)
	}
	exp := int64(24 * 3600)
	tr, err := cs.CoreV1().ServiceAccounts("vault").CreateToken(ctx, "vault-reviewer", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("token for vault/vault-reviewer: %w", err)
	}
	ca, err := os.ReadFile(c.f.ca)
	if err != nil {
		return err
	}
	if err := cl.Sys().EnableAuthWithOptionsWithContext(ctx, "kubernetes", &vaultapi.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		return fmt.Errorf("vault auth enable kubernetes: %w", err)
	}
	if _, err := cl.Logical().WriteWithContext(ctx, "auth/kubernetes/config", map[string]any{
		"kubernetes_host":      apiURL(),
		"kubernetes_ca_cert":   string(ca),
		"token_reviewer_jwt":   tr.Status.Token,
		"disable_local_ca_jwt": true,
	}); err != nil {
		return fmt.Errorf("vault write auth/kubernetes/config: %w", err)
	}
	if err := cl.Sys().PutPolicyWithContext(ctx, "app-policy", `path "secret/data/myapp/*" { capabilities = ["read"] }`); err != nil {
		return fmt.Errorf("vault policy app-policy: %w", err)
	}
	return nil
}

// Role creates (or replaces) a Kubernetes auth role, like the seed guide's
// `vault write auth/kubernetes/role/app-role ...`.
func (v *Vault) Role(ctx context.Context, name string, serviceAccounts, namespaces []string, policies ...string) error {
	_, err := v.Client.Logical().WriteWithContext(ctx, "auth/kubernetes/role/"+name, map[string]any{
		"bound_service_account_names":      serviceAccounts,
		"bound_service_account_namespaces": namespaces,
		"policies":                         policies,
		"ttl":                              "24h",
	})
	if err != nil {
		return fmt.Errorf("vault role %s: %w", name, err)
	}
	return nil
}

// Put writes a kv-v2 secret at path (relative to the "secret" mount, e.g.
// "myapp/database").
func (v *Vault) Put(ctx context.Context, path string, data map[string]any) error {
	if _, err := v.Client.KVv2("secret").Put(ctx, path, data); err != nil {
		return fmt.Errorf("vault kv put secret/%s: %w", path, err)
	}
	return nil
}

// LogFile is Vault's log.
func (c *Cluster) LogFile(name string) string { return filepath.Join(c.cfg.LogDir, name+".log") }
