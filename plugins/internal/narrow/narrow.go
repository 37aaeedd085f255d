// Package narrow delivers a plugin's events in batches to an API that refuses a batch
// as a whole for what one of its events carries without saying which (a 400 naming no
// item): it sends the batch again in halves until the events at fault fail alone and
// the others are delivered, within a budget of requests per call. What the call could
// not send, or did not narrow down, is answered not sent (sdk.NotSent), for a later
// call to go on with.
package narrow

import (
	"context"
	"time"

	"github.com/clickgate/clickgate/sdk"
)

// Budget bounds the extra requests one call spends narrowing a rejected batch
// down to the items at fault, so a call stays well inside the host's timeout. What is
// left unresolved is retried in a later call, which goes on narrowing.
const Budget = 40

// Verdict is how an answer that is not a success resolves for the items it covered.
type Verdict int

// Verdicts; the zero Verdict is an answer that took the items (but those in Each).
const (
	Retry Verdict = iota + 1 // transient: send again later
	Fail                     // permanent for every item of the request
	Split                    // refused as a whole for what one item carries: try halves
)

// Outcome is what one request said of its items.
type Outcome struct {
	Verdict Verdict // 0: accepted; Each holds the items the API did not take
	After   time.Duration
	Reason  string
	Key     string // the refusal's cause, for Split: two refusals alike have one Key
	Each    map[int]sdk.Result
}

// Call is the delivery state of one Forward call.
type Call struct {
	Ctx    context.Context
	Budget int // requests left for narrowing refused batches (see the Budget constant)
	// Set gives item its result; Send sends items in one request.
	Set  func(item int, r sdk.Result)
	Send func(items []int) Outcome
	stop *sdk.Result // the first retry: the rest of the call waits with it
}

// Deliver sends items in batches of size, in order.
func (c *Call) Deliver(items []int, size int) {
	for start := 0; start < len(items); start += size {
		b := items[start:min(start+size, len(items))]
		if o, sent := c.try(b); sent {
			c.resolve(b, o)
		}
	}
}

// try sends items unless the call has to stop; when it does not send, it gives the
// items their retry results.
func (c *Call) try(items []int) (Outcome, bool) {
	var r sdk.Result
	switch {
	case c.stop != nil:
		r = sdk.NotSent(c.stop.RetryAfter, "not sent after an earlier request of the call had to wait: "+c.stop.Reason)
	case c.Ctx.Err() != nil:
		r = sdk.NotSent(0, "not sent: the call ran out of time")
	default:
		return c.Send(items), true
	}
	for _, i := range items {
		c.Set(i, r)
	}
	return Outcome{}, false
}

func (c *Call) resolve(items []int, o Outcome) {
	if len(items) == 0 {
		return
	}
	if o.Verdict == Split {
		c.isolate(items, o)
		return
	}
	c.apply(items, o)
}

func (c *Call) apply(items []int, o Outcome) {
	var all sdk.Result
	switch o.Verdict {
	case Retry:
		all = sdk.Retry(o.After, o.Reason)
		c.stop = &all
	case Fail, Split:
		all = sdk.Failed(o.Reason)
	default:
		all = sdk.Delivered()
	}
	for _, i := range items {
		if r, ok := o.Each[i]; ok {
			c.Set(i, r)
		} else {
			c.Set(i, all)
		}
	}
}

// isolate resolves a batch the API refused as a whole (a 400 names no item): it sends
// the halves, so the items at fault fail alone and the others are delivered. When both
// halves are rejected for the very cause of the whole, the cause is common to the items
// (an unknown property or field, say) and they all fail without more requests.
func (c *Call) isolate(items []int, rej Outcome) {
	if len(items) == 1 {
		c.Set(items[0], sdk.Failed(rej.Reason))
		return
	}
	if c.Budget < 2 {
		c.notNarrowed(items, rej)
		return
	}
	c.Budget -= 2
	half := len(items) / 2
	left, right := items[:half], items[half:]
	ol, sent := c.try(left)
	if !sent {
		c.try(right)
		return
	}
	if ol.Verdict == Retry {
		c.apply(left, ol)
		c.try(right)
		return
	}
	or, sent := c.try(right)
	if !sent {
		c.resolve(left, ol)
		return
	}
	if ol.Verdict == Split && or.Verdict == Split && ol.Key == rej.Key && or.Key == rej.Key {
		// Refused for the cause of the whole, both halves: the cause is common to the
		// items (an unknown property or field, say), or items at fault with the same message sit in
		// both halves. The first and last of each half, sent alone, tell them apart:
		// refused alike too, the cause is taken as common and the rest fail without more
		// requests (it takes four items at fault alike, at those places, to be wrong).
		if c.Budget < 4 {
			c.notNarrowed(items, rej)
			return
		}
		c.Budget -= 4
		common := true
		for _, h := range []*[]int{&left, &right} {
			if len(*h) < 2 {
				continue // a half of one was alone already
			}
			common = c.refusedAlone((*h)[0], rej.Key) && common
			common = c.refusedAlone((*h)[len(*h)-1], rej.Key) && common
			*h = (*h)[1 : len(*h)-1]
		}
		if common {
			for _, i := range append(left[:len(left):len(left)], right...) {
				c.Set(i, sdk.Failed(rej.Reason))
			}
			return
		}
	}
	if or.Verdict == Retry {
		c.apply(right, or) // first, so the left half sends nothing more
		c.resolve(left, ol)
		return
	}
	c.resolve(left, ol)
	c.resolve(right, or)
}

// refusedAlone sends one item of a refused batch alone, resolves it, and reports whether
// it was refused for key.
func (c *Call) refusedAlone(item int, key string) bool {
	o, sent := c.try([]int{item})
	if !sent {
		return false
	}
	c.resolve([]int{item}, o)
	return o.Verdict == Split && o.Key == key
}

// notNarrowed leaves items of a refused batch to a later call, which goes on narrowing.
func (c *Call) notNarrowed(items []int, rej Outcome) {
	r := sdk.NotSent(0, "rejected in a batch, not yet narrowed down to the events at fault: "+rej.Reason)
	for _, i := range items {
		c.Set(i, r)
	}
}

// Context ends a little before the host's deadline for the call, so the call
// returns its results (what was not sent is retried) instead of being killed as hung.
func Context(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok {
		return context.WithDeadline(ctx, d.Add(-min(time.Until(d)/10, 2*time.Second)))
	}
	return context.WithCancel(ctx)
}
