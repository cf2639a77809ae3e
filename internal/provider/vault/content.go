package vault

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/spc"
)

// render turns a Vault response into the content of one object, as the
// upstream provider writes it:
//   - secretKey empty: the whole response, JSON-encoded (request_id,
//     lease_id, lease_duration, renewable, data, warnings, then auth,
//     wrap_info and mount_type when present; numbers keep their text);
//   - secretKey set: that key of data.data when data holds a map named
//     "data" (KV version 2), else of data; strings are written raw, other
//     values as compact JSON; then encoding (base64 or hex) is decoded.
//
// stable is what the version is computed over: the content, except that a
// whole response drops request_id, which differs on every read of an
// unchanged secret.
func render(sec *vaultapi.Secret, o *spc.VaultObject) (content, stable []byte, err error) {
	if o.SecretKey == "" {
		content, err = json.Marshal(sec)
		if err != nil {
			return nil, nil, provider.WithReason(provider.ReasonInvalidContent, fmt.Errorf("encode the response from %q as JSON: %s", o.SecretPath, jsonErrorKind(err)))
		}
		cp := *sec
		cp.RequestID = ""
		stable, err = json.Marshal(&cp)
		if err != nil {
			return nil, nil, provider.WithReason(provider.ReasonInvalidContent, fmt.Errorf("encode the response from %q as JSON: %s", o.SecretPath, jsonErrorKind(err)))
		}
		return content, stable, nil
	}
	data := sec.Data
	if inner, ok := data["data"].(map[string]any); ok {
		data = inner
	}
	v, ok := data[o.SecretKey]
	if !ok {
		return nil, nil, provider.WithReason(provider.ReasonNotFound, fmt.Errorf("key %q does not exist at secret path %q", o.SecretKey, o.SecretPath))
	}
	var raw []byte
	if s, ok := v.(string); ok {
		raw = []byte(s)
	} else if raw, err = json.Marshal(v); err != nil {
		return nil, nil, provider.WithReason(provider.ReasonInvalidContent, fmt.Errorf("value of key %q at secret path %q is neither a string nor JSON-encodable (%s)", o.SecretKey, o.SecretPath, jsonErrorKind(err)))
	}
	out, err := decode(raw, o.Encoding)
	if err != nil {
		return nil, nil, provider.WithReason(provider.ReasonInvalidContent, fmt.Errorf("value of key %q at secret path %q: %w", o.SecretKey, o.SecretPath, err))
	}
	return out, out, nil
}

// decode applies the object's encoding to an extracted value. Its errors
// never quote the value (encoding/hex's own error quotes the bad byte).
func decode(b []byte, encoding string) ([]byte, error) {
	switch strings.ToLower(encoding) {
	case "", spc.VaultEncodingUTF8:
		return b, nil
	case spc.VaultEncodingBase64:
		out, err := base64.StdEncoding.DecodeString(string(b))
		if err != nil {
			var ce base64.CorruptInputError
			if errors.As(err, &ce) {
				return nil, fmt.Errorf("not valid base64 (encoding: base64): bad data at byte %d", int64(ce))
			}
			return nil, errors.New("not valid base64 (encoding: base64)")
		}
		return out, nil
	case spc.VaultEncodingHex:
		out, err := hex.DecodeString(string(b))
		if err != nil {
			if errors.Is(err, hex.ErrLength) {
				return nil, errors.New("not valid hex (encoding: hex): odd length")
			}
			return nil, errors.New("not valid hex (encoding: hex): a character is not a hex digit")
		}
		return out, nil
	}
	return nil, fmt.Errorf("invalid encoding %q: use utf-8, base64 or hex", encoding)
}

// jsonErrorKind names a JSON encoding failure without quoting values
// (json.UnsupportedValueError prints the value).
func jsonErrorKind(err error) string {
	var ute *json.UnsupportedTypeError
	if errors.As(err, &ute) {
		return "unsupported type " + ute.Type.String()
	}
	var uve *json.UnsupportedValueError
	if errors.As(err, &uve) {
		return "unsupported value"
	}
	return "not encodable"
}

// objectConfig is the part of an object's configuration that its version
// covers, so that equal content under another configuration is another
// version.
type objectConfig struct {
	ObjectName     string         `json:"objectName"`
	SecretPath     string         `json:"secretPath"`
	SecretKey      string         `json:"secretKey,omitempty"`
	Method         string         `json:"method,omitempty"`
	SecretArgs     map[string]any `json:"secretArgs,omitempty"`
	FilePermission fs.FileMode    `json:"filePermission,omitempty"`
	Encoding       string         `json:"encoding,omitempty"`
	ExactMode      bool           `json:"exactMode,omitempty"`
}

// version is base64url(HMAC-SHA256(key, config ‖ 0 ‖ content)): it changes
// with the content or the configuration and, keyed, tells nothing about a
// low-entropy secret to whoever reads it from a status object.
func version(key []byte, o *spc.VaultObject, content []byte) (string, error) {
	cfg, err := json.Marshal(objectConfig{
		ObjectName: o.ObjectName, SecretPath: o.SecretPath, SecretKey: o.SecretKey, Method: o.Method,
		SecretArgs: o.SecretArgs, FilePermission: o.FilePermission, Encoding: o.Encoding, ExactMode: o.ExactMode,
	})
	if err != nil {
		return "", fmt.Errorf("encode the configuration of object %q: %s", o.ObjectName, jsonErrorKind(err))
	}
	h := hmac.New(sha256.New, key)
	h.Write(cfg)
	h.Write([]byte{0})
	h.Write(content)
	return base64.URLEncoding.EncodeToString(h.Sum(nil)), nil
}
