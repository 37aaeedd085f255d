package storage

import "testing"

// BenchmarkCommitParallel measures the group commit under concurrent handlers, the way
// the redirect uses it.
func BenchmarkCommitParallel(b *testing.B) {
	db := openTest(b, b.TempDir())
	defer runTest(db)()
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
