package narrow

import (
	"context"
	"testing"

	"github.com/clickgate/clickgate/sdk"
)

// run delivers n items in one batch to an API that refuses any request holding a bad
// item, with one message for all of them, and returns each item's result and the
// requests sent.
func run(n int, bad func(int) bool, budget int) ([]sdk.Result, int) {
	res := make([]sdk.Result, n)
	sends := 0
	c := &Call{Ctx: context.Background(), Budget: budget, Set: func(i int, r sdk.Result) { res[i] = r }}
	c.Send = func(items []int) Outcome {
		sends++
		for _, i := range items {
			if bad(i) {
				return Outcome{Verdict: Split, Reason: "400 invalid value", Key: "invalid value"}
			}
		}
		return Outcome{}
	}
	items := make([]int, n)
	for i := range items {
		items[i] = i
	}
	c.Deliver(items, n)
	return res, sends
}

func TestNarrowing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		n      int
		bad    []int
		budget int
		// common: every item fails, within this many requests
		common int
	}{
		{"one at fault", 64, []int{9}, Budget, 0},
		{"two alike, one in each half", 64, []int{9, 41}, Budget, 0},
		{"two alike, first in their halves", 64, []int{0, 32}, Budget, 0},
		{"three items, the last good", 3, []int{0, 1}, Budget, 0},
		{"every item", 100, nil, Budget, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isBad := func(i int) bool {
				if tc.bad == nil {
					return true
				}
				for _, b := range tc.bad {
					if b == i {
						return true
					}
				}
				return false
			}
			res, sends := run(tc.n, isBad, tc.budget)
			for i, r := range res {
				want := sdk.StatusDelivered
				if isBad(i) {
					want = sdk.StatusFailed
				}
				if r.Status != want {
					t.Errorf("item %d: %+v, want status %d", i, r, want)
				}
			}
			if tc.common > 0 && sends > tc.common {
				t.Errorf("%d requests for a cause common to every item, want at most %d", sends, tc.common)
			}
		})
	}
}

// Narrowing stops at its budget: what it did not narrow down is not sent, and no good
// item fails for another's fault.
func TestNarrowingBudget(t *testing.T) {
	res, sends := run(500, func(i int) bool { return i%2 == 0 }, 10)
	if sends > 11 {
		t.Errorf("%d requests with a budget of 10", sends)
	}
	notSent := 0
	for i, r := range res {
		switch {
		case r.Status == sdk.StatusNotSent:
			notSent++
		case i%2 == 1 && r.Status != sdk.StatusDelivered:
			t.Fatalf("good item %d: %+v", i, r)
		}
	}
	if notSent == 0 {
		t.Error("nothing left for a later call")
	}
}
