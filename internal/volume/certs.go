package volume

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"time"
)

// Validity is the lifetime of the leaf certificate found in content.
type Validity struct {
	NotBefore, NotAfter time.Time
}

// maxJSONScan bounds the JSON decoded to look for certificates in string
// values (a whole Vault response written as one object).
const maxJSONScan = 1 << 20

// CertValidity finds X.509 certificates in content, whichever provider
// fetched it: PEM blocks in the bytes, or in the string values of a JSON
// document (a Vault response written whole, whose PEM is JSON-escaped).
// Among them the leaf is the first that is not a CA, else the first; ok is
// false when there is none. Nothing of the content is returned or logged.
func CertValidity(content []byte) (Validity, bool) {
	if c := leafOf(pemCerts(content)); c != nil {
		return Validity{NotBefore: c.NotBefore, NotAfter: c.NotAfter}, true
	}
	t := bytes.TrimSpace(content)
	if len(t) == 0 || len(t) > maxJSONScan || (t[0] != '{' && t[0] != '[') || !bytes.Contains(t, []byte("BEGIN CERTIFICATE")) {
		return Validity{}, false
	}
	var doc any
	if json.Unmarshal(t, &doc) != nil {
		return Validity{}, false
	}
	var certs []*x509.Certificate
	walkStrings(doc, func(s string) { certs = append(certs, pemCerts([]byte(s))...) })
	if c := leafOf(certs); c != nil {
		return Validity{NotBefore: c.NotBefore, NotAfter: c.NotAfter}, true
	}
	return Validity{}, false
}

func pemCerts(b []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for len(b) > 0 {
		i := bytes.Index(b, []byte("-----BEGIN CERTIFICATE-----"))
		if i < 0 {
			break
		}
		var blk *pem.Block
		blk, b = pem.Decode(b[i:])
		if blk == nil {
			break
		}
		if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
			out = append(out, c)
		}
	}
	return out
}

func leafOf(certs []*x509.Certificate) *x509.Certificate {
	for _, c := range certs {
		if !c.IsCA {
			return c
		}
	}
	if len(certs) > 0 {
		return certs[0]
	}
	return nil
}

func walkStrings(v any, f func(string)) {
	switch t := v.(type) {
	case string:
		if len(t) > 0 && bytes.Contains([]byte(t), []byte("BEGIN CERTIFICATE")) {
			f(t)
		}
	case []any:
		for _, e := range t {
			walkStrings(e, f)
		}
	case map[string]any:
		for _, e := range t {
			walkStrings(e, f)
		}
	}
}
