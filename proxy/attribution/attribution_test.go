package attribution

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/storage"
)

// graph is an in-memory Source: clicks by ID and by visitor, and the identity graph.
type graph struct {
	clicks     map[[16]byte]*storage.Click
	byVisitor  map[string][]*storage.Click
	visitorsOf map[storage.IdentityRef][]string
	identsOf   map[string][]storage.IdentityRef
}

func (g *graph) GetClick(id [16]byte) (*storage.Click, error) {
	if c := g.clicks[id]; c != nil {
		return c, nil
	}
	return nil, storage.ErrNotFound
}

// VisitorClicks answers as storage does: the clicks of [from, to] and up to a second
// after (the exact filter is the caller's), and whether a human click came before from.
func (g *graph) VisitorClicks(visitor string, from, to time.Time, limit int) ([]*storage.Click, bool, error) {
	var out []*storage.Click
	earlier := false
	for _, c := range g.byVisitor[visitor] {
		switch {
		case c.Time.Before(from):
			earlier = earlier || !c.Bot && !c.Test
		case !c.Time.After(to.Add(time.Second)) && len(out) < limit:
			out = append(out, c)
		}
	}
	return out, earlier, nil
}

func (g *graph) IdentityVisitors(id storage.IdentityRef, limit int) ([]string, error) {
	return g.visitorsOf[id], nil
}

func (g *graph) VisitorIdentities(visitor string, limit int) ([]storage.IdentityRef, error) {
	return g.identsOf[visitor], nil
}

var (
	at    = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	email = storage.IdentityRef{Kind: "email", Value: "k1"}
)

// click is a click by visitor on a link of campaign, ago before the conversion.
func click(n int, visitor, campaign string, ago time.Duration) *storage.Click {
	var id [16]byte
	id[0], id[15] = byte(n), byte(n)
	return &storage.Click{ID: id, Time: at.Add(-ago), Slug: "l" + campaign, Campaign: campaign, VisitorID: visitor, Variant: -1}
}

func TestAttribute(t *testing.T) {
	windows := Windows{Default: 7 * 24 * time.Hour, Rules: map[string]time.Duration{"promo/purchase": 24 * time.Hour, "*/purchase": 48 * time.Hour}}
	bot, test, later := click(1, "v1", "spring", time.Hour), click(2, "v1", "spring", time.Hour), click(3, "v1", "spring", -500*time.Millisecond)
	bot.Bot, test.Test = true, true
	promo30h, spring30h, spring3d := click(4, "v2", "promo", 31*time.Hour), click(5, "v2", "spring", 30*time.Hour), click(6, "v3", "spring", 72*time.Hour)
	a1, a2, a3 := click(7, "v4", "spring", 5*time.Hour), click(8, "v4", "fall", 3*time.Hour), click(9, "v4", "spring", time.Hour)
	laptop := click(10, "v5", "fall", 2*time.Hour)
	g := &graph{clicks: map[[16]byte]*storage.Click{}, byVisitor: map[string][]*storage.Click{},
		visitorsOf: map[storage.IdentityRef][]string{email: {"v5"}}, identsOf: map[string][]storage.IdentityRef{"v6": {email}}}
	for _, c := range []*storage.Click{bot, test, later, promo30h, spring30h, spring3d, a1, a2, a3, laptop} {
		g.clicks[c.ID] = c
		g.byVisitor[c.VisitorID] = append(g.byVisitor[c.VisitorID], c)
	}
	idOf := func(c *storage.Click) *ids.ClickID { id := ids.ClickID(c.ID); return &id }
	unknown := ids.ClickID{99}
	for _, tc := range []struct {
		name            string
		conv            Conversion
		last, first     *storage.Click
		linear          []*storage.Click
		reason          string
		reasonSubstring bool
	}{
		{name: "explicit click", conv: Conversion{Type: "lead", ClickID: idOf(a1)}, last: a1, first: a1, linear: []*storage.Click{a1}},
		{name: "explicit unknown click", conv: Conversion{Type: "lead", ClickID: &unknown}, reason: "click_id not found"},
		{name: "explicit bot click", conv: Conversion{Type: "lead", ClickID: idOf(bot)}, reason: "click_id is a bot or preview click"},
		{name: "explicit test click", conv: Conversion{Type: "lead", ClickID: idOf(test)}, reason: "click_id is a preflight test click"},
		{name: "explicit later click", conv: Conversion{Type: "lead", ClickID: idOf(later)}, reason: "click_id is later than the conversion"},
		{name: "explicit click outside its campaign's window", conv: Conversion{Type: "purchase", ClickID: idOf(promo30h)}, reason: "click_id is outside the 1d attribution window"},
		{name: "explicit click wins over the visitor's", conv: Conversion{Type: "lead", ClickID: idOf(a2), VisitorID: "v4"}, last: a2, first: a2, linear: []*storage.Click{a2}},
		// v1 has a bot, a test and a later click: none is a candidate.
		{name: "bot, test and later clicks are never candidates", conv: Conversion{Type: "lead", VisitorID: "v1"}, reason: "no human click before the conversion for this visitor or identity"},
		// promo's purchases have 24 h, other purchases 48 h: the spring click 30 h before
		// is the only candidate.
		{name: "campaign window", conv: Conversion{Type: "purchase", VisitorID: "v2"}, last: spring30h, first: spring30h, linear: []*storage.Click{spring30h}},
		{name: "campaign window is per type", conv: Conversion{Type: "lead", VisitorID: "v2"}, last: spring30h, first: promo30h, linear: []*storage.Click{promo30h, spring30h}},
		{name: "type window", conv: Conversion{Type: "purchase", VisitorID: "v3"}, reason: "every click is outside its attribution window"},
		{name: "default window", conv: Conversion{Type: "lead", VisitorID: "v3"}, last: spring3d, first: spring3d, linear: []*storage.Click{spring3d}},
		{name: "last, first and linear", conv: Conversion{Type: "lead", VisitorID: "v4"}, last: a3, first: a1, linear: []*storage.Click{a1, a2, a3}},
		{name: "identity of the conversion", conv: Conversion{Type: "lead", VisitorID: "v9", Identities: []storage.IdentityRef{email}}, last: laptop, first: laptop, linear: []*storage.Click{laptop}},
		{name: "identity the visitor was seen with", conv: Conversion{Type: "lead", VisitorID: "v6"}, last: laptop, first: laptop, linear: []*storage.Click{laptop}},
		{name: "visitor's own clicks come before identities", conv: Conversion{Type: "lead", VisitorID: "v3", Identities: []storage.IdentityRef{email}}, last: spring3d, first: spring3d, linear: []*storage.Click{spring3d}},
		{name: "nothing to go by", conv: Conversion{Type: "lead"}, reason: "no click_id, visitor_id or user identity to attribute by"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.conv.OccurredAt = at
			r, err := Attribute(g, windows, tc.conv)
			if err != nil {
				t.Fatal(err)
			}
			if tc.reason != "" {
				if r.Last != nil || r.First != nil || len(r.Linear) > 0 || r.Reason != tc.reason {
					t.Fatalf("got %+v, want no attribution because %q", r, tc.reason)
				}
				return
			}
			if r.Reason != "" || r.Last == nil || r.First == nil {
				t.Fatalf("no attribution: %q", r.Reason)
			}
			if r.Last.ClickID != ids.ClickID(tc.last.ID).String() || r.First.ClickID != ids.ClickID(tc.first.ID).String() {
				t.Errorf("last %s first %s, want %s %s", r.Last.Slug, r.First.Slug, tc.last.Slug, tc.first.Slug)
			}
			if r.Last.SecondsToConvert != int64(at.Sub(tc.last.Time)/time.Second) || r.Last.Credit != 1 || r.Last.Campaign != tc.last.Campaign {
				t.Errorf("last touch %+v", r.Last)
			}
			if len(r.Linear) != len(tc.linear) {
				t.Fatalf("linear %d touches, want %d", len(r.Linear), len(tc.linear))
			}
			for i, c := range tc.linear {
				if r.Linear[i].ClickID != ids.ClickID(c.ID).String() || r.Linear[i].Credit != 1/float64(len(tc.linear)) {
					t.Errorf("linear touch %d: %+v", i, r.Linear[i])
				}
			}
		})
	}
}

// A variant is named in the touch when the click had one.
func TestTouchVariant(t *testing.T) {
	c := click(1, "v", "spring", time.Hour)
	if tc := touch(c, at, 1); tc.Variant != nil {
		t.Errorf("no variant: %v", *tc.Variant)
	}
	c.Variant = 2
	if tc := touch(c, at, 1); tc.Variant == nil || *tc.Variant != 2 {
		t.Errorf("variant %v", tc.Variant)
	}
}

func TestWindowsFor(t *testing.T) {
	w, err := ParseWindows(7*24*time.Hour, " purchase=48h, promo/*=14d ,promo/purchase=24h,, vip/lead=1.5d,signup=3d")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		campaign, typ string
		want          time.Duration
	}{
		{"promo", "purchase", 24 * time.Hour},    // campaign and type
		{"promo", "lead", 14 * 24 * time.Hour},   // campaign
		{"promo", "signup", 14 * 24 * time.Hour}, // campaign before type
		{"spring", "signup", 3 * 24 * time.Hour},
		{"spring", "purchase", 48 * time.Hour}, // type
		{"spring", "lead", 7 * 24 * time.Hour}, // default
		{"vip", "lead", 36 * time.Hour},
		{"vip", "purchase", 48 * time.Hour},
	} {
		if got := w.For(tc.campaign, tc.typ); got != tc.want {
			t.Errorf("For(%s, %s) = %s, want %s", tc.campaign, tc.typ, got, tc.want)
		}
	}
	if got := w.Longest(); got != 14*24*time.Hour {
		t.Errorf("longest %s", got)
	}
}

func TestParseWindowsRefuses(t *testing.T) {
	for _, spec := range []string{
		"purchase", "=48h", "purchase=", "purchase=-1h", "purchase=0s", "purchase=abc", "purchase=1h30d",
		"purchase=NaNd", "purchase=Infd", "purchase=-2d", "purchase=1e9d", "purchase=48h=2", "promo/purchase=7",
	} {
		if _, err := ParseWindows(time.Hour, spec); err == nil {
			t.Errorf("%q accepted", spec)
		} else if !strings.Contains(err.Error(), fmt.Sprintf("%q", spec)) {
			t.Errorf("%q: error %q does not name the rule", spec, err)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for s, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "1.5d": 36 * time.Hour, "48h": 48 * time.Hour, "90m": 90 * time.Minute, "0d": 0} {
		if got, err := ParseDuration(s); err != nil || got != want {
			t.Errorf("%s: %s %v, want %s", s, got, err, want)
		}
	}
	for _, s := range []string{"", "d", "7 d", "7days", "1h2d", "xd", "0x1p3d", "1e2d", "-1d", "+7d", "NaNd", "Infd", ".5d"} {
		if _, err := ParseDuration(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
