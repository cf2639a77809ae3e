package image

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Registry serves images read-only over the parts of the OCI distribution
// API that a pull uses: the version check, manifests by tag or digest, and
// blobs by digest. containerd is pointed at it as the mirror of docker.io,
// so that a pod whose image must always be pulled (myapp:latest in the seed
// guide) resolves to an image built here.
type Registry struct {
	mu     sync.RWMutex
	images []*Image
}

// Add makes images available.
func (r *Registry) Add(images ...*Image) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.images = append(r.images, images...)
}

// ServeHTTP implements http.Handler.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		http.Error(w, "read-only registry", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	p := strings.TrimPrefix(req.URL.Path, "/v2/")
	if p == "" || req.URL.Path == "/v2" {
		w.WriteHeader(http.StatusOK)
		return
	}
	var repo, kind, ref string
	for _, k := range []string{"/manifests/", "/blobs/"} {
		if i := strings.LastIndex(p, k); i > 0 {
			repo, kind, ref = p[:i], strings.Trim(k, "/"), p[i+len(k):]
			break
		}
	}
	if repo == "" {
		http.NotFound(w, req)
		return
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, img := range r.images {
		if img.Repository() != repo {
			continue
		}
		switch kind {
		case "manifests":
			if ref != img.Tag() && ref != img.Manifest.Digest {
				continue
			}
			serve(w, req, img.Manifest.MediaType, img.Manifest.Digest, img.Blobs[img.Manifest.Digest])
			return
		case "blobs":
			if b, ok := img.Blobs[ref]; ok {
				serve(w, req, "application/octet-stream", ref, b)
				return
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"not built by the e2e harness"}]}`))
}

func serve(w http.ResponseWriter, req *http.Request, mediaType, digest string, b []byte) {
	w.Header().Set("Content-Type", mediaType)
	w.Header().Set("Docker-Content-Digest", digest)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if req.Method == http.MethodGet {
		_, _ = w.Write(b)
	}
}
