package pluginhost

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickgate/clickgate/proxy/metrics"
)

var (
	delivered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "clickgate_plugin_delivered_total", Help: "Events a plugin delivered.",
	}, []string{"plugin"})
	retried = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "clickgate_plugin_retried_total", Help: "Event deliveries a plugin asked to retry.",
	}, []string{"plugin"})
	deadLettered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "clickgate_plugin_dead_lettered_total", Help: "Events dead-lettered (refused, or out of attempts).",
	}, []string{"plugin"})
	restarts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "clickgate_plugin_restarts_total", Help: "Plugin processes killed and relaunched (crash, hang, failed health check).",
	}, []string{"plugin"})
	lag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "clickgate_plugin_lag_events", Help: "Outbox events not yet handled by a plugin.",
	}, []string{"plugin"})
	up = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "clickgate_plugin_up", Help: "1 while the plugin process is running and configured.",
	}, []string{"plugin"})
	callSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "clickgate_plugin_call_duration_seconds", Help: "Time of one Forward call.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"plugin"})
)

func init() {
	metrics.Registry.MustRegister(delivered, retried, deadLettered, restarts, lag, up, callSeconds)
}
