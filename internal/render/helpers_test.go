package render

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs (-want +got):\n%s", p, cmp.Diff(string(want), string(got)))
	}
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testObjects are the objects of the function and example tests.
func testObjects(t testing.TB) map[string][]byte {
	return map[string][]byte{
		"db-password":   []byte(`s3cr3t:pa\ss'word`),
		"db.json":       []byte(`{"username":"app","password":"hunter2-xyz","port":5432,"hosts":["db1.internal","db2.internal"],"options":{"sslmode":"verify-full"}}`),
		"aws-db":        []byte(`{"username":"reporting","password":"aws pass=with spaces#1","host":"rds.example","port":"5432","dbname":"reports"}`),
		"settings.yaml": []byte("log:\n  level: debug\n  targets: [stdout, file]\nreplicas: 3\n"),
		"api-key":       []byte("AKIA-0123456789"),
		"greeting.b64":  []byte("aGVsbG8sIHdvcmxk"),
		"unicode":       []byte("héllo ☃ 😀\ttab"),
		"tls.pem":       readFile(t, "testdata/pki/bundle.pem"),
		"ca.crt":        readFile(t, "testdata/pki/root.crt"),
		"tls.p12":       readFile(t, "testdata/pki/nopass.p12"),
		"tls-pass.p12":  readFile(t, "testdata/pki/withpass.p12"),
		"p12-password":  []byte("changeit"),
	}
}

func names(objects map[string][]byte) []string {
	out := make([]string, 0, len(objects))
	for n := range objects {
		out = append(out, n)
	}
	return out
}

// renderOne compiles and renders one template over objects.
func renderOne(t testing.TB, text string, objects map[string][]byte) (string, error) {
	t.Helper()
	set, err := Compile([]Template{{Path: "out", Text: text}}, names(objects))
	if err != nil {
		return "", err
	}
	res, err := set.Render(objects, nil)
	if err != nil {
		return "", err
	}
	return string(res.Files[0].Data), nil
}
