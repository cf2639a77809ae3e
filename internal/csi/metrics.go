package csi

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the shim's Prometheus series. Labels carry provider names and
// failure reasons only.
type metrics struct {
	publish        *prometheus.CounterVec
	publishSeconds *prometheus.HistogramVec
	rotations      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, volumes func() float64) *metrics {
	m := &metrics{
		publish: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ssi_csi_node_publish_total",
			Help: "NodePublishVolume calls by provider and result (ok, skipped, invalid, or the failure reason).",
		}, []string{"provider", "result"}),
		publishSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ssi_csi_node_publish_duration_seconds",
			Help:    "Duration of NodePublishVolume calls that fetched, by kind (first, republish).",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"kind"}),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ssi_csi_rotations_total",
			Help: "Refreshes of mounted volumes by provider and result (changed, unchanged, error:<reason>).",
		}, []string{"provider", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.publish, m.publishSeconds, m.rotations,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "ssi_csi_published_volumes",
				Help: "Volumes this shim has published and not unpublished.",
			}, volumes))
	}
	return m
}
