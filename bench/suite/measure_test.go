package suite

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

func TestCommitUsage(t *testing.T) {
	at := func(commits, seconds float64) commitCounters {
		return commitCounters{commits: commits, seconds: seconds, ok: true}
	}
	for _, tc := range []struct {
		name           string
		c0, c1         commitCounters
		answered       float64
		elapsed        time.Duration
		perCommit, bsy float64
	}{
		{"ten per commit", at(1000, 2), at(2000, 3), 10000, 10 * time.Second, 10, 0.1},
		{"one per commit", at(0, 0), at(500, 0.25), 500, time.Second, 1, 0.25},
		{"no commits in the interval", at(7, 1), at(7, 1), 0, time.Second, 0, 0},
		{"counters went back (a restart)", at(900, 5), at(100, 1), 100, time.Second, 0, 0},
		{"no counters at the start", commitCounters{}, at(10, 1), 10, time.Second, 0, 0},
		{"no counters at the end", at(10, 1), commitCounters{}, 10, time.Second, 0, 0},
		{"no elapsed time", at(0, 0), at(4, 1), 8, 0, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, b := commitUsage(tc.c0, tc.c1, tc.answered, tc.elapsed)
			if math.Abs(n-tc.perCommit) > 1e-9 || math.Abs(b-tc.bsy) > 1e-9 {
				t.Fatalf("commitUsage = %v, %v; want %v, %v", n, b, tc.perCommit, tc.bsy)
			}
		})
	}
}

func TestReadCommits(t *testing.T) {
	ctx := context.Background()
	if c := readCommits(ctx, &server{}); c.ok {
		t.Fatalf("a server without metrics gave %+v", c)
	}
	failing := &server{metrics: func(context.Context) (map[string]float64, error) { return nil, errors.New("refused") }}
	if c := readCommits(ctx, failing); c.ok {
		t.Fatalf("a failed scrape gave %+v", c)
	}
	other := &server{metrics: func(context.Context) (map[string]float64, error) {
		return map[string]float64{"clickgate_clicks_total": 5}, nil
	}}
	if c := readCommits(ctx, other); c.ok {
		t.Fatalf("metrics without the commit histogram gave %+v", c)
	}
	gate := &server{metrics: func(context.Context) (map[string]float64, error) {
		return map[string]float64{"clickgate_click_commit_duration_seconds_count": 12, "clickgate_click_commit_duration_seconds_sum": 0.5}, nil
	}}
	if c := readCommits(ctx, gate); !c.ok || c.commits != 12 || c.seconds != 0.5 {
		t.Fatalf("readCommits = %+v", c)
	}
}
