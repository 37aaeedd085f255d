package server_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/proxy/server/servertest"
	"github.com/clickgate/clickgate/storage"
)

const utmQuery = "utm_source=sms&utm_medium=promotional&utm_campaign=spring_sale_2026&utm_content=version_a"

// The redirect serves the stored destination's bytes exactly, merges the UTM values and
// the click ID in a stable order, and puts the fragment last.
func TestTapEndToEnd(t *testing.T) {
	g := servertest.Start(t, t.TempDir())
	cases := []struct {
		name, dest string
		// want is the Location with CGID standing for the click ID.
		want string
	}{
		{"sub-delims kept", "https://shop.example.com/p/a*b;c!d?ref=x",
			"https://shop.example.com/p/a*b;c!d?ref=x&" + utmQuery + "&cgid=CGID"},
		{"encoded slash kept", "https://shop.example.com/a%2Fb/c",
			"https://shop.example.com/a%2Fb/c?" + utmQuery + "&cgid=CGID"},
		// Location carries ASCII only: what a browser would send for the same URL.
		{"non-ASCII written as ASCII", "https://shöp.example.com/café/ürün?q=ş",
			"https://xn--shp-tna.example.com/caf%C3%A9/%C3%BCr%C3%BCn?q=%C5%9F&" + utmQuery + "&cgid=CGID"},
		{"fragment after the query", "https://x.example/p?a=1#reviews",
			"https://x.example/p?a=1&" + utmQuery + "&cgid=CGID#reviews"},
		{"hash route with its own ?", "https://x.example/#/route?x=1",
			"https://x.example/?" + utmQuery + "&cgid=CGID#/route?x=1"},
		{"bare question mark", "https://x.example/?",
			"https://x.example/?" + utmQuery + "&cgid=CGID"},
		{"empty pairs and encodings kept", "https://x.example/p?a=1&&b=%20+c&d=%E2%9C%93",
			"https://x.example/p?a=1&&b=%20+c&d=%E2%9C%93&" + utmQuery + "&cgid=CGID"},
		{"port and no path", "http://x.example:8443",
			"http://x.example:8443?" + utmQuery + "&cgid=CGID"},
		{"destination's own UTM replaced", "https://x.example/p?utm_source=newsletter&k=v&UTM_Campaign=old",
			"https://x.example/p?k=v&" + utmQuery + "&cgid=CGID"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			slug := fmt.Sprintf("dest%d", i)
			created := g.MustCreate(map[string]any{"slug": slug, "destination": c.dest,
				"utm": map[string]any{"medium": "promotional", "campaign": "spring_sale_2026", "content": "version_a"}})
			if want := strings.TrimSuffix(strings.Split(c.want, "&cgid=")[0], ""); !strings.HasPrefix(created["destination"].(string), want) {
				t.Errorf("create answered destination %q, want prefix %q", created["destination"], want)
			}
			if created["short_url"] != "https://go.example.com/"+slug {
				t.Errorf("short_url %v", created["short_url"])
			}
			resp := g.Tap("GET", "/"+slug, nil)
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("status %d", resp.StatusCode)
			}
			loc := resp.Header.Get("Location")
			m := regexp.MustCompile(`cgid=([0-9a-z]{26})`).FindStringSubmatch(loc)
			if m == nil {
				t.Fatalf("no click ID in %q", loc)
			}
			if got := strings.Replace(loc, m[1], "CGID", 1); got != c.want {
				t.Fatalf("Location\n got %s\nwant %s", got, c.want)
			}
			if _, err := ids.ParseClickID(m[1]); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestTapRecordsEveryField(t *testing.T) {
	g := servertest.Start(t, t.TempDir())
	g.MustCreate(map[string]any{"slug": "spring", "destination": "https://shop.example.com/p?ref=x",
		"utm": map[string]any{"medium": "Promo", "campaign": "Spring Sale 2026", "content": "version_a", "term": "vip"}})
	resp := g.Tap("GET", "/spring", map[string]string{"Referer": "https://sms.example/thread"})
	if resp.StatusCode != 302 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for h, want := range map[string]string{"Cache-Control": "private, no-store", "X-Robots-Tag": "noindex, nofollow"} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	cookie := resp.Header.Get("Set-Cookie")
	// Attribute names are case-insensitive (RFC 6265 §5.2).
	for _, want := range []string{"cg_vid=", "max-age=34560000", "path=/", "secure", "httponly", "samesite=lax"} {
		if !strings.Contains(strings.ToLower(cookie), want) {
			t.Errorf("Set-Cookie %q lacks %q", cookie, want)
		}
	}
	if strings.Contains(strings.ToLower(cookie), "domain=") {
		t.Errorf("cookie has a Domain without CLICKGATE_COOKIE_DOMAIN: %q", cookie)
	}
	vid := strings.TrimPrefix(strings.Split(cookie, ";")[0], "cg_vid=")
	loc := resp.Header.Get("Location")
	u, _ := url.Parse(loc)
	cid := u.Query().Get("cgid")

	st, c := g.API("GET", "/api/v1/clicks/"+cid, nil)
	if st != 200 {
		t.Fatalf("click: %d %v", st, c)
	}
	want := map[string]any{
		"click_id": cid, "slug": "spring", "visitor_id": vid, "new_visitor": true, "bot": false, "test": false,
		"campaign": "spring_sale_2026", "destination": loc, "ip": "127.0.0.1", "user_agent": servertest.IPhone,
		"referrer": "https://sms.example/thread", "node": "test-node",
	}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("click %s = %v, want %v", k, c[k], v)
		}
	}
	if u := c["utm"].(map[string]any); u["source"] != "sms" || u["medium"] != "promotional" || u["campaign"] != "spring_sale_2026" || u["content"] != "version_a" || u["term"] != "vip" {
		t.Errorf("click utm %v", u)
	}
	if _, ok := c["time"].(string); !ok {
		t.Errorf("click time %v", c["time"])
	}

	// A returning visitor keeps its ID, and its cookie is set again from this tap.
	resp = g.Tap("GET", "/spring", map[string]string{"Cookie": "cg_vid=" + vid})
	if again := resp.Header.Get("Set-Cookie"); !strings.HasPrefix(again, "cg_vid="+vid+";") || !strings.Contains(again, "max-age=34560000") {
		t.Errorf("a returning visitor's cookie: %q, want its own ID with a new max-age", again)
	}
	u2, _ := url.Parse(resp.Header.Get("Location"))
	_, c2 := g.API("GET", "/api/v1/clicks/"+u2.Query().Get("cgid"), nil)
	if c2["visitor_id"] != vid || c2["new_visitor"] != false {
		t.Errorf("returning visitor recorded as %v / %v", c2["visitor_id"], c2["new_visitor"])
	}
	// A tampered cookie is replaced, not trusted.
	resp = g.Tap("GET", "/spring", map[string]string{"Cookie": "cg_vid=../../etc/passwd"})
	if !strings.HasPrefix(resp.Header.Get("Set-Cookie"), "cg_vid=") {
		t.Error("a malformed cookie was kept")
	}
	if h, b, _ := g.Counts("spring"); h != 3 || b != 0 {
		t.Errorf("counts human=%d bot=%d", h, b)
	}
}

func TestCookieDomain(t *testing.T) {
	g := servertest.Start(t, t.TempDir(), "CLICKGATE_COOKIE_DOMAIN=.brand.com")
	g.MustCreate(map[string]any{"slug": "c", "destination": "https://brand.com/", "utm": map[string]any{"medium": "promotional", "campaign": "c"}})
	if ck := g.Tap("GET", "/c", map[string]string{"Host": "go.brand.com"}).Header.Get("Set-Cookie"); !strings.Contains(strings.ToLower(ck), "domain=.brand.com") {
		t.Errorf("cookie on go.brand.com lacks the brand domain: %q", ck)
	}
	if ck := g.Tap("GET", "/c", map[string]string{"Host": "other.example"}).Header.Get("Set-Cookie"); strings.Contains(strings.ToLower(ck), "domain=") {
		t.Errorf("cookie for a host outside the domain carries Domain: %q", ck)
	}
}

// The link's UTM values win over incoming ones; other parameters are forwarded unless the
// link says not to; the click parameter cannot be forged; nothing a client sends can
// break out of the query.
func TestQueryForwarding(t *testing.T) {
	g := servertest.Start(t, t.TempDir())
	g.MustCreate(map[string]any{"slug": "fw", "destination": "https://x.example/p?ref=stored",
		"utm": map[string]any{"medium": "promotional", "campaign": "c1"}})
	g.MustCreate(map[string]any{"slug": "nofw", "destination": "https://x.example/p", "forward_query": false,
		"utm": map[string]any{"medium": "promotional", "campaign": "c1"}})
	loc := g.Tap("GET", "/fw?utm_source=evil&Utm_Medium=evil&gclid=abc&cgid=forged&ref=evil&x=%0d%0aSet-Cookie:%20a&y=<script>&z=1%", nil).Header.Get("Location")
	for _, bad := range []string{"evil", "forged", "\r", "\n", "<", ">"} {
		if strings.Contains(loc, bad) {
			t.Errorf("Location carries %q: %s", bad, loc)
		}
	}
	for _, want := range []string{"ref=stored&utm_source=sms", "&gclid=abc&", "&x=%0d%0aSet-Cookie:%20a&", "&y=%3Cscript%3E&", "&z=1%25&cgid="} {
		if !strings.Contains(loc, want) {
			t.Errorf("Location lacks %q: %s", want, loc)
		}
	}
	if n := strings.Count(loc, "cgid="); n != 1 {
		t.Errorf("%d click parameters in %s", n, loc)
	}
	loc = g.Tap("GET", "/nofw?gclid=abc", nil).Header.Get("Location")
	if strings.Contains(loc, "gclid") {
		t.Errorf("forward_query=false forwarded: %s", loc)
	}
}

func TestIdentityParamCapturedAndStripped(t *testing.T) {
	g := servertest.Start(t, t.TempDir())
	g.MustCreate(map[string]any{"slug": "cart", "destination": "https://x.example/cart",
		"utm":             map[string]any{"medium": "abandoned_cart", "campaign": "c"},
		"identity_params": map[string]any{"rid": "customer_id", "em": "email", "ph": "phone"}})
	loc := g.Tap("GET", "/cart?rid=cust-42&keep=1", nil).Header.Get("Location")
	if strings.Contains(loc, "rid=") || !strings.Contains(loc, "keep=1") {
		t.Fatalf("identity parameter not stripped or others dropped: %s", loc)
	}
	u, _ := url.Parse(loc)
	_, c := g.API("GET", "/api/v1/clicks/"+u.Query().Get("cgid"), nil)
	id, _ := c["identity"].(map[string]any)
	if id["kind"] != "customer_id" || id["value"] != "cust-42" || id["source"] != "param:rid" {
		t.Fatalf("identity %v", c["identity"])
	}
	loc = g.Tap("GET", "/cart?em=Jane%40Example.com", nil).Header.Get("Location")
	u, _ = url.Parse(loc)
	_, c = g.API("GET", "/api/v1/clicks/"+u.Query().Get("cgid"), nil)
	id, _ = c["identity"].(map[string]any)
	if id["kind"] != "email" || len(fmt.Sprint(id["value"])) != 64 || strings.Contains(fmt.Sprint(c), "jane") {
		t.Fatalf("email identity must be a keyed hash, got %v", c["identity"])
	}
	// An unfilled merge tag keeps the click, not an identity: a customer ID too, which
	// would otherwise join every recipient of the message as one person.
	for _, q := range []string{"em={{email}}", "rid={{subscriber_id}}", "rid=*%7CSUB_ID%7C*", "rid=%25%25CustomerID%25%25"} {
		loc = g.Tap("GET", "/cart?"+q, nil).Header.Get("Location")
		u, _ = url.Parse(loc)
		_, c = g.API("GET", "/api/v1/clicks/"+u.Query().Get("cgid"), nil)
		if c["identity"] != nil {
			t.Fatalf("%s: invalid identity kept: %v", q, c["identity"])
		}
	}
	// A '+' a merge tag wrote unencoded arrives as a space; the identity is the same as
	// with %2B.
	identityOf := func(q string) any {
		u, _ := url.Parse(g.Tap("GET", "/cart?"+q, nil).Header.Get("Location"))
		_, c := g.API("GET", "/api/v1/clicks/"+u.Query().Get("cgid"), nil)
		id, _ := c["identity"].(map[string]any)
		return id["value"]
	}
	for raw, encoded := range map[string]string{"em=jane+sms@example.com": "em=jane%2Bsms@example.com", "ph=+447700900123": "ph=%2B447700900123"} {
		if a, b := identityOf(raw), identityOf(encoded); a == nil || a != b {
			t.Errorf("%s: identity %v, want %v as with %s", raw, a, b, encoded)
		}
	}
}

func TestRecipientTokens(t *testing.T) {
	g := servertest.Start(t, t.TempDir())
	g.MustCreate(map[string]any{"slug": "vip", "destination": "https://x.example/vip", "utm": map[string]any{"medium": "promotional", "campaign": "vip"}})
	st, out := g.API("POST", "/api/v1/links/vip/tokens", map[string]any{"recipients": []any{
		map[string]any{"phone": "+1 415 555 2671"}, map[string]any{"email": "A@B.co"}, map[string]any{"customer_id": "c-9"},
	}})
	if st != 201 {
		t.Fatalf("tokens: %d %v", st, out)
	}
	toks := out["tokens"].([]any)
	if len(toks) != 3 {
		t.Fatalf("tokens %v", toks)
	}
	wantKinds := []string{"phone", "email", "customer_id"}
	for i, x := range toks {
		tk := x.(map[string]any)
		if tk["url"] != "https://go.example.com/vip/"+tk["token"].(string) {
			t.Errorf("token url %v", tk["url"])
		}
		resp := g.Tap("GET", "/vip/"+tk["token"].(string), nil)
		if resp.StatusCode != 302 {
			t.Fatalf("token tap %d", resp.StatusCode)
		}
		u, _ := url.Parse(resp.Header.Get("Location"))
		_, c := g.API("GET", "/api/v1/clicks/"+u.Query().Get("cgid"), nil)
		id := c["identity"].(map[string]any)
		if id["kind"] != wantKinds[i] || id["token"] != tk["token"] || id["source"] != "token" {
			t.Errorf("token click identity %v", id)
		}
		if i < 2 && len(fmt.Sprint(id["value"])) != 64 {
			t.Errorf("%s stored in the clear: %v", wantKinds[i], id["value"])
		}
	}
	// What a messaging app or a URL builder adds after a token is not the token; other
	// paths under a slug (a scanner's) are not the link.
	tok := toks[0].(map[string]any)["token"].(string)
	for _, suffix := range []string{".", "/", ")!"} {
		resp := g.Tap("GET", "/vip/"+tok+suffix, nil)
		if resp.StatusCode != 302 {
			t.Fatalf("/vip/%s%s: %d", tok, suffix, resp.StatusCode)
		}
		u, _ := url.Parse(resp.Header.Get("Location"))
		_, c := g.API("GET", "/api/v1/clicks/"+u.Query().Get("cgid"), nil)
		if c["identity"] == nil {
			t.Errorf("/vip/%s%s: no identity", tok, suffix)
		}
	}
	for _, p := range []string{"/vip/" + tok + "/x", "/vip/.env", "/vip/wp-login.php"} {
		if resp := g.Tap("GET", p, nil); resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
		}
	}
	if resp := g.Tap("GET", "/vip.", nil); resp.StatusCode != 302 {
		t.Errorf("/vip.: %d", resp.StatusCode)
	}
	// Bad send lists are refused whole.
	for _, bad := range []any{
		[]any{map[string]any{"phone": "+14155552671"}, map[string]any{"phone": "not a phone"}},
		[]any{map[string]any{"phone": "+14155552671", "email": "a@b.co"}},
		[]any{},
	} {
		if st, out := g.API("POST", "/api/v1/links/vip/tokens", map[string]any{"recipients": bad}); st != 400 || out["error"] == nil {
			t.Errorf("bad recipients %v: %d %v", bad, st, out)
		}
	}
	if st, _ := g.API("POST", "/api/v1/links/nope/tokens", map[string]any{"recipients": []any{map[string]any{"customer_id": "1"}}}); st != 404 {
		t.Errorf("tokens for a missing link: %d", st)
	}
	g.API("DELETE", "/api/v1/links/vip", nil)
	if st, out := g.API("POST", "/api/v1/links/vip/tokens", map[string]any{"recipients": []any{map[string]any{"customer_id": "2"}}}); st != 400 || !strings.Contains(fmt.Sprint(out), "archived") {
		t.Errorf("tokens for an archived link: %d %v", st, out)
	}
}

func TestGoneAndNotFound(t *testing.T) {
	g := servertest.Start(t, t.TempDir())
	for _, s := range []string{"arch", "paused", "exp"} {
		g.MustCreate(map[string]any{"slug": s, "destination": "https://x.example/", "utm": map[string]any{"medium": "promotional", "campaign": "c"}})
	}
	g.API("DELETE", "/api/v1/links/arch", nil)
	g.API("PATCH", "/api/v1/links/paused", map[string]any{"status": "paused"})
	g.API("PATCH", "/api/v1/links/exp", map[string]any{"expires_at": "2001-01-01T00:00:00Z"})
	for _, s := range []string{"arch", "paused", "exp"} {
		resp := g.Tap("GET", "/"+s, nil)
		if resp.StatusCode != 410 || resp.Header.Get("Location") != "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d %q", s, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if resp := g.Tap("GET", "/no-such-slug", nil); resp.StatusCode != 404 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("unknown slug: %d", resp.StatusCode)
	}
	if h, b, _ := g.Counts("arch"); h+b != 0 {
		t.Error("a gone link counted a click")
	}
}

// Open-redirect attempts never produce a Location other than a stored destination.
func TestOpenRedirectAttempts(t *testing.T) {
	g := servertest.Start(t, t.TempDir())
	g.MustCreate(map[string]any{"slug": "evil", "destination": "https://good.example/", "utm": map[string]any{"medium": "promotional", "campaign": "c"}})
	for _, p := range []string{
		"//evil.example", "//evil.example/", "/\\evil.example", "/%2F%2Fevil.example", "/%5Cevil.example",
		"/https://evil.example", "/https:%2F%2Fevil.example", "/.%2e/evil", "/%0d%0aLocation:%20https://evil.example",
		"/evil/..%2f..%2fevil.example", "/evil/%2F%2Fevil.example", "/evil/a/b", "/evil?next=https://evil.example",
	} {
		resp := g.Tap("GET", p, nil)
		loc := resp.Header.Get("Location")
		if loc != "" && !strings.HasPrefix(loc, "https://good.example/?utm_source=sms") {
			t.Errorf("%s redirected to %q", p, loc)
		}
		if strings.Contains(strings.SplitN(loc, "?", 2)[0], "evil.example") {
			t.Errorf("%s: %q", p, loc)
		}
	}
}

func TestOversizedHeadersAnswered431(t *testing.T) {
	g := servertest.Start(t, t.TempDir())
	g.MustCreate(map[string]any{"slug": "big", "destination": "https://x.example/", "utm": map[string]any{"medium": "promotional", "campaign": "c"}})
	resp := g.Tap("GET", "/big", map[string]string{"Cookie": "x=" + strings.Repeat("a", 20000)})
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversized headers: %d", resp.StatusCode)
	}
	if h, b, _ := g.Counts("big"); h+b != 0 {
		t.Error("a refused request counted a click")
	}
}

func TestMethodsAndHealth(t *testing.T) {
	g := servertest.Start(t, t.TempDir())
	if r := g.Tap("POST", "/anything", nil); r.StatusCode != 405 {
		t.Errorf("POST on a link path: %d", r.StatusCode)
	}
	if r := g.Tap("GET", "/healthz", nil); r.StatusCode != 200 {
		t.Errorf("healthz %d", r.StatusCode)
	}
	if r := g.Tap("GET", "/readyz", nil); r.StatusCode != 200 {
		t.Errorf("readyz %d", r.StatusCode)
	}
	g.MustCreate(map[string]any{"slug": "m", "destination": "https://x.example/", "utm": map[string]any{"medium": "promotional", "campaign": "c"}})
	g.Tap("GET", "/m", nil)
	resp, err := http.Get(g.Adm + "/metrics")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("metrics: %v %v", resp, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`clickgate_redirects_total{outcome="redirect"}`, `clickgate_clicks_total{kind="human"}`,
		"clickgate_redirect_duration_seconds_bucket", "clickgate_click_commit_batch_size_bucket", "clickgate_links "} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// Behind a proxy, the click's address is the last one of CLICKGATE_CLIENT_IP_HEADER:
// the proxy appends what it saw, and what comes before is whatever the client sent.
func TestClientIPFromTheTrustedProxy(t *testing.T) {
	g := servertest.Start(t, t.TempDir(), "CLICKGATE_CLIENT_IP_HEADER=X-Forwarded-For")
	g.MustCreate(map[string]any{"slug": "ip", "destination": "https://x.example/", "utm": map[string]any{"medium": "promotional", "campaign": "c"}})
	for _, tc := range []struct{ header, want string }{
		{"203.0.113.7", "203.0.113.7"},
		{"6.6.6.6, 203.0.113.7", "203.0.113.7"}, // a forged first entry
		{"6.6.6.6,203.0.113.8:4711", "203.0.113.8"},
		{"[2001:db8::1]:443", "2001:db8::1"},
		{"[2001:db8::2]", "2001:db8::2"},
		{"::ffff:198.51.100.9", "198.51.100.9"},
		{"not an address", "127.0.0.1"}, // the peer's
	} {
		u, _ := url.Parse(g.Tap("GET", "/ip", map[string]string{"X-Forwarded-For": tc.header}).Header.Get("Location"))
		_, c := g.API("GET", "/api/v1/clicks/"+u.Query().Get("cgid"), nil)
		if c["ip"] != tc.want {
			t.Errorf("X-Forwarded-For %q: click from %v, want %s", tc.header, c["ip"], tc.want)
		}
	}
	// A proxy that adds a line of its own (HAProxy's option forwardfor) after the
	// client's.
	req, _ := http.NewRequest("GET", g.Pub+"/ip", nil)
	req.Header.Add("X-Forwarded-For", "6.6.6.6")
	req.Header.Add("X-Forwarded-For", "203.0.113.9")
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	u, _ := url.Parse(resp.Header.Get("Location"))
	if _, c := g.API("GET", "/api/v1/clicks/"+u.Query().Get("cgid"), nil); c["ip"] != "203.0.113.9" {
		t.Errorf("two header lines: click from %v, want the last line's", c["ip"])
	}
}

// Group commits failing while reads still work (a full disk) show in /readyz, which stays
// 200: redirects still answer, without click IDs. One commit that succeeds clears it.
func TestReadyzReportsFailingCommits(t *testing.T) {
	g := servertest.Start(t, t.TempDir())
	ready := func() (int, map[string]any) {
		t.Helper()
		r, err := http.Get(g.Pub + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		var out map[string]any
		json.NewDecoder(r.Body).Decode(&out)
		return r.StatusCode, out
	}
	observe := g.S.DB.Committer().Observe
	observe(3, time.Millisecond, errors.New("write /data/badger/000042.vlog: no space left on device"))
	observe(2, time.Millisecond, errors.New("write /data/badger/000042.vlog: no space left on device"))
	st, out := ready()
	if s, _ := out["storage"].(string); st != 200 || out["status"] != "ready" || !strings.HasPrefix(s, "commits failing since ") || !strings.Contains(s, "no space left") {
		t.Fatalf("readyz while commits fail: %d %v", st, out)
	}
	observe(1, time.Millisecond, nil)
	if st, out := ready(); st != 200 || out["storage"] != "ok" {
		t.Fatalf("readyz after a commit succeeded: %d %v", st, out)
	}
	// An event too big for a transaction is its own fault, not the store's.
	observe(1, time.Millisecond, fmt.Errorf("storage: event 0: %w", storage.ErrEventTooBig))
	if _, out := ready(); out["storage"] != "ok" {
		t.Fatalf("readyz after an oversized event: %v", out)
	}
}
