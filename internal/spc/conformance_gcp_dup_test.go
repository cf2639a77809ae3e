package spc

import "testing"

// TestConformanceGCPDuplicates: upstream's server/server.go handleMountEvent
// returns every entry as a file, and the driver's writer
// (pkg/util/fileutil/writer.go WritePayloads) keys them by path in a map,
// so the last entry with a path wins, with its mode.
func TestConformanceGCPDuplicates(t *testing.T) {
	runConformance(t, ProviderGCP, map[string]confCase{
		// server/server.go handleMountEvent + writer.go WritePayloads: two entries with the same fileName
		"same fileName two resources": {params: map[string]string{"secrets": "- {resourceName: projects/p/secrets/a/versions/1, fileName: same.txt, mode: 0400}\n- {resourceName: projects/p/secrets/b/versions/1, fileName: same.txt, mode: 0600}"},
			warn: []string{"parameters.secrets", "same.txt"}, files: []FileSpec{f("same.txt", 0o600)}},
		// same, path of one equal to fileName of the other
		"path equals another fileName": {params: map[string]string{"secrets": "- {resourceName: projects/p/secrets/a/versions/1, path: x}\n- {resourceName: projects/p/secrets/b/versions/1, fileName: x}"},
			warn: []string{"parameters.secrets", "x"}, files: []FileSpec{f("x", 0)}},
		// server/server.go resourceIdentity: the same entry twice is fetched once, written once
		"identical entries": {params: map[string]string{"secrets": "- {resourceName: projects/p/secrets/a/versions/1, path: x}\n- {resourceName: projects/p/secrets/a/versions/1, path: x}"},
			warn: []string{"parameters.secrets", "x"}, files: []FileSpec{f("x", 0)}},
		// same, nested paths
		"same nested path": {params: map[string]string{"secrets": "- {resourceName: projects/p/secrets/a/versions/1, path: d/x, mode: 0644}\n- {resourceName: projects/p/secrets/b/versions/1, path: d/x, mode: 0440}"},
			warn: []string{"parameters.secrets", "d/x"}, files: []FileSpec{f("d/x", 0o440)}},
	})
}
