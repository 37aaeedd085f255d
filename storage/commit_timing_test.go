package storage

import (
	"context"
	"testing"
)

// BenchmarkCommitParallel measures the group commit under concurrent handlers, the way
// the redirect uses it.
func BenchmarkCommitParallel(b *testing.B) {
	db, err := Open(Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { db.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; db.Close() }()
	ctr := db.Counters("", "s")
	b.SetParallelism(32)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		buf := make([]byte, 0, 512)
		for pb.Next() {
			i++
			buf = AppendClick(buf[:0], testClick(i, "s", false))
			if err := db.Committer().CommitClick(buf, ctr, KindHuman); err != nil {
				b.Fatal(err)
			}
		}
	})
}
