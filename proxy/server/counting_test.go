package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/clickgate/clickgate/proxy/preflight"
	"github.com/clickgate/clickgate/proxy/server/servertest"
)

// Previews and crawlers are redirected and recorded as bots: never human, never a
// max_clicks slot.
func TestBotsFlaggedNotDropped(t *testing.T) {
	g := servertest.Start(t, t.TempDir())
	g.MustCreate(map[string]any{"slug": "once", "destination": "https://x.example/", "max_clicks": 1,
		"utm": map[string]any{"medium": "promotional", "campaign": "c"}})
	bots := []map[string]string{
		{"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0"},
		{"User-Agent": "WhatsApp/2.23.20.0 A"},
		{"User-Agent": "TelegramBot (like TwitterBot)"},
		{"User-Agent": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"},
		{"User-Agent": "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)"},
		{"User-Agent": "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5"},
		{"User-Agent": "Viber/20.3.0 CFNetwork/1410.0.3 Darwin/22.6.0"},
		{"User-Agent": "Mozilla/5.0 (compatible; Snap URL Preview Service; bot; snapchat; https://developers.snap.com/robots)"},
		{"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/96.0.4664.110 Safari/537.36 Edg/96.0.1054.62 BingPreview/1.0b"},
		{"User-Agent": "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/41.0.2272.96 Mobile Safari/537.36 (compatible; Google-PageRenderer Google (+https://developers.google.com/+/web/snippet/))"},
		{"User-Agent": "Mozilla/5.0 (Linux; Android 7.0; SM-G930V Build/NRD90M) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/59.0.3071.125 Mobile Safari/537.36 (compatible; Google-Read-Aloud; +https://support.google.com/webmasters/answer/1061943)"},
		{"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)"},
		{"User-Agent": "bitlybot/3.0 (+http://bit.ly/)"},
		{"User-Agent": "Mozilla/5.0 (compatible; SomeCrawler/1.0; +http://crawler.example)"},
		{"User-Agent": ""},
		{"User-Agent": servertest.IPhone, "Purpose": "prefetch"},
		{"User-Agent": servertest.IPhone, "Sec-Purpose": "prefetch;prerender"},
	}
	for i, h := range bots {
		resp := g.Tap("GET", "/once", h)
		if resp.StatusCode != 302 {
			t.Fatalf("bot %d (%q) not redirected: %d", i, h["User-Agent"], resp.StatusCode)
		}
		u, _ := url.Parse(resp.Header.Get("Location"))
		_, c := g.API("GET", "/api/v1/clicks/"+u.Query().Get("cgid"), nil)
		if c["bot"] != true || c["bot_reason"] == "" || c["bot_reason"] == nil {
			t.Errorf("bot %d (%q) recorded as %v / %v", i, h["User-Agent"], c["bot"], c["bot_reason"])
		}
	}
	if r := g.Tap("HEAD", "/once", nil); r.StatusCode != 302 {
		t.Fatalf("HEAD: %d", r.StatusCode)
	}
	if h, b, _ := g.Counts("once"); h != 0 || b != len(bots)+1 {
		t.Fatalf("after %d bot taps: human=%d bot=%d", len(bots)+1, h, b)
	}
	// The one max_clicks slot is still free for a person, then the link is used up.
	if r := g.Tap("GET", "/once", map[string]string{"User-Agent": servertest.Android}); r.StatusCode != 302 {
		t.Fatalf("first human: %d", r.StatusCode)
	}
	if r := g.Tap("GET", "/once", map[string]string{"User-Agent": servertest.Android}); r.StatusCode != 410 {
		t.Fatalf("second human past max_clicks: %d", r.StatusCode)
	}
	// Bots still pass a used-up link (they never took a slot).
	if r := g.Tap("GET", "/once", bots[1]); r.StatusCode != 302 {
		t.Fatalf("bot on a used-up link: %d", r.StatusCode)
	}
	if h, _, _ := g.Counts("once"); h != 1 {
		t.Fatalf("human count %d", h)
	}
}

func TestPreflightIsNotCounted(t *testing.T) {
	dest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/gone" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("shop"))
	}))
	defer dest.Close()
	g := servertest.Start(t, t.TempDir())
	g.MustCreate(map[string]any{"slug": "pf", "destination": dest.URL + "/landing?x=1",
		"utm": map[string]any{"medium": "promotional", "campaign": "spring", "content": "a", "term": "b"}})
	rep, err := preflight.Run(context.Background(), nil, preflight.Expect{
		ShortURL: g.Pub + "/pf", ClickParam: "cgid",
		UTM: map[string]string{"utm_source": "sms", "utm_medium": "promotional", "utm_campaign": "spring", "utm_content": "a", "utm_term": "b"},
	})
	if err != nil || !rep.OK() {
		t.Fatalf("preflight: %+v %v", rep, err)
	}
	if rep.DestinationStatus != 200 {
		t.Errorf("destination status %d", rep.DestinationStatus)
	}
	if h, b, tc := g.Counts("pf"); h != 0 || b != 0 || tc != 1 {
		t.Fatalf("preflight counted: human=%d bot=%d test=%d", h, b, tc)
	}
	_, c := g.API("GET", "/api/v1/clicks/"+rep.ClickID, nil)
	if c["test"] != true {
		t.Errorf("preflight click not marked test: %v", c)
	}
	// A broken destination fails the check.
	g.MustCreate(map[string]any{"slug": "pf404", "destination": dest.URL + "/gone",
		"utm": map[string]any{"medium": "promotional", "campaign": "spring"}})
	rep, _ = preflight.Run(context.Background(), nil, preflight.Expect{ShortURL: g.Pub + "/pf404", ClickParam: "cgid"})
	if rep.OK() {
		t.Errorf("preflight passed for a destination answering 404: %+v", rep.Steps)
	}
}

func TestVariantsWeightedAndSticky(t *testing.T) {
	g := servertest.Start(t, t.TempDir())
	g.MustCreate(map[string]any{"slug": "ab", "destination": "https://x.example/",
		"utm": map[string]any{"medium": "promotional", "campaign": "launch"},
		"variants": []any{
			map[string]any{"destination": "https://x.example/a", "weight": 80, "content": "Layout A"},
			map[string]any{"destination": "https://x.example/b", "weight": 20, "content": "layout_b"},
		}})
	const n = 2000
	a := 0
	var cookie string
	var first string
	for i := 0; i < n; i++ {
		resp := g.Tap("GET", "/ab", nil)
		loc := resp.Header.Get("Location")
		switch {
		case strings.HasPrefix(loc, "https://x.example/a?utm_source=sms&utm_medium=promotional&utm_campaign=launch&utm_content=layout_a&cgid="):
			a++
		case strings.HasPrefix(loc, "https://x.example/b?utm_source=sms&utm_medium=promotional&utm_campaign=launch&utm_content=layout_b&cgid="):
		default:
			t.Fatalf("unexpected Location %s", loc)
		}
		if i == 0 {
			cookie = strings.Split(resp.Header.Get("Set-Cookie"), ";")[0]
			first = strings.Split(loc, "?")[0]
		}
	}
	// Binomial(2000, 0.8): mean 1600, sd 17.9; ±6 sd keeps this test honest and stable.
	if a < 1600-107 || a > 1600+107 {
		t.Fatalf("variant a served %d of %d, want about 1600", a, n)
	}
	for i := 0; i < 50; i++ {
		loc := g.Tap("GET", "/ab", map[string]string{"Cookie": cookie}).Header.Get("Location")
		if strings.Split(loc, "?")[0] != first {
			t.Fatalf("returning visitor switched variant: %s then %s", first, loc)
		}
	}
	// Two variants with the same content are refused.
	st, out := g.API("POST", "/api/v1/links", map[string]any{"slug": "ab2", "destination": "https://x.example/",
		"utm": map[string]any{"medium": "promotional", "campaign": "launch"},
		"variants": []any{
			map[string]any{"destination": "https://x.example/a", "weight": 1, "content": "same"},
			map[string]any{"destination": "https://x.example/b", "weight": 1, "content": "Same"},
		}})
	if st != 400 || out["error"].(map[string]any)["field"] != "variants[1].content" {
		t.Fatalf("duplicate variant content: %d %v", st, out)
	}
}

func TestAdminAuth(t *testing.T) {
	g := servertest.Start(t, t.TempDir())
	g.MustCreate(map[string]any{"slug": "keep", "destination": "https://x.example/", "utm": map[string]any{"medium": "promotional", "campaign": "c"}})
	calls := []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/v1/links/keep", nil},
		{"GET", "/api/v1/links", nil},
		{"POST", "/api/v1/links", map[string]any{"slug": "new", "destination": "https://x.example/", "utm": map[string]any{"medium": "promotional", "campaign": "c"}}},
		{"PATCH", "/api/v1/links/keep", map[string]any{"destination": "https://evil.example/"}},
		{"DELETE", "/api/v1/links/keep", nil},
		{"POST", "/api/v1/links/bulk", map[string]any{"links": []any{}}},
		{"POST", "/api/v1/links/keep/tokens", map[string]any{"recipients": []any{map[string]any{"customer_id": "1"}}}},
		{"GET", "/api/v1/clicks/00000000000000000000000000", nil},
	}
	for _, auth := range []string{"", "Bearer ", "Bearer wrong-token", "Basic " + servertest.Token, "bearer " + servertest.Token, "Bearer " + servertest.Token + "x", servertest.Token} {
		for _, c := range calls {
			st, out := g.APIAuth(c.method, c.path, c.body, auth)
			if st != 401 || out["error"].(map[string]any)["code"] != "unauthorized" {
				t.Errorf("%s %s with %q: %d %v", c.method, c.path, auth, st, out)
			}
		}
	}
	if r := g.Tap("GET", "/keep", nil); !strings.HasPrefix(r.Header.Get("Location"), "https://x.example/?") {
		t.Error("an unauthorised call changed the link")
	}
	if st, _ := g.API("GET", "/api/v1/links/new", nil); st != 404 {
		t.Error("an unauthorised call created a link")
	}
}

// Hostile admin bodies get a 4xx with the JSON error shape and change nothing.
func TestAdminHostileJSON(t *testing.T) {
	g := servertest.Start(t, t.TempDir())
	valid := `"destination":"https://x.example/","utm":{"medium":"promotional","campaign":"c"}`
	cases := []struct {
		name, body string
		status     int
		field      string
	}{
		{"empty", ``, 400, ""},
		{"not json", `slug=x`, 400, ""},
		{"truncated", `{"slug":"x",` + valid, 400, ""},
		{"two values", `{` + valid + `}{}`, 400, ""},
		{"array", `[]`, 400, ""},
		{"unknown field", `{"slgu":"x",` + valid + `}`, 400, "slgu"},
		{"wrong type", `{"slug":5,` + valid + `}`, 400, "slug"},
		{"max_clicks string", `{"max_clicks":"5",` + valid + `}`, 400, "max_clicks"},
		{"missing destination", `{"utm":{"medium":"promotional","campaign":"c"}}`, 400, "destination"},
		{"missing utm", `{"destination":"https://x.example/"}`, 400, "utm"},
		{"javascript scheme", `{"destination":"javascript:alert(1)","utm":{"medium":"promotional","campaign":"c"}}`, 400, "destination"},
		{"relative", `{"destination":"/local","utm":{"medium":"promotional","campaign":"c"}}`, 400, "destination"},
		{"scheme-relative", `{"destination":"//evil.example","utm":{"medium":"promotional","campaign":"c"}}`, 400, "destination"},
		{"userinfo", `{"destination":"https://good.example@evil.example/","utm":{"medium":"promotional","campaign":"c"}}`, 400, "destination"},
		{"crlf", `{"destination":"https://x.example/\r\nSet-Cookie: a=b","utm":{"medium":"promotional","campaign":"c"}}`, 400, "destination"},
		{"space", `{"destination":"https://x.example/a b","utm":{"medium":"promotional","campaign":"c"}}`, 400, "destination"},
		{"too long", `{"destination":"https://x.example/` + strings.Repeat("a", 3000) + `","utm":{"medium":"promotional","campaign":"c"}}`, 400, "destination"},
		{"bad slug", `{"slug":"a/b",` + valid + `}`, 400, "slug"},
		{"reserved slug", `{"slug":"healthz",` + valid + `}`, 400, "slug"},
		{"unknown medium", `{"destination":"https://x.example/","utm":{"medium":"carrier_pigeon","campaign":"c"}}`, 400, "utm.medium"},
		{"source not sms", `{"destination":"https://x.example/","utm":{"source":"email","medium":"promotional","campaign":"c"}}`, 400, "utm.source"},
		{"negative max_clicks", `{"max_clicks":-1,` + valid + `}`, 400, "max_clicks"},
		{"bad expiry", `{"expires_at":"tomorrow",` + valid + `}`, 400, "expires_at"},
		{"past expiry", `{"expires_at":"2001-01-01T00:00:00Z",` + valid + `}`, 400, "expires_at"},
		{"bad identity kind", `{"identity_params":{"rid":"ssn"},` + valid + `}`, 400, "identity_params.rid"},
		{"identity param utm", `{"identity_params":{"utm_source":"email"},` + valid + `}`, 400, "identity_params.utm_source"},
		{"one variant", `{"variants":[{"destination":"https://x.example/","weight":1,"content":"a"}],` + valid + `}`, 400, "variants"},
		{"oversized", `{"slug":"` + strings.Repeat("a", 70000) + `"}`, 413, ""},
	}
	for _, c := range cases {
		st, out := g.API("POST", "/api/v1/links", c.body)
		e, _ := out["error"].(map[string]any)
		if st != c.status || e == nil || e["code"] == "" || e["message"] == "" {
			t.Errorf("%s: %d %v", c.name, st, out)
			continue
		}
		if c.field != "" && e["field"] != c.field {
			t.Errorf("%s: field %v, want %s (%v)", c.name, e["field"], c.field, e["message"])
		}
	}
	if _, out := g.API("GET", "/api/v1/links", nil); len(out["links"].([]any)) != 0 {
		t.Fatalf("hostile bodies created links: %v", out["links"])
	}
	if st, _ := g.APIAuth("POST", "/api/v1/links", nil, "Bearer "+servertest.Token); st != 400 {
		t.Errorf("no body: %d", st)
	}
	if st, out := g.API("GET", "/api/v1/clicks/not-a-click-id", nil); st != 400 || out["error"].(map[string]any)["field"] != "click_id" {
		t.Errorf("malformed click id: %d %v", st, out)
	}
}

func TestUTMNormalisedAndReported(t *testing.T) {
	g := servertest.Start(t, t.TempDir())
	out := g.MustCreate(map[string]any{"slug": "n", "destination": "https://x.example/?utm_source=x&a=1",
		"utm": map[string]any{"source": "SMS", "medium": "promo", "campaign": "Black-Friday  VIP!", "content": "Hero Banner"}})
	if !strings.Contains(out["destination"].(string), "utm_source=sms&utm_medium=promotional&utm_campaign=black_friday_vip&utm_content=hero_banner") {
		t.Errorf("destination %v", out["destination"])
	}
	w := fmt.Sprint(out["warnings"])
	for _, want := range []string{"utm.medium", "utm.campaign", "utm.content", "utm_source=x"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings %s lack %s", w, want)
		}
	}
	strict := servertest.Start(t, t.TempDir(), "CLICKGATE_UTM_STRICT=true")
	st, o := strict.API("POST", "/api/v1/links", map[string]any{"destination": "https://x.example/", "utm": map[string]any{"medium": "promo", "campaign": "x"}})
	if st != 400 || o["error"].(map[string]any)["field"] != "utm.medium" {
		t.Errorf("strict policy accepted a non-canonical medium: %d %v", st, o)
	}
}

func TestBulkCreateListAndPaginate(t *testing.T) {
	g := servertest.Start(t, t.TempDir())
	var specs []any
	for i := 0; i < 10000; i++ {
		specs = append(specs, map[string]any{"destination": fmt.Sprintf("https://x.example/p/%d", i),
			"utm": map[string]any{"medium": "promotional", "campaign": fmt.Sprintf("camp_%d", i%3)}})
	}
	specs[5] = map[string]any{"destination": "ftp://x", "utm": map[string]any{"medium": "promotional", "campaign": "c"}}
	st, out := g.API("POST", "/api/v1/links/bulk", map[string]any{"links": specs})
	if st != 201 || out["created"].(float64) != 9999 || out["failed"].(float64) != 1 {
		t.Fatalf("bulk: %d created=%v failed=%v", st, out["created"], out["failed"])
	}
	res := out["results"].([]any)
	if e := res[5].(map[string]any)["error"].(map[string]any); e["field"] != "links[5].destination" {
		t.Errorf("bulk item error %v", e)
	}
	slug := res[7].(map[string]any)["slug"].(string)
	if len(slug) != 7 {
		t.Errorf("generated slug %q", slug)
	}
	if r := g.Tap("GET", "/"+slug, nil); !strings.HasPrefix(r.Header.Get("Location"), "https://x.example/p/7?utm_source=sms") {
		t.Errorf("bulk link does not redirect: %v", r.Header.Get("Location"))
	}
	if st, _ := g.API("POST", "/api/v1/links/bulk", map[string]any{"links": make([]any, 10001)}); st != 400 {
		t.Errorf("10,001 links accepted: %d", st)
	}
	// Page through one campaign: every link once.
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		_, page := g.API("GET", "/api/v1/links?campaign=camp_1&limit=1000&cursor="+url.QueryEscape(cursor), nil)
		for _, l := range page["links"].([]any) {
			m := l.(map[string]any)
			if m["campaign"] != "camp_1" || seen[m["slug"].(string)] {
				t.Fatalf("bad page entry %v", m)
			}
			seen[m["slug"].(string)] = true
		}
		c, _ := page["next_cursor"].(string)
		if c == "" {
			break
		}
		cursor = c
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if len(seen) != 3333 {
		t.Fatalf("paged %d links of camp_1, want 3333", len(seen))
	}
	if st, _ := g.API("GET", "/api/v1/links?cursor=!!", nil); st != 400 {
		t.Errorf("garbage cursor: %d", st)
	}
}

func TestHundredThousandRecipientTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("large send list")
	}
	g := servertest.Start(t, t.TempDir())
	g.MustCreate(map[string]any{"slug": "big", "destination": "https://x.example/", "utm": map[string]any{"medium": "promotional", "campaign": "c"}})
	rs := make([]any, 100000)
	for i := range rs {
		rs[i] = map[string]any{"phone": fmt.Sprintf("+1 415 %03d %04d", 200+i/10000, i%10000)}
	}
	st, out := g.API("POST", "/api/v1/links/big/tokens", map[string]any{"recipients": rs})
	if st != 201 {
		t.Fatalf("100,000 tokens: %d %v", st, out["error"])
	}
	toks := out["tokens"].([]any)
	uniq := map[string]bool{}
	for _, x := range toks {
		uniq[x.(map[string]any)["token"].(string)] = true
	}
	if len(toks) != 100000 || len(uniq) != 100000 {
		t.Fatalf("%d tokens, %d distinct", len(toks), len(uniq))
	}
	last := toks[99999].(map[string]any)["token"].(string)
	if r := g.Tap("GET", "/big/"+last, nil); r.StatusCode != 302 {
		t.Fatalf("token tap %d", r.StatusCode)
	}
}

// Links and counters survive a restart.
func TestRestartKeepsLinksAndCounts(t *testing.T) {
	dir := t.TempDir()
	g := servertest.Start(t, dir)
	g.MustCreate(map[string]any{"slug": "r", "destination": "https://x.example/", "utm": map[string]any{"medium": "promotional", "campaign": "c"}})
	for i := 0; i < 5; i++ {
		g.Tap("GET", "/r", nil)
	}
	g.Tap("GET", "/r", map[string]string{"User-Agent": "WhatsApp/2.23"})
	g.Stop()
	g = servertest.Start(t, dir)
	if h, b, _ := g.Counts("r"); h != 5 || b != 1 {
		t.Fatalf("after restart human=%d bot=%d", h, b)
	}
	if r := g.Tap("GET", "/r", nil); r.StatusCode != 302 {
		t.Fatalf("after restart: %d", r.StatusCode)
	}
}
