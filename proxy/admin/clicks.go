package admin

import (
	"errors"
	"net/http"

	"github.com/clickgate/clickgate/proxy/events"
	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/storage"
)

// getClick answers with the click as its event document (the same shape Kafka and
// plugins get), with a per-recipient token resolved to the identity behind it.
func (a *API) getClick(w http.ResponseWriter, r *http.Request) {
	id, err := ids.ParseClickID(r.PathValue("click_id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_field", err.Error(), "click_id")
		return
	}
	c, err := a.DB.GetClick(id)
	if err != nil {
		writeErr(w, err)
		return
	}
	ev := events.FromClick(c)
	if c.Token != "" {
		// Tokens resolve here rather than on the redirect, which must not read disk.
		rc, err := a.DB.GetRecipient(c.Domain, c.Slug, c.Token)
		switch {
		case err == nil:
			ev.Identity.Kind, ev.Identity.Value = rc.Kind, rc.Value
		case !errors.Is(err, storage.ErrNotFound):
			writeErr(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, ev)
}

// getConversion answers with a conversion as its event document: every model's touches
// (last click, first click, linear) and its current status.
func (a *API) getConversion(w http.ResponseWriter, r *http.Request) {
	id, err := ids.ParseClickID(r.PathValue("conversion_id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_field", "not a conversion ID", "conversion_id")
		return
	}
	c, err := a.DB.GetConversion(id)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, events.FromConversion(c))
}
