package volume

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ssinjector/ssi/internal/atomicdir"
	"github.com/ssinjector/ssi/internal/identity"
	"github.com/ssinjector/ssi/internal/limits"
	"github.com/ssinjector/ssi/internal/provider"
	"github.com/ssinjector/ssi/internal/render"
	"github.com/ssinjector/ssi/internal/spc"
)

// memProvider serves the vault objects of a class from memory, versioned.
type memProvider struct {
	mu       sync.Mutex
	values   map[string]string
	versions map[string]int
}

func (m *memProvider) Name() string { return "vault" }

func (m *memProvider) set(id, v string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.values[id] = v
	m.versions[id]++
}

func (m *memProvider) Fetch(_ context.Context, req provider.Request) ([]provider.Object, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []provider.Object
	for _, o := range req.Class.Vault.Objects {
		ver := strconv.Itoa(m.versions[o.ObjectName])
		if req.Current[o.ObjectName] == ver {
			out = append(out, provider.Object{ID: o.ObjectName, Version: ver, Unchanged: true})
			continue
		}
		out = append(out, provider.Object{ID: o.ObjectName, Version: ver, Files: []atomicdir.File{{Path: o.ObjectName, Data: []byte(m.values[o.ObjectName])}}})
	}
	return out, nil
}

// newVolume is a volume of a vault class with objects a, b and c and the
// given templates.
func newVolume(t *testing.T, tpls []render.Template) (*Volume, *memProvider) {
	t.Helper()
	var objs strings.Builder
	for _, n := range []string{"a", "b", "c"} {
		objs.WriteString("- objectName: " + n + "\n  secretPath: secret/data/x\n  secretKey: " + n + "\n")
	}
	class, err := spc.ParseSpec("ns", "cls", "vault", map[string]string{"roleName": "r", "objects": objs.String()})
	if err != nil {
		t.Fatal(err)
	}
	set, err := class.CompileTemplates(tpls)
	if err != nil {
		t.Fatal(err)
	}
	p := &memProvider{values: map[string]string{}, versions: map[string]int{}}
	for _, n := range []string{"a", "b", "c"} {
		p.set(n, n+"1")
	}
	return &Volume{Class: class, Dir: t.TempDir(), Templates: set}, p
}

func read(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var twoTemplates = []render.Template{
	{Path: "ab.txt", Text: `{{ object "a" }}+{{ object "b" }}`},
	{Path: "c.txt", Text: `c={{ object "c" }}`, Mode: 0o600},
}

// TestRefreshRenders: rendered files are published with the objects, with
// their mode; a rotation re-renders only the templates whose objects
// changed, and their files are in Write.Changed.
func TestRefreshRenders(t *testing.T) {
	v, p := newVolume(t, twoTemplates)
	ctx := context.Background()
	res, err := v.Refresh(ctx, p, identity.Identity{})
	if err != nil {
		t.Fatal(err)
	}
	if got := read(t, v.Dir, "ab.txt"); got != "a1+b1" {
		t.Errorf("ab.txt = %q", got)
	}
	if got := read(t, v.Dir, "a"); got != "a1" {
		t.Errorf("raw a = %q", got)
	}
	if fi, err := os.Stat(filepath.Join(v.Dir, "c.txt")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("c.txt mode: %v %v", fi, err)
	}
	if !slices.Equal(res.Rendered, []string{"ab.txt", "c.txt"}) {
		t.Errorf("first Rendered = %v", res.Rendered)
	}
	p.set("c", "c2")
	res, err = v.Refresh(ctx, p, identity.Identity{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Rendered, []string{"c.txt"}) {
		t.Errorf("after c changed, Rendered = %v, want only c.txt", res.Rendered)
	}
	if !slices.Contains(res.Write.Changed, "c.txt") || slices.Contains(res.Write.Changed, "ab.txt") {
		t.Errorf("Changed = %v", res.Write.Changed)
	}
	if got := read(t, v.Dir, "c.txt"); got != "c=c2" {
		t.Errorf("c.txt = %q", got)
	}
	res, err = v.Refresh(ctx, p, identity.Identity{})
	if err != nil || len(res.Rendered) != 0 || res.Write.Swapped {
		t.Errorf("nothing changed: Rendered %v, swapped %v, err %v", res.Rendered, res.Write.Swapped, err)
	}
	v.Forget()
	if res, err = v.Refresh(ctx, p, identity.Identity{}); err != nil || len(res.Rendered) != 2 {
		t.Errorf("after Forget, Rendered = %v (%v), want every template", res.Rendered, err)
	}
}

// TestRefreshSameSwap: a reader resolving ..data once never sees a
// rendered file that disagrees with the raw files next to it.
func TestRefreshSameSwap(t *testing.T) {
	v, p := newVolume(t, twoTemplates)
	ctx := context.Background()
	if _, err := v.Refresh(ctx, p, identity.Identity{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var bad []string
	var reads int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			target, err := os.Readlink(filepath.Join(v.Dir, atomicdir.DataDir))
			if err != nil {
				continue
			}
			d := filepath.Join(v.Dir, target)
			a, errA := os.ReadFile(filepath.Join(d, "a"))
			b, errB := os.ReadFile(filepath.Join(d, "b"))
			ab, errAB := os.ReadFile(filepath.Join(d, "ab.txt"))
			if errA != nil || errB != nil || errAB != nil {
				continue // the old directory was removed under us
			}
			reads++
			if string(a)+"+"+string(b) != string(ab) {
				bad = append(bad, string(ab)+" vs "+string(a)+","+string(b))
			}
		}
	}()
	for i := 2; i < 100; i++ {
		p.set("a", "a"+strconv.Itoa(i))
		p.set("b", "b"+strconv.Itoa(i))
		if _, err := v.Refresh(ctx, p, identity.Identity{}); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d inconsistent reads of %d, e.g. %s", len(bad), reads, bad[0])
	}
	if reads == 0 {
		t.Fatal("the reader read nothing")
	}
}

// TestRefreshRenderOnly: the raw files a renderOnly template reads are not
// published; the others are.
func TestRefreshRenderOnly(t *testing.T) {
	v, p := newVolume(t, []render.Template{{Path: "ab.txt", Text: `{{ object "a" }}{{ object "b" }}`, RenderOnly: true}})
	if _, err := v.Refresh(context.Background(), p, identity.Identity{}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"a": false, "b": false, "c": true, "ab.txt": true} {
		_, err := os.Lstat(filepath.Join(v.Dir, name))
		if got := err == nil; got != want {
			t.Errorf("%s published = %v, want %v", name, got, want)
		}
	}
}

// TestRefreshExecError: a template failing on the first fetch fails it with
// the class, template and position and no value; on rotation the last good
// files stay.
func TestRefreshExecError(t *testing.T) {
	v, p := newVolume(t, []render.Template{{Path: "cfg.txt", Text: `{{ (object "a" | fromJson).password }}`}})
	p.set("a", "s3cret-not-json")
	ctx := context.Background()
	_, err := v.Refresh(ctx, p, identity.Identity{})
	if err == nil {
		t.Fatal("a template failing on the first fetch did not fail it")
	}
	for _, w := range []string{"SecretProviderClass ns/cls", `template "cfg.txt" at 1:`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q holds the value", err)
	}
	if _, err := os.Lstat(filepath.Join(v.Dir, "a")); err == nil {
		t.Error("a failed first fetch published files")
	}
	p.set("a", `{"password":"p1"}`)
	if _, err := v.Refresh(ctx, p, identity.Identity{}); err != nil {
		t.Fatal(err)
	}
	p.set("a", "s3cret-broken")
	if _, err := v.Refresh(ctx, p, identity.Identity{}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("rotation to a value the template cannot use: %v", err)
	}
	if got := read(t, v.Dir, "cfg.txt"); got != "p1" {
		t.Errorf("cfg.txt = %q, want the last good render", got)
	}
	if got := read(t, v.Dir, "a"); got != `{"password":"p1"}` {
		t.Errorf("raw a = %q, want the last good file", got)
	}
}

// TestRefreshVolumeCapCountsRendered: the objects fit the volume cap, but
// not with the rendered files; nothing is published.
func TestRefreshVolumeCapCountsRendered(t *testing.T) {
	v, p := newVolume(t, []render.Template{{Path: "big.txt", Text: `{{ object "a" | repeat 100 }}`}})
	p.set("a", strings.Repeat("x", 100))
	v.Sizes = limits.Sizes{ObjectBytes: 5000, VolumeBytes: 5000}
	_, err := v.Refresh(context.Background(), p, identity.Identity{})
	if !errors.Is(err, limits.ErrTooLarge) || provider.ReasonOf(err) != provider.ReasonInvalidContent || !strings.Contains(err.Error(), "rendered templates included") {
		t.Fatalf("Refresh = %v, want the volume cap with the rendered files", err)
	}
	if _, err := os.Lstat(filepath.Join(v.Dir, "a")); err == nil {
		t.Error("files were published")
	}
	v.Sizes = limits.Sizes{}
	if _, err := v.Refresh(context.Background(), p, identity.Identity{}); err != nil {
		t.Fatalf("under the default cap: %v", err)
	}
}

// dupProvider answers two objects that produce the same file name, in
// the class's order, as a backend would for an Azure secret and key of one
// name.
type dupProvider struct{ round int }

func (*dupProvider) Name() string { return "azure" }

func (d *dupProvider) Fetch(context.Context, provider.Request) ([]provider.Object, error) {
	d.round++
	r := strconv.Itoa(d.round)
	return []provider.Object{
		{ID: "secret/x", Version: "s" + r, Files: []atomicdir.File{{Path: "x", Data: []byte("secret-" + r), Mode: 0o600}}},
		{ID: "key/x", Version: "k" + r, Files: []atomicdir.File{{Path: "x", Data: []byte("key-" + r), Mode: 0o640}}},
		{ID: "secret/y", Version: "y" + r, Files: []atomicdir.File{{Path: "y", Data: []byte("y-" + r)}}},
	}, nil
}

// TestRefreshDuplicatePathLastWins: a class whose secret and key share a
// name is admitted (with a warning) and published as upstream serves it:
// the later object's file, with its mode, on every refresh.
func TestRefreshDuplicatePathLastWins(t *testing.T) {
	objects := "array:\n  - |\n    objectName: x\n    objectType: secret\n    filePermission: \"0600\"\n" +
		"  - |\n    objectName: x\n    objectType: key\n    filePermission: \"0640\"\n  - |\n    objectName: y\n    objectType: secret\n"
	class, err := spc.ParseSpec("ns", "cls", "azure", map[string]string{"keyvaultName": "kv1", "tenantId": "t", "objects": objects})
	if err != nil {
		t.Fatal(err)
	}
	if len(class.Warnings) != 1 || !strings.Contains(class.Warnings[0], "parameters.objects.array[1].objectAlias") {
		t.Fatalf("warnings = %q; want one naming array[1]", class.Warnings)
	}
	v := &Volume{Class: class, Dir: t.TempDir()}
	p := &dupProvider{}
	for round := 1; round <= 2; round++ {
		if _, err := v.Refresh(context.Background(), p, identity.Identity{}); err != nil {
			t.Fatalf("refresh %d: %v", round, err)
		}
		r := strconv.Itoa(round)
		if got := read(t, v.Dir, "x"); got != "key-"+r {
			t.Fatalf("refresh %d: x = %q, want the key's content", round, got)
		}
		if got := read(t, v.Dir, "y"); got != "y-"+r {
			t.Fatalf("refresh %d: y = %q", round, got)
		}
		st, err := os.Stat(filepath.Join(v.Dir, "x"))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o640 {
			t.Fatalf("refresh %d: x mode %o, want 0640 (the key's)", round, st.Mode().Perm())
		}
	}
	if n := len(v.Objects()); n != 3 {
		t.Fatalf("%d objects recorded, want 3", n)
	}
}
