package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/clickgate/clickgate/proxy/pluginhost"
	"github.com/clickgate/clickgate/proxy/relay"
	"github.com/clickgate/clickgate/storage"
)

// consumer maps a dead letters' owner, a plugin's name or "kafka" for the relay, to its
// consumer name in storage, answering 404 for one not configured.
func (a *API) consumer(w http.ResponseWriter, name string) (string, bool) {
	if name == relay.Consumer {
		if a.Relay == nil {
			writeError(w, http.StatusNotFound, "not_found", relay.ErrNotRunning.Error(), "plugin")
			return "", false
		}
		return relay.Consumer, true
	}
	if a.Plugins == nil {
		writeError(w, http.StatusNotFound, "not_found", "no plugins are configured (CLICKGATE_PLUGINS_FILE)", "plugin")
		return "", false
	}
	for _, n := range a.Plugins.Names() {
		if n == name {
			return pluginhost.Consumer(name), true
		}
	}
	writeError(w, http.StatusNotFound, "not_found", "no plugin named "+strconv.Quote(name), "plugin")
	return "", false
}

func (a *API) listPlugins(w http.ResponseWriter, _ *http.Request) {
	out := struct {
		Plugins []pluginhost.Status `json:"plugins"`
	}{Plugins: []pluginhost.Status{}}
	if a.Plugins != nil {
		out.Plugins = a.Plugins.Statuses()
	}
	writeJSON(w, http.StatusOK, out)
}

// listDeadLetters: GET /api/v1/deadletters?plugin=NAME&after=SEQ&limit=N
func (a *API) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := q.Get("plugin")
	if name == "" {
		writeError(w, http.StatusBadRequest, "invalid_field", "plugin is required", "plugin")
		return
	}
	consumer, ok := a.consumer(w, name)
	if !ok {
		return
	}
	limit, after := 100, uint64(0)
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "invalid_field", "limit must be 1 to 1000", "limit")
			return
		}
		limit = n
	}
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_field", "after must be a sequence number", "after")
			return
		}
		after = n
	}
	dls, err := a.DB.DeadLetters(consumer, after, limit)
	if err != nil {
		writeErr(w, err)
		return
	}
	if dls == nil {
		dls = []*storage.DeadLetter{}
	}
	out := struct {
		DeadLetters []*storage.DeadLetter `json:"dead_letters"`
		// NextAfter, on a full page, is the after= of the next one.
		NextAfter *uint64 `json:"next_after,omitempty"`
	}{DeadLetters: dls}
	if len(dls) == limit {
		out.NextAfter = &dls[len(dls)-1].Seq
	}
	writeJSON(w, http.StatusOK, out)
}

func seqParam(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	n, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_field", "seq must be a sequence number", "seq")
		return 0, false
	}
	return n, true
}

func (a *API) getDeadLetter(w http.ResponseWriter, r *http.Request) {
	consumer, ok := a.consumer(w, r.PathValue("plugin"))
	if !ok {
		return
	}
	seq, ok := seqParam(w, r)
	if !ok {
		return
	}
	d, err := a.DB.GetDeadLetter(consumer, seq)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// replayDeadLetters: POST /api/v1/deadletters/{plugin}/replay with optional
// {"seqs": [...]}; without seqs every dead letter of the plugin is replayed.
func (a *API) replayDeadLetters(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("plugin")
	if _, ok := a.consumer(w, name); !ok {
		return
	}
	var req struct {
		Seqs []uint64 `json:"seqs"`
	}
	if r.ContentLength != 0 && !decode(w, r, maxBody, &req) {
		return
	}
	var res storage.ReplayResult
	var err error
	if name == relay.Consumer {
		res, err = a.Relay.Replay(r.Context(), req.Seqs)
	} else {
		res, err = a.Plugins.Replay(r.Context(), name, req.Seqs)
	}
	if errors.Is(err, storage.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", err.Error(), "seqs")
		return
	}
	if err != nil {
		// What the replay did before it failed stands (the letters it delivered are gone):
		// the answer says how far it got, in its counts and in the message a CLI shows.
		var b struct {
			errorBody
			storage.ReplayResult
		}
		b.Error.Code, b.Error.Message, b.ReplayResult = "unavailable", err.Error(), res
		if res.Replayed > 0 {
			b.Error.Message += fmt.Sprintf(" (before that: %d replayed, %d delivered, %d failed again)", res.Replayed, res.Delivered, res.Failed)
		}
		writeJSON(w, http.StatusServiceUnavailable, b)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *API) purgeDeadLetters(w http.ResponseWriter, r *http.Request) {
	consumer, ok := a.consumer(w, r.PathValue("plugin"))
	if !ok {
		return
	}
	var seqs []uint64
	if r.PathValue("seq") != "" {
		seq, ok := seqParam(w, r)
		if !ok {
			return
		}
		seqs = []uint64{seq}
	}
	n, err := a.DB.DeleteDeadLetters(consumer, seqs)
	if err != nil {
		writeErr(w, err)
		return
	}
	if len(seqs) == 1 && n == 0 {
		writeError(w, http.StatusNotFound, "not_found", "no such dead letter", "seq")
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Purged int `json:"purged"`
	}{n})
}
