package ids

import (
	"testing"
	"time"
)

func BenchmarkClickIDNew(b *testing.B) {
	g := NewClickIDs(1)
	buf := make([]byte, 0, 32)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		buf = g.New(now).Append(buf[:0])
	}
}

func BenchmarkClickIDParse(b *testing.B) {
	s := []byte(NewClickIDs(1).New(time.Now()).String())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseClickID(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVisitorIDNew(b *testing.B) {
	buf := make([]byte, 0, 32)
	b.ReportAllocs()
	for b.Loop() {
		buf = NewVisitorID(time.Now()).Append(buf[:0])
	}
}
