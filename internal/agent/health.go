package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// healthAddr is where the health port listens: an address that names a
// host is kept; one without (":9811", the webhook's) gets the pod's IP,
// which is all kubelet's httpGet probes need. Not every interface: in a
// hostNetwork pod those are the node's, loopback included, and in a pod
// with extra networks, those networks. Without a pod IP (the agent run by
// hand) the address is kept.
func healthAddr(addr, podIP string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "" || podIP == "" || net.ParseIP(podIP) == nil {
		return addr
	}
	return net.JoinHostPort(podIP, port)
}

// serveHTTP serves /healthz (the process is alive), /readyz (200 only after
// the first complete write of every volume; the webhook's startup probe)
// and /metrics on ln until the returned stop function is called.
func serveHTTP(ln net.Listener, r *runner, log *slog.Logger) (stop func()) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if r.ready() {
			_, _ = fmt.Fprintln(w, "ok")
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		for _, v := range r.vols {
			if !v.written.Load() {
				_, _ = fmt.Fprintf(w, "volume %s (SecretProviderClass %s): not written yet\n", v.name, v.class())
			}
		}
	})
	mux.Handle("/metrics", promhttp.HandlerFor(r.metrics.reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("health server stopped", "error", err.Error())
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}
}
