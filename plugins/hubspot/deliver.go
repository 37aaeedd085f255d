package main

import (
	"context"
	"time"

	"github.com/clickgate/clickgate/sdk"
)

// isolationBudget bounds the extra requests one call spends narrowing a rejected batch
// down to the inputs at fault, so a call stays well inside the host's timeout. What is
// left unresolved is retried in a later call, which goes on narrowing.
const isolationBudget = 40

// outcome is what one request said of its inputs (items).
type outcome struct {
	verdict verdict // 0: accepted; each holds the inputs HubSpot did not take
	after   time.Duration
	reason  string
	key     string // the rejection's cause, for verdictSplit
	each    map[int]sdk.Result
}

// sendFunc sends items in one request.
type sendFunc func(items []int) outcome

// call is the delivery state of one Forward call.
type call struct {
	ctx    context.Context
	stop   *sdk.Result // the first retry: the rest of the call waits with it
	budget int         // requests left for isolating rejected inputs
	set    func(item int, r sdk.Result)
	send   sendFunc
}

// deliver sends items in batches of size, in order.
func (c *call) deliver(items []int, size int) {
	for start := 0; start < len(items); start += size {
		b := items[start:min(start+size, len(items))]
		if o, sent := c.try(b); sent {
			c.resolve(b, o)
		}
	}
}

// try sends items unless the call has to stop; when it does not send, it gives the
// items their retry results.
func (c *call) try(items []int) (outcome, bool) {
	var r sdk.Result
	switch {
	case c.stop != nil:
		r = sdk.NotSent(c.stop.RetryAfter, "not sent after an earlier request of the call had to wait: "+c.stop.Reason)
	case c.ctx.Err() != nil:
		r = sdk.NotSent(0, "not sent: the call ran out of time")
	default:
		return c.send(items), true
	}
	for _, i := range items {
		c.set(i, r)
	}
	return outcome{}, false
}

func (c *call) resolve(items []int, o outcome) {
	if len(items) == 0 {
		return
	}
	if o.verdict == verdictSplit {
		c.isolate(items, o)
		return
	}
	c.apply(items, o)
}

func (c *call) apply(items []int, o outcome) {
	var all sdk.Result
	switch o.verdict {
	case verdictRetry:
		all = sdk.Retry(o.after, o.reason)
		c.stop = &all
	case verdictFail, verdictSplit:
		all = sdk.Failed(o.reason)
	default:
		all = sdk.Delivered()
	}
	for _, i := range items {
		if r, ok := o.each[i]; ok {
			c.set(i, r)
		} else {
			c.set(i, all)
		}
	}
}

// isolate resolves a batch HubSpot rejected as a whole (a 400 names no input): it sends
// the halves, so the inputs at fault fail alone and the others are delivered. When both
// halves are rejected for the very cause of the whole, the cause is common to the inputs
// (an unknown property, say) and they all fail without more requests.
func (c *call) isolate(items []int, rej outcome) {
	if len(items) == 1 {
		c.set(items[0], sdk.Failed(rej.reason))
		return
	}
	if c.budget < 2 {
		c.notNarrowed(items, rej)
		return
	}
	c.budget -= 2
	half := len(items) / 2
	left, right := items[:half], items[half:]
	ol, sent := c.try(left)
	if !sent {
		c.try(right)
		return
	}
	if ol.verdict == verdictRetry {
		c.apply(left, ol)
		c.try(right)
		return
	}
	or, sent := c.try(right)
	if !sent {
		c.resolve(left, ol)
		return
	}
	if ol.verdict == verdictSplit && or.verdict == verdictSplit && ol.key == rej.key && or.key == rej.key {
		// Refused for the cause of the whole, both halves: the cause is common to the
		// inputs (an unknown property, say), or inputs at fault with the same message sit in
		// both halves. The first and last of each half, sent alone, tell them apart:
		// refused alike too, the cause is taken as common and the rest fail without more
		// requests (it takes four inputs at fault alike, at those places, to be wrong).
		if c.budget < 4 {
			c.notNarrowed(items, rej)
			return
		}
		c.budget -= 4
		common := true
		for _, h := range []*[]int{&left, &right} {
			if len(*h) < 2 {
				continue // a half of one was alone already
			}
			common = c.refusedAlone((*h)[0], rej.key) && common
			common = c.refusedAlone((*h)[len(*h)-1], rej.key) && common
			*h = (*h)[1 : len(*h)-1]
		}
		if common {
			for _, i := range append(left[:len(left):len(left)], right...) {
				c.set(i, sdk.Failed(rej.reason))
			}
			return
		}
	}
	if or.verdict == verdictRetry {
		c.apply(right, or) // first, so the left half sends nothing more
		c.resolve(left, ol)
		return
	}
	c.resolve(left, ol)
	c.resolve(right, or)
}

// refusedAlone sends one item of a refused batch alone, resolves it, and reports whether
// it was refused for key.
func (c *call) refusedAlone(item int, key string) bool {
	o, sent := c.try([]int{item})
	if !sent {
		return false
	}
	c.resolve([]int{item}, o)
	return o.verdict == verdictSplit && o.key == key
}

// notNarrowed leaves items of a refused batch to a later call, which goes on narrowing.
func (c *call) notNarrowed(items []int, rej outcome) {
	r := sdk.NotSent(0, "rejected in a batch, not yet narrowed down to the events at fault: "+rej.reason)
	for _, i := range items {
		c.set(i, r)
	}
}

// callContext ends a little before the host's deadline for the call, so the call
// returns its results (what was not sent is retried) instead of being killed as hung.
func callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok {
		return context.WithDeadline(ctx, d.Add(-min(time.Until(d)/10, 2*time.Second)))
	}
	return context.WithCancel(ctx)
}
