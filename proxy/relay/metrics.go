package relay

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickgate/clickgate/proxy/metrics"
)

var (
	backlogEvents = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "clickgate_kafka_backlog_events", Help: "Outbox events not yet acknowledged by Kafka.",
	})
	oldestSeconds = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "clickgate_kafka_oldest_unsent_seconds", Help: "Age of the oldest event not yet acknowledged by Kafka.",
	})
	backlogOver = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "clickgate_kafka_backlog_over_limit", Help: "1 while the Kafka backlog is over CLICKGATE_OUTBOX_MAX_BACKLOG (alert: nothing is dropped).",
	})
	batches = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "clickgate_kafka_batches_total", Help: "Batches acknowledged by Kafka.",
	})
	messagesTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "clickgate_kafka_messages_total", Help: "Messages acknowledged by Kafka.",
	})
	errorsTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "clickgate_kafka_errors_total", Help: "Failed Kafka writes (retried).",
	})
	deadLettered = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "clickgate_kafka_dead_lettered_total", Help: "Events Kafka refused for good (too large), kept as dead letters.",
	})
	lastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "clickgate_kafka_last_success_timestamp_seconds", Help: "Unix time of the last acknowledged batch.",
	})
	produceSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "clickgate_kafka_produce_duration_seconds", Help: "Time of one produce call, acknowledgement included.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
)

func init() {
	metrics.Registry.MustRegister(backlogEvents, oldestSeconds, backlogOver, batches, messagesTotal, errorsTotal, deadLettered, lastSuccess, produceSeconds)
}
