package azure

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/ssinjector/ssi/internal/spc"
)

// Content types Key Vault gives the secret behind a certificate.
const (
	contentTypePEM = "application/x-pem-file"
	contentTypePFX = "application/x-pkcs12"
)

// secretContent turns a secret's value into file content: certificate-backed
// secrets (kid set) are converted according to objectFormat, then
// objectEncoding is applied. Errors never quote the value.
func secretContent(o *spc.AzureObject, value, contentType string, certBacked bool) ([]byte, error) {
	data := []byte(value)
	if certBacked {
		switch contentType {
		case contentTypePEM:
			// Stored as PEM already: written as is.
		case contentTypePFX:
			if o.ObjectFormat != spc.AzureFormatPFX {
				pfx, err := base64.StdEncoding.DecodeString(value)
				if err != nil {
					return nil, errors.New("the certificate's PKCS#12 secret is not base64")
				}
				if data, err = pfxToPEM(pfx); err != nil {
					return nil, err
				}
			}
		default:
			return nil, fmt.Errorf("the certificate's secret has unknown content type %q (want %s or %s)", contentType, contentTypePEM, contentTypePFX)
		}
	}
	return decode(o.ObjectEncoding, data)
}

// decode applies objectEncoding.
func decode(encoding string, data []byte) ([]byte, error) {
	switch strings.ToLower(encoding) {
	case "", spc.AzureEncodingUTF8:
		return data, nil
	case spc.AzureEncodingBase64:
		out, err := base64.StdEncoding.DecodeString(string(data))
		if err != nil {
			// The error of encoding/base64 names only an offset.
			return nil, fmt.Errorf("objectEncoding base64: the value is not standard base64: %w", err)
		}
		return out, nil
	case spc.AzureEncodingHex:
		out, err := hex.DecodeString(string(data))
		if err != nil {
			// hex.InvalidByteError quotes the offending byte; keep it out.
			return nil, errors.New("objectEncoding hex: the value is not hexadecimal")
		}
		return out, nil
	}
	return nil, fmt.Errorf("objectEncoding %q is not utf-8, base64 or hex", encoding)
}

// pfxToPEM converts a PKCS#12 archive with an empty password (as Key Vault
// stores certificates) into PEM: the private key as PKCS#8 "PRIVATE KEY",
// then the certificates, leaf first and each followed by its issuer;
// certificates that do not continue the chain follow in their original
// order.
func pfxToPEM(pfx []byte) ([]byte, error) {
	key, leaf, cas, err := pkcs12.DecodeChain(pfx, "")
	if err != nil {
		// The pkcs12 errors describe structure, never key material.
		return nil, fmt.Errorf("the certificate's PKCS#12 secret does not decode: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("the certificate's private key cannot be written as PKCS#8: %w", err)
	}
	var buf bytes.Buffer
	if err := pem.Encode(&buf, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		return nil, err
	}
	for _, c := range orderChain(leaf, cas) {
		if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// orderChain returns leaf, then its issuer, then that one's issuer, ...,
// then every certificate not on that path in the order given.
func orderChain(leaf *x509.Certificate, rest []*x509.Certificate) []*x509.Certificate {
	out := []*x509.Certificate{leaf}
	used := make([]bool, len(rest))
	cur := leaf
	for {
		next := -1
		for i, c := range rest {
			if !used[i] && !bytes.Equal(cur.Raw, c.Raw) && bytes.Equal(cur.RawIssuer, c.RawSubject) && cur.CheckSignatureFrom(c) == nil {
				next = i
				break
			}
		}
		if next < 0 {
			break
		}
		used[next] = true
		out = append(out, rest[next])
		cur = rest[next]
	}
	for i, c := range rest {
		if !used[i] {
			out = append(out, c)
		}
	}
	return out
}

// publicKeyPEM renders the public half of a Key Vault key as a PKIX
// "PUBLIC KEY" PEM block. RSA and EC keys (software or HSM) are supported.
func publicKeyPEM(k *azkeys.JSONWebKey) ([]byte, error) {
	if k == nil || k.Kty == nil {
		return nil, errors.New("the key has no key material")
	}
	var pub any
	switch *k.Kty {
	case azkeys.KeyTypeRSA, azkeys.KeyTypeRSAHSM:
		if len(k.N) == 0 || len(k.E) == 0 {
			return nil, errors.New("the RSA key has no modulus or exponent")
		}
		e := new(big.Int).SetBytes(k.E)
		if !e.IsInt64() || e.Int64() > 1<<31-1 {
			return nil, errors.New("the RSA key's exponent is too large")
		}
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(k.N), E: int(e.Int64())}
	case azkeys.KeyTypeEC, azkeys.KeyTypeECHSM:
		if k.Crv == nil {
			return nil, errors.New("the EC key has no curve")
		}
		var curve elliptic.Curve
		switch *k.Crv {
		case azkeys.CurveNameP256:
			curve = elliptic.P256()
		case azkeys.CurveNameP384:
			curve = elliptic.P384()
		case azkeys.CurveNameP521:
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("EC curve %q is not supported (P-256, P-384, P-521)", *k.Crv)
		}
		size := (curve.Params().BitSize + 7) / 8
		if len(k.X) > size || len(k.Y) > size {
			return nil, errors.New("the EC key's coordinates do not fit its curve")
		}
		// Uncompressed point: 0x04 || X || Y, each left-padded to the size.
		point := make([]byte, 1+2*size)
		point[0] = 4
		copy(point[1+size-len(k.X):1+size], k.X)
		copy(point[1+2*size-len(k.Y):], k.Y)
		ecdhKey, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return nil, fmt.Errorf("the EC key is not a point on %s: %w", *k.Crv, err)
		}
		pub = ecdhKey
	default:
		return nil, fmt.Errorf("key type %q is not supported (RSA, RSA-HSM, EC, EC-HSM)", *k.Kty)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("the public key cannot be written as PKIX: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// certificatePEM renders a certificate's DER (CER) as one PEM block.
func certificatePEM(der []byte) ([]byte, error) {
	if len(der) == 0 {
		return nil, errors.New("the certificate has no content (cer)")
	}
	if _, err := x509.ParseCertificate(der); err != nil {
		return nil, fmt.Errorf("the certificate does not parse: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
