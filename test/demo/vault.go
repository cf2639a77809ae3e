package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"syscall"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/ssinjector/ssi/internal/testing/child"
)

// devVault is a Vault dev server (bin/vault, built from the pinned module
// by the Makefile) on 127.0.0.1.
type devVault struct {
	proc   *child.Process
	addr   string
	client *vaultapi.Client
}

const rootToken = "demo-root"

func startVault(ctx context.Context, bin string, log io.Writer) (*devVault, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p, err := start("vault", log, environ("HOME=/tmp"), bin, "server", "-dev",
		"-dev-listen-address="+addr, "-dev-root-token-id="+rootToken, "-dev-no-store-token")
	if err != nil {
		return nil, err
	}
	v := &devVault{proc: p, addr: "http://" + addr}
	if err := waitHTTP(ctx, http.DefaultClient, v.addr+"/v1/sys/health", p, time.Minute); err != nil {
		_ = p.Stop(syscall.SIGTERM, 5*time.Second)
		return nil, err
	}
	cfg := vaultapi.DefaultConfig()
	cfg.Address = v.addr
	if v.client, err = vaultapi.NewClient(cfg); err != nil {
		_ = p.Stop(syscall.SIGTERM, 5*time.Second)
		return nil, err
	}
	v.client.SetToken(rootToken)
	return v, nil
}

// kubernetesAuth is the seed guide's Vault setup: the Kubernetes auth
// method pointed at the API server (with a reviewer token that may call
// TokenReview), the app-role role for app-service-account in production,
// and a policy that reads the app's secrets.
type kubernetesAuth struct {
	Host, CA, ReviewerJWT string
}

func (v *devVault) configure(ctx context.Context, k kubernetesAuth, secrets map[string]map[string]any) error {
	if err := v.client.Sys().EnableAuthWithOptionsWithContext(ctx, "kubernetes", &vaultapi.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		return fmt.Errorf("vault auth enable kubernetes: %w", err)
	}
	writes := []struct {
		path string
		data map[string]any
	}{
		{"auth/kubernetes/config", map[string]any{
			"kubernetes_host": k.Host, "kubernetes_ca_cert": k.CA, "token_reviewer_jwt": k.ReviewerJWT, "disable_local_ca_jwt": true,
		}},
		{"auth/kubernetes/role/app-role", map[string]any{
			"bound_service_account_names": "app-service-account", "bound_service_account_namespaces": "production",
			"policies": "app-policy", "ttl": "24h",
		}},
	}
	for _, w := range writes {
		if _, err := v.client.Logical().WriteWithContext(ctx, w.path, w.data); err != nil {
			return fmt.Errorf("vault write %s: %w", w.path, err)
		}
	}
	if err := v.client.Sys().PutPolicyWithContext(ctx, "app-policy", `path "secret/data/myapp/*" { capabilities = ["read"] }`); err != nil {
		return fmt.Errorf("vault policy write app-policy: %w", err)
	}
	for path, data := range secrets {
		if err := v.put(ctx, path, data); err != nil {
			return err
		}
	}
	return nil
}

// put writes a KV version 2 secret under the dev server's secret/ mount.
func (v *devVault) put(ctx context.Context, path string, data map[string]any) error {
	if _, err := v.client.KVv2("secret").Put(ctx, path, data); err != nil {
		return fmt.Errorf("vault kv put secret/%s: %w", path, err)
	}
	return nil
}

// vaultProxy plays the cluster's name for Vault. The seed guide's class
// says vaultAddress http://vault.vault.svc:8200, which only resolves inside
// a cluster; the agent reaches it through this HTTP proxy, named by the
// standard Vault client variable VAULT_PROXY_ADDR. The class is applied
// unchanged. Any other destination is refused.
type vaultProxy struct {
	host   string // vault.vault.svc:8200
	target *url.URL
	rp     *httputil.ReverseProxy
	srv    *http.Server
	addr   string
}

func startVaultProxy(classAddr, vaultAddr string) (*vaultProxy, error) {
	from, err := url.Parse(classAddr)
	if err != nil {
		return nil, err
	}
	to, err := url.Parse(vaultAddr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	p := &vaultProxy{host: from.Host, target: to, addr: addr}
	p.rp = &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(to)
		r.Out.Host = from.Host
	}}
	p.srv = &http.Server{Addr: addr, Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// ServeHTTP forwards proxy requests for the class's Vault host only.
func (p *vaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect || !strings.EqualFold(r.URL.Host, p.host) {
		http.Error(w, "this demo proxy only forwards to "+p.host, http.StatusForbidden)
		return
	}
	p.rp.ServeHTTP(w, r)
}

func (p *vaultProxy) close() error { return p.srv.Close() }
