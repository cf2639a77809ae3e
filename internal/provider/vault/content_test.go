package vault

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/spc"
)

// Bodies as Vault 1.14 sends them (field order included).
const (
	bodyKV2      = `{"request_id":"8a5b0c5e-1111-2222-3333-444455556666","lease_id":"","renewable":false,"lease_duration":0,"data":{"data":{"password":"p@ss-kv2-value","port":5432,"ratio":1.50,"enabled":true,"tags":["a","b"],"nested":{"k":"v"},"nothing":null,"b64":"aGVsbG8=","hex":"68656c6c6f","badb64":"c2VjcmV0!!value","badhex":"secretzzvalue","oddhex":"abc","html":"<a&b>"},"metadata":{"created_time":"2026-11-27T02:40:00.123456789Z","custom_metadata":null,"deletion_time":"","destroyed":false,"version":3}},"wrap_info":null,"warnings":null,"auth":null}`
	wantKV2Whole = `{"request_id":"8a5b0c5e-1111-2222-3333-444455556666","lease_id":"","lease_duration":0,"renewable":false,"data":{"data":{"b64":"aGVsbG8=","badb64":"c2VjcmV0!!value","badhex":"secretzzvalue","enabled":true,"hex":"68656c6c6f","html":"\u003ca\u0026b\u003e","nested":{"k":"v"},"nothing":null,"oddhex":"abc","password":"p@ss-kv2-value","port":5432,"ratio":1.50,"tags":["a","b"]},"metadata":{"created_time":"2026-11-27T02:40:00.123456789Z","custom_metadata":null,"deletion_time":"","destroyed":false,"version":3}},"warnings":null}`

	bodyKV1      = `{"request_id":"r-kv1","lease_id":"","renewable":false,"lease_duration":2764800,"data":{"password":"p@ss-kv1-value","user":"app"},"wrap_info":null,"warnings":null,"auth":null}`
	wantKV1Whole = `{"request_id":"r-kv1","lease_id":"","lease_duration":2764800,"renewable":false,"data":{"password":"p@ss-kv1-value","user":"app"},"warnings":null}`

	// A KV v1 secret that has a map-valued key literally named "data":
	// upstream searches only that inner map.
	bodyKV1DataKey = `{"request_id":"r-dk","lease_id":"","renewable":false,"lease_duration":2764800,"data":{"data":{"inner":"in"},"outer":"out"},"wrap_info":null,"warnings":null,"auth":null}`

	bodyDB      = `{"request_id":"r-db","lease_id":"database/creds/app/AbCd","renewable":true,"lease_duration":3600,"data":{"password":"db-pass-value","username":"v-app-xyz"},"wrap_info":null,"warnings":["a warning"],"auth":null}`
	wantDBWhole = `{"request_id":"r-db","lease_id":"database/creds/app/AbCd","lease_duration":3600,"renewable":true,"data":{"password":"db-pass-value","username":"v-app-xyz"},"warnings":["a warning"]}`

	// A body without any of the standard fields becomes data as a whole.
	bodyRaw      = `{"foo":"bar","n":1}`
	wantRawWhole = `{"request_id":"","lease_id":"","lease_duration":0,"renewable":false,"data":{"foo":"bar","n":1},"warnings":null}`

	bodyNullData = `{"request_id":"r-null","lease_id":"","renewable":false,"lease_duration":0,"data":null,"wrap_info":null,"warnings":["no data here"],"auth":null}`
)

var contentSecrets = []string{"p@ss-kv2-value", "p@ss-kv1-value", "c2VjcmV0!!value", "secretzzvalue", "db-pass-value"}

// TestResponseToFile covers how a Vault answer becomes file content.
func TestResponseToFile(t *testing.T) {
	for name, tc := range map[string]struct {
		status    int
		body      string
		object    string // YAML fields after objectName/secretPath
		want      string
		reason    provider.Reason
		wantErr   []string
		forbidErr []string
	}{
		"kv2 string":                    {body: bodyKV2, object: "secretKey: password", want: "p@ss-kv2-value"},
		"kv2 integer keeps its text":    {body: bodyKV2, object: "secretKey: port", want: "5432"},
		"kv2 decimal keeps its text":    {body: bodyKV2, object: "secretKey: ratio", want: "1.50"},
		"kv2 bool":                      {body: bodyKV2, object: "secretKey: enabled", want: "true"},
		"kv2 array as JSON":             {body: bodyKV2, object: "secretKey: tags", want: `["a","b"]`},
		"kv2 map as JSON":               {body: bodyKV2, object: "secretKey: nested", want: `{"k":"v"}`},
		"kv2 null":                      {body: bodyKV2, object: "secretKey: nothing", want: "null"},
		"kv2 string is raw, not JSON":   {body: bodyKV2, object: "secretKey: html", want: "<a&b>"},
		"kv2 base64 decoded":            {body: bodyKV2, object: "{secretKey: b64, encoding: base64}", want: "hello"},
		"kv2 hex decoded":               {body: bodyKV2, object: "{secretKey: hex, encoding: HEX}", want: "hello"},
		"kv2 utf-8 is as is":            {body: bodyKV2, object: "{secretKey: b64, encoding: utf-8}", want: "aGVsbG8="},
		"kv2 whole response":            {body: bodyKV2, object: "{}", want: wantKV2Whole},
		"encoding ignored when whole":   {body: bodyKV1, object: "{encoding: base64}", want: wantKV1Whole},
		"kv1 string":                    {body: bodyKV1, object: "secretKey: password", want: "p@ss-kv1-value"},
		"kv1 whole response":            {body: bodyKV1, object: "{}", want: wantKV1Whole},
		"kv1 map named data is entered": {body: bodyKV1DataKey, object: "secretKey: inner", want: "in"},
		"dynamic whole response":        {body: bodyDB, object: "{}", want: wantDBWhole},
		"dynamic key":                   {body: bodyDB, object: "secretKey: username", want: "v-app-xyz"},
		"raw body becomes data":         {body: bodyRaw, object: "secretKey: foo", want: "bar"},
		"raw body whole":                {body: bodyRaw, object: "{}", want: wantRawWhole},

		"missing key": {body: bodyKV2, object: "secretKey: api_key", reason: provider.ReasonNotFound,
			wantErr: []string{`key "api_key" does not exist at secret path "secret/data/app"`}},
		"kv1 key beside a map named data is not found (upstream)": {body: bodyKV1DataKey, object: "secretKey: outer", reason: provider.ReasonNotFound,
			wantErr: []string{`key "outer" does not exist`}},
		"bad base64": {body: bodyKV2, object: "{secretKey: badb64, encoding: base64}", reason: provider.ReasonInvalidContent,
			wantErr: []string{`value of key "badb64"`, "not valid base64"}, forbidErr: []string{"c2VjcmV0"}},
		"bad hex": {body: bodyKV2, object: "{secretKey: badhex, encoding: hex}", reason: provider.ReasonInvalidContent,
			wantErr: []string{`value of key "badhex"`, "not valid hex"}, forbidErr: []string{"secretzz", "'s'", "U+"}},
		"odd hex": {body: bodyKV2, object: "{secretKey: oddhex, encoding: hex}", reason: provider.ReasonInvalidContent,
			wantErr: []string{"odd length"}},
		"no content": {status: http.StatusNoContent, body: "", object: "secretKey: x", reason: provider.ReasonNotFound,
			wantErr: []string{`empty response from "secret/data/app"`}},
		"null data": {body: bodyNullData, object: "secretKey: x", reason: provider.ReasonNotFound,
			wantErr: []string{`empty response from "secret/data/app"`, "no data here"}},
		"not JSON": {body: "<html>secret page</html>", object: "secretKey: x", reason: provider.ReasonInvalidContent,
			wantErr: []string{"not Vault JSON"}, forbidErr: []string{"secret page"}},
	} {
		t.Run(name, func(t *testing.T) {
			unitEnv(t)
			fv := newFakeVault(t)
			status := tc.status
			if status == 0 {
				status = http.StatusOK
			}
			fv.reply("GET", "/v1/secret/data/app", status, tc.body)
			p, logs := unitProvider(t, Options{}, contentSecrets...)
			c := unitClass(t, fv.srv.URL, map[string]string{"objects": "- objectName: out\n  secretPath: secret/data/app\n" + indentFields(tc.object)})
			objs, err := unitFetch(t, p, logs, unitRequest(c, nil))
			if tc.reason != "" {
				providerError(t, err, c.Key(), "out", tc.reason, tc.wantErr...)
				for _, f := range tc.forbidErr {
					if strings.Contains(err.Error(), f) {
						t.Errorf("error quotes %q: %v", f, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("fetch: %v", err)
			}
			if len(objs) != 1 || len(objs[0].Files) != 1 {
				t.Fatalf("got %+v", objs)
			}
			f := objs[0].Files[0]
			if got := string(f.Data); got != tc.want {
				t.Errorf("content:\n got %s\nwant %s", got, tc.want)
			}
			if f.Path != "out" || f.Mode != 0o644 || objs[0].ID != "out" || objs[0].Version == "" {
				t.Errorf("file %s mode %v, object %s version %q", f.Path, f.Mode, objs[0].ID, objs[0].Version)
			}
		})
	}
}

// indentFields turns "{a: b}" or "a: b" into fields of the list entry.
func indentFields(s string) string {
	s = strings.TrimSpace(s)
	if s == "{}" {
		return ""
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}")
	var out []string
	for _, f := range strings.Split(s, ",") {
		out = append(out, "  "+strings.TrimSpace(f))
	}
	return strings.Join(out, "\n") + "\n"
}

func TestVersion(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	base := spc.VaultObject{ObjectName: "a", SecretPath: "secret/data/app", SecretKey: "password", Method: "GET"}
	v0, err := version(key, &base, []byte("value"))
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		key     []byte
		mutate  func(o *spc.VaultObject)
		content string
		same    bool
	}{
		"same config and content":  {content: "value", same: true},
		"other content":            {content: "value2"},
		"other object name":        {content: "value", mutate: func(o *spc.VaultObject) { o.ObjectName = "b" }},
		"other secret key":         {content: "value", mutate: func(o *spc.VaultObject) { o.SecretKey = "x" }},
		"other file permission":    {content: "value", mutate: func(o *spc.VaultObject) { o.FilePermission = 0o600 }},
		"other encoding":           {content: "value", mutate: func(o *spc.VaultObject) { o.Encoding = "hex" }},
		"other secret args":        {content: "value", mutate: func(o *spc.VaultObject) { o.SecretArgs = map[string]any{"ttl": "1h"} }},
		"other key, same anything": {content: "value", key: []byte("another key")},
	} {
		t.Run(name, func(t *testing.T) {
			o := base
			if tc.mutate != nil {
				tc.mutate(&o)
			}
			k := key
			if tc.key != nil {
				k = tc.key
			}
			v, err := version(k, &o, []byte(tc.content))
			if err != nil {
				t.Fatal(err)
			}
			if (v == v0) != tc.same {
				t.Errorf("version %q vs %q: same=%v, want %v", v, v0, v == v0, tc.same)
			}
			if strings.ContainsAny(v, "+/") || len(v) != 44 {
				t.Errorf("version %q is not base64url of 32 bytes", v)
			}
		})
	}
}
