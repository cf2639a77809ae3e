package render

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"strings"

	"software.sslmate.com/src/go-pkcs12"
)

// pemBlocks decodes every PEM block of s; text between blocks is ignored.
// Text that holds no block is an error.
func pemBlocks(s string) ([]*pem.Block, error) {
	var out []*pem.Block
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, safeError("the text holds no PEM block")
	}
	return out, nil
}

func encode(blocks []*pem.Block) string {
	var b bytes.Buffer
	for _, bl := range blocks {
		// Headers are dropped: they are not part of a certificate or key
		// file's contract, and pem.Encode fails on some of them.
		_ = pem.Encode(&b, &pem.Block{Type: bl.Type, Bytes: bl.Bytes})
	}
	return b.String()
}

func certificates(s string) ([]*pem.Block, error) {
	blocks, err := pemBlocks(s)
	if err != nil {
		return nil, err
	}
	var certs []*pem.Block
	for _, b := range blocks {
		if b.Type == "CERTIFICATE" {
			certs = append(certs, b)
		}
	}
	if len(certs) == 0 {
		return nil, safeError("the text holds no CERTIFICATE block")
	}
	return certs, nil
}

// pemCertificate returns the first CERTIFICATE block of s (the leaf, by
// the order TLS uses).
func pemCertificate(s string) (string, error) {
	certs, err := certificates(s)
	if err != nil {
		return "", err
	}
	return encode(certs[:1]), nil
}

// pemChain returns the CERTIFICATE blocks after the first (the
// intermediates); empty when there is only the leaf.
func pemChain(s string) (string, error) {
	certs, err := certificates(s)
	if err != nil {
		return "", err
	}
	return encode(certs[1:]), nil
}

// pemCertificates returns every CERTIFICATE block of s.
func pemCertificates(s string) (string, error) {
	certs, err := certificates(s)
	if err != nil {
		return "", err
	}
	return encode(certs), nil
}

// pemPrivateKey returns the first block whose type ends in "PRIVATE KEY"
// (PKCS#8, PKCS#1 RSA, SEC 1 EC), unchanged. An encrypted key is refused.
func pemPrivateKey(s string) (string, error) {
	blocks, err := pemBlocks(s)
	if err != nil {
		return "", err
	}
	for _, b := range blocks {
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue
		}
		if b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] != "" {
			return "", safeError("the private key is encrypted")
		}
		return encode([]*pem.Block{b}), nil
	}
	return "", safeError("the text holds no PRIVATE KEY block")
}

// decodePKCS12 reads a PKCS#12 (PFX) file, binary as the object holds it.
func decodePKCS12(data, password string) (key any, leaf *x509.Certificate, cas []*x509.Certificate, err error) {
	key, leaf, cas, err = pkcs12.DecodeChain([]byte(data), password)
	if err != nil {
		if strings.Contains(err.Error(), "password") {
			return nil, nil, nil, safeError("the PKCS#12 file cannot be decrypted with this password")
		}
		return nil, nil, nil, safeError("the data is not a PKCS#12 file with one key and certificate")
	}
	return key, leaf, cas, nil
}

func pkcs12Certificate(data string) (string, error) { return pkcs12CertificatePass("", data) }
func pkcs12Key(data string) (string, error)         { return pkcs12KeyPass("", data) }
func pkcs12Chain(data string) (string, error)       { return pkcs12ChainPass("", data) }

// pkcs12CertificatePass returns the leaf certificate of a PKCS#12 file as
// PEM.
func pkcs12CertificatePass(password, data string) (string, error) {
	_, leaf, _, err := decodePKCS12(data, password)
	if err != nil {
		return "", err
	}
	return encode([]*pem.Block{{Type: "CERTIFICATE", Bytes: leaf.Raw}}), nil
}

// pkcs12KeyPass returns the private key of a PKCS#12 file as a PKCS#8 PEM
// block.
func pkcs12KeyPass(password, data string) (string, error) {
	key, _, _, err := decodePKCS12(data, password)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", safeError("the PKCS#12 key has a type PKCS#8 cannot hold")
	}
	return encode([]*pem.Block{{Type: "PRIVATE KEY", Bytes: der}}), nil
}

// pkcs12ChainPass returns the CA certificates of a PKCS#12 file as PEM, in
// the file's order.
func pkcs12ChainPass(password, data string) (string, error) {
	_, _, cas, err := decodePKCS12(data, password)
	if err != nil {
		return "", err
	}
	blocks := make([]*pem.Block, len(cas))
	for i, c := range cas {
		blocks[i] = &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}
	}
	return encode(blocks), nil
}
