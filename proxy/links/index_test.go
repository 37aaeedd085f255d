package links

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/clickgate/clickgate/storage"
)

func TestIndexLookup(t *testing.T) {
	db := openTestDB(t)
	ix := NewIndex()
	ix.Put(db,
		&storage.Link{Slug: "both", Destination: "https://nodomain.example/"},
		&storage.Link{Domain: "go.brand.com", Slug: "both", Destination: "https://brand.example/"},
		&storage.Link{Slug: "plain", Destination: "https://plain.example/"},
		&storage.Link{Domain: "go.brand.com", Slug: "branded", Destination: "https://branded.example/"},
		&storage.Link{Domain: "go.other.com", Slug: "branded", Destination: "https://other.example/"},
		&storage.Link{Slug: "Case", Destination: "https://case.example/"},
	)
	cases := []struct {
		host, slug, want string // want: the destination found, "" for none
	}{
		{"go.brand.com", "both", "https://brand.example/"},
		{"go.other.com", "both", "https://nodomain.example/"},
		{"", "both", "https://nodomain.example/"},
		{"go.brand.com", "plain", "https://plain.example/"},
		{"anything.example", "plain", "https://plain.example/"},
		{"go.brand.com", "branded", "https://branded.example/"},
		{"go.other.com", "branded", "https://other.example/"},
		{"go.third.com", "branded", ""},
		{"", "branded", ""},
		{"go.brand.com", "missing", ""},
		{"go.brand.com", "", ""},
		{"", "", ""},
		{"", "case", ""},
		{"", "Case", "https://case.example/"},
		{"go.brand.com\x00both", "", ""}, // a NUL in the host cannot reach another key
		{"go.brand.co", "m\x00both", ""},
	}
	for _, c := range cases {
		e := ix.Lookup([]byte(c.host), []byte(c.slug))
		got := ""
		if e != nil {
			got = destOf(e.Link())
		}
		if got != c.want {
			t.Errorf("Lookup(%q, %q) = %q, want %q", c.host, c.slug, got, c.want)
		}
	}
	if ix.Len() != 6 {
		t.Fatalf("Len %d", ix.Len())
	}
	if ix.Get(storage.LinkKey("go.brand.com", "both")) != ix.Lookup([]byte("go.brand.com"), []byte("both")) ||
		ix.Get(storage.LinkKey("", "both")) != ix.Lookup(nil, []byte("both")) || ix.Get(storage.LinkKey("x", "y")) != nil {
		t.Fatal("Get and Lookup disagree")
	}
}

// A domain link added after the no-domain link wins for its host from then on.
func TestIndexDomainLinkAddedLater(t *testing.T) {
	db := openTestDB(t)
	ix := NewIndex()
	ix.Put(db, &storage.Link{Slug: "s", Destination: "https://nodomain.example/"})
	if e := ix.Lookup([]byte("go.brand.com"), []byte("s")); e == nil || e.Link().Domain != "" {
		t.Fatal("fallback")
	}
	ix.Put(db, &storage.Link{Domain: "go.brand.com", Slug: "s", Destination: "https://brand.example/"})
	if e := ix.Lookup([]byte("go.brand.com"), []byte("s")); e == nil || e.Link().Domain != "go.brand.com" {
		t.Fatal("domain link does not win")
	}
	if e := ix.Lookup([]byte("go.other.com"), []byte("s")); e == nil || e.Link().Domain != "" {
		t.Fatal("other hosts lost the fallback")
	}
	// A second domain, in a Put of its own, keeps the first.
	ix.Put(db, &storage.Link{Domain: "go.other.com", Slug: "s", Destination: "https://other.example/"})
	for _, host := range []string{"go.brand.com", "go.other.com"} {
		if e := ix.Lookup([]byte(host), []byte("s")); e == nil || e.Link().Domain != host {
			t.Fatalf("%s: domain link not found after another domain's", host)
		}
	}
}

func TestIndexUpdateKeepsEntryAndCounters(t *testing.T) {
	db := openTestDB(t)
	ix := NewIndex()
	ix.Put(db, &storage.Link{Slug: "s", Destination: "https://old.example/", MaxClicks: 10},
		&storage.Link{Slug: "other", Destination: "https://other.example/"})
	e := ix.Get(storage.LinkKey("", "s"))
	other := ix.Get(storage.LinkKey("", "other"))
	old := e.Link()
	counters := e.Counters
	if counters == nil || counters != db.Counters("", "s") {
		t.Fatal("entry counters are not the store's")
	}
	counters.Human.Add(3)
	for i := 0; i < 4; i++ {
		if !e.Reserve(old) {
			t.Fatal("reserve")
		}
	}

	// An update alone, and an update in a batch with a new link.
	ix.Put(db, &storage.Link{Slug: "s", Destination: "https://new.example/", MaxClicks: 5})
	ix.Put(db, &storage.Link{Slug: "s", Destination: "https://newer.example/", MaxClicks: 5}, &storage.Link{Slug: "fresh", Destination: "https://f.example/"})
	if ix.Get(storage.LinkKey("", "s")) != e || ix.Lookup(nil, []byte("s")) != e || ix.Get(storage.LinkKey("", "other")) != other {
		t.Fatal("an update replaced the entry")
	}
	if destOf(e.Link()) != "https://newer.example/" || e.Link().MaxClicks != 5 {
		t.Fatalf("link not swapped: %+v", e.Link())
	}
	if e.Counters != counters || e.Counters.Human.Load() != 3 || ix.Len() != 3 {
		t.Fatalf("counters or length changed: %p %d %d", e.Counters, e.Counters.Human.Load(), ix.Len())
	}
	// Reservations carry over: 4 of the new 5 are taken.
	if !e.Reserve(e.Link()) || e.Reserve(e.Link()) {
		t.Fatal("reservations did not carry over the update")
	}
}

func TestIndexReserveRelease(t *testing.T) {
	db := openTestDB(t)
	// A restart: counters from storage count against max_clicks.
	db.Counters("", "used").Human.Add(2)
	ix := NewIndex()
	ix.Put(db, &storage.Link{Slug: "used", Destination: "https://x.example/", MaxClicks: 3},
		&storage.Link{Slug: "free", Destination: "https://x.example/"})
	e := ix.Get(storage.LinkKey("", "used"))
	l := e.Link()
	if !e.Reserve(l) || e.Reserve(l) || e.Reserve(l) {
		t.Fatal("2 stored clicks + 1 reservation should use up max_clicks 3")
	}
	e.Release(l)
	if !e.Reserve(l) || e.Reserve(l) {
		t.Fatal("a released slot should be reusable exactly once")
	}

	free := ix.Get(storage.LinkKey("", "free"))
	for i := 0; i < 1000; i++ {
		if !free.Reserve(free.Link()) {
			t.Fatal("a link without max_clicks refused a click")
		}
		free.Release(free.Link())
	}
}

func TestIndexReserveConcurrent(t *testing.T) {
	db := openTestDB(t)
	ix := NewIndex()
	ix.Put(db, &storage.Link{Slug: "lim", Destination: "https://x.example/", MaxClicks: 1000})
	e := ix.Get(storage.LinkKey("", "lim"))
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; i < 100; i++ {
				if e.Reserve(e.Link()) {
					ok.Add(1)
				} else {
					refused.Add(1)
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if ok.Load() != 1000 || refused.Load() != 6400-1000 {
		t.Fatalf("%d admitted, %d refused; want 1000 and 5400", ok.Load(), refused.Load())
	}

	// Concurrent Release and Reserve: every released slot is taken again, never more.
	var again atomic.Int64
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			if g < 10 {
				e.Release(e.Link())
			}
			for i := 0; i < 100; i++ {
				if e.Reserve(e.Link()) {
					again.Add(1)
				}
			}
		}(g)
	}
	wg.Wait()
	if again.Load() != 10 {
		t.Fatalf("%d slots taken after 10 releases", again.Load())
	}
}

func TestIndexLookupAllocatesNothing(t *testing.T) {
	db := openTestDB(t)
	ix := NewIndex()
	ix.Put(db, &storage.Link{Slug: "s", Destination: "https://x.example/"}, &storage.Link{Domain: "go.brand.com", Slug: "d", Destination: "https://x.example/"})
	host, other, slug, dslug, missing := []byte("go.brand.com"), []byte("other.example"), []byte("s"), []byte("d"), []byte("nope")
	long := []byte(strings.Repeat("h", 400))
	for name, f := range map[string]func(){
		"domain hit":   func() { ix.Lookup(host, dslug) },
		"fallback hit": func() { ix.Lookup(other, slug) },
		"no host":      func() { ix.Lookup(nil, slug) },
		"miss":         func() { ix.Lookup(host, missing) },
		"long host":    func() { ix.Lookup(long, slug) },
	} {
		if n := testing.AllocsPerRun(200, f); n != 0 {
			t.Errorf("Lookup %s allocates %v", name, n)
		}
	}
}

func TestIndexManyLinks(t *testing.T) {
	db := openTestDB(t)
	ix := NewIndex()
	const n = 20000
	ls := make([]*storage.Link, n)
	for i := range ls {
		ls[i] = &storage.Link{Slug: fmt.Sprintf("s%d", i), Destination: fmt.Sprintf("https://x.example/%d", i)}
		if i%3 == 0 {
			ls[i].Domain = "go.brand.com"
		}
	}
	ix.Put(db, ls[:n/2]...)
	for _, l := range ls[n/2:] {
		ix.Put(db, l) // one at a time, as the admin API does
	}
	if ix.Len() != n {
		t.Fatalf("Len %d, want %d", ix.Len(), n)
	}
	for i, l := range ls {
		e := ix.Lookup([]byte("go.brand.com"), []byte(l.Slug))
		if e == nil || e.Link().Slug != l.Slug || e.Link().Domain != l.Domain || destOf(e.Link()) != l.Destination {
			t.Fatalf("link %d not found", i)
		}
		if got := ix.Lookup([]byte("other.example"), []byte(l.Slug)); (got != nil) != (l.Domain == "") {
			t.Fatalf("link %d on domain %q found from another host: %v", i, l.Domain, got != nil)
		}
	}
}

// Links loaded in batches bring their domains with them, the first link of a domain in
// any batch, and the domains only grow.
func TestIndexLoadPublishesDomains(t *testing.T) {
	db := openTestDB(t)
	ix := NewIndex()
	batches := [][]*storage.Link{
		{{Slug: "a", Destination: "https://none.example/"}, {Domain: "one.example", Slug: "a", Destination: "https://one.example/"}},
		{{Domain: "two.example", Slug: "a", Destination: "https://two.example/"}, {Domain: "one.example", Slug: "b", Destination: "https://one.example/b"}},
		{{Slug: "b", Destination: "https://none.example/b"}},
	}
	ix.Load(db, func() []*storage.Link {
		if len(batches) == 0 {
			return nil
		}
		b := batches[0]
		batches = batches[1:]
		return b
	})
	for _, c := range []struct{ host, slug, want string }{
		{"one.example", "a", "https://one.example/"},
		{"two.example", "a", "https://two.example/"},
		{"three.example", "a", "https://none.example/"},
		{"one.example", "b", "https://one.example/b"},
		{"two.example", "b", "https://none.example/b"},
		{"", "a", "https://none.example/"},
	} {
		if e := ix.Lookup([]byte(c.host), []byte(c.slug)); e == nil || destOf(e.Link()) != c.want {
			t.Errorf("Lookup(%q, %q) wrong", c.host, c.slug)
		}
	}
	if got := len(*ix.domains.Load()); got != 2 {
		t.Fatalf("%d domains, want 2", got)
	}
	ix.Put(db, &storage.Link{Domain: "one.example", Slug: "a", Destination: "https://one.example/v2"})
	if got := len(*ix.domains.Load()); got != 2 {
		t.Fatalf("an update changed the domains: %d", got)
	}
}

// Readers never see a torn index while a writer adds and updates links.
func TestIndexConcurrentReadersAndWriter(t *testing.T) {
	db := openTestDB(t)
	ix := NewIndex()
	ix.Put(db, &storage.Link{Slug: "hot", Destination: "https://v0.example/"})
	hot := ix.Get(storage.LinkKey("", "hot"))
	done := make(chan struct{})
	var wg sync.WaitGroup
	var failures atomic.Int64
	for r := 0; r < 8; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				e := ix.Lookup([]byte("go.example"), []byte("hot"))
				if e != hot || !strings.HasPrefix(destOf(e.Link()), "https://v") {
					failures.Add(1)
				}
			}
		}()
	}
	for i := 1; i <= 500; i++ {
		ix.Put(db, &storage.Link{Slug: "hot", Destination: fmt.Sprintf("https://v%d.example/", i)}, &storage.Link{Slug: fmt.Sprintf("n%d", i), Destination: "https://n.example/"})
	}
	close(done)
	wg.Wait()
	if failures.Load() != 0 || ix.Len() != 501 || destOf(hot.Link()) != "https://v500.example/" {
		t.Fatalf("%d bad reads, Len %d, %s", failures.Load(), ix.Len(), destOf(hot.Link()))
	}
}

// A Host too long to build the domain key with must still find the no-domain link: a
// 256-byte Host with a 64-character slug is one the edge passes through.
func TestIndexLookupLongHostFallsBack(t *testing.T) {
	db := openTestDB(t)
	ix := NewIndex()
	slug := strings.Repeat("s", MaxSlugLen)
	ix.Put(db, &storage.Link{Slug: slug, Destination: "https://x.example/"})
	for _, n := range []int{256, 300, 1000} {
		if ix.Lookup([]byte(strings.Repeat("h", n)), []byte(slug)) == nil {
			t.Errorf("host of %d bytes: no-domain link not found", n)
		}
	}
}

// A max_clicks set by an update counts the human clicks the link already had, the same
// before and after a restart.
func TestIndexMaxClicksSameAfterRestart(t *testing.T) {
	db := openTestDB(t)
	ix := NewIndex()
	ix.Put(db, &storage.Link{Slug: "s", Destination: "https://x.example/"})
	e := ix.Get(storage.LinkKey("", "s"))
	for i := 0; i < 5; i++ { // five human clicks, committed while the link had no limit
		if !e.Reserve(e.Link()) {
			t.Fatal("unlimited link refused")
		}
		e.Counters.Human.Add(1)
	}
	limited := &storage.Link{Slug: "s", Destination: "https://x.example/", MaxClicks: 5}
	ix.Put(db, limited) // the update

	restarted := NewIndex()
	restarted.Put(db, limited)
	re := restarted.Get(storage.LinkKey("", "s"))

	running, afterRestart := e.Reserve(e.Link()), re.Reserve(re.Link())
	if running != afterRestart {
		t.Fatalf("6th click with max_clicks 5: running index admits %v, restarted index admits %v", running, afterRestart)
	}
}

// destOf is a compiled link's destination (of links without a query): its first target
// up to the UTM parameters.
func destOf(l *Link) string { d, _, _ := strings.Cut(l.Targets[0].Prefix, "?"); return d }
