package secretsync

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// PEM block types of the kubernetes.io/tls split.
const (
	pemCertificate   = "CERTIFICATE"
	pemRSAPrivateKey = "RSA PRIVATE KEY"
	pemECPrivateKey  = "EC PRIVATE KEY"
)

// tlsValue computes the value of key tls.crt or tls.key of a
// kubernetes.io/tls Secret from the content of one object, with the
// upstream driver's rules:
//
//   - tls.crt is every CERTIFICATE block of the PEM content, re-encoded in
//     order; content without one is read as PKCS#12 (empty password) and
//     its certificates (leaf first) are used.
//   - tls.key is the last PEM block that is not a CERTIFICATE; content
//     without one is read as PKCS#12 and its key used. The key is written
//     as PKCS#1 "RSA PRIVATE KEY" for RSA and SEC1 "EC PRIVATE KEY" for
//     ECDSA, whether it came as PKCS#1, SEC1 or PKCS#8.
//
// Upstream writes an empty PRIVATE KEY block when the key's DER cannot be
// parsed; here that is an error, so a broken key never reaches a Secret.
// Errors describe the content's shape, never its bytes.
func tlsValue(key string, content []byte) ([]byte, error) {
	var certs []*pem.Block
	var last *pem.Block
	rest := content
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == pemCertificate {
			certs = append(certs, b)
		} else {
			last = b
		}
	}
	switch key {
	case keyTLSCert:
		if len(certs) == 0 {
			_, leaf, chain, err := pkcs12.DecodeChain(content, "")
			if err != nil {
				return nil, fmt.Errorf("no PEM CERTIFICATE block, and not a PKCS#12 bundle without password (%s)", pkcs12Problem(err))
			}
			for _, c := range append([]*x509.Certificate{leaf}, chain...) {
				certs = append(certs, &pem.Block{Type: pemCertificate, Bytes: c.Raw})
			}
		}
		var buf bytes.Buffer
		for _, c := range certs {
			if err := pem.Encode(&buf, &pem.Block{Type: pemCertificate, Bytes: c.Bytes}); err != nil {
				return nil, err
			}
		}
		return buf.Bytes(), nil
	case keyTLSKey:
		if last == nil {
			k, _, _, err := pkcs12.DecodeChain(content, "")
			if err != nil {
				return nil, fmt.Errorf("no PEM private key block, and not a PKCS#12 bundle without password (%s)", pkcs12Problem(err))
			}
			return encodeKey(k)
		}
		k, err := parseKey(last.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %q: %w", last.Type, err)
		}
		return encodeKey(k)
	}
	return nil, fmt.Errorf("key %q is not %s or %s", key, keyTLSCert, keyTLSKey)
}

// parseKey reads PKCS#1, SEC1 or PKCS#8 DER.
func parseKey(der []byte) (any, error) {
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("the private key is neither PKCS#1, SEC1 nor PKCS#8 DER")
}

func encodeKey(k any) ([]byte, error) {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return pem.EncodeToMemory(&pem.Block{Type: pemRSAPrivateKey, Bytes: x509.MarshalPKCS1PrivateKey(k)}), nil
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("encode EC private key: %w", err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: pemECPrivateKey, Bytes: der}), nil
	}
	return nil, fmt.Errorf("private key of type %T is not supported: only RSA and ECDSA keys are", k)
}

// pkcs12Problem names a PKCS#12 failure without echoing input.
func pkcs12Problem(err error) string {
	switch {
	case errors.Is(err, pkcs12.ErrIncorrectPassword):
		return "it needs a password"
	case errors.Is(err, pkcs12.ErrDecryption):
		return "it cannot be decrypted"
	}
	return "it is not valid PKCS#12"
}
