package relay_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/segmentio/kafka-go"
	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/proxy/relay"
	"github.com/clickgate/clickgate/proxy/relay/kafkatest"
	"github.com/clickgate/clickgate/proxy/server/servertest"
	"github.com/clickgate/clickgate/storage"
)

var broker *kafkatest.Broker

// TestMain runs the real broker of configs/kafka for this package (on its own port and
// data directory), unless CLICKGATE_TEST_KAFKA_BROKERS names one.
func TestMain(m *testing.M) {
	var err error
	broker, err = kafkatest.Start(19392)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot start the Kafka broker for the relay tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	broker.Close()
	os.Exit(code)
}

// startGate runs clickgate with the relay on, writing to topics unique to the test.
func startGate(t *testing.T, env ...string) (*servertest.Gate, string) {
	topic := fmt.Sprintf("t%d.%s.clicks", time.Now().UnixNano(), strings.NewReplacer("/", "_", " ", "_").Replace(strings.ToLower(t.Name())))
	env = append([]string{"CLICKGATE_KAFKA_BROKERS=" + broker.Addr, "CLICKGATE_KAFKA_CLICKS_TOPIC=" + topic,
		"CLICKGATE_KAFKA_CONVERSIONS_TOPIC=" + strings.TrimSuffix(topic, "clicks") + "conversions", "CLICKGATE_KAFKA_PARTITIONS=3"}, env...)
	g := servertest.Start(t, t.TempDir(), env...)
	g.MustCreate(map[string]any{"slug": "k", "destination": "https://shop.example.com/p",
		"utm": map[string]any{"medium": "promotional", "campaign": "kafka"}})
	return g, topic
}

// tapper sends taps over keep-alive connections and collects the answered click IDs,
// in answer order per visitor.
type tapper struct {
	c       *fasthttp.Client
	url     string
	mu      sync.Mutex
	ids     []string
	errors  atomic.Int64
	byVisit map[string][]string
}

func newTapper(g *servertest.Gate, path string) *tapper {
	return &tapper{c: &fasthttp.Client{MaxConnsPerHost: 256}, url: g.Pub + path, byVisit: map[string][]string{}}
}

func (tp *tapper) tap(cookie string) (string, bool) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(tp.url)
	req.Header.SetUserAgent(servertest.Android)
	if cookie != "" {
		req.Header.SetCookie("cg_vid", cookie)
	}
	if err := tp.c.DoTimeout(req, resp, 5*time.Second); err != nil || resp.StatusCode() != 302 {
		tp.errors.Add(1)
		return "", false
	}
	u, err := url.Parse(string(resp.Header.Peek("Location")))
	if err != nil {
		tp.errors.Add(1)
		return "", false
	}
	id := u.Query().Get("cgid")
	tp.mu.Lock()
	tp.ids = append(tp.ids, id)
	if cookie != "" {
		tp.byVisit[cookie] = append(tp.byVisit[cookie], id)
	}
	tp.mu.Unlock()
	return id, true
}

// run taps n times from `workers` goroutines, or until stop closes when n is 0, each
// worker pausing `pace` between taps.
func (tp *tapper) run(workers, n int, stop <-chan struct{}, pace time.Duration) {
	var wg sync.WaitGroup
	var left atomic.Int64
	left.Store(int64(n))
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if n > 0 && left.Add(-1) < 0 {
					return
				}
				if stop != nil {
					select {
					case <-stop:
						return
					default:
					}
				}
				tp.tap("")
				if pace > 0 {
					time.Sleep(pace)
				}
			}
		}()
	}
	wg.Wait()
}

// drained waits until the relay's cursor reaches the outbox head.
func drained(t *testing.T, g *servertest.Gate, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		c, err := g.S.DB.Cursor(relay.Consumer)
		if err == nil && c == g.S.DB.OutboxHead() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	c, _ := g.S.DB.Cursor(relay.Consumer)
	t.Fatalf("relay did not drain within %s: cursor %d, head %d", within, c, g.S.DB.OutboxHead())
}

// consume reads the topic and checks every message: schema, key, headers.
func consume(t *testing.T, topic string) (map[int][]kafka.Message, map[string]int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	parts, err := kafkatest.ReadAll(ctx, broker.Addr, topic)
	if err != nil {
		t.Fatal(err)
	}
	schema := clickSchema(t)
	seen := map[string]int{}
	for _, msgs := range parts {
		for _, m := range msgs {
			var ev map[string]any
			if err := json.Unmarshal(m.Value, &ev); err != nil {
				t.Fatalf("message is not JSON: %q", m.Value)
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(m.Value))
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(inst); err != nil {
				t.Fatalf("event does not validate against click.v1.json: %v\n%s", err, m.Value)
			}
			if string(m.Key) != ev["visitor_id"] || kafkatest.Header(m, "event_type") != "click" || kafkatest.Header(m, "schema_version") != "1" {
				t.Fatalf("key %q headers %v for %s", m.Key, m.Headers, m.Value)
			}
			seen[ev["click_id"].(string)]++
		}
	}
	return parts, seen
}

func clickSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	path, _ := filepath.Abs("../../configs/schemas/click.v1.json")
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s, err := c.Compile(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func assertEvery(t *testing.T, answered []string, seen map[string]int) {
	t.Helper()
	missing, dups := 0, 0
	for _, id := range answered {
		if seen[id] == 0 {
			missing++
		}
	}
	for _, n := range seen {
		if n > 1 {
			dups += n - 1
		}
	}
	t.Logf("%d clicks answered, %d distinct in Kafka, %d duplicate deliveries (at-least-once), %d missing", len(answered), len(seen), dups, missing)
	if missing > 0 {
		t.Fatalf("%d answered clicks never reached Kafka", missing)
	}
}

func TestHundredThousandRedirectsReachKafka(t *testing.T) {
	g, topic := startGate(t)
	tp := newTapper(g, "/k")
	tp.run(64, 100000, nil, 0)
	if tp.errors.Load() > 0 {
		t.Fatalf("%d taps failed", tp.errors.Load())
	}
	drained(t, g, 2*time.Minute)
	_, seen := consume(t, topic)
	assertEvery(t, tp.ids, seen)
	// Retention: once the relay and the counter checkpoint passed them, entries go.
	time.Sleep(1100 * time.Millisecond) // the next counter checkpoint
	tp.tap("")
	drained(t, g, 30*time.Second)
	if _, err := g.S.DB.TrimOutbox(); err != nil {
		t.Fatal(err)
	}
	left := 0
	g.S.DB.ScanOutbox(0, func(storage.OutboxEntry) bool { left++; return true })
	if left > 1000 {
		t.Fatalf("%d outbox events kept after every consumer passed them", left)
	}
}

func TestPerVisitorOrderWithinPartition(t *testing.T) {
	g, topic := startGate(t)
	tp := newTapper(g, "/k")
	// Each visitor taps in sequence; visitors run concurrently.
	var wg sync.WaitGroup
	for v := 0; v < 20; v++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A returning visitor: a fixed, valid visitor ID per goroutine.
			cookie := fmt.Sprintf("0%025d", v)
			for i := 0; i < 50; i++ {
				tp.tap(cookie)
			}
		}()
	}
	wg.Wait()
	drained(t, g, time.Minute)
	parts, _ := consume(t, topic)
	for visitor, want := range tp.byVisit {
		var got []string
		partsSeen := map[int]bool{}
		for p, msgs := range parts {
			for _, m := range msgs {
				if string(m.Key) == visitor {
					var ev struct {
						ClickID string `json:"click_id"`
					}
					json.Unmarshal(m.Value, &ev)
					got = append(got, ev.ClickID)
					partsSeen[p] = true
				}
			}
		}
		if len(partsSeen) != 1 {
			t.Fatalf("visitor %s spread over partitions %v", visitor, partsSeen)
		}
		got = firstOccurrences(got)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("visitor %s: order in Kafka differs from answer order\n got %v\nwant %v", visitor, got, want)
		}
	}
	if len(tp.byVisit) != 20 {
		t.Fatalf("%d visitors", len(tp.byVisit))
	}
}

func firstOccurrences(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// The broker goes away for 30 s under load: redirects keep answering, the backlog grows,
// and after the broker returns it drains to zero with every click present.
func TestBrokerOutageLosesNothing(t *testing.T) {
	if !broker.Controllable() {
		t.Skip("CLICKGATE_TEST_KAFKA_BROKERS names a broker these tests cannot stop")
	}
	g, topic := startGate(t)
	tp := newTapper(g, "/k")
	tp.run(16, 2000, nil, 0)
	drained(t, g, time.Minute)

	if err := broker.Stop(); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	// Paced at about 1,600 taps/s: enough backlog to matter, quick to verify.
	go func() { tp.run(8, 0, stop, 5*time.Millisecond); close(done) }()
	time.Sleep(30 * time.Second)
	close(stop)
	<-done
	if tp.errors.Load() > 0 {
		t.Fatalf("%d redirects failed while Kafka was down", tp.errors.Load())
	}
	c, _ := g.S.DB.Cursor(relay.Consumer)
	backlog := g.S.DB.OutboxHead() - c
	if backlog < 1000 {
		t.Fatalf("backlog during the outage is %d events; load did not run or clicks went somewhere", backlog)
	}
	_, body := readyz(t, g)
	if !strings.Contains(body, `"state":"down"`) {
		t.Errorf("/readyz during the outage: %s", body)
	}
	if err := broker.Resume(); err != nil {
		t.Fatal(err)
	}
	drained(t, g, 2*time.Minute)
	_, seen := consume(t, topic)
	assertEvery(t, tp.ids, seen)
	t.Logf("backlog during the outage: %d events", backlog)
}

func readyz(t *testing.T, g *servertest.Gate) (int, string) {
	resp, err := http.Get(g.Pub + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	n, _ := resp.Body.Read(buf)
	b.Write(buf[:n])
	return resp.StatusCode, b.String()
}

// Kafka unreachable at start: the proxy starts, serves, and says so in /readyz.
func TestStartsWithKafkaUnreachable(t *testing.T) {
	g := servertest.Start(t, t.TempDir(), "CLICKGATE_KAFKA_BROKERS=127.0.0.1:1")
	g.MustCreate(map[string]any{"slug": "k", "destination": "https://x.example/", "utm": map[string]any{"medium": "promotional", "campaign": "c"}})
	if r := g.Tap("GET", "/k", nil); r.StatusCode != 302 {
		t.Fatalf("redirect with Kafka unreachable: %d", r.StatusCode)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, body := readyz(t, g)
		if st == 200 && strings.Contains(body, `"state":"down"`) && strings.Contains(body, `"storage":"ok"`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never reported Kafka down: %d %s", st, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// An attributed conversion reaches the conversions topic, valid against its schema.
func TestConversionsReachKafka(t *testing.T) {
	g, topic := startGate(t, "CLICKGATE_INGEST_TOKENS=ingest-token-0123456789")
	convTopic := strings.TrimSuffix(topic, "clicks") + "conversions"
	tp := newTapper(g, "/k")
	cookie := fmt.Sprintf("0%025d", 7)
	cid, _ := tp.tap(cookie)
	// The purchase, then its refund: an event of its own, saying when it happened.
	for _, status := range []string{"approved", "refunded"} {
		body := fmt.Sprintf(`{"event_id":"o-1","type":"purchase","value":12.5,"currency":"EUR","visitor_id":%q,"user":{"email":"a@b.co"},"status":%q}`, cookie, status)
		req, _ := http.NewRequest("POST", g.Pub+"/v1/conversions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer ingest-token-0123456789")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("conversion: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	drained(t, g, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	parts, err := kafkatest.ReadAll(ctx, broker.Addr, convTopic)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	path, _ := filepath.Abs("../../configs/schemas/conversion.v1.json")
	schema, err := c.Compile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ids := map[string]bool{}
	for _, msgs := range parts {
		for _, m := range msgs {
			n++
			inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(m.Value))
			if err := schema.Validate(inst); err != nil {
				t.Fatalf("conversion event invalid: %v\n%s", err, m.Value)
			}
			var ev struct {
				EventID         string     `json:"event_id"`
				StatusChangedAt *time.Time `json:"status_changed_at"`
				Attribution     struct {
					ClickID string `json:"click_id"`
				} `json:"attribution"`
				User struct {
					Email string `json:"email"`
				} `json:"user"`
			}
			json.Unmarshal(m.Value, &ev)
			ids[ev.EventID] = true
			if refund := ev.EventID == "o-1:refunded"; refund != (ev.StatusChangedAt != nil) {
				t.Errorf("event %s has status_changed_at %v", ev.EventID, ev.StatusChangedAt)
			}
			// The refund's message is stamped when it happened, not at the purchase.
			if ev.StatusChangedAt != nil && !m.Time.Equal(ev.StatusChangedAt.Truncate(time.Millisecond)) {
				t.Errorf("refund message stamped %v, want its status_changed_at %v", m.Time, ev.StatusChangedAt)
			}
			if ev.User.Email != "a@b.co" {
				t.Errorf("conversion event carries user %+v, want the sender's email", ev.User)
			}
			if ev.Attribution.ClickID != cid || string(m.Key) != cookie || kafkatest.Header(m, "event_type") != "conversion" {
				t.Fatalf("conversion message key %q headers %v: %s", m.Key, m.Headers, m.Value)
			}
		}
	}
	// Delivery is at least once: a write retried after a slow acknowledgement may land
	// twice, always with the same event ID.
	if n == 0 || len(ids) != 2 || !ids["o-1"] || !ids["o-1:refunded"] {
		t.Fatalf("%d conversion messages with event IDs %v, want o-1 and o-1:refunded", n, ids)
	}
}

// With CLICKGATE_EVENT_USER_DATA=all, a click's captured identity reaches Kafka in plain
// form (from an identity parameter and from a recipient token) while the store keeps it
// sealed; by default click events carry none.
func TestClickUserData(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   []string
		plain bool
	}{{"opted in", []string{"CLICKGATE_EVENT_USER_DATA=all"}, true}, {"default", nil, false}} {
		t.Run(tc.name, func(t *testing.T) {
			g, topic := startGate(t, tc.env...)
			g.MustCreate(map[string]any{"slug": "id", "destination": "https://shop.example.com/p",
				"utm": map[string]any{"medium": "promotional", "campaign": "kafka"}, "identity_params": map[string]any{"em": "email"}})
			st, out := g.API("POST", "/api/v1/links/id/tokens", map[string]any{"recipients": []any{map[string]any{"phone": "+1 415 555 0123"}}})
			if st != 201 && st != 200 {
				t.Fatalf("tokens: %d %v", st, out)
			}
			tok := out["tokens"].([]any)[0].(map[string]any)["token"].(string)
			phone := map[string]string{"User-Agent": servertest.Android}
			loc := func(r *http.Response) string {
				u, _ := url.Parse(r.Header.Get("Location"))
				return u.Query().Get("cgid")
			}
			byParam := loc(g.Tap("GET", "/id?em=%20Ann.Lee@Example.COM", phone))
			byToken := loc(g.Tap("GET", "/id/"+tok, phone))
			drained(t, g, time.Minute)
			parts, _ := consume(t, topic)
			users := map[string]map[string]any{}
			for _, msgs := range parts {
				for _, m := range msgs {
					var ev struct {
						ClickID string         `json:"click_id"`
						User    map[string]any `json:"user"`
					}
					json.Unmarshal(m.Value, &ev)
					users[ev.ClickID] = ev.User
				}
			}
			want := map[string]map[string]any{byParam: {"email": "ann.lee@example.com"}, byToken: {"phone": "+14155550123"}}
			for id, w := range want {
				got, ok := users[id]
				switch {
				case !ok:
					t.Errorf("click %s not in Kafka", id)
				case tc.plain && !reflect.DeepEqual(got, w):
					t.Errorf("click %s user = %v, want %v", id, got, w)
				case !tc.plain && got != nil:
					t.Errorf("click %s carries user %v without the opt-in", id, got)
				}
			}
			evs, err := g.S.DB.ReadEvents(1, 10)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				if bytes.Contains(e.Record, []byte("ann.lee@example.com")) || bytes.Contains(e.Record, []byte("4155550123")) {
					t.Errorf("click record holds the identity in clear: %q", e.Record)
				}
			}
		})
	}
}

// An event the topic refuses for its size does not stop the stream: it becomes a dead
// letter, every other click reaches Kafka once, and once the topic takes bigger messages
// a replay publishes it and removes the dead letter.
func TestOversizedEventIsDeadLetteredAndReplayed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic := fmt.Sprintf("t%d.oversized.clicks", time.Now().UnixNano())
	c := createTopic(ctx, t, topic, 3, 1500)
	g, _ := startGate(t, "CLICKGATE_KAFKA_CLICKS_TOPIC="+topic)
	tp := newTapper(g, "/k")
	tp.run(4, 40, nil, 0)
	// A 1,800-byte destination makes a click event the topic refuses, compressed or not.
	noise := make([]byte, 900)
	rand.Read(noise)
	g.MustCreate(map[string]any{"slug": "big", "destination": "https://shop.example.com/p/" + hex.EncodeToString(noise),
		"utm": map[string]any{"medium": "promotional", "campaign": "kafka"}})
	resp := g.Tap("GET", "/big", map[string]string{"User-Agent": servertest.Android})
	if resp.StatusCode != 302 {
		t.Fatalf("big tap: %d", resp.StatusCode)
	}
	u, _ := url.Parse(resp.Header.Get("Location"))
	big := u.Query().Get("cgid")
	tp.run(4, 40, nil, 0)
	if tp.errors.Load() > 0 {
		t.Fatalf("%d taps failed", tp.errors.Load())
	}
	drained(t, g, time.Minute)
	_, seen := consume(t, topic)
	assertEvery(t, tp.ids, seen)
	if seen[big] != 0 {
		t.Fatalf("the refused click reached Kafka %d times", seen[big])
	}

	dead := func() []any {
		st, out := g.API("GET", "/api/v1/deadletters?plugin=kafka", nil)
		if st != 200 {
			t.Fatalf("dead letters: %d %v", st, out)
		}
		return out["dead_letters"].([]any)
	}
	dls := dead()
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want the refused click's: %v", len(dls), dls)
	}
	d := dls[0].(map[string]any)
	if d["event_id"] != big || d["type"] != "click" || !strings.Contains(d["reason"].(string), "max.message.bytes") {
		t.Fatalf("dead letter %v", d)
	}
	// Replayed while the topic still refuses it: it stays, with the new answer.
	if st, out := g.API("POST", "/api/v1/deadletters/kafka/replay", nil); st != 200 || out["failed"] != 1.0 || out["delivered"] != 0.0 {
		t.Fatalf("replay into the same topic: %d %v", st, out)
	}
	if dls := dead(); len(dls) != 1 || !strings.HasPrefix(dls[0].(map[string]any)["reason"].(string), "replay: ") {
		t.Fatalf("after a failed replay: %v", dls)
	}
	raiseMaxMessageBytes(ctx, t, c, topic)
	// The broker applies a topic's new configuration a moment after it answers the
	// change: until then a replay fails as before and leaves the letter for the next.
	for i := 0; ; i++ {
		st, out := g.API("POST", "/api/v1/deadletters/kafka/replay", nil)
		if st == 200 && out["delivered"] == 1.0 {
			break
		}
		if st != 200 || out["failed"] != 1.0 || i == 40 {
			t.Fatalf("replay once the topic takes the message: %d %v; dead letters %v", st, out, dead())
		}
		time.Sleep(250 * time.Millisecond)
	}
	if dls := dead(); len(dls) != 0 {
		t.Fatalf("dead letters left after the replay: %v", dls)
	}
	_, seen = consume(t, topic)
	assertEvery(t, append(tp.ids, big), seen)
	if seen[big] != 1 {
		t.Fatalf("the replayed click is in Kafka %d times", seen[big])
	}
}

// Events the topic refuses for their time (here a window that takes no event already in
// the past, as a topic with message.timestamp.before.max.ms would after a long outage)
// become dead letters and the stream goes on; once the window is widened, a replay
// publishes them, and every click is in Kafka once.
func TestEventsOutsideTheTopicsTimeWindowAreDeadLetteredAndReplayed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic := fmt.Sprintf("t%d.window.clicks", time.Now().UnixNano())
	c := createTopic(ctx, t, topic, 3, 1<<20, kafka.ConfigEntry{ConfigName: "message.timestamp.before.max.ms", ConfigValue: "0"})
	g, _ := startGate(t, "CLICKGATE_KAFKA_CLICKS_TOPIC="+topic)
	tp := newTapper(g, "/k")
	tp.run(4, 40, nil, 0)
	if tp.errors.Load() > 0 {
		t.Fatalf("%d taps failed", tp.errors.Load())
	}
	drained(t, g, time.Minute)
	refused := slices.Clone(tp.ids)
	dead := func() []any {
		st, out := g.API("GET", "/api/v1/deadletters?plugin=kafka&limit=1000", nil)
		if st != 200 {
			t.Fatalf("dead letters: %d %v", st, out)
		}
		return out["dead_letters"].([]any)
	}
	dls := dead()
	var lettered []string
	for _, d := range dls {
		d := d.(map[string]any)
		if !strings.Contains(d["reason"].(string), "message.timestamp.before.max.ms") || d["type"] != "click" {
			t.Fatalf("dead letter %v", d)
		}
		lettered = append(lettered, d["event_id"].(string))
	}
	if slices.Sort(lettered); !slices.Equal(lettered, slices.Sorted(slices.Values(refused))) {
		t.Fatalf("%d dead letters, want the %d clicks refused", len(lettered), len(refused))
	}

	setTopicConfig(ctx, t, c, topic, "message.timestamp.before.max.ms", "3600000")
	for i := 0; len(dead()) > 0; i++ {
		if st, out := g.API("POST", "/api/v1/deadletters/kafka/replay", nil); st != 200 || i == 40 {
			t.Fatalf("replay once the topic takes the events: %d %v", st, out)
		}
		time.Sleep(250 * time.Millisecond)
	}
	tp.run(4, 40, nil, 0)
	drained(t, g, time.Minute)
	if dls := dead(); len(dls) != 0 {
		t.Fatalf("dead letters after the window was widened: %v", dls)
	}
	_, seen := consume(t, topic)
	assertEvery(t, tp.ids, seen)
	for _, id := range refused {
		if seen[id] != 1 {
			t.Fatalf("replayed click %s is in Kafka %d times", id, seen[id])
		}
	}
}
