package vault

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssinjector/ssi/internal/volume"
)

// BenchmarkRotationCostCertificates reports what one rotation costs for a
// class of 10 certificates (pki/issue with method PUT, certificate and
// private_key from each answer: 20 objects) and 10 KV secrets, against a
// fake Vault over real HTTP, through volume.Refresh as the agent and the
// node shim call it: Vault calls, response bytes and certificates issued
// per rotation. The certificates live an hour, so every rotation falls
// before their renewal point. It uses only API that predates certificate
// renewal, so the same file measures the base commit ("before").
func BenchmarkRotationCostCertificates(b *testing.B) {
	for _, k := range []string{"VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT", "VAULT_CAPATH", "VAULT_CLIENT_CERT", "VAULT_CLIENT_KEY", "VAULT_TLS_SERVER_NAME", "VAULT_SKIP_VERIFY"} {
		b.Setenv(k, "")
	}
	b.Setenv("VAULT_MAX_RETRIES", "0")
	const n = 10
	fv := newFakeVault(b)
	var issued atomic.Int64
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	var objs strings.Builder
	for i := 0; i < n; i++ {
		fv.handle(http.MethodPut, fmt.Sprintf("/v1/pki/issue/c%d", i), func(fakeReq) (int, string) {
			s := issued.Add(1)
			now := time.Now()
			tpl := &x509.Certificate{SerialNumber: big.NewInt(s), Subject: pkix.Name{CommonName: "www.example.com"}, NotBefore: now, NotAfter: now.Add(time.Hour)}
			der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
			if err != nil {
				return 500, `{"errors":["issue"]}`
			}
			crt := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
			body, _ := json.Marshal(map[string]any{"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0,
				"data": map[string]any{"certificate": crt, "private_key": keyPEM, "issuing_ca": crt, "serial_number": fmt.Sprint(s)}})
			return 200, string(body)
		})
		fmt.Fprintf(&objs, "- {objectName: c%d.crt, secretPath: pki/issue/c%d, secretKey: certificate, method: PUT, secretArgs: {common_name: www.example.com}}\n", i, i)
		fmt.Fprintf(&objs, "- {objectName: c%d.key, secretPath: pki/issue/c%d, secretKey: private_key, method: PUT, secretArgs: {common_name: www.example.com}}\n", i, i)
		fv.reply(http.MethodGet, fmt.Sprintf("/v1/secret/data/app/s%d", i), 200, kv2Body(map[string]string{"value": rotationValue(i)}))
		fmt.Fprintf(&objs, "- {objectName: s%d, secretPath: secret/data/app/s%d, secretKey: value}\n", i, i)
	}
	c := unitClass(b, fv.srv.URL, map[string]string{"objects": objs.String()})
	p := New(Options{})
	b.Cleanup(func() { _ = p.Close() })
	v := &volume.Volume{Class: c, Dir: b.TempDir()}
	ctx := context.Background()
	id := unitRequest(c, nil).Identity
	if _, err := v.Refresh(ctx, p, id); err != nil {
		b.Fatal(err)
	}
	calls0, issued0 := fv.total(), issued.Load()
	fv.sent.Snapshot()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Refresh(ctx, p, id); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	bytes, _ := fv.sent.Snapshot()
	rot := float64(b.N)
	b.ReportMetric(float64(fv.total()-calls0)/rot, "calls/rotation")
	b.ReportMetric(float64(bytes)/rot, "bytes/rotation")
	b.ReportMetric(float64(issued.Load()-issued0)/rot, "issues/rotation")
}
