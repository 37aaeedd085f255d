package suite

import (
	"math/rand/v2"
	"strconv"

	"github.com/clickgate/clickgate/bench/loadgen"
)

// What a phone's browser sends when a recipient taps a link in an SMS: clickgate counts
// this as a human click. No cookie: every tap is a new visitor, the common case.
var phoneHeaders = []loadgen.Header{
	{Name: "User-Agent", Value: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"},
	{Name: "Accept", Value: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
	{Name: "Accept-Language", Value: "en-US,en;q=0.9"},
}

// Link-preview fetchers that messaging apps send when a link arrives in a chat or SMS.
var previewBots = []string{
	"WhatsApp/2.23.20.0 A",
	"facebookexternalhit/1.1 Facebot Twitterbot/1.0", // iMessage's preview
	"facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
	"TelegramBot (like TwitterBot)",
	"Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
}

// fixedRedirect is one link requested over and over.
func fixedRedirect(host, path, location, clickParam string) *loadgen.Fixed {
	return &loadgen.Fixed{
		Raw: loadgen.AppendGet(nil, host, path, phoneHeaders...), Status: 302,
		Location: []byte(location), ClickParam: clickParam,
	}
}

// requestSuffix is everything after the path of a GET request for host.
func requestSuffix(host string, headers []loadgen.Header) []byte {
	return loadgen.AppendGet(nil, host, "", headers...)[len("GET "):]
}

// manyLinks requests links l0 … l{N-1}, uniformly or with Zipf popularity.
type manyLinks struct {
	suffix []byte
	n      int
	zipfS  float64 // 0: uniform
}

func newManyLinks(host string, n int, zipfS float64) *manyLinks {
	return &manyLinks{suffix: requestSuffix(host, phoneHeaders), n: n, zipfS: zipfS}
}

// zipfStride spreads Zipf ranks over the link numbers (rank r → link r·stride mod n), so
// the most popular links are not simply the first ones created. It is prime and larger
// than any link count here, hence a permutation.
const zipfStride = 2654435761

func (m *manyLinks) NewBuilder(seed uint64) loadgen.Builder {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	b := &manyLinksBuilder{m: m, rng: rng}
	if m.zipfS > 0 {
		b.zipf = rand.NewZipf(rng, m.zipfS, 1, uint64(m.n-1))
	}
	return b
}

type manyLinksBuilder struct {
	m    *manyLinks
	rng  *rand.Rand
	zipf *rand.Zipf
}

func (b *manyLinksBuilder) Build(r *loadgen.Request) {
	var i int
	if b.zipf != nil {
		i = int(b.zipf.Uint64() * zipfStride % uint64(b.m.n))
	} else {
		i = b.rng.IntN(b.m.n)
	}
	r.Buf = append(r.Buf[:0], "GET /l"...)
	r.Buf = strconv.AppendInt(r.Buf, int64(i), 10)
	r.Buf = append(r.Buf, b.m.suffix...)
	r.Raw = r.Buf
	r.LocBuf = append(r.LocBuf[:0], "https://shop.example.com/p/"...)
	r.LocBuf = strconv.AppendInt(r.LocBuf, int64(i), 10)
	r.LocBuf = append(r.LocBuf, manyLinksUTM...)
	r.Location, r.Status, r.ClickParam, r.BodyContains = r.LocBuf, 302, "cgid", nil
}

// recipients requests per-recipient links /{slug}/{token}.
type recipients struct {
	prefix, suffix, location []byte
	tokens                   []string
}

func newRecipients(host, slug, location string, tokens []string) *recipients {
	return &recipients{prefix: []byte("GET /" + slug + "/"), suffix: requestSuffix(host, phoneHeaders), location: []byte(location), tokens: tokens}
}

func (p *recipients) NewBuilder(seed uint64) loadgen.Builder {
	return &recipientsBuilder{p: p, rng: rand.New(rand.NewPCG(seed, 1))}
}

type recipientsBuilder struct {
	p   *recipients
	rng *rand.Rand
}

func (b *recipientsBuilder) Build(r *loadgen.Request) {
	r.Buf = append(r.Buf[:0], b.p.prefix...)
	r.Buf = append(r.Buf, b.p.tokens[b.rng.IntN(len(b.p.tokens))]...)
	r.Buf = append(r.Buf, b.p.suffix...)
	r.Raw, r.Location, r.Status, r.ClickParam, r.BodyContains = r.Buf, b.p.location, 302, "cgid", nil
}

// botMix requests one link with a share of link-preview bots among phones. Bots get the
// same 302 with a click ID (clickgate flags them, it does not drop them).
type botMix struct {
	phone    []byte
	bots     [][]byte
	share    float64
	location []byte
}

func newBotMix(host, path, location string, share float64) *botMix {
	m := &botMix{phone: loadgen.AppendGet(nil, host, path, phoneHeaders...), share: share, location: []byte(location)}
	for _, ua := range previewBots {
		m.bots = append(m.bots, loadgen.AppendGet(nil, host, path, loadgen.Header{Name: "User-Agent", Value: ua}, loadgen.Header{Name: "Accept", Value: "*/*"}))
	}
	return m
}

func (m *botMix) NewBuilder(seed uint64) loadgen.Builder {
	return &botMixBuilder{m: m, rng: rand.New(rand.NewPCG(seed, 2))}
}

type botMixBuilder struct {
	m   *botMix
	rng *rand.Rand
}

func (b *botMixBuilder) Build(r *loadgen.Request) {
	r.Raw = b.m.phone
	if b.rng.Float64() < b.m.share {
		r.Raw = b.m.bots[b.rng.IntN(len(b.m.bots))]
	}
	r.Location, r.Status, r.ClickParam, r.BodyContains = b.m.location, 302, "cgid", nil
}

// conversions posts purchases attributed by click ID to /v1/conversions. Every request
// has a new event_id (a repeat would be answered as a duplicate, a cheaper path), and the
// answer must name the click it was attributed to.
type conversions struct {
	host     string
	clickIDs []string
	headers  []loadgen.Header
}

func newConversions(host string, clickIDs []string) *conversions {
	return &conversions{host: host, clickIDs: clickIDs, headers: []loadgen.Header{
		{Name: "Authorization", Value: "Bearer " + ingestToken},
		{Name: "Content-Type", Value: "application/json"},
	}}
}

var attributed = []byte(`"attribution":{`)

func (c *conversions) NewBuilder(seed uint64) loadgen.Builder {
	return &conversionsBuilder{c: c, rng: rand.New(rand.NewPCG(seed, 3)), id: strconv.FormatUint(seed, 36)}
}

type conversionsBuilder struct {
	c    *conversions
	rng  *rand.Rand
	id   string
	n    int64
	body []byte
}

func (b *conversionsBuilder) Build(r *loadgen.Request) {
	b.n++
	b.body = append(b.body[:0], `{"event_id":"cb-`...)
	b.body = append(b.body, b.id...)
	b.body = append(b.body, '-')
	b.body = strconv.AppendInt(b.body, b.n, 10)
	b.body = append(b.body, `","type":"purchase","value":10,"currency":"USD","click_id":"`...)
	b.body = append(b.body, b.c.clickIDs[b.rng.IntN(len(b.c.clickIDs))]...)
	b.body = append(b.body, `"}`...)
	r.Buf = loadgen.AppendPost(r.Buf[:0], b.c.host, "/v1/conversions", b.body, b.c.headers...)
	r.Raw, r.Status, r.Location, r.ClickParam, r.BodyContains = r.Buf, 200, nil, "", attributed
}
