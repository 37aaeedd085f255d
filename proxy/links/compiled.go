package links

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/clickgate/clickgate/proxy/utm"
	"github.com/clickgate/clickgate/storage"
)

// Link is a link compiled for the redirect: everything the hot path needs is computed
// once here, so a redirect is one lookup, a few appends, and no parsing of the
// destination.
type Link struct {
	Domain, Slug, Campaign string
	// ForwardQuery passes the tap's own query parameters on to the destination.
	ForwardQuery bool
	Status       Status
	ExpiresAt    int64 // Unix nanoseconds, 0 for never
	MaxClicks    int64
	// Targets holds one entry, or one per A/B variant.
	Targets     []Target
	totalWeight uint32
	// IdentityParams are the query parameters captured as identities and stripped.
	IdentityParams []IdentityParam
}

// Status is a link's compiled status.
type Status uint8

// Statuses the redirect distinguishes.
const (
	Active Status = iota
	Paused
	Archived
)

// Target is one destination with the link's UTM values merged in.
type Target struct {
	// Prefix is the destination up to its fragment with the UTM parameters appended,
	// e.g. "https://shop.example/p?ref=x&utm_source=sms&...&utm_term=y". Everything
	// appended after it starts with '&'.
	Prefix string
	// Fragment is the destination's "#..." part, served after the parameters.
	Fragment string
	// Keys are the destination's own query keys (decoded): incoming parameters with
	// these names are not forwarded, so the stored destination wins.
	Keys    []string
	UTM     storage.UTM
	Variant int // -1 without variants
	weight  uint32
}

// IdentityParam names a query parameter that carries an identity of a kind.
type IdentityParam struct {
	Name string
	Kind string
	// Source is what a click records as where its identity came from: "param:<name>".
	Source string
}

// Compile prepares a stored link for the redirect.
func Compile(l *storage.Link) *Link {
	c := &Link{Domain: l.Domain, Slug: l.Slug, Campaign: l.Campaign, ForwardQuery: l.ForwardQuery, MaxClicks: l.MaxClicks}
	switch l.Status {
	case storage.StatusPaused:
		c.Status = Paused
	case storage.StatusArchived:
		c.Status = Archived
	}
	if l.ExpiresAt != nil {
		c.ExpiresAt = l.ExpiresAt.UnixNano()
	}
	if len(l.Variants) == 0 {
		c.Targets = []Target{compileTarget(l.Destination, l.UTM, -1, 1)}
	} else {
		for i, v := range l.Variants {
			u := l.UTM
			u.Content = v.Content
			c.Targets = append(c.Targets, compileTarget(v.Destination, u, i, uint32(v.Weight)))
		}
	}
	for _, t := range c.Targets {
		c.totalWeight += t.weight
	}
	// In name order, so which of two parameters a tap carrying both records is the same
	// on every edge and after every restart.
	for _, name := range slices.Sorted(maps.Keys(l.IdentityParams)) {
		c.IdentityParams = append(c.IdentityParams, IdentityParam{Name: name, Kind: l.IdentityParams[name], Source: paramSource + name})
	}
	return c
}

func compileTarget(dest string, u storage.UTM, variant int, weight uint32) Target {
	base, q, _, frag := splitDestination(dest)
	var b strings.Builder
	b.Grow(len(dest) + 128)
	b.WriteString(base)
	b.WriteByte('?')
	// "https://x/?" keeps its single '?': the parameters follow it directly.
	if q != "" {
		b.WriteString(q)
		b.WriteByte('&')
	}
	b.Write(utm.Values{Source: u.Source, Medium: u.Medium, Campaign: u.Campaign, Content: u.Content, Term: u.Term}.AppendQuery(nil))
	// The builder's buffer has room to spare; a million links keep their prefixes, so
	// keep exactly the bytes.
	t := Target{Prefix: strings.Clone(b.String()), Fragment: frag, UTM: u, Variant: variant, weight: weight}
	if q != "" {
		for _, pair := range strings.Split(q, "&") {
			if k := queryKey(pair); k != "" {
				t.Keys = append(t.Keys, k)
			}
		}
	}
	return t
}

// Pick returns the target for a visitor. The choice is a hash of the visitor ID and the
// link, so a returning visitor keeps its variant on any edge without stored state.
func (l *Link) Pick(visitor []byte) *Target {
	if len(l.Targets) == 1 {
		return &l.Targets[0]
	}
	// FNV-1a inline: the hash/fnv constructor allocates on every call.
	h := uint64(14695981039346656037)
	for _, c := range visitor {
		h = (h ^ uint64(c)) * 1099511628211
	}
	for i := 0; i < len(l.Slug); i++ {
		h = (h ^ uint64(l.Slug[i])) * 1099511628211
	}
	// FNV alone barely mixes its last bytes: without a finaliser one visitor would fall on
	// the same side of every A/B test. fmix64 (MurmurHash3) makes links independent.
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	x := uint32(h % uint64(l.totalWeight))
	for i := range l.Targets {
		if x < l.Targets[i].weight {
			return &l.Targets[i]
		}
		x -= l.Targets[i].weight
	}
	return &l.Targets[len(l.Targets)-1]
}

// Gone reports why the link no longer redirects at time now, or "" if it does.
func (l *Link) Gone(now time.Time) string {
	switch {
	case l.Status == Archived:
		return "archived"
	case l.Status == Paused:
		return "paused"
	case l.ExpiresAt != 0 && now.UnixNano() >= l.ExpiresAt:
		return "expired"
	}
	return ""
}
