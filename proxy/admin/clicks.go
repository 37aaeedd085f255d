package admin

import (
	"errors"
	"net/http"
	"time"

	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/storage"
)

type clickView struct {
	ClickID     string        `json:"click_id"`
	Slug        string        `json:"slug"`
	Domain      string        `json:"domain,omitempty"`
	Time        time.Time     `json:"time"`
	VisitorID   string        `json:"visitor_id"`
	NewVisitor  bool          `json:"new_visitor"`
	Bot         bool          `json:"bot"`
	BotReason   string        `json:"bot_reason,omitempty"`
	Test        bool          `json:"test"`
	Campaign    string        `json:"campaign"`
	UTM         storage.UTM   `json:"utm"`
	Variant     *int          `json:"variant,omitempty"`
	Destination string        `json:"destination"`
	Identity    *identityView `json:"identity,omitempty"`
	IP          string        `json:"ip"`
	UserAgent   string        `json:"user_agent"`
	Referrer    string        `json:"referrer,omitempty"`
	Node        string        `json:"node"`
}

type identityView struct {
	Kind   string `json:"kind,omitempty"`
	Value  string `json:"value,omitempty"`
	Source string `json:"source"`
	Token  string `json:"token,omitempty"`
}

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
	v := clickView{
		ClickID: ids.ClickID(c.ID).String(), Slug: c.Slug, Domain: c.Domain, Time: c.Time,
		VisitorID: c.VisitorID, NewVisitor: c.NewVisitor, Bot: c.Bot, BotReason: c.BotReason, Test: c.Test,
		Campaign: c.Campaign, UTM: c.UTM, Destination: c.Destination, IP: c.IP, UserAgent: c.UserAgent,
		Referrer: c.Referrer, Node: c.Node,
	}
	if c.Variant >= 0 {
		v.Variant = &c.Variant
	}
	if c.IdentitySource != "" {
		iv := &identityView{Kind: c.IdentityKind, Value: c.IdentityValue, Source: c.IdentitySource, Token: c.Token}
		if c.Token != "" {
			// Tokens resolve here rather than on the redirect, which must not read disk.
			rc, err := a.DB.GetRecipient(c.Domain, c.Slug, c.Token)
			switch {
			case err == nil:
				iv.Kind, iv.Value = rc.Kind, rc.Value
			case !errors.Is(err, storage.ErrNotFound):
				writeErr(w, err)
				return
			}
		}
		v.Identity = iv
	}
	writeJSON(w, http.StatusOK, v)
}
