package storage

import (
	"fmt"
	"testing"
)

// recent.events answers every starting point and size as a scan of the kept events
// would: from the oldest kept, the middle of a batch, a batch boundary, the newest, and
// past or before what is kept.
func TestRecentEvents(t *testing.T) {
	r := &recent{}
	seq := uint64(100)
	var all []uint64
	for _, n := range []int{1, 3, 1, 1, 7, 2, 1, 5} {
		b := recentBatch{}
		for range n {
			b.events = append(b.events, Event{OutboxEntry: OutboxEntry{Seq: seq}})
			all = append(all, seq)
			seq++
		}
		r.batches = append(r.batches, b)
	}
	want := func(from uint64, max int) ([]uint64, bool) {
		if from < all[0] || from > all[len(all)-1] {
			return nil, false
		}
		out := all[from-all[0]:]
		return out[:min(max, len(out))], true
	}
	for from := all[0] - 2; from <= all[len(all)-1]+2; from++ {
		for _, max := range []int{1, 2, 4, 100} {
			t.Run(fmt.Sprintf("from %d max %d", from, max), func(t *testing.T) {
				evs, ok := r.events(from, max)
				var got []uint64
				for _, e := range evs {
					got = append(got, e.Seq)
				}
				w, wok := want(from, max)
				if ok != wok || fmt.Sprint(got) != fmt.Sprint(w) {
					t.Fatalf("events(%d, %d) = %v, %v; want %v, %v", from, max, got, ok, w, wok)
				}
			})
		}
	}
}
