package aws_test

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	awsprov "github.com/ssinjector/ssi/internal/provider/aws"
	"github.com/ssinjector/ssi/internal/provider/providertest"

	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/spc"
)

// awsEnv lists every variable the SDK or the provider reads that would let
// the host's configuration leak into a test.
var awsEnv = []string{
	"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME",
	"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
	"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL_STS",
	"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE",
}

// isolateEnv clears the AWS environment and points the shared files at
// nothing, for the duration of the test.
func isolateEnv(t *testing.T) {
	t.Helper()
	for _, k := range awsEnv {
		t.Setenv(k, "")
	}
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// Static credentials of the default chain in tests.
const (
	staticKeyID  = "AKIDSTATICTEST000001"
	staticSecret = "static-secret-key-for-tests"
)

// useFake points the SDK at the fake with static credentials it accepts.
func useFake(t *testing.T, f *fakeAWS) {
	t.Helper()
	isolateEnv(t)
	t.Setenv("AWS_ENDPOINT_URL", f.URL())
	t.Setenv("AWS_ACCESS_KEY_ID", staticKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", staticSecret)
	f.addKey(staticKeyID, staticSecret, "")
}

// testOptions retry quickly so throttling tests end fast.
func testOptions() awsprov.Options {
	return awsprov.Options{MaxAttempts: 2, MaxBackoff: time.Millisecond}
}

const (
	testNamespace = "team-a"
	testClass     = "db-creds"
)

func parseClass(t *testing.T, params map[string]string) *spc.Class {
	t.Helper()
	c, err := spc.ParseSpec(testNamespace, testClass, "aws", params)
	if err != nil {
		t.Fatalf("parse class: %v", err)
	}
	return c
}

func testIdentity() identity.Identity {
	return identity.Identity{Pod: identity.Pod{Namespace: testNamespace, Name: "web-0", UID: "uid-1", ServiceAccount: "web"}}
}

// fetcher runs fetch cycles of one class the way volume.Refresh does:
// each cycle passes the versions of the previous result and merges
// Unchanged objects with it.
type fetcher struct {
	t     *testing.T
	p     provider.Provider
	class *spc.Class
	id    identity.Identity
	prev  []provider.Object
	last  []provider.Object
	// keepAll passes every object already written as Request.Keep, as
	// the volume does for certificates before their renewal point.
	keepAll bool
}

func (f *fetcher) cycle() (map[string]atomicdir.File, error) {
	f.t.Helper()
	req := provider.Request{Class: f.class, Identity: f.id, Current: provider.Versions(f.prev), Permission: 0o644}
	if f.keepAll {
		req.Keep = providertest.KeepAll(req.Current)
	}
	objs, err := f.p.Fetch(context.Background(), req)
	if err != nil {
		return nil, err
	}
	f.last = objs
	merged, files, err := provider.Merge(f.prev, objs)
	if err != nil {
		f.t.Fatalf("merge: %v", err)
	}
	f.prev = merged
	out := map[string]atomicdir.File{}
	for _, file := range files {
		out[file.Path] = file
	}
	return out, nil
}

func (f *fetcher) mustCycle() map[string]atomicdir.File {
	f.t.Helper()
	files, err := f.cycle()
	if err != nil {
		f.t.Fatalf("fetch: %v", err)
	}
	return files
}

// unchanged lists the IDs the last cycle answered Unchanged.
func (f *fetcher) unchanged() []string {
	var out []string
	for _, o := range f.last {
		if o.Unchanged {
			out = append(out, o.ID)
		}
	}
	return out
}

func (f *fetcher) version(id string) string {
	for _, o := range f.prev {
		if o.ID == id {
			return o.Version
		}
	}
	return ""
}

// wantFile asserts a file's content and mode.
func wantFile(t *testing.T, files map[string]atomicdir.File, path, data string, mode fs.FileMode) {
	t.Helper()
	f, ok := files[path]
	if !ok {
		var names []string
		for n := range files {
			names = append(names, n)
		}
		t.Fatalf("file %q missing; have %s", path, strings.Join(names, ", "))
	}
	if string(f.Data) != data {
		t.Errorf("file %q = %q, want %q", path, f.Data, data)
	}
	if f.Mode != mode {
		t.Errorf("file %q mode = %o, want %o", path, f.Mode, mode)
	}
}

func ptr[T any](v T) *T { return &v }
