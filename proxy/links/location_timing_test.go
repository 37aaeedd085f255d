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

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1, 100000} {
		b.Run(fmt.Sprintf("links=%d", n), func(b *testing.B) {
			db, err := storage.Open(storage.Options{Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			ix := NewIndex()
			ls := make([]*storage.Link, n)
			for i := range ls {
				ls[i] = &storage.Link{Slug: fmt.Sprintf("s%d", i), Destination: "https://x.example/"}
			}
			ix.Put(db, ls...)
			host, slug := []byte("go.example.com"), []byte(fmt.Sprintf("s%d", n/2))
			var l Link // the redirect's scratch: a lookup is the entry and its decoded link
			b.ReportAllocs()
			for b.Loop() {
				e := ix.Lookup(host, slug)
				if e == nil || len(e.LinkInto(&l).Targets) != 1 {
					b.Fatal("missing")
				}
			}
		})
	}
}

// BenchmarkLookupSpread looks up a million links in a scattered order, as uniform
// traffic over many links does: each lookup misses the CPU caches, unlike
// BenchmarkLookup's one slug.
func BenchmarkLookupSpread(b *testing.B) {
	const n = 1_000_000
	db, err := storage.Open(storage.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ix := NewIndex()
	ls := make([]*storage.Link, n)
	slugs := make([][]byte, n)
	for i := range ls {
		slugs[i] = []byte(fmt.Sprintf("s%d", i))
		ls[i] = &storage.Link{Slug: string(slugs[i]), Destination: "https://x.example/"}
	}
	ix.Put(db, ls...)
	host := []byte("go.example.com")
	var l Link
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i = (i + 7919) % n // a prime stride: every link, none twice in a row
		e := ix.Lookup(host, slugs[i])
		if e == nil || len(e.LinkInto(&l).Targets) != 1 {
			b.Fatal("missing")
		}
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
