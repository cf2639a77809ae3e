package mountinfo

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestUnescape(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"plain":     {"/var/lib/kubelet", "/var/lib/kubelet"},
		"space":     {`/a\040b`, "/a b"},
		"backslash": {`/a\134b`, `/a\b`},
		"trailing":  {`/a\04`, `/a\04`},
		"not octal": {`/a\9zz`, `/a\9zz`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Unescape(tc.in); got != tc.want {
				t.Errorf("unescape(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestScan(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mountinfo")
	table := `22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/root rw
36 22 0:32 / /var/lib/kubelet rw,relatime shared:2 - ext4 /dev/sdb rw
40 36 0:40 / /var/lib/kubelet/pods/p/volumes/a\040b rw,nosuid - tmpfs tmpfs rw,size=1024k
41 36 0:41 / /var/lib/kubeletx rw - tmpfs tmpfs rw
42 22 0:42 / /no-optional-fields rw - overlay overlay rw
short line
`
	if err := os.WriteFile(file, []byte(table), 0o600); err != nil {
		t.Fatal(err)
	}
	var got []Mount
	if err := Scan(file, func(m Mount) bool { got = append(got, m); return true }); err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{"/", "ext4"}, {"/var/lib/kubelet", "ext4"}, {"/var/lib/kubelet/pods/p/volumes/a b", "tmpfs"},
		{"/var/lib/kubeletx", "tmpfs"}, {"/no-optional-fields", "overlay"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Scan = %+v\nwant %+v", got, want)
	}
	under, err := Under(file, "/var/lib/kubelet")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/var/lib/kubelet", "/var/lib/kubelet/pods/p/volumes/a b"}; !reflect.DeepEqual(under, want) {
		t.Errorf("Under = %q, want %q", under, want)
	}
	for path, want := range map[string]bool{"/var/lib/kubelet/pods/p/volumes/a b": true, "/var/lib/kubelet/pods": false} {
		if got, err := IsMountPoint(file, path); err != nil || got != want {
			t.Errorf("IsMountPoint(%q) = %v, %v; want %v", path, got, err, want)
		}
	}
	if _, err := IsMountPoint(filepath.Join(t.TempDir(), "none"), "/"); err == nil {
		t.Error("a missing table is not an error")
	}
}
