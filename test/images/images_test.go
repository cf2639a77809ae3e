// Package images checks the Dockerfiles, which cannot be built here (no
// container runtime, no registry): multi-stage, a static binary, a
// distroless non-root final stage without a shell, and a build context that
// holds every package the binary imports.
package images

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ssinjector/ssi/internal/testing/testenv"
)

// instruction is one Dockerfile line (continuations joined).
type instruction struct {
	Op, Args string
}

func parse(t *testing.T, path string) [][]instruction {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stages [][]instruction
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		op, args, _ := strings.Cut(line, " ")
		in := instruction{strings.ToUpper(op), strings.TrimSpace(args)}
		if in.Op == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			if in.Op != "ARG" {
				t.Fatalf("%s: %s before FROM", path, in.Op)
			}
			continue
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	return stages
}

// localDirs are the top-level directories of this module holding the
// packages cmd imports (for GOOS=linux, without cgo).
func localDirs(t *testing.T, root, cmd string) map[string]bool {
	t.Helper()
	c := exec.Command("go", "list", "-deps", "-json=ImportPath,Dir,Module,CgoFiles", "./"+cmd)
	c.Dir = root
	c.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := c.Output()
	if err != nil {
		t.Fatalf("go list %s: %v", cmd, err)
	}
	dirs := map[string]bool{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			ImportPath, Dir string
			CgoFiles        []string
			Module          *struct{ Main bool }
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if len(p.CgoFiles) > 0 {
			t.Errorf("%s needs cgo (%v): the binary would not be static", p.ImportPath, p.CgoFiles)
		}
		if p.Module == nil || !p.Module.Main {
			continue
		}
		rel, err := filepath.Rel(root, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		dirs[strings.Split(filepath.ToSlash(rel), "/")[0]] = true
	}
	return dirs
}

func TestDockerfiles(t *testing.T) {
	root := testenv.RepoRoot()
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct{ file, cmd, binary string }{
		"webhook": {"Dockerfile.webhook", "webhook", "/ssi-webhook"},
		"agent":   {"Dockerfile.agent", "agent", "/ssi-agent"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			stages := parse(t, filepath.Join(root, tc.file))
			if len(stages) < 2 {
				t.Fatalf("%d stages, want a build stage and a runtime stage", len(stages))
			}
			build, final := stages[0], stages[len(stages)-1]
			if !regexp.MustCompile(`^(--platform=\S+ )?golang:\S+ AS build$`).MatchString(build[0].Args) {
				t.Errorf("build stage FROM %q", build[0].Args)
			}
			copied := map[string]bool{}
			var built bool
			for _, in := range build {
				if in.Op == "COPY" {
					f := strings.Fields(in.Args)
					for _, src := range f[:len(f)-1] {
						copied[strings.TrimSuffix(src, "/")] = true
					}
				}
				if in.Op == "RUN" && strings.Contains(in.Args, "go build") {
					built = true
					if !strings.Contains(in.Args, "CGO_ENABLED=0") {
						t.Errorf("go build without CGO_ENABLED=0: %s", in.Args)
					}
					if !strings.Contains(in.Args, "./"+tc.cmd) {
						t.Errorf("builds something else than ./%s: %s", tc.cmd, in.Args)
					}
				}
			}
			if !built {
				t.Error("no go build in the build stage")
			}
			for dir := range localDirs(t, root, tc.cmd) {
				if !copied[dir] {
					t.Errorf("the binary imports packages under %s/, which the Dockerfile does not copy", dir)
				}
				if !strings.Contains(string(ignore), "\n!"+dir+"/\n") {
					t.Errorf(".dockerignore keeps %s/ out of the build context", dir)
				}
			}

			if got := final[0].Args; !strings.HasPrefix(got, "gcr.io/distroless/static") || !strings.HasSuffix(got, ":nonroot") {
				t.Errorf("runtime stage FROM %q, want a distroless static nonroot image", got)
			}
			var user, entry string
			for _, in := range final {
				switch in.Op {
				case "RUN", "SHELL":
					t.Errorf("runtime stage runs %s %s: the image has no shell", in.Op, in.Args)
				case "USER":
					user = in.Args
				case "ENTRYPOINT":
					entry = in.Args
				case "COPY":
					if !strings.HasPrefix(in.Args, "--from=build ") {
						t.Errorf("runtime stage copies from the context: %s", in.Args)
					}
				}
			}
			uid, _, _ := strings.Cut(user, ":")
			if n, err := strconv.Atoi(uid); err != nil || n == 0 {
				t.Errorf("USER %q, want a numeric non-root user (Kubernetes checks runAsNonRoot on numbers)", user)
			}
			var argv []string
			if err := json.Unmarshal([]byte(entry), &argv); err != nil || len(argv) != 1 || argv[0] != tc.binary {
				t.Errorf("ENTRYPOINT %s, want the exec form [%q]", entry, tc.binary)
			}
		})
	}
}
