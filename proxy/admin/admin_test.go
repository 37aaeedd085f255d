package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/clickgate/clickgate/proxy/identity"
	"github.com/clickgate/clickgate/proxy/links"
	"github.com/clickgate/clickgate/proxy/utm"
	"github.com/clickgate/clickgate/storage"
)

const token = "admin-token-for-tests-0123"

func newAPI(tb testing.TB) http.Handler {
	db, err := storage.Open(storage.Options{Dir: tb.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	svc := &links.Service{DB: db, Index: links.NewIndex(), PublicURL: "https://go.example.com", Hasher: identity.NewHasher([]byte("k")), Region: "US",
		Rules: &links.Rules{UTM: utm.DefaultPolicy(), ClickParam: "cgid"}}
	return New(svc, db, nil, nil, token, slog.New(slog.NewTextHandler(io.Discard, nil))).Handler()
}

// Whatever body arrives, the create endpoint answers 201 or a 4xx with the JSON error
// shape: never a 5xx, never a panic.
func FuzzCreateLink(f *testing.F) {
	f.Add(`{"destination":"https://x.example/","utm":{"medium":"promotional","campaign":"c"}}`)
	f.Add(`{"slug":"a","destination":"https://x.example/","utm":{"medium":"promo","campaign":"Spring"},"variants":[{"destination":"https://a.example/","weight":1,"content":"a"},{"destination":"https://b.example/","weight":1,"content":"b"}]}`)
	f.Add(`{"destination":"https://x.example/","utm":{"medium":"promotional","campaign":"c"},"identity_params":{"rid":"customer_id"},"max_clicks":3,"expires_at":"2999-01-01T00:00:00Z"}`)
	f.Add(`[`)
	h := newAPI(f)
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/api/v1/links", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch {
		case rec.Code == http.StatusCreated:
			var out struct {
				Slug string `json:"slug"`
			}
			if json.Unmarshal(rec.Body.Bytes(), &out) != nil || out.Slug == "" {
				t.Fatalf("201 without a slug: %s", rec.Body)
			}
		case rec.Code >= 400 && rec.Code < 500:
			var e errorBody
			if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%d without the error shape: %s", rec.Code, rec.Body)
			}
		default:
			t.Fatalf("%d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}

// Without Kafka or plugins configured, every dead-letter endpoint answers 404 saying
// which setting is missing, for the relay's name and a plugin's alike.
func TestDeadLettersOfNothingConfigured(t *testing.T) {
	h := newAPI(t)
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/api/v1/deadletters?plugin=kafka", "CLICKGATE_KAFKA_BROKERS"},
		{"GET", "/api/v1/deadletters/kafka/7", "CLICKGATE_KAFKA_BROKERS"},
		{"POST", "/api/v1/deadletters/kafka/replay", "CLICKGATE_KAFKA_BROKERS"},
		{"DELETE", "/api/v1/deadletters/kafka", "CLICKGATE_KAFKA_BROKERS"},
		{"GET", "/api/v1/deadletters?plugin=hook", "CLICKGATE_PLUGINS_FILE"},
		{"POST", "/api/v1/deadletters/hook/replay", "CLICKGATE_PLUGINS_FILE"},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var e errorBody
		if rec.Code != http.StatusNotFound || json.Unmarshal(rec.Body.Bytes(), &e) != nil || !strings.Contains(e.Error.Message, tc.want) {
			t.Errorf("%s %s: %d %s, want 404 naming %s", tc.method, tc.path, rec.Code, rec.Body, tc.want)
		}
	}
}

// The dashboard's page is served without the token (it holds no figures) and reads its
// report from the path its script builds (proxy/dashboard tests that it builds this
// one), which answers only with the token.
func TestDashboard(t *testing.T) {
	h := newAPI(t)
	get := func(path, tok string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := get("/ui/", ""); rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("/ui/: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec := get("/ui", ""); rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/ui/" {
		t.Fatalf("/ui: %d %s", rec.Code, rec.Header().Get("Location"))
	}
	const report = "/api/v1/reports/campaigns?from=2026-11-01&to=2026-11-07&group_by=week&format=csv"
	if rec := get(report, ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("the report without the token: %d", rec.Code)
	}
	if rec := get(report, token); rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/csv") {
		t.Fatalf("the report the page asks for: %d %s", rec.Code, rec.Body)
	}
}

// A report asked only for its end covers the seven days to it, as one asked for nothing
// covers the seven days to today.
func TestReportPeriodFromItsEnd(t *testing.T) {
	h := newAPI(t)
	req := httptest.NewRequest("GET", "/api/v1/reports/campaigns?to=2025-01-31", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var rep struct{ From, To string }
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &rep) != nil || rep.From != "2025-01-25" || rep.To != "2025-01-31" {
		t.Fatalf("%d %s, want 2025-01-25 to 2025-01-31", rec.Code, rec.Body)
	}
}

// A bulk create that creates nothing answers as a single create would, with the error
// shape: 409 when every slug is taken, 500 when the store failed (a script retries),
// 400 for the requests' own faults.
func TestBulkCreateThatCreatesNothing(t *testing.T) {
	post := func(h http.Handler, body string) (int, errorBody) {
		req := httptest.NewRequest("POST", "/api/v1/links/bulk", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var e errorBody
		json.Unmarshal(rec.Body.Bytes(), &e)
		return rec.Code, e
	}
	const link = `{"slug":"%s","destination":"https://x.example/","utm":{"medium":"promotional","campaign":"c"}}`
	h := newAPI(t)
	if st, _ := post(h, `{"links":[`+fmt.Sprintf(link, "a")+`]}`); st != 201 {
		t.Fatalf("first create: %d", st)
	}
	if st, e := post(h, `{"links":[`+fmt.Sprintf(link, "a")+`,`+fmt.Sprintf(link, "a")+`]}`); st != 409 || e.Error.Code != "conflict" {
		t.Errorf("every slug taken: %d %+v", st, e)
	}
	if st, e := post(h, `{"links":[{"destination":"ftp://x.example/"},`+fmt.Sprintf(link, "a")+`]}`); st != 400 || e.Error.Code != "invalid_field" {
		t.Errorf("invalid and taken: %d %+v", st, e)
	}

	db, err := storage.Open(storage.Options{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	db.Close() // every write fails
	svc := &links.Service{DB: db, Index: links.NewIndex(), PublicURL: "https://go.example.com", Hasher: identity.NewHasher([]byte("k")), Region: "US",
		Rules: &links.Rules{UTM: utm.DefaultPolicy(), ClickParam: "cgid"}}
	broken := New(svc, db, nil, nil, token, slog.New(slog.NewTextHandler(io.Discard, nil))).Handler()
	if st, e := post(broken, `{"links":[`+fmt.Sprintf(link, "b")+`]}`); st != 500 || e.Error.Code != "internal" {
		t.Errorf("store failing: %d %+v", st, e)
	}
}

// A link's domain is named in any case on the endpoints that take one, as its host is.
func TestDomainInAnyCase(t *testing.T) {
	h := newAPI(t)
	do := func(method, path, body string) int {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	if st := do("POST", "/api/v1/links", `{"slug":"d1","domain":"Go.Brand.com","destination":"https://x.example/","utm":{"medium":"promotional","campaign":"c"}}`); st != 201 {
		t.Fatalf("create: %d", st)
	}
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/api/v1/links/d1?domain=GO.BRAND.COM", ""},
		{"PATCH", "/api/v1/links/d1?domain=Go.Brand.Com", `{"max_clicks":5}`},
		{"POST", "/api/v1/links/d1/tokens?domain=go.BRAND.com", `{"recipients":[{"customer_id":"1"}]}`},
		{"POST", "/api/v1/links/d1/archive?domain=Go.Brand.com", ""},
	} {
		if st := do(tc.method, tc.path, tc.body); st >= 300 {
			t.Errorf("%s %s: %d", tc.method, tc.path, st)
		}
	}
}

// A path that is an endpoint under other methods answers 405 naming them; one that is
// none answers 404.
func TestMethodNotAllowed(t *testing.T) {
	h := newAPI(t)
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"PUT", "/api/v1/links/bf", 405, "GET, PATCH, DELETE"},
		{"DELETE", "/api/v1/reports/campaigns", 405, "GET"},
		{"GET", "/api/v1/nothing", 404, ""},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var e errorBody
		if rec.Code != tc.status || rec.Header().Get("Allow") != tc.allow || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error.Code == "" {
			t.Errorf("%s %s: %d Allow %q %s, want %d Allow %q", tc.method, tc.path, rec.Code, rec.Header().Get("Allow"), rec.Body, tc.status, tc.allow)
		}
	}
}
