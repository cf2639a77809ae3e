// Command app is the test application of the end-to-end suite, packaged as
// the image myapp:latest that the seed guide's Deployment names. Like the
// watcher in the seed guide it reads the mounted secret files and watches
// their directory with fsnotify, reacting to events under a file's own name
// by reading that file. It reports what it saw on stdout (names, sizes and
// hashes only) and, for the tests, in full on an HTTP endpoint of the pod IP
// (GET /state, reached through the API server's pod proxy).
//
//	app [watch]   watch the directory (default; the Deployment's command)
//	app once      print the files and exit 0 when every expected file exists
//	app sidecar   write a marker into $MARKER, then wait (a native sidecar)
//	app smoke     check the cluster from inside a pod, print JSON, exit 0/1
//	app vault-login  log in to $VAULT_ADDR as $VAULT_ROLE with the pod's
//	              token and print the kv-v2 data at $VAULT_PATH
//
// The data it handles are test values from the e2e Vault; this program
// exists only for tests.
package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/ssinjector/ssi/internal/mountinfo"
	"github.com/ssinjector/ssi/test/e2e/app/wire"
)

func main() {
	cmd := "watch"
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	var err error
	switch cmd {
	case "watch":
		err = watch()
	case "once":
		err = once()
	case "sidecar":
		err = sidecar()
	case "smoke":
		err = smoke()
	case "vault-login":
		err = vaultLogin()
	default:
		err = fmt.Errorf("unknown command %q (want watch, once, sidecar, smoke or vault-login)", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "app:", err)
		os.Exit(1)
	}
}

// secretsDir is $WATCH_DIR, else the directory of $DB_PASSWORD_FILE (the
// seed Deployment sets it), else /mnt/secrets.
func secretsDir() string {
	if d := os.Getenv("WATCH_DIR"); d != "" {
		return d
	}
	if f := os.Getenv("DB_PASSWORD_FILE"); f != "" {
		return filepath.Dir(f)
	}
	return "/mnt/secrets"
}

// readFiles returns the user-visible files of dir (skipping the atomic
// writer's dot entries), following symlinks. Files in subdirectories are
// included under their slash-separated relative path ("sub/name"): nested
// object paths, and several volumes mounted under one watched directory.
func readFiles(dir string) (map[string]string, error) {
	out := map[string]string{}
	if err := readTree(dir, "", out, 0); err != nil {
		return nil, err
	}
	return out, nil
}

func readTree(dir, prefix string, out map[string]string, depth int) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Stat(p)
		if err != nil {
			continue // a dangling link
		}
		if fi.IsDir() {
			if depth < 8 {
				_ = readTree(p, prefix+e.Name()+"/", out, depth+1)
			}
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		out[prefix+e.Name()] = string(b)
	}
	return nil
}

func digest(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:6])
}

func reportedEnv() map[string]string {
	names := []string{"DB_PASSWORD", "API_KEY", "DB_PASSWORD_FILE"}
	names = append(names, strings.Split(os.Getenv("REPORT_ENV"), ",")...)
	env := map[string]string{}
	for _, n := range names {
		if v, ok := os.LookupEnv(n); ok && n != "" {
			env[n] = v
		}
	}
	return env
}

func watch() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	dir := secretsDir()
	st := &wire.State{Dir: dir, Started: time.Now().UTC(), Env: reportedEnv()}
	var mu sync.Mutex

	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer func() { _ = w.Close() }()
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	// Volumes mounted below the watched directory (one per class, at
	// dir/<name>) are watched too, so their rotations are seen.
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			if fi, err := os.Stat(p); err == nil && fi.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				if err := w.Add(p); err != nil {
					return fmt.Errorf("watch %s: %w", p, err)
				}
			}
		}
	}
	files, err := readFiles(dir)
	if err != nil {
		return err
	}
	st.Initial, st.Files = files, files
	names := make([]string, 0, len(files))
	for n, c := range files {
		names = append(names, fmt.Sprintf("%s(%dB,%s)", n, len(c), digest(c)))
	}
	sort.Strings(names)
	fmt.Printf("app: watching %s: %s\n", dir, strings.Join(names, " "))

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/state", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
	addr := os.Getenv("LISTEN")
	if addr == "" {
		addr = ":8080"
	}
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "app: serve:", err)
			os.Exit(1)
		}
	}()
	defer func() { _ = srv.Close() }()

	for {
		select {
		case <-ctx.Done():
			fmt.Println("app: stopping")
			return nil
		case err := <-w.Errors:
			fmt.Fprintln(os.Stderr, "app: watch error:", err)
		case ev := <-w.Events:
			name := filepath.Base(ev.Name)
			e := wire.Event{At: time.Now().UTC(), Op: ev.Op.String(), Name: name}
			// Like the seed guide's handler: an event under a file's own
			// name makes the application read that file.
			if !strings.HasPrefix(name, ".") {
				if b, err := os.ReadFile(ev.Name); err == nil {
					s := string(b)
					e.Content = &s
				}
			}
			now, err := readFiles(dir)
			mu.Lock()
			st.Events = append(st.Events, e)
			if err == nil {
				for n, c := range now {
					if old, ok := st.Files[n]; !ok || old != c {
						st.Changes = append(st.Changes, wire.Change{At: e.At, Name: n, Content: c})
						fmt.Printf("app: %s changed (%dB,%s) after %s %s\n", n, len(c), digest(c), e.Op, name)
					}
				}
				st.Files = now
			}
			mu.Unlock()
			fmt.Printf("app: event %s %s\n", e.Op, name)
		}
	}
}

func once() error {
	dir := secretsDir()
	files, err := readFiles(dir)
	if err != nil {
		return err
	}
	for _, want := range strings.Split(os.Getenv("EXPECT_FILES"), ",") {
		if _, ok := files[want]; want != "" && !ok {
			return fmt.Errorf("%s has no file %s", dir, want)
		}
	}
	if len(files) == 0 {
		return fmt.Errorf("%s has no files", dir)
	}
	names := make([]string, 0, len(files))
	for n, c := range files {
		names = append(names, fmt.Sprintf("%s(%dB,%s)", n, len(c), digest(c)))
	}
	sort.Strings(names)
	fmt.Printf("app: read %s: %s\n", dir, strings.Join(names, " "))
	return nil
}

func sidecar() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	marker := os.Getenv("MARKER")
	if marker == "" {
		return errors.New("MARKER is not set")
	}
	if err := os.WriteFile(marker, []byte(time.Now().UTC().Format(time.RFC3339Nano)), 0o644); err != nil { //nolint:gosec // the marker path is the test's own setting
		return err
	}
	fmt.Println("app: sidecar wrote", marker)
	<-ctx.Done()
	fmt.Println("app: sidecar stopping")
	return nil
}

func smoke() error {
	var r wire.SmokeResult
	fail := func(format string, args ...any) { r.Errors = append(r.Errors, fmt.Sprintf(format, args...)) }

	if marker := os.Getenv("MARKER"); marker != "" {
		if _, err := os.Stat(marker); err == nil { //nolint:gosec // the test's own setting
			r.MarkerFromSidecar = true
		} else {
			fail("marker: %v", err)
		}
		r.MarkerFSType = fsType(filepath.Dir(marker))
	}
	if tf := os.Getenv("TOKEN_FILE"); tf != "" {
		aud, err := audience(tf)
		if err != nil {
			fail("projected token: %v", err)
		}
		r.ProjectedAudience = aud
	}
	const sa = "/var/run/secrets/kubernetes.io/serviceaccount"
	host := os.Getenv("KUBERNETES_SERVICE_HOST")
	port := os.Getenv("KUBERNETES_SERVICE_PORT")
	user, err := whoAmI(sa, net.JoinHostPort(host, port))
	if err != nil {
		fail("API via %s:%s: %v", host, port, err)
	}
	r.APIByServiceIP = user
	if addrs, err := net.LookupHost("kubernetes.default.svc"); err == nil && len(addrs) > 0 {
		r.ResolvedService = addrs[0]
	} else {
		fail("resolve kubernetes.default.svc: %v", err)
	}
	user, err = whoAmI(sa, "kubernetes.default.svc:443")
	if err != nil {
		fail("API via kubernetes.default.svc: %v", err)
	}
	r.APIByDNS = user
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
	if len(r.Errors) > 0 {
		return errors.New("smoke checks failed")
	}
	return nil
}

// whoAmI asks the API server, with the pod's service-account token, who
// it is (SelfSubjectReview) and returns the user name.
func whoAmI(saDir, hostport string) (string, error) {
	token, err := os.ReadFile(filepath.Join(saDir, "token"))
	if err != nil {
		return "", err
	}
	ca, err := os.ReadFile(filepath.Join(saDir, "ca.crt"))
	if err != nil {
		return "", err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return "", errors.New("ca.crt has no certificate")
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	body := `{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`
	req, err := http.NewRequest(http.MethodPost, "https://"+hostport+"/apis/authentication.k8s.io/v1/selfsubjectreviews", strings.NewReader(body)) //nolint:gosec // the API server from the pod's environment
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req) //nolint:gosec // same request
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	var out struct {
		Status struct {
			UserInfo struct {
				Username string `json:"username"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("SelfSubjectReview: HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", err
	}
	return out.Status.UserInfo.Username, nil
}

// audience returns the aud claim of a JWT file (the payload is not secret
// to this test; the signature is not checked here).
func audience(path string) (string, error) {
	b, err := os.ReadFile(path) //nolint:gosec // the test's own setting
	if err != nil {
		return "", err
	}
	parts := strings.Split(strings.TrimSpace(string(b)), ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var claims struct {
		Aud any `json:"aud"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", err
	}
	switch a := claims.Aud.(type) {
	case string:
		return a, nil
	case []any:
		var s []string
		for _, x := range a {
			s = append(s, fmt.Sprint(x))
		}
		return strings.Join(s, ","), nil
	}
	return "", errors.New("no aud claim")
}

// fsType returns the file system type mounted at dir, from mountinfo.
func fsType(dir string) string {
	fs := ""
	_ = mountinfo.Scan(mountinfo.Self, func(m mountinfo.Mount) bool {
		if m.Point == dir {
			fs = m.FSType
		}
		return fs == ""
	})
	return fs
}

// vaultLogin proves the path the Vault provider takes from a pod: DNS for
// the Vault Service, Kubernetes auth with the pod's token (Vault reviews it
// against the cluster), then a kv-v2 read.
func vaultLogin() error {
	addr, role, path := os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_ROLE"), os.Getenv("VAULT_PATH")
	token, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/token")
	if err != nil {
		return err
	}
	c := &http.Client{Timeout: 10 * time.Second}
	body, _ := json.Marshal(map[string]string{"role": role, "jwt": strings.TrimSpace(string(token))})
	resp, err := c.Post(addr+"/v1/auth/kubernetes/login", "application/json", strings.NewReader(string(body))) //nolint:gosec // Vault named by the test
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	var login struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
		Errors []string `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&login); err != nil {
		return fmt.Errorf("login: HTTP %d: %w", resp.StatusCode, err)
	}
	if login.Auth.ClientToken == "" {
		return fmt.Errorf("login: HTTP %d: %v", resp.StatusCode, login.Errors)
	}
	req, _ := http.NewRequest(http.MethodGet, addr+"/v1/"+path, nil) //nolint:gosec // Vault named by the test
	req.Header.Set("X-Vault-Token", login.Auth.ClientToken)
	resp2, err := c.Do(req) //nolint:gosec // same
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer func() { _ = resp2.Body.Close() }()
	var kv struct {
		Data struct {
			Data map[string]any `json:"data"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp2.Body).Decode(&kv); err != nil || resp2.StatusCode != http.StatusOK {
		return fmt.Errorf("read %s: HTTP %d: %w", path, resp2.StatusCode, err)
	}
	out, _ := json.Marshal(kv.Data.Data)
	fmt.Println(string(out))
	return nil
}
