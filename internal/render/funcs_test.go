package render

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// funcCases exercise every function of this package and a sample of
// sprig's; their outputs (or errors) are testdata/funcs.golden.
var funcCases = []struct{ name, text string }{
	{"object", `{{ object "db-password" }}`},
	{"fromJson field", `{{ (object "db.json" | fromJson).username }}`},
	{"fromJson number", `{{ (object "db.json" | fromJson).port }}`},
	{"fromJson range sorted", `{{ range $k, $v := object "db.json" | fromJson }}{{ $k }};{{ end }}`},
	{"fromJson invalid", `{{ object "db-password" | fromJson }}`},
	{"fromJson missing key", `{{ (object "db.json" | fromJson).nope }}`},
	{"fromYaml", `{{ (object "settings.yaml" | fromYaml).log.level }}`},
	{"fromYaml invalid", `{{ object "tls.p12" | fromYaml }}`},
	{"toYaml", `{{ object "db.json" | fromJson | toYaml }}`},
	{"toJson", `{{ object "settings.yaml" | fromYaml | toJson }}`},
	{"toPrettyJson", `{{ dict "b" 1 "a" (list "x" "y") | toPrettyJson }}`},
	{"jsonField", `{{ object "db.json" | jsonField "options.sslmode" }} {{ object "db.json" | jsonField "hosts.1" }} {{ object "db.json" | jsonField "port" }} {{ object "db.json" | jsonField "hosts" }}`},
	{"jsonField missing", `{{ object "db.json" | jsonField "options.nope" }}`},
	{"jsonField bad index", `{{ object "db.json" | jsonField "hosts.7" }}`},
	{"jsonField not a mapping", `{{ object "db.json" | jsonField "username.x" }}`},
	{"yamlField", `{{ object "settings.yaml" | yamlField "log.targets.0" }} {{ object "settings.yaml" | yamlField "replicas" }}`},
	{"b64enc", `{{ object "db-password" | b64enc }}`},
	{"b64dec", `{{ object "greeting.b64" | b64dec }}`},
	{"b64dec invalid", `{{ object "db-password" | b64dec }}`},
	{"b64urlenc", `{{ "??>>" | b64urlenc }} {{ "Pz8-Pg" | b64urldec }}`},
	{"b64urldec invalid", `{{ object "db-password" | b64urldec }}`},
	{"hexenc", `{{ object "api-key" | hexenc }} {{ "68656c6c6f" | hexdec }}`},
	{"hexdec invalid", `{{ object "db-password" | hexdec }}`},
	{"shellQuote", `{{ object "db-password" | shellQuote }} {{ "" | shellQuote }}`},
	{"propertiesKey", `{{ "a key=x:y#" | propertiesKey }}`},
	{"propertiesValue", `{{ object "db-password" | propertiesValue }}|{{ " lead#" | propertiesValue }}|{{ "#c" | propertiesValue }}|{{ object "unicode" | propertiesValue }}`},
	{"jsonString", `{{ object "db-password" | jsonString }} {{ object "unicode" | jsonString }} {{ "<&>" | jsonString }}`},
	{"jsonString invalid UTF-8", `{{ object "tls.p12" | jsonString }}`},
	{"yamlScalar", `{{ object "db-password" | yamlScalar }} {{ "yes" | yamlScalar }} {{ "a\"b\\c\n" | yamlScalar }} {{ object "unicode" | yamlScalar }}`},
	{"pgpassField", `{{ object "db-password" | pgpassField }}`},
	{"pgpassField line break", `{{ "a\nb" | pgpassField }}`},
	{"pemCertificate", `{{ object "tls.pem" | pemCertificate }}`},
	{"pemChain", `{{ object "tls.pem" | pemChain }}`},
	{"pemChain of a single certificate", `[{{ object "ca.crt" | pemChain }}]`},
	{"pemCertificates", `{{ object "tls.pem" | pemCertificates }}`},
	{"pemPrivateKey", `{{ object "tls.pem" | pemPrivateKey }}`},
	{"pemPrivateKey none", `{{ object "ca.crt" | pemPrivateKey }}`},
	{"pemCertificate not PEM", `{{ object "db-password" | pemCertificate }}`},
	{"pkcs12Certificate", `{{ object "tls.p12" | pkcs12Certificate }}`},
	{"pkcs12Key", `{{ object "tls.p12" | pkcs12Key }}`},
	{"pkcs12Chain", `{{ object "tls.p12" | pkcs12Chain }}`},
	{"pkcs12CertificatePass", `{{ object "tls-pass.p12" | pkcs12CertificatePass (object "p12-password") }}`},
	{"pkcs12KeyPass", `{{ object "tls-pass.p12" | pkcs12KeyPass (object "p12-password") }}`},
	{"pkcs12ChainPass", `{{ object "tls-pass.p12" | pkcs12ChainPass "changeit" }}`},
	{"pkcs12 wrong password", `{{ object "tls-pass.p12" | pkcs12KeyPass "wrong" }}`},
	{"pkcs12 not PKCS12", `{{ object "db-password" | pkcs12Key }}`},
	{"required present", `{{ object "api-key" | required "the API key is needed" }}`},
	{"required empty", `{{ "" | required "the API key is needed" }}`},
	{"fail", `{{ if not (hasPrefix "XYZ" (object "api-key")) }}{{ fail "not an access key" }}{{ end }}`},
	{"default", `{{ get (object "db.json" | fromJson) "missing" | default "x" }} {{ "" | default "y" }}`},
	{"default with dig", `{{ dig "options" "timeout" "30s" (object "db.json" | fromJson) }}`},
	{"keys values", `{{ keys (dict "b" 2 "a" 1 "c" 3) | join "," }} {{ values (dict "b" 2 "a" 1 "c" 3) | toJson }}`},
	{"repeat", `{{ repeat 3 "ab" }}`},
	{"repeat too many", `{{ repeat 100000 "ab" }}`},
	{"until", `{{ until 5 | toJson }} {{ untilStep 10 0 -3 | toJson }} {{ seq 3 }} {{ seq 5 2 }} {{ seq 1 2 7 }}`},
	{"until too long", `{{ until 100000 | len }}`},
	{"sprig strings", `{{ object "api-key" | lower | trimPrefix "akia-" | trunc 4 }} {{ "hello world" | title }} {{ "a,b" | splitList "," | toJson }} {{ "x" | quote }} {{ "x" | squote }} {{ "line" | indent 2 }}`},
	{"sprig hashes", `{{ object "db-password" | sha256sum }} {{ object "db-password" | adler32sum }}`},
	{"sprig numbers", `{{ add 1 2 }} {{ mul 3 4 }} {{ max 1 7 3 }} {{ (object "aws-db" | fromJson).port | atoi | add1 }}`},
	{"sprig regex", `{{ regexReplaceAll "[0-9]+" (object "api-key") "#" }} {{ regexMatch "^AKIA" (object "api-key") }}`},
	{"sprig regex invalid", `{{ regexMatch (printf "%s(" (object "db-password")) "x" }}`},
	{"sprig lists", `{{ list 3 1 2 | first }} {{ list 3 1 2 | last }} {{ list "b" "a" | sortAlpha | join "" }} {{ list 1 1 2 | uniq | len }}`},
	{"sprig first of a number", `{{ first 3 }}`},
	{"sprig paths and urls", `{{ base "a/b.txt" }} {{ ext "a/b.txt" }} {{ (urlParse "https://h.example:8443/p").host }}`},
	{"sprig semver", `{{ semverCompare ">=1.2" "1.3.0" }}`},
	{"builtins", `{{ len (object "api-key") }} {{ printf "%q" "x" }} {{ eq 1 1 }} {{ index (list "a" "b") 1 }}`},
	{"builtin index out of range", `{{ index (list 1 2) (len (object "api-key")) }}`},
	{"range over an integer", `{{ range 3 }}x{{ end }}`},
	{"range over a huge integer", `{{ range (object "api-key" | len | mul 100000) }}x{{ end }}`},
	{"nested ranges over the budget", `{{ range until 2000 }}{{ range until 2000 }}{{ end }}{{ end }}`},
	{"range over a string value", `{{ range object "api-key" }}x{{ end }}`},
}

func TestFunctionsGolden(t *testing.T) {
	objects := testObjects(t)
	var b strings.Builder
	for _, c := range funcCases {
		out, err := renderOne(t, c.text, objects)
		fmt.Fprintf(&b, "### %s\n%s\n", c.name, c.text)
		if err != nil {
			fmt.Fprintf(&b, "--- error\n%v\n", err)
			if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "AKIA-0123") {
				t.Errorf("%s: the error quotes a value: %v", c.name, err)
			}
		} else {
			fmt.Fprintf(&b, "--- output\n%s\n", out)
		}
	}
	golden(t, "funcs.golden", []byte(b.String()))
}

// Every function of ours has a golden case, and every function a template
// may call is documented in docs/templates.md.
func TestFunctionsCoveredAndDocumented(t *testing.T) {
	doc := string(readFile(t, "../../docs/templates.md"))
	var all strings.Builder
	for _, c := range funcCases {
		all.WriteString(c.text)
	}
	for name := range ownFuncs() {
		if !strings.Contains(all.String(), name) {
			t.Errorf("function %s has no case in funcCases", name)
		}
	}
	for _, name := range FuncNames() {
		if !strings.Contains(doc, "`"+name+"`") && !strings.Contains(doc, "`"+name+" ") {
			t.Errorf("function %s is not documented in docs/templates.md", name)
		}
	}
	if slices.Contains(FuncNames(), "call") {
		t.Error("call is offered")
	}
}

// The allow-list is an allow-list: the functions that read the
// environment, the clock, the network or randomness are refused at compile
// time, by name.
func TestFunctionsRefused(t *testing.T) {
	for _, name := range []string{"env", "expandenv", "getHostByName", "now", "date", "dateInZone", "ago", "toDate",
		"unixEpoch", "randAlphaNum", "randInt", "randBytes", "shuffle", "uuidv4", "bcrypt", "htpasswd", "encryptAES",
		"genPrivateKey", "genCA", "genSelfSignedCert", "genSignedCert", "derivePassword", "osBase", "call", "mustFromJson", "durationRound"} {
		t.Run(name, func(t *testing.T) {
			_, err := Compile([]Template{{Path: "x", Text: "{{ " + name + " }}"}}, nil)
			if err == nil || !strings.Contains(err.Error(), `function "`+name+`"`) {
				t.Fatalf("Compile = %v, want the function refused", err)
			}
		})
	}
	if _, err := os.Stat("../../docs/templates.md"); err != nil {
		t.Fatal(err)
	}
}
