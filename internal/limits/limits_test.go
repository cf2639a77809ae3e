package limits

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestReader(t *testing.T) {
	cases := map[string]struct {
		size    int
		max     int64
		tooLong bool
	}{
		"under":    {10, 16, false},
		"exactly":  {16, 16, false},
		"one over": {17, 16, true},
		"far over": {1 << 20, 16, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := io.ReadAll(Reader(bytes.NewReader(bytes.Repeat([]byte("x"), tc.size)), tc.max, "the test data"))
			if tc.tooLong {
				var te *TooLargeError
				if !errors.As(err, &te) || !errors.Is(err, ErrTooLarge) || te.Limit != tc.max {
					t.Fatalf("err %v, want a TooLargeError with limit %d", err, tc.max)
				}
				if int64(len(b)) > tc.max {
					t.Fatalf("read %d bytes past the limit %d", len(b), tc.max)
				}
				return
			}
			if err != nil || len(b) != tc.size {
				t.Fatalf("read %d bytes, err %v; want %d", len(b), err, tc.size)
			}
		})
	}
}

// TestTransport: a response over the cap fails while being read (chunked)
// or before (Content-Length), naming the host and the limit.
func TestTransport(t *testing.T) {
	big := strings.Repeat("v", 4096)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.(http.Flusher).Flush() // no Content-Length
		}
		_, _ = io.WriteString(w, big)
	}))
	defer srv.Close()
	c := Client(srv.Client(), 1024)
	for _, path := range []string{"/length", "/chunked"} {
		t.Run(path, func(t *testing.T) {
			resp, err := c.Get(srv.URL + path)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				_ = resp.Body.Close()
			}
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "limit of 1024 bytes") || strings.Contains(err.Error(), "vvv") {
				t.Fatalf("err %v, want the 1024-byte limit named, no content", err)
			}
		})
	}
	resp, err := Client(nil, 8192).Get(srv.URL + "/length")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || len(b) != len(big) {
		t.Fatalf("under the limit: %d bytes, %v", len(b), err)
	}
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	allowed := filepath.Join(dir, "allowed")
	if err := os.Mkdir(allowed, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) string {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca := write(filepath.Join(allowed, "ca.pem"), "ca")
	outside := write(filepath.Join(dir, "outside"), "MARKER-outside")
	big := write(filepath.Join(allowed, "big"), strings.Repeat("b", 100))
	if err := os.Symlink(outside, filepath.Join(allowed, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("ca.pem", filepath.Join(allowed, "inner")); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(allowed, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	shared := Files{Shared: true, Dir: allowed, MaxBytes: 64}
	cases := map[string]struct {
		f    Files
		path string
		want string // content, or the error's text
		ok   bool
	}{
		"shared, inside":              {shared, ca, "ca", true},
		"shared, symlink inside":      {shared, filepath.Join(allowed, "inner"), "ca", true},
		"shared, symlink escapes":     {shared, filepath.Join(allowed, "escape"), "resolves outside the class files directory", false},
		"shared, dot-dot":             {shared, allowed + "/../outside", "is not inside the class files directory", false},
		"shared, outside":             {shared, outside, "is not inside the class files directory", false},
		"shared, relative":            {shared, "ca.pem", "is not an absolute path", false},
		"shared, fifo":                {shared, fifo, "is not a regular file", false},
		"shared, too large":           {shared, big, "more than the limit of 64 bytes", false},
		"shared, no directory":        {Files{Shared: true}, ca, "--class-files-dir, which is not set", false},
		"shared, device dir":          {Files{Shared: true, Dir: "/dev"}, "/dev/zero", "is not a regular file", false},
		"in pod, any regular file":    {Files{}, outside, "MARKER-outside", true},
		"in pod, device":              {Files{}, "/dev/zero", "is not a regular file", false},
		"in pod, fifo does not block": {Files{}, fifo, "is not a regular file", false},
		"in pod, too large":           {Files{MaxBytes: 64}, big, "more than the limit of 64 bytes", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := tc.f.ReadFile("vaultCACertPath", tc.path)
			if tc.ok {
				if err != nil || string(b) != tc.want {
					t.Fatalf("got %q, %v; want %q", b, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "vaultCACertPath") {
				t.Errorf("the error does not name the parameter: %v", err)
			}
			if strings.Contains(err.Error(), "MARKER") {
				t.Errorf("the error quotes content: %v", err)
			}
		})
	}
}

func TestFilesReadDir(t *testing.T) {
	dir := t.TempDir()
	cas := filepath.Join(dir, "cas")
	if err := os.MkdirAll(filepath.Join(cas, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"b.pem", "a.pem"} {
		if err := os.WriteFile(filepath.Join(cas, n), []byte(n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(cas, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(dir, "etc")); err != nil {
		t.Fatal(err)
	}
	got, err := Files{Shared: true, Dir: dir}.ReadDir("vaultCADirectory", cas)
	if err != nil || len(got) != 2 || string(got[0]) != "a.pem" || string(got[1]) != "b.pem" {
		t.Fatalf("got %q, %v; want a.pem and b.pem only", got, err)
	}
	if _, err := (Files{Shared: true, Dir: dir}).ReadDir("vaultCADirectory", filepath.Join(dir, "etc")); err == nil || !strings.Contains(err.Error(), "resolves outside") {
		t.Fatalf("a symlink to /etc: err %v", err)
	}
	if _, err := (Files{Shared: true}).ReadDir("vaultCADirectory", cas); err == nil || !strings.Contains(err.Error(), "not set") {
		t.Fatalf("no directory configured: err %v", err)
	}
}

func TestSizes(t *testing.T) {
	cases := map[string]struct {
		in      Sizes
		object  int64
		volume  int64
		wantErr bool
	}{
		"defaults":            {Sizes{}, DefaultObjectBytes, DefaultVolumeBytes, false},
		"set":                 {Sizes{ObjectBytes: 10, VolumeBytes: 100}, 10, 100, false},
		"volume below object": {Sizes{ObjectBytes: 100, VolumeBytes: 10}, 0, 0, true},
		"negative":            {Sizes{ObjectBytes: -1}, 0, 0, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := tc.in.Complete()
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Complete(%+v) accepted", tc.in)
				}
				return
			}
			if err != nil || c.ObjectBytes != tc.object || c.VolumeBytes != tc.volume {
				t.Fatalf("Complete = %+v, %v", c, err)
			}
			if c.TmpfsBytes() != 2*tc.volume+1<<20 || c.ResponseBytes() <= tc.volume {
				t.Fatalf("tmpfs %d response %d", c.TmpfsBytes(), c.ResponseBytes())
			}
		})
	}
}

func TestFlags(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.AddFlags(fs)
	if err := fs.Parse([]string{"--max-object-bytes=2Mi", "--max-volume-bytes=8388608", "--class-files-dir=/etc/ssi/class-files"}); err != nil {
		t.Fatal(err)
	}
	if c.ObjectBytes != 2<<20 || c.VolumeBytes != 8<<20 || c.ClassFilesDir != "/etc/ssi/class-files" {
		t.Fatalf("parsed %+v", c)
	}
	for _, bad := range []string{"--max-object-bytes=lots", "--max-volume-bytes=0", "--max-object-bytes=1.5"} {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		(&Config{}).AddFlags(fs)
		if err := fs.Parse([]string{bad}); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
