// Package admin is the admin API on the admin listener: links, recipient tokens, clicks,
// metrics. Every /api/ route needs the admin bearer token.
package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/clickgate/clickgate/proxy/dashboard"
	"github.com/clickgate/clickgate/proxy/links"
	"github.com/clickgate/clickgate/proxy/metrics"
	"github.com/clickgate/clickgate/proxy/pluginhost"
	"github.com/clickgate/clickgate/proxy/relay"
	"github.com/clickgate/clickgate/storage"
)

// API serves the admin listener.
type API struct {
	Links *links.Service
	DB    *storage.DB
	// Plugins is nil when no plugins are configured.
	Plugins *pluginhost.Host
	// Relay is nil when Kafka is not configured. Its dead letters go by the name "kafka".
	Relay *relay.Relay
	Log   *slog.Logger
	// tokenSum is the SHA-256 of the admin token: comparing digests in constant time
	// leaks neither the token nor its length.
	tokenSum [32]byte
}

// New returns the API guarded by token.
func New(svc *links.Service, db *storage.DB, plugins *pluginhost.Host, rel *relay.Relay, token string, log *slog.Logger) *API {
	return &API{Links: svc, DB: db, Plugins: plugins, Relay: rel, Log: log, tokenSum: sha256.Sum256([]byte(token))}
}

// Body limits: a single link is small; bulk calls carry up to 10,000 links or 100,000
// recipients.
const (
	maxBody       = 64 << 10
	maxBulkBody   = 32 << 20
	maxTokensBody = 16 << 20
)

// Handler returns the admin HTTP handler.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	// The dashboard's files hold no figures: the page reads them from /api/ with the
	// admin token it asks for, so the files need none.
	mux.Handle("GET /ui/", dashboard.Handler())
	mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))

	api := http.NewServeMux()
	api.HandleFunc("POST /api/v1/links", a.createLink)
	api.HandleFunc("POST /api/v1/links/bulk", a.bulkCreate)
	api.HandleFunc("GET /api/v1/links", a.listLinks)
	api.HandleFunc("GET /api/v1/links/{slug}", a.getLink)
	api.HandleFunc("PATCH /api/v1/links/{slug}", a.updateLink)
	api.HandleFunc("DELETE /api/v1/links/{slug}", a.archiveLink)
	api.HandleFunc("POST /api/v1/links/{slug}/archive", a.archiveLink)
	api.HandleFunc("POST /api/v1/links/{slug}/tokens", a.createTokens)
	api.HandleFunc("GET /api/v1/clicks/{click_id}", a.getClick)
	api.HandleFunc("GET /api/v1/conversions/{conversion_id}", a.getConversion)
	api.HandleFunc("GET /api/v1/campaigns/{id}", a.getCampaign)
	api.HandleFunc("PUT /api/v1/campaigns/{id}", a.putCampaign)
	api.HandleFunc("GET /api/v1/reports/campaigns", a.campaignReport)
	api.HandleFunc("GET /api/v1/plugins", a.listPlugins)
	api.HandleFunc("GET /api/v1/deadletters", a.listDeadLetters)
	api.HandleFunc("GET /api/v1/deadletters/{plugin}/{seq}", a.getDeadLetter)
	api.HandleFunc("POST /api/v1/deadletters/{plugin}/replay", a.replayDeadLetters)
	api.HandleFunc("DELETE /api/v1/deadletters/{plugin}", a.purgeDeadLetters)
	api.HandleFunc("DELETE /api/v1/deadletters/{plugin}/{seq}", a.purgeDeadLetters)
	api.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		// The path may be an endpoint's under another method: say which ones, as 405.
		var allow []string
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := api.Handler(probe); pattern != "/api/" && pattern != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path+" (allowed: "+strings.Join(allow, ", ")+")", "")
			return
		}
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path, "")
	})
	mux.Handle("/api/", a.auth(api))
	// Profiles for operators, behind the admin token.
	prof := http.NewServeMux()
	prof.HandleFunc("/debug/pprof/", pprof.Index)
	prof.HandleFunc("/debug/pprof/profile", pprof.Profile)
	prof.HandleFunc("/debug/pprof/trace", pprof.Trace)
	prof.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.Handle("/debug/pprof/", a.auth(prof))
	return a.recover(mux)
}

func (a *API) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(h, "Bearer ")
		sum := sha256.Sum256([]byte(tok))
		if !ok || subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="clickgate-admin"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "a valid admin bearer token is required", "")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *API) recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				metrics.Panics.WithLabelValues("admin").Inc()
				a.Log.Error("panic in admin handler", "panic", fmt.Sprint(v), "path", r.URL.Path, "stack", string(debug.Stack()))
				writeError(w, http.StatusInternalServerError, "internal", "internal error", "")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// errorBody is the JSON error shape every 4xx and 5xx carries.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field,omitempty"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, msg, field string) {
	var b errorBody
	b.Error.Code, b.Error.Message, b.Error.Field = code, msg, field
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// decode reads a JSON body strictly: unknown fields, trailing data, wrong types and
// oversized bodies are errors that name what is wrong.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send Content-Type: application/json", "")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("unexpected data after the JSON value")
	}
	if err == nil {
		if _, e := dec.Token(); e != io.EOF {
			err = errors.New("unexpected data after the JSON value")
		}
	}
	if err == nil {
		return true
	}
	var mbe *http.MaxBytesError
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body is larger than %d bytes", limit), "")
	case errors.As(err, &ute):
		writeError(w, http.StatusBadRequest, "invalid_field", fmt.Sprintf("%s must be %s", ute.Field, jsonType(ute.Type.Kind().String())), ute.Field)
	case errors.As(err, &se):
		writeError(w, http.StatusBadRequest, "invalid_json", fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se), "")
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, "invalid_json", "body is empty", "")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		writeError(w, http.StatusBadRequest, "unknown_field", fmt.Sprintf("unknown field %q", f), f)
	default:
		writeError(w, http.StatusBadRequest, "invalid_json", err.Error(), "")
	}
	return false
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	}
	return "a number"
}

// writeErr maps service errors to statuses.
func writeErr(w http.ResponseWriter, err error) {
	var fe *links.FieldError
	var ee *storage.ExistsError
	switch {
	case errors.As(err, &fe):
		writeError(w, http.StatusBadRequest, "invalid_field", fe.Message, fe.Field)
	case errors.Is(err, links.ErrExists), errors.As(err, &ee):
		writeError(w, http.StatusConflict, "conflict", err.Error(), "slug")
	case errors.Is(err, links.ErrNotFound), errors.Is(err, storage.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error(), "")
	default:
		writeError(w, http.StatusInternalServerError, "internal", err.Error(), "")
	}
}
