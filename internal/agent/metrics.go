package agent

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metric names are part of the agent's operational interface. Labels carry
// provider, volume, class and reason names only, never content.
const metricsNamespace = "ssi_agent"

// metrics is the agent's registry; one per Run, so tests can run several
// agents in one process.
type metrics struct {
	reg       *prometheus.Registry
	fetches   *prometheus.CounterVec
	rotations *prometheus.CounterVec
	errors    *prometheus.CounterVec
	reloads   *prometheus.CounterVec
}

func newMetrics(r *runner) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "fetches_total",
			Help: "Fetches of a volume's objects from its provider, first fetch and rotations, by result (success, error).",
		}, []string{"provider", "result"}),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "rotations_total",
			Help: "Rotation cycles after the first fetch, by result (changed: new files published; unchanged; error: last good files kept).",
		}, []string{"provider", "result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "errors_total",
			Help: "Failed fetches by provider and reason (NotFound, AccessDenied, Throttled, Unauthenticated, InvalidContent, InvalidConfig, Unavailable, Unknown).",
		}, []string{"provider", "reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "reload_signals_total",
			Help: "Reload signals sent to app containers' main processes after a rotation changed files, by result (sent, error).",
		}, []string{"result"}),
	}
	m.reg.MustRegister(m.fetches, m.rotations, m.errors, m.reloads,
		&volumeCollector{r: r},
		&renewalCollector{r: r},
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	)
	return m
}

// volumeCollector reports per-volume freshness at scrape time, so
// staleness grows between fetches without a timer.
type volumeCollector struct{ r *runner }

var (
	descLastSuccess = prometheus.NewDesc(metricsNamespace+"_volume_last_success_timestamp_seconds",
		"Unix time of the last successful fetch of the volume (files published or confirmed unchanged); 0 before the first.",
		[]string{"volume", "class", "provider"}, nil)
	descStaleness = prometheus.NewDesc(metricsNamespace+"_volume_staleness_seconds",
		"Seconds since the last successful fetch of the volume (since the agent started, before the first).",
		[]string{"volume", "class", "provider"}, nil)
	descFailures = prometheus.NewDesc(metricsNamespace+"_volume_consecutive_failures",
		"Failed fetches of the volume since its last success; above zero the files are stale.",
		[]string{"volume", "class", "provider"}, nil)
	descReady = prometheus.NewDesc(metricsNamespace+"_volume_ready",
		"1 once the volume has had a complete write.",
		[]string{"volume", "class", "provider"}, nil)
	descOptionalMissing = prometheus.NewDesc(metricsNamespace+"_volume_optional_objects_missing",
		"Optional objects of the volume's class (annotation secrets-store-injector.io/optional-objects) the backend did not have at the last successful fetch; their files are absent (or kept).",
		[]string{"volume", "class", "provider"}, nil)
)

// Describe implements prometheus.Collector.
func (c *volumeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descLastSuccess
	ch <- descStaleness
	ch <- descFailures
	ch <- descReady
	ch <- descOptionalMissing
}

// Collect implements prometheus.Collector.
func (c *volumeCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.r.clock.Now()
	for _, v := range c.r.vols {
		labels := []string{v.name, v.class(), v.provider.Name()}
		last := v.lastSuccess.Load()
		lastTS, since := 0.0, now.Sub(c.r.started)
		if last != 0 {
			lastTS = float64(last) / 1e9
			since = now.Sub(time.Unix(0, last))
		}
		ready := 0.0
		if v.written.Load() {
			ready = 1
		}
		ch <- prometheus.MustNewConstMetric(descLastSuccess, prometheus.GaugeValue, lastTS, labels...)
		ch <- prometheus.MustNewConstMetric(descStaleness, prometheus.GaugeValue, since.Seconds(), labels...)
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.GaugeValue, float64(v.failures.Load()), labels...)
		ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, ready, labels...)
		ch <- prometheus.MustNewConstMetric(descOptionalMissing, prometheus.GaugeValue, float64(len(v.v.Missing())), labels...)
	}
}
