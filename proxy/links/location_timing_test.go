package links

import (
	"fmt"
	"testing"

	"github.com/clickgate/clickgate/storage"
)

func benchLink() *Link {
	return Compile(&storage.Link{Slug: "s", Destination: "https://shop.example.com/p/spring?ref=sms#top", ForwardQuery: true,
		UTM: storage.UTM{Source: "sms", Medium: "promotional", Campaign: "spring_sale_2026", Content: "version_a"}})
}

func BenchmarkAppendLocation(b *testing.B) {
	l := benchLink()
	id := []byte("01kb5fq2w8s3m4n5p6q7r8s9t0")
	for _, q := range []string{"", "gclid=abc123&fbclid=xyz&ref=other"} {
		b.Run(fmt.Sprintf("query=%d", len(q)), func(b *testing.B) {
			buf := make([]byte, 0, 512)
			b.ReportAllocs()
			for b.Loop() {
				buf = l.AppendLocation(buf[:0], &l.Targets[0], []byte(q), "cgid", id)
			}
		})
	}
}

// BenchmarkLookup looks up one slug over and over among 1 and 100,000 links, and every
// link of a million in a scattered order ("scattered"), as uniform traffic over many
// links does: then each lookup misses the CPU caches.
func BenchmarkLookup(b *testing.B) {
	for _, c := range []struct{ n, stride int }{{1, 0}, {100_000, 0}, {1_000_000, 7919}} {
		name := fmt.Sprintf("links=%d", c.n)
		if c.stride > 0 {
			name += "/scattered"
		}
		b.Run(name, func(b *testing.B) {
			db, err := storage.Open(storage.Options{Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			ix := NewIndex()
			ls := make([]*storage.Link, c.n)
			slugs := make([][]byte, c.n)
			for i := range ls {
				slugs[i] = []byte(fmt.Sprintf("s%d", i))
				ls[i] = &storage.Link{Slug: string(slugs[i]), Destination: "https://x.example/"}
			}
			ix.Put(db, ls...)
			host := []byte("go.example.com")
			var l Link // the redirect's scratch: a lookup is the entry and its decoded link
			b.ReportAllocs()
			i := c.n / 2
			for b.Loop() {
				i = (i + c.stride) % c.n // a prime stride visits every link, none twice in a row
				e := ix.Lookup(host, slugs[i])
				if e == nil || len(e.LinkInto(&l).Targets) != 1 {
					b.Fatal("missing")
				}
			}
		})
	}
}

func BenchmarkPick(b *testing.B) {
	l := Compile(&storage.Link{Slug: "ab", Variants: []storage.Variant{
		{Destination: "https://a.example/", Weight: 1, Content: "a"}, {Destination: "https://b.example/", Weight: 1, Content: "b"}}})
	v := []byte("05121zy3sxeqecpfsd5zcb4wqj")
	b.ReportAllocs()
	for b.Loop() {
		l.Pick(v)
	}
}
