package secretsync

import (
	gosync "sync"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Results of a sync (one fetch and write of a class's Secrets).
const (
	ResultChanged   = "changed"
	ResultUnchanged = "unchanged"
	ResultError     = "error"
)

// Metrics are the controller's Prometheus metrics. Labels carry only
// bounded values (results, reasons, provider names), never names of
// objects or anything read from a backend.
type Metrics struct {
	// Syncs counts fetch-and-write passes by provider and result.
	Syncs *prometheus.CounterVec
	// Errors counts failures by reason (the reason of the event).
	Errors *prometheus.CounterVec
	// Managed is the number of Secrets the controller currently keeps.
	Managed prometheus.Gauge
	// FetchSeconds is the duration of provider fetches by provider.
	FetchSeconds *prometheus.HistogramVec
}

// NewMetrics returns unregistered metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		Syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ssi_sync_total",
			Help: "Syncs of SecretProviderClass secretObjects into Secrets, by provider and result (changed, unchanged, error).",
		}, []string{"provider", "result"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ssi_sync_errors_total",
			Help: "Sync failures by reason (the reason of the Warning event on the SecretProviderClass).",
		}, []string{"reason"}),
		Managed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ssi_sync_secrets_managed",
			Help: "Secrets currently kept in sync by this controller.",
		}),
		FetchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ssi_sync_fetch_duration_seconds",
			Help:    "Duration of provider fetches made by the sync controller.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"provider"}),
	}
}

// Register registers the metrics with r.
func (m *Metrics) Register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.Syncs, m.Errors, m.Managed, m.FetchSeconds} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

var (
	defaultMetricsOnce gosync.Once
	defaultMetrics     *Metrics
)

// DefaultMetrics are registered once with controller-runtime's registry,
// which the manager serves at /metrics.
func DefaultMetrics() *Metrics {
	defaultMetricsOnce.Do(func() {
		defaultMetrics = NewMetrics()
		if err := defaultMetrics.Register(crmetrics.Registry); err != nil {
			panic(err)
		}
	})
	return defaultMetrics
}
