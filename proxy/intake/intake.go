// Package intake takes conversions server-side (POST /v1/conversions and GET
// /v1/postback on the public listener): it validates, deduplicates on the event ID,
// attributes the conversion to an SMS click, and commits it with an outbox event before
// it answers.
package intake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/valyala/fasthttp"
	"golang.org/x/text/currency"

	"github.com/clickgate/clickgate/proxy/attribution"
	"github.com/clickgate/clickgate/proxy/identity"
	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/sdk"
	"github.com/clickgate/clickgate/storage"
)

// Intake handles conversions.
type Intake struct {
	DB      *storage.DB
	Windows attribution.Windows
	// Horizon is how long an event ID is remembered for dedupe (default 30 days).
	Horizon time.Duration
	// StrictTypes rejects types outside the standard list.
	StrictTypes bool
	// Skew is how far in the future occurred_at may be (clock drift; default 5 min).
	Skew   time.Duration
	Hasher *identity.Hasher
	// Sealer keeps the sender's plain identifiers, encrypted, until the conversion's
	// events are forwarded; nil keeps none (forwarded events carry no user).
	Sealer *identity.Sealer
	Region string
	IDs    *ids.ClickIDs
	Log    *slog.Logger

	tokens [][32]byte
	seed   maphash.Seed
	// locks serialise conversions with the same dedupe key; enough stripes that the
	// items of a full batch, in flight together, rarely wait on an unrelated one.
	locks   [4096]sync.Mutex
	workers *workers
}

// New returns an intake accepting the given bearer tokens.
func New(tokens []string) *Intake {
	in := &Intake{Horizon: 30 * 24 * time.Hour, Skew: 5 * time.Minute, seed: maphash.MakeSeed(), workers: newWorkers(10 * time.Second)}
	for _, t := range tokens {
		in.tokens = append(in.tokens, sha256.Sum256([]byte(strings.TrimSpace(t))))
	}
	return in
}

// codeUnavailable is the error code of a conversion the store could not take.
const codeUnavailable = "unavailable"

// MaxBatch is the most conversions one request carries.
const MaxBatch = 1000

// batchParallel bounds the items of one batch in flight at once.
const batchParallel = 256

// Standard conversion types; others are accepted as custom unless StrictTypes.
var standardTypes = map[string]bool{"purchase": true, "lead": true, "signup": true, "add_to_cart": true, "call": true}

var (
	typeRE    = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)
	numberRE  = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`) // a JSON number
	eventIDRE = regexp.MustCompile(`^[\x21-\x7e]{1,128}$`)
)

// Input is one conversion as sent.
type Input struct {
	EventID    *string    `json:"event_id"`
	Type       *string    `json:"type"`
	Value      *float64   `json:"value"`
	Currency   *string    `json:"currency"`
	OccurredAt *string    `json:"occurred_at"`
	ClickID    *string    `json:"click_id"`
	VisitorID  *string    `json:"visitor_id"`
	User       *UserInput `json:"user"`
	Status     *string    `json:"status"`
}

// UserInput carries the identities a merchant knows.
type UserInput struct {
	Email      *string `json:"email"`
	Phone      *string `json:"phone"`
	CustomerID *string `json:"customer_id"`
}

// FieldError is a rejected field.
type FieldError struct{ Field, Message string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func bad(field, format string, a ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, a...)}
}

// valid is a validated conversion.
type valid struct {
	eventID, typ, status, currency string
	value                          *float64
	occurred                       time.Time
	clickID                        *ids.ClickID
	visitor                        string
	idents                         []storage.IdentityRef
	user                           sdk.User // the same identities in plain form, for sealing
}

func (in *Intake) validate(x *Input, now time.Time) (*valid, error) {
	v := &valid{status: "approved", occurred: now}
	if x.EventID == nil || !eventIDRE.MatchString(*x.EventID) {
		return nil, bad("event_id", "required: 1 to 128 printable ASCII characters")
	}
	v.eventID = *x.EventID
	if x.Type == nil || !typeRE.MatchString(*x.Type) {
		return nil, bad("type", "required: purchase, lead, signup, add_to_cart, call, or a custom lowercase name")
	}
	v.typ = *x.Type
	if in.StrictTypes && !standardTypes[v.typ] {
		return nil, bad("type", "%q is not one of purchase, lead, signup, add_to_cart, call", v.typ)
	}
	if x.Status != nil {
		switch *x.Status {
		case "approved", "refunded", "rejected":
			v.status = *x.Status
		default:
			return nil, bad("status", "want approved, refunded or rejected")
		}
	}
	if x.Value != nil {
		if math.IsNaN(*x.Value) || math.IsInf(*x.Value, 0) || *x.Value < 0 {
			return nil, bad("value", "must be a finite number, 0 or more")
		}
		if *x.Value > 1e12 {
			return nil, bad("value", "is implausibly large")
		}
		v.value = x.Value
		if x.Currency == nil {
			return nil, bad("currency", "required with value (ISO 4217, e.g. USD)")
		}
	}
	if x.Currency != nil {
		u, err := currency.ParseISO(*x.Currency)
		if err != nil || u.String() != *x.Currency {
			return nil, bad("currency", "%q is not an ISO 4217 code like USD", trunc(*x.Currency))
		}
		v.currency = *x.Currency
	}
	if x.OccurredAt != nil {
		t, err := time.Parse(time.RFC3339Nano, *x.OccurredAt)
		if err != nil {
			return nil, bad("occurred_at", "want RFC 3339, e.g. 2026-11-27T10:00:00Z")
		}
		if t.After(now.Add(in.Skew)) {
			return nil, bad("occurred_at", "is in the future")
		}
		if t.Before(now.Add(-10 * 365 * 24 * time.Hour)) {
			return nil, bad("occurred_at", "is more than ten years ago")
		}
		v.occurred = t.UTC()
	}
	if x.ClickID != nil {
		id, err := ids.ParseClickID(*x.ClickID)
		if err != nil {
			return nil, bad("click_id", "is not a clickgate click ID (%v)", errors.Unwrap(err))
		}
		v.clickID = &id
	}
	if x.VisitorID != nil {
		if _, err := ids.ParseVisitorID(*x.VisitorID); err != nil {
			return nil, bad("visitor_id", "is not a clickgate visitor ID")
		}
		v.visitor = *x.VisitorID
	}
	if u := x.User; u != nil {
		for _, f := range []struct {
			kind string
			val  *string
		}{{identity.Email, u.Email}, {identity.Phone, u.Phone}, {identity.CustomerID, u.CustomerID}} {
			if f.val == nil {
				continue
			}
			norm, err := identity.Normalize(f.kind, *f.val, in.Region)
			if err != nil {
				return nil, bad("user."+f.kind, "%v", err)
			}
			v.idents = append(v.idents, storage.IdentityRef{Kind: f.kind, Value: in.Hasher.Stored(f.kind, norm)})
			switch f.kind {
			case identity.Email:
				v.user.Email = norm
			case identity.Phone:
				v.user.Phone = norm
			case identity.CustomerID:
				v.user.CustomerID = norm
			}
		}
	}
	return v, nil
}

func trunc(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

// Answer is the result for one conversion.
type Answer struct {
	Duplicate     bool           `json:"duplicate"`
	StatusChanged bool           `json:"status_changed,omitempty"`
	ConversionID  string         `json:"conversion_id,omitempty"`
	Status        string         `json:"status,omitempty"`
	Attribution   *storage.Touch `json:"attribution"`
	Reason        string         `json:"reason,omitempty"`
	Error         *ErrorBody     `json:"error,omitempty"`
}

// ErrorBody is the error shape.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// reads is what the conversions of one request attribute from: one snapshot, taken when
// the first of them needs it, once every click answered before the request arrived is
// indexed. The items of a batch share it: a snapshot costs about as much as the
// visitor's clicks read through it, and the items are in flight together, so none of
// them could count on seeing another's identity links anyway.
type reads struct {
	once sync.Once
	snap *storage.Snapshot
	err  error
}

// snapshot returns the request's snapshot, taking it on the first call.
func (in *Intake) snapshot(ctx context.Context, r *reads) (*storage.Snapshot, error) {
	r.once.Do(func() {
		// Under load the index is usually caught up already, and a deadline on the
		// request's context costs a timer and a goroutine watching the request.
		if head := in.DB.ClickHead(); !in.DB.Indexed(head) {
			wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			if !in.DB.WaitIndexed(wctx, head) {
				in.Log.Warn("attributing before the visitor index caught up")
			}
			cancel()
		}
		r.snap, r.err = in.DB.Snapshot()
	})
	return r.snap, r.err
}

// close releases the snapshot, if one was taken; every item using it must be done.
func (r *reads) close() {
	if r.snap != nil {
		r.snap.Close()
	}
}

// process dedupes, attributes and stores one valid conversion.
func (in *Intake) process(ctx context.Context, r *reads, v *valid, source string, now time.Time) (*Answer, error) {
	// One lock per dedupe key stripe: two copies of an event in flight cannot both be new.
	l := &in.locks[maphash.String(in.seed, v.typ+"\x00"+v.eventID)%uint64(len(in.locks))]
	l.Lock()
	defer l.Unlock()
	old, oldID, err := in.DB.ConversionByEvent(v.typ, v.eventID)
	if errors.Is(err, storage.ErrNotFound) && v.status != "approved" {
		// Past the dedupe horizon the event is forgotten, but not its conversion: a
		// refund weeks later still reverses the purchase rather than adding a refunded
		// conversion beside it.
		old, oldID, err = in.DB.FindConversion(v.typ, v.eventID)
	}
	switch {
	case err == nil:
		a := &Answer{Duplicate: true, ConversionID: old.ID, Status: old.Status, Attribution: old.LastClick, Reason: old.Reason}
		if v.status != "approved" && v.status != old.Status {
			// A refund or rejection reverses the conversion's value; it is not a new one.
			old.Status, old.Revision = v.status, max(old.Revision, 0)+1
			// Senders often resend the purchase as it was, its occurred_at included, with
			// only the status changed: a time not after the purchase's, or an earlier
			// change's, is not this change's, which then happened when it arrived.
			floor := old.OccurredAt
			if old.StatusChangedAt.After(floor) {
				floor = old.StatusChangedAt
			}
			old.StatusChangedAt = v.occurred.UTC()
			if !v.occurred.After(floor) {
				old.StatusChangedAt = now.UTC()
			}
			if _, err := in.DB.PutConversion(oldID, old, in.Horizon, in.sealUser(oldID, v)); err != nil {
				return nil, err
			}
			a.Duplicate, a.StatusChanged, a.Status = false, true, v.status
		}
		return a, nil
	case !errors.Is(err, storage.ErrNotFound):
		return nil, err
	}
	snap, err := in.snapshot(ctx, r)
	if err != nil {
		return nil, err
	}
	res, err := attribution.Attribute(snap, in.Windows, attribution.Conversion{
		Type: v.typ, OccurredAt: v.occurred, ClickID: v.clickID, VisitorID: v.visitor, Identities: v.idents,
	})
	if err != nil {
		return nil, err
	}
	id := ids.ClickID(in.IDs.New(now))
	c := &storage.Conversion{
		ID: id.String(), EventID: v.eventID, Type: v.typ, Status: v.status, Value: v.value, Currency: v.currency,
		OccurredAt: v.occurred, ReceivedAt: now.UTC(), VisitorID: v.visitor, Identities: v.idents,
		LastClick: res.Last, FirstClick: res.First, Linear: res.Linear, Reason: res.Reason, Source: source,
	}
	if v.clickID != nil {
		c.ClickID = v.clickID.String()
	}
	// The identity graph learns from every conversion that names a visitor and a person.
	var links []storage.KV
	if v.visitor != "" {
		for _, ident := range v.idents {
			links = append(links, storage.IdentityLinks(v.visitor, ident)...)
		}
	}
	links = append(links, in.sealUser(id, v)...)
	if _, err := in.DB.PutConversion(id, c, in.Horizon, links); err != nil {
		return nil, err
	}
	return &Answer{ConversionID: c.ID, Status: c.Status, Attribution: res.Last, Reason: res.Reason}, nil
}

// sealUser returns the record keeping v's plain identifiers for conversion id's events,
// if there are any and the intake keeps them.
func (in *Intake) sealUser(id [16]byte, v *valid) []storage.KV {
	if in.Sealer == nil || v.user == (sdk.User{}) {
		return nil
	}
	plain, err := json.Marshal(v.user)
	if err != nil {
		return nil
	}
	return []storage.KV{storage.SealedUser(id, in.Sealer.Seal(plain, id[:]), in.Horizon)}
}

// authorized checks the bearer token (or, for postbacks, the key parameter) in constant
// time against every ingest token.
func (in *Intake) authorized(tok []byte) bool {
	sum := sha256.Sum256(tok)
	ok := 0
	for _, t := range in.tokens {
		ok |= subtle.ConstantTimeCompare(sum[:], t[:])
	}
	return ok == 1 && len(tok) > 0
}

func bearer(ctx *fasthttp.RequestCtx) []byte {
	h := ctx.Request.Header.Peek("Authorization")
	if t, ok := bytes.CutPrefix(h, []byte("Bearer ")); ok {
		return t
	}
	return nil
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, _ := json.Marshal(v)
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBody(b)
}

func writeError(ctx *fasthttp.RequestCtx, status int, code, msg, field string) {
	writeJSON(ctx, status, struct {
		Error ErrorBody `json:"error"`
	}{ErrorBody{code, msg, field}})
}

// Conversions handles POST /v1/conversions: one conversion, or {"conversions": [...]}.
func (in *Intake) Conversions(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		writeError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "use POST", "")
		return
	}
	if !in.authorized(bearer(ctx)) {
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="clickgate-ingest"`)
		writeError(ctx, fasthttp.StatusUnauthorized, "unauthorized", "a valid ingest bearer token is required", "")
		return
	}
	if ct := ctx.Request.Header.ContentType(); len(ct) > 0 && !bytes.HasPrefix(ct, []byte("application/json")) {
		writeError(ctx, fasthttp.StatusUnsupportedMediaType, "unsupported_media_type", "send Content-Type: application/json", "")
		return
	}
	body := ctx.PostBody()
	trim := bytes.TrimSpace(body)
	if len(trim) == 0 {
		writeError(ctx, fasthttp.StatusBadRequest, "invalid_json", "body is empty", "")
		return
	}
	if trim[0] != '{' {
		writeError(ctx, fasthttp.StatusBadRequest, "invalid_json", "send a JSON object", "")
		return
	}
	if !nestingWithin(trim, maxNesting) {
		writeError(ctx, fasthttp.StatusBadRequest, "invalid_json", fmt.Sprintf("JSON nested deeper than %d levels", maxNesting), "")
		return
	}
	// One pass tells a batch from a single conversion and checks the body is one JSON
	// object; it keeps nothing but the batch's array, so a single conversion is then
	// decoded once, strictly, by one.
	var probe struct {
		Conversions json.RawMessage `json:"conversions"`
	}
	if err := json.Unmarshal(trim, &probe); err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, "invalid_json", "malformed JSON: "+err.Error(), "")
		return
	}
	isBatch := probe.Conversions != nil
	var batch []json.RawMessage
	if isBatch {
		if err := json.Unmarshal(probe.Conversions, &batch); err != nil {
			writeError(ctx, fasthttp.StatusBadRequest, "invalid_json", "conversions must be an array of objects", "conversions")
			return
		}
	}
	now := time.Now()
	if !isBatch {
		r := &reads{}
		defer r.close()
		a, status := in.one(ctx, r, trim, now)
		writeJSON(ctx, status, a)
		return
	}
	if len(batch) == 0 || len(batch) > MaxBatch {
		writeError(ctx, fasthttp.StatusBadRequest, "invalid_field", fmt.Sprintf("send 1 to %d conversions", MaxBatch), "conversions")
		return
	}
	out := struct {
		Results []*Answer `json:"results"`
	}{make([]*Answer, len(batch))}
	// The items go through together so their commits share group commits: one at a
	// time, a batch of a thousand would wait for a thousand commits in a row. Copies of
	// one event ID in a batch still meet on their dedupe lock, so one of them is new.
	r := &reads{}
	defer r.close()
	var wg sync.WaitGroup
	sem := make(chan struct{}, batchParallel)
	for i, raw := range batch {
		sem <- struct{}{}
		wg.Add(1)
		in.workers.do(func() {
			defer func() { <-sem; wg.Done() }()
			a, _ := in.one(ctx, r, raw, now)
			if e, ok := a.(*errorAnswer); ok {
				e.Error.Field = fmt.Sprintf("conversions[%d]%s", i, dotted(e.Error.Field))
				out.Results[i] = &Answer{Error: &e.Error}
				return
			}
			out.Results[i] = a.(*Answer)
		})
	}
	wg.Wait()
	// A 2xx says every conversion in it was dealt with: one the store could not take is
	// retried by the sender only if the answer says so. The whole batch comes again; the
	// items stored this time answer duplicate then.
	status := fasthttp.StatusOK
	for _, a := range out.Results {
		if a.Error != nil && a.Error.Code == codeUnavailable {
			status = fasthttp.StatusServiceUnavailable
			break
		}
	}
	writeJSON(ctx, status, out)
}

// maxNesting bounds how deeply a conversion body's arrays and objects may nest: the
// JSON decoder recurses once a level with no limit of its own, so a megabyte of
// brackets would grow the goroutine's stack by hundreds of megabytes. A conversion
// needs five levels at most.
const maxNesting = 64

// nestingWithin reports whether no array or object in b is nested more than max deep.
// It reads brackets only outside strings and checks nothing else: the decoder does.
func nestingWithin(b []byte, max int) bool {
	depth := 0
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			if depth++; depth > max {
				return false
			}
		case (c == ']' || c == '}') && depth > 0:
			depth-- // a closer too many is the decoder's error, not a credit
		}
	}
	return true
}

func dotted(f string) string {
	if f == "" {
		return ""
	}
	return "." + f
}

type errorAnswer struct {
	Error ErrorBody `json:"error"`
}

// one handles one conversion document: an *Answer, or an *errorAnswer and its status.
func (in *Intake) one(ctx context.Context, r *reads, raw []byte, now time.Time) (any, int) {
	var x Input
	// raw is one JSON value (the body, checked whole by Conversions, or a batch item), so
	// nothing can follow it. Parse rather than a Decoder: a Decoder buffers its reader
	// in a fresh 32 KiB-plus allocation per document, a tenth of the intake's CPU.
	if _, err := json.Parse(raw, &x, json.DisallowUnknownFields); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return &errorAnswer{ErrorBody{"invalid_field", ute.Field + " has the wrong type", ute.Field}}, fasthttp.StatusBadRequest
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			f = strings.Trim(f, `"`)
			return &errorAnswer{ErrorBody{"unknown_field", "unknown field " + strconv.Quote(f), f}}, fasthttp.StatusBadRequest
		}
		return &errorAnswer{ErrorBody{"invalid_json", "malformed conversion: " + err.Error(), ""}}, fasthttp.StatusBadRequest
	}
	v, err := in.validate(&x, now)
	if err != nil {
		var fe *FieldError
		errors.As(err, &fe)
		return &errorAnswer{ErrorBody{"invalid_field", fe.Message, fe.Field}}, fasthttp.StatusBadRequest
	}
	a, err := in.process(ctx, r, v, "api", now)
	if err != nil {
		in.Log.Error("conversion not stored", "event_id", v.eventID, "err", err)
		return &errorAnswer{ErrorBody{codeUnavailable, "the conversion could not be stored; retry", ""}}, fasthttp.StatusServiceUnavailable
	}
	return a, fasthttp.StatusOK
}

// Postback handles GET /v1/postback?click_id=&type=&value=&currency=&event_id= for
// platforms that can only fire a URL; the token comes in the Authorization header or
// the key parameter.
func (in *Intake) Postback(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	tok := bearer(ctx)
	if tok == nil {
		tok = args.Peek("key")
	}
	if !in.authorized(tok) {
		writeError(ctx, fasthttp.StatusUnauthorized, "unauthorized", "a valid ingest token is required (Authorization header or key parameter)", "")
		return
	}
	str := func(k string) *string {
		if !args.Has(k) {
			return nil
		}
		s := string(args.Peek(k))
		return &s
	}
	x := Input{EventID: str("event_id"), Type: str("type"), Currency: str("currency"), OccurredAt: str("occurred_at"),
		ClickID: str("click_id"), VisitorID: str("visitor_id"), Status: str("status")}
	if s := str("value"); s != nil {
		// A number as JSON writes one: ParseFloat also takes NaN, Inf, hexadecimal (0x1p4),
		// underscores and a leading +, which no tracker means.
		f, err := strconv.ParseFloat(*s, 64)
		if err != nil || !numberRE.MatchString(*s) {
			writeError(ctx, fasthttp.StatusBadRequest, "invalid_field", "value must be a number like 12.50", "value")
			return
		}
		x.Value = &f
	}
	now := time.Now()
	v, err := in.validate(&x, now)
	if err != nil {
		var fe *FieldError
		errors.As(err, &fe)
		writeError(ctx, fasthttp.StatusBadRequest, "invalid_field", fe.Message, fe.Field)
		return
	}
	r := &reads{}
	defer r.close()
	a, err := in.process(ctx, r, v, "postback", now)
	if err != nil {
		in.Log.Error("postback not stored", "event_id", v.eventID, "err", err)
		writeError(ctx, fasthttp.StatusServiceUnavailable, codeUnavailable, "the conversion could not be stored; retry", "")
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, a)
}
