package vault

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/spc"
	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// BenchmarkFetch measures fetching 10 KV version 2 secrets from a real
// local Vault with Kubernetes auth: "cold" is a new provider (login
// including TokenReview, then 10 reads), "warm" a rotation with the token
// kept (10 reads, versions unchanged).
func BenchmarkFetch(b *testing.B) {
	env := testenv.Start(b, testenv.Options{})
	v := testenv.StartVault(b, testenv.VaultOptions{})
	ns := env.Namespace(b, "vault-bench", nil)
	env.ServiceAccount(b, ns, "app", nil)
	v.EnableKubernetesAuth(b, env, "")
	v.Policy(b, "bench", `path "secret/data/bench/*" { capabilities = ["read"] }`)
	v.KubernetesRole(b, "", testenv.KubernetesRole{Name: "bench", ServiceAccounts: []string{"app"}, Namespaces: []string{ns}, Policies: []string{"bench"}})
	var objs strings.Builder
	for i := 0; i < 10; i++ {
		v.PutKV2(b, "secret", fmt.Sprintf("bench/s%d", i), map[string]any{"value": fmt.Sprintf("value-%d", i)})
		fmt.Fprintf(&objs, "- {objectName: s%d, secretPath: secret/data/bench/s%d, secretKey: value}\n", i, i)
	}
	c, err := spc.ParseSpec(ns, "bench", "vault", map[string]string{"vaultAddress": v.Addr, "roleName": "bench", "objects": objs.String()})
	if err != nil {
		b.Fatal(err)
	}
	// Mint the service-account token once: the agent reads it from a
	// projected file, not from the API server.
	jwt, err := env.Token(context.Background(), ns, "app", nil, time.Hour, nil)
	if err != nil {
		b.Fatal(err)
	}
	req := provider.Request{Class: c, Permission: 0o644, Identity: identity.Identity{
		Pod: identity.Pod{Namespace: ns, Name: "bench", ServiceAccount: "app"}, Tokens: identity.StaticTokens{"": jwt}}}
	ctx := context.Background()

	b.Run("cold", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			p := New(Options{})
			if _, err := p.Fetch(ctx, req); err != nil {
				b.Fatal(err)
			}
			_ = p.Close()
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/cold-fetch")
	})
	b.Run("warm", func(b *testing.B) {
		p := New(Options{})
		defer func() { _ = p.Close() }()
		first, err := p.Fetch(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		warm := req
		warm.Current = provider.Versions(first)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			out, err := p.Fetch(ctx, warm)
			if err != nil {
				b.Fatal(err)
			}
			if !out[0].Unchanged {
				b.Fatal("unchanged secret reported changed")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/rotation")
	})
}
