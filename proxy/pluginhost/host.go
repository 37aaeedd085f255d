package pluginhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/clickgate/clickgate/proxy/backoff"
	"github.com/clickgate/clickgate/proxy/events"
	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/sdk"
	"github.com/clickgate/clickgate/sdk/host"
	"github.com/clickgate/clickgate/storage"
)

// Host runs every plugin of a plugins file.
type Host struct {
	db      *storage.DB
	users   events.Users
	log     *slog.Logger
	runners map[string]*runner
	order   []string
}

// New prepares the plugins of f; Run starts them. users says which events carry plain
// identifiers.
func New(db *storage.DB, f *File, users events.Users, log *slog.Logger) *Host {
	h := &Host{db: db, users: users, log: log, runners: map[string]*runner{}}
	for _, s := range f.Plugins {
		r := &runner{spec: s, db: db, users: users, consumer: Consumer(s.Name), log: log.With("plugin", s.Name), replays: make(chan replayReq)}
		r.state.Store("starting")
		db.Register(r.consumer)
		h.runners[s.Name] = r
		h.order = append(h.order, s.Name)
	}
	return h
}

// Consumer is a plugin's cursor and dead-letter namespace in storage.
func Consumer(name string) string { return "plugin:" + name }

// Run runs every plugin until ctx ends, then closes them.
func (h *Host) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, r := range h.runners {
		wg.Add(1)
		go func() { defer wg.Done(); r.run(ctx) }()
	}
	wg.Wait()
}

// Status is a plugin's state for /readyz and the admin API.
type Status struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Error string `json:"error,omitempty"`
	PID   int    `json:"pid,omitempty"`
	Lag   uint64 `json:"lag"`
}

// Statuses lists every plugin's state.
func (h *Host) Statuses() []Status {
	var out []Status
	for _, n := range h.order {
		out = append(out, h.runners[n].status())
	}
	return out
}

// Names lists the configured plugins.
func (h *Host) Names() []string { return append([]string(nil), h.order...) }

// ErrUnknownPlugin is returned for a plugin not in the plugins file.
var ErrUnknownPlugin = errors.New("no such plugin")

// Replay sends dead letters (all of the plugin's when seqs is empty) to the plugin
// again; delivered ones are removed, the others stay with the new reason. The plugin's
// runner does it when idle, and live delivery waits meanwhile. One whose ctx ends stops
// after the call in flight and answers what it did, with the context's error.
func (h *Host) Replay(ctx context.Context, plugin string, seqs []uint64) (storage.ReplayResult, error) {
	r := h.runners[plugin]
	if r == nil {
		return storage.ReplayResult{}, fmt.Errorf("%w: %q", ErrUnknownPlugin, plugin)
	}
	req := replayReq{ctx: ctx, seqs: seqs, done: make(chan replayResp, 1)}
	select {
	case r.replays <- req:
	case <-ctx.Done():
		return storage.ReplayResult{}, ctx.Err()
	}
	// Taken: the runner answers, at the latest after the call in flight (bounded by the
	// plugin's timeout) once ctx ends.
	resp := <-req.done
	return resp.res, resp.err
}

type replayReq struct {
	ctx  context.Context // the request's: the replay stops when it ends
	seqs []uint64
	done chan replayResp
}

type replayResp struct {
	res storage.ReplayResult
	err error
}

// An idle plugin is health-checked every healthEvery; one that does not answer within
// healthTimeout (frozen, or wedged) is killed and relaunched.
const (
	healthEvery   = 5 * time.Second
	healthTimeout = 5 * time.Second
)

// runner feeds one plugin.
type runner struct {
	spec     Spec
	db       *storage.DB
	users    events.Users
	consumer string
	log      *slog.Logger
	replays  chan replayReq

	p       *host.Plugin
	state   syncString
	lastErr syncString
	cursor  uint64
	mu      sync.Mutex
}

// pending is an event being delivered, with its attempts so far.
type pending struct {
	seq      uint64
	ev       sdk.Event
	attempts int
	lastWhy  string
}

func (r *runner) status() Status {
	r.mu.Lock()
	cursor, p := r.cursor, r.p
	r.mu.Unlock()
	s := Status{Name: r.spec.Name, State: r.state.Load(), Error: r.lastErr.Load()}
	if p != nil {
		s.PID = p.PID()
	}
	if head := r.db.OutboxHead(); head > cursor {
		s.Lag = head - cursor
	}
	return s
}

func (r *runner) run(ctx context.Context) {
	defer func() {
		if r.p != nil {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r.p.Close(cctx)
			cancel()
		}
		up.WithLabelValues(r.spec.Name).Set(0)
	}()
	cursor, err := r.db.Cursor(r.consumer)
	for err != nil {
		r.log.Error("cannot read the plugin cursor", "err", err)
		if !backoff.Sleep(ctx, time.Second) {
			return
		}
		cursor, err = r.db.Cursor(r.consumer)
	}
	r.setCursor(cursor)
	launchBackoff := backoff.Backoff{Min: 500 * time.Millisecond, Max: time.Minute}
	retryBackoff := backoff.Backoff{Min: 200 * time.Millisecond, Max: 30 * time.Second}
	var batch []*pending
	var batchNext uint64 // cursor once the batch is resolved
	// span is how many of the batch's events go in the next call, 0 for all of them.
	// A call that kills the plugin does not say which event did: the next calls take
	// half as many until the one that does is alone, and only it uses up attempts and
	// becomes a dead letter. Calls that go through double it again.
	span := 0
	health := time.NewTicker(healthEvery)
	defer health.Stop()
	for ctx.Err() == nil {
		if r.p == nil {
			if err := r.launch(ctx); err != nil {
				r.state.Store("failed")
				r.lastErr.Store(err.Error())
				r.log.Error("plugin not running; events wait in the outbox", "err", err)
				if !backoff.Sleep(ctx, launchBackoff.Next()) {
					return
				}
				continue
			}
			launchBackoff.Reset()
		}
		if len(batch) == 0 {
			var ok bool
			batch, batchNext, ok = r.next(ctx, cursor, health.C)
			if !ok {
				continue
			}
			span = 0
			if len(batch) == 0 { // every event filtered out
				cursor = batchNext
				r.advance(ctx, cursor)
				continue
			}
		}
		n := len(batch)
		if span > 0 {
			n = min(n, span)
		}
		before := len(batch)
		wait, alive := r.deliver(ctx, batch[:n])
		batch = compact(batch)
		if len(batch) == 0 {
			// Also when the last of them was dead-lettered by a call that killed the
			// plugin: the next batch starts past them.
			cursor = batchNext
			r.advance(ctx, cursor)
			retryBackoff.Reset()
		}
		if !alive {
			span = max(1, n/2)
			if !backoff.Sleep(ctx, launchBackoff.Next()) {
				return
			}
			continue
		}
		if span > 0 {
			span *= 2
		}
		if len(batch) == 0 {
			continue
		}
		if before-len(batch) == n {
			continue // the call's part was settled: the rest goes at once
		}
		if !backoff.Sleep(ctx, max(wait, retryBackoff.Next())) {
			return
		}
	}
}

// next reads the next batch from the outbox, serving replays and health checks while it
// waits. It returns the events that pass the filter and the cursor past all of them.
func (r *runner) next(ctx context.Context, cursor uint64, health <-chan time.Time) ([]*pending, uint64, bool) {
	changed := r.db.OutboxChanged()
	evs, err := r.db.ReadEvents(cursor, r.spec.BatchSize)
	if err != nil {
		r.log.Error("cannot read the outbox", "err", err)
		backoff.Sleep(ctx, time.Second)
		return nil, 0, false
	}
	if len(evs) == 0 {
		select {
		case <-ctx.Done():
		case <-changed:
			backoff.Sleep(ctx, r.spec.Linger.Duration)
		case req := <-r.replays:
			res, err := r.replay(ctx, req.ctx, req.seqs)
			req.done <- replayResp{res, err}
		case <-health:
			pctx, cancel := context.WithTimeout(ctx, healthTimeout)
			err := r.p.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				r.restart(fmt.Errorf("health check failed: %w", err))
			}
		}
		return nil, 0, false
	}
	var out []*pending
	for _, e := range evs {
		if ev, ok := r.event(e); ok {
			out = append(out, &pending{seq: e.Seq, ev: ev})
		}
	}
	return out, evs[len(evs)-1].Seq + 1, true
}

// event converts an outbox event and applies the plugin's filter.
func (r *runner) event(e storage.Event) (sdk.Event, bool) {
	if e.Record == nil {
		return sdk.Event{}, false
	}
	if e.Kind == storage.EventConversion {
		if !contains(r.spec.Events, sdk.TypeConversion) {
			return sdk.Event{}, false
		}
		c, err := storage.DecodeConversion(e.Record)
		if err != nil {
			r.log.Error("undecodable conversion skipped", "seq", e.Seq, "err", err)
			return sdk.Event{}, false
		}
		ev := events.FromConversion(c)
		if ev.User, err = r.users.Conversion(e); err != nil {
			r.log.Warn("conversion forwarded without its identifiers", "seq", e.Seq, "err", err)
		}
		if len(r.spec.Campaigns) > 0 && (ev.Attribution == nil || !contains(r.spec.Campaigns, ev.Attribution.Campaign)) {
			return sdk.Event{}, false
		}
		raw, err := json.Marshal(ev)
		if err != nil {
			return sdk.Event{}, false
		}
		// The ID is a view into the decoded record: queued for retries, it would keep
		// the whole record.
		return sdk.Event{ID: strings.Clone(ev.EventID), Type: sdk.TypeConversion, Time: c.OccurredAt, JSON: raw}, true
	}
	if e.Kind != storage.EventClick || !contains(r.spec.Events, sdk.TypeClick) {
		return sdk.Event{}, false
	}
	c, err := storage.DecodeClick(e.Record)
	if err != nil {
		r.log.Error("undecodable click skipped", "seq", e.Seq, "err", err)
		return sdk.Event{}, false
	}
	if (c.Bot && !r.spec.IncludeBots) || (c.Test && !r.spec.IncludeTests) ||
		(len(r.spec.Campaigns) > 0 && !contains(r.spec.Campaigns, c.Campaign)) {
		return sdk.Event{}, false
	}
	return sdk.Event{ID: ids.ClickID(c.ID).String(), Type: sdk.TypeClick, Time: c.Time, JSON: events.AppendClickJSON(nil, c, r.clickUser(c))}, true
}

// deliver calls the plugin once for the unresolved events of a batch. It returns how
// long the plugin asked to wait before a retry, and false when the plugin had to be
// killed.
func (r *runner) deliver(ctx context.Context, batch []*pending) (time.Duration, bool) {
	evs := make([]sdk.Event, len(batch))
	for i, p := range batch {
		evs[i] = p.ev
	}
	cctx, cancel := context.WithTimeout(ctx, r.spec.Timeout.Duration)
	start := time.Now()
	results, err := r.p.Forward(cctx, evs)
	cancel()
	callSeconds.WithLabelValues(r.spec.Name).Observe(time.Since(start).Seconds())
	if err != nil && status.Code(err) == codes.Unknown {
		// The forwarder itself returned an error: the process is fine, the batch is
		// retried later as a whole.
		for i, p := range batch {
			p.attempts++
			retried.WithLabelValues(r.spec.Name).Inc()
			if p.attempts >= r.spec.MaxAttempts {
				if r.deadLetter(ctx, p, fmt.Sprintf("gave up after %d attempts: %v", p.attempts, err)) {
					batch[i] = nil
				}
			}
		}
		return 0, true
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, true
		}
		// A dead or hung plugin cannot be trusted with the next call: kill it (and its
		// process group) and start a fresh one; the same events go to the new process.
		r.restart(fmt.Errorf("forward failed: %w", err))
		if len(batch) > 1 {
			// Which event did it is not known: the caller splits the batch, and no
			// attempt is counted until an event is alone.
			return 0, false
		}
		// An event that keeps killing the plugin alone is dead-lettered like any
		// other, so one poison event cannot stop the stream.
		p := batch[0]
		p.attempts++
		if p.attempts >= r.spec.MaxAttempts && r.deadLetter(ctx, p, fmt.Sprintf("gave up after %d attempts: the plugin crashed or hung: %v", p.attempts, err)) {
			batch[0] = nil
		}
		return 0, false
	}
	return r.settle(ctx, batch, results), true
}

// settle applies a plugin's results to its batch: delivered and failed events leave it
// (failed ones dead-lettered), the rest stay for a retry. It returns how long to wait
// before that retry. A dead letter that could not be stored before ctx ended stays in
// the batch, unresolved.
//
// An event the plugin did not try (StatusNotSent) uses up no attempt while the call
// tried others: a call that runs short of time, or stops after a request that must
// wait, would otherwise dead-letter the end of every batch without sending it. A call
// that tried nothing counts an attempt for each, so a plugin that never gets to send
// (its per-request timeout above the call's) does not stall the stream for ever.
func (r *runner) settle(ctx context.Context, batch []*pending, results []sdk.Result) time.Duration {
	var wait time.Duration
	tried := slices.ContainsFunc(results, func(res sdk.Result) bool { return res.Status != sdk.StatusNotSent })
	for i, res := range results {
		p := batch[i]
		if res.Status == sdk.StatusNotSent && tried {
			p.lastWhy = res.Reason
			wait = max(wait, min(res.RetryAfter, sdk.MaxRetryAfter))
			continue
		}
		p.attempts++
		switch res.Status {
		case sdk.StatusDelivered:
			delivered.WithLabelValues(r.spec.Name).Inc()
			batch[i] = nil
		case sdk.StatusFailed:
			if r.deadLetter(ctx, p, res.Reason) {
				batch[i] = nil
			}
		default:
			retried.WithLabelValues(r.spec.Name).Inc()
			p.lastWhy = res.Reason
			if p.attempts >= r.spec.MaxAttempts {
				if r.deadLetter(ctx, p, fmt.Sprintf("gave up after %d attempts: %s", p.attempts, res.Reason)) {
					batch[i] = nil
				}
				continue
			}
			// A plugin's word on when to retry is honoured up to a bound, so a bogus
			// header it passed on cannot park the stream for days.
			wait = max(wait, min(res.RetryAfter, sdk.MaxRetryAfter))
		}
	}
	return wait
}

// deadLetter stores p as a dead letter and reports whether it did. A dead letter that
// cannot be stored must not be dropped: the write is retried until ctx ends, and then
// the event stays unresolved (the cursor does not pass it; a restart delivers it again).
func (r *runner) deadLetter(ctx context.Context, p *pending, reason string) bool {
	d := &storage.DeadLetter{Consumer: r.consumer, Seq: p.seq, EventID: p.ev.ID, Type: p.ev.Type, Time: p.ev.Time,
		Event: p.ev.JSON, Reason: reason, Attempts: p.attempts, FailedAt: time.Now().UTC()}
	for {
		err := r.db.PutDeadLetter(d)
		if err == nil {
			break
		}
		r.log.Error("cannot store a dead letter; retrying", "event_id", p.ev.ID, "err", err)
		if !backoff.Sleep(ctx, time.Second) {
			return false
		}
	}
	deadLettered.WithLabelValues(r.spec.Name).Inc()
	r.log.Warn("event dead-lettered", "event_id", p.ev.ID, "reason", reason, "attempts", p.attempts)
	return true
}

// replay sends the named dead letters again, or every one of them page by page, and
// counts what it did, up to a failure or the end of the runner's ctx or the request's.
func (r *runner) replay(ctx, reqCtx context.Context, seqs []uint64) (storage.ReplayResult, error) {
	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(reqCtx, cancel)()
	var res storage.ReplayResult
	if len(seqs) > 0 {
		dls, err := r.db.GetDeadLetters(r.consumer, seqs)
		if err != nil {
			return res, err
		}
		return res, r.replayLetters(ctx, stop, dls, &res)
	}
	return res, r.db.EachDeadLetters(stop, r.consumer, func(dls []*storage.DeadLetter) error {
		return r.replayLetters(ctx, stop, dls, &res)
	})
}

// replayLetters forwards dls in the plugin's batches until stop ends: delivered letters
// are removed, the others stay with the plugin's new reason. A call runs under the
// runner's ctx, not stop: one cut off by a request that ended would leave its letters
// delivered but not removed, to be sent again by the next replay.
func (r *runner) replayLetters(ctx, stop context.Context, dls []*storage.DeadLetter, res *storage.ReplayResult) error {
	for start := 0; start < len(dls); start += r.spec.BatchSize {
		if err := stop.Err(); err != nil {
			return err
		}
		chunk := dls[start:min(start+r.spec.BatchSize, len(dls))]
		evs := make([]sdk.Event, len(chunk))
		for i, d := range chunk {
			evs[i] = sdk.Event{ID: d.EventID, Type: d.Type, Time: d.Time, JSON: d.Event}
		}
		cctx, cancel := context.WithTimeout(ctx, r.spec.Timeout.Duration)
		results, err := r.p.Forward(cctx, evs)
		cancel()
		if err != nil {
			r.restart(fmt.Errorf("forward failed during replay: %w", err))
			return fmt.Errorf("plugin failed during replay: %w", err)
		}
		var done []uint64
		for i, rr := range results {
			d := chunk[i]
			if rr.Status == sdk.StatusNotSent {
				continue // not tried: it keeps its reason and attempts for the next replay
			}
			res.Replayed++
			if rr.Status == sdk.StatusDelivered {
				res.Delivered++
				delivered.WithLabelValues(r.spec.Name).Inc()
				done = append(done, d.Seq)
				continue
			}
			res.Failed++
			d.Attempts++
			d.Reason, d.FailedAt = rr.Reason, time.Now().UTC()
			if _, err := r.db.RewriteDeadLetter(d); err != nil {
				return err
			}
		}
		if len(done) > 0 {
			if _, err := r.db.DeleteDeadLetters(r.consumer, done); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *runner) launch(ctx context.Context) error {
	p, err := host.Launch(ctx, host.Config{Path: r.spec.Path, SHA256: r.spec.SHA256, Env: r.spec.env(), Logger: r.log})
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, r.spec.Timeout.Duration)
	defer cancel()
	if err := p.Configure(cctx, r.spec.Config); err != nil {
		p.Kill()
		return err
	}
	r.mu.Lock()
	r.p = p
	r.mu.Unlock()
	r.state.Store("running")
	r.lastErr.Store("")
	up.WithLabelValues(r.spec.Name).Set(1)
	r.log.Info("plugin running", "pid", p.PID(), "name", p.Info.Name, "version", p.Info.Version)
	return nil
}

func (r *runner) restart(why error) {
	r.log.Warn("killing the plugin; it will be relaunched", "reason", why)
	r.mu.Lock()
	if r.p != nil {
		r.p.Kill()
		r.p = nil
	}
	r.mu.Unlock()
	r.state.Store("restarting")
	r.lastErr.Store(why.Error())
	up.WithLabelValues(r.spec.Name).Set(0)
	restarts.WithLabelValues(r.spec.Name).Inc()
}

func (r *runner) setCursor(c uint64) {
	r.mu.Lock()
	r.cursor = c
	r.mu.Unlock()
	if head := r.db.OutboxHead(); head > c {
		lag.WithLabelValues(r.spec.Name).Set(float64(head - c))
	} else {
		lag.WithLabelValues(r.spec.Name).Set(0)
	}
}

// advance stores the cursor: only events delivered, dead-lettered or filtered are behind it.
// A write that keeps failing is retried until ctx ends; the cursor then stays where it
// was stored, and a restart delivers those events again.
func (r *runner) advance(ctx context.Context, c uint64) {
	for {
		err := r.db.SetCursor(r.consumer, c)
		if err == nil {
			break
		}
		r.log.Error("cannot store the plugin cursor; retrying", "err", err)
		if !backoff.Sleep(ctx, time.Second) {
			return
		}
	}
	r.setCursor(c)
}

func compact(batch []*pending) []*pending {
	out := batch[:0]
	for _, p := range batch {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type syncString struct {
	mu sync.Mutex
	s  string
}

func (s *syncString) Store(v string) { s.mu.Lock(); s.s = v; s.mu.Unlock() }
func (s *syncString) Load() string   { s.mu.Lock(); defer s.mu.Unlock(); return s.s }

func (r *runner) clickUser(c *storage.Click) *sdk.User {
	u, err := r.users.Click(r.db, c)
	if err != nil {
		r.log.Warn("click forwarded without its identifiers", "click_id", ids.ClickID(c.ID).String(), "err", err)
	}
	return u
}
