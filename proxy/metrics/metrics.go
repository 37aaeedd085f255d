// Package metrics declares clickgate's Prometheus metrics. They are the one kind of
// global state the project allows: registered once, incremented from anywhere.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Registry holds every clickgate metric plus the Go and process collectors.
var Registry = prometheus.NewRegistry()

var (
	redirects = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "clickgate_redirects_total",
		Help: "Requests on the public listener for a link, by outcome.",
	}, []string{"outcome"})

	// Redirect outcomes, resolved once so the hot path does no label lookup.
	RedirectOK       = redirects.WithLabelValues("redirect")
	RedirectNotFound = redirects.WithLabelValues("not_found")
	RedirectGone     = redirects.WithLabelValues("gone")
	RedirectUsedUp   = redirects.WithLabelValues("max_clicks")
	// RedirectUnstored counts redirects answered without a click ID because storage
	// failed to commit the click: the recipient still lands, the click is not claimed.
	RedirectUnstored = redirects.WithLabelValues("unstored")

	clicks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "clickgate_clicks_total",
		Help: "Clicks committed, by kind (human, bot, test).",
	}, []string{"kind"})
	ClicksHuman = clicks.WithLabelValues("human")
	ClicksBot   = clicks.WithLabelValues("bot")
	ClicksTest  = clicks.WithLabelValues("test")

	// RedirectSeconds is the time from routing to the answer, commit included.
	RedirectSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "clickgate_redirect_duration_seconds",
		Help:    "Time to answer a redirect, the durable click commit included.",
		Buckets: []float64{.0001, .00025, .0005, .001, .002, .005, .01, .025, .05, .1, .25, 1},
	})

	// CommitSeconds and CommitBatch describe the group commit.
	CommitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "clickgate_click_commit_duration_seconds",
		Help:    "Time of one group commit of clicks to storage.",
		Buckets: []float64{.0001, .00025, .0005, .001, .002, .005, .01, .025, .05, .1, .25, 1},
	})
	CommitBatch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "clickgate_click_commit_batch_size",
		Help:    "Clicks per group commit.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 13),
	})
	CommitErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "clickgate_click_commit_errors_total",
		Help: "Group commits that failed; their redirects were answered without a click ID.",
	})

	// Links is the number of links in the index.
	Links = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "clickgate_links",
		Help: "Links loaded in the redirect index.",
	})

	// Panics counts handler panics answered with 500.
	Panics = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "clickgate_panics_total",
		Help: "Handler panics recovered and answered with 500, by listener.",
	}, []string{"listener"})

	// OutboxBytes estimates the outbox's share of the store.
	OutboxBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "clickgate_outbox_bytes",
		Help: "Estimated on-disk size of the outbox (events kept until every consumer passed them).",
	})

	// StorageBytes is the on-disk size of the store.
	StorageBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "clickgate_storage_bytes",
		Help: "On-disk size of the Badger store, by part (lsm, vlog).",
	}, []string{"part"})
)

func init() {
	Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		redirects, clicks, RedirectSeconds, CommitSeconds, CommitBatch, CommitErrors,
		Links, Panics, StorageBytes, OutboxBytes,
	)
}
