package image

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestBuildIsDeterministicAndComplete(t *testing.T) {
	spec := Spec{
		Ref:        "docker.io/library/myapp:latest",
		Files:      []File{{Path: "/bin/app", Mode: 0o755, Data: []byte("binary")}, {Path: "/tmp/"}},
		Entrypoint: []string{"/bin/app"},
		User:       "65532:65532",
	}
	a, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	if a.Manifest.Digest != b.Manifest.Digest {
		t.Fatalf("same spec gave digests %s and %s", a.Manifest.Digest, b.Manifest.Digest)
	}
	var man struct {
		Config Descriptor   `json:"config"`
		Layers []Descriptor `json:"layers"`
	}
	if err := json.Unmarshal(a.Blobs[a.Manifest.Digest], &man); err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Config struct {
			Entrypoint []string
			User       string
		} `json:"config"`
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(a.Blobs[man.Config.Digest], &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" || len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != "/bin/app" {
		t.Errorf("config = %+v", cfg.Config)
	}
	if len(man.Layers) != 1 || cfg.RootFS.DiffIDs[0] != man.Layers[0].Digest {
		t.Fatalf("layers %v, diff ids %v", man.Layers, cfg.RootFS.DiffIDs)
	}
	entries, contents := readTar(t, bytes.NewReader(a.Blobs[man.Layers[0].Digest]))
	want := map[string]int64{"bin/": 0o755, "bin/app": 0o755, "tmp/": 0o1777}
	for name, mode := range want {
		h, ok := entries[name]
		if !ok {
			t.Errorf("layer lacks %s (has %v)", name, entries)
			continue
		}
		if h.Mode != mode {
			t.Errorf("%s mode %o, want %o", name, h.Mode, mode)
		}
	}
	if string(contents["bin/app"]) != "binary" {
		t.Errorf("bin/app = %q", contents["bin/app"])
	}
}

func TestRepositoryAndTag(t *testing.T) {
	tests := map[string]struct {
		ref, repo, tag string
	}{
		"docker hub library": {"docker.io/library/myapp:latest", "library/myapp", "latest"},
		"local registry":     {"ssi.local/ssi-agent:e2e", "ssi-agent", "e2e"},
		"registry with port": {"localhost:5000/team/app:v1", "team/app", "v1"},
		"no tag":             {"ssi.local/pause", "pause", "latest"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			img := &Image{Ref: tc.ref}
			if img.Repository() != tc.repo || img.Tag() != tc.tag {
				t.Errorf("Repository, Tag = %q, %q; want %q, %q", img.Repository(), img.Tag(), tc.repo, tc.tag)
			}
		})
	}
}

func TestArchiveIndexNamesEveryImage(t *testing.T) {
	var imgs []*Image
	for _, ref := range []string{"ssi.local/pause:e2e", "docker.io/library/myapp:latest"} {
		img, err := Build(Spec{Ref: ref, Files: []File{{Path: "/x", Data: []byte(ref)}}})
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	var buf bytes.Buffer
	if err := WriteArchive(&buf, imgs...); err != nil {
		t.Fatal(err)
	}
	_, files := readTar(t, &buf)
	var idx struct {
		Manifests []Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 2 {
		t.Fatalf("index has %d manifests", len(idx.Manifests))
	}
	for i, m := range idx.Manifests {
		if m.Annotations["io.containerd.image.name"] != imgs[i].Ref {
			t.Errorf("manifest %d named %q, want %q", i, m.Annotations["io.containerd.image.name"], imgs[i].Ref)
		}
		for d := range imgs[i].Blobs {
			if _, ok := files["blobs/sha256/"+d[len("sha256:"):]]; !ok {
				t.Errorf("archive lacks blob %s of %s", d, imgs[i].Ref)
			}
		}
	}
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %q", files["oci-layout"])
	}
}

func TestRegistryServesManifestsAndBlobs(t *testing.T) {
	img, err := Build(Spec{Ref: "docker.io/library/myapp:latest", Files: []File{{Path: "/app", Data: []byte("x")}}})
	if err != nil {
		t.Fatal(err)
	}
	reg := &Registry{}
	reg.Add(img)
	srv := httptest.NewServer(reg)
	defer srv.Close()
	var cfgDigest string
	{
		var man struct{ Config Descriptor }
		_ = json.Unmarshal(img.Blobs[img.Manifest.Digest], &man)
		cfgDigest = man.Config.Digest
	}
	tests := map[string]struct {
		method, path string
		code         int
		digest       string
	}{
		"version check":      {"GET", "/v2/", 200, ""},
		"manifest by tag":    {"GET", "/v2/library/myapp/manifests/latest", 200, img.Manifest.Digest},
		"manifest head":      {"HEAD", "/v2/library/myapp/manifests/latest", 200, img.Manifest.Digest},
		"manifest by digest": {"GET", "/v2/library/myapp/manifests/" + img.Manifest.Digest, 200, img.Manifest.Digest},
		"config blob":        {"GET", "/v2/library/myapp/blobs/" + cfgDigest, 200, cfgDigest},
		"unknown tag":        {"GET", "/v2/library/myapp/manifests/v9", 404, ""},
		"unknown repository": {"GET", "/v2/library/other/manifests/latest", 404, ""},
		"push is refused":    {"PUT", "/v2/library/myapp/manifests/latest", 405, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.code, body)
			}
			if tc.digest != "" {
				if got := resp.Header.Get("Docker-Content-Digest"); got != tc.digest {
					t.Errorf("digest header %q, want %q", got, tc.digest)
				}
				if tc.method == "GET" && digest(body) != tc.digest {
					t.Errorf("body digest %s, want %s", digest(body), tc.digest)
				}
			}
		})
	}
}

// readTar returns the headers and the contents of a tar stream's entries
// by name.
func readTar(t *testing.T, r io.Reader) (map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	headers, contents := map[string]*tar.Header{}, map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		headers[h.Name] = h
		if contents[h.Name], err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
	return headers, contents
}
