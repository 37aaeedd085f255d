package admin

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/clickgate/clickgate/proxy/links"
	"github.com/clickgate/clickgate/storage"
)

// linkView is a link as the API shows it.
type linkView struct {
	*storage.Link
	ShortURL    string      `json:"short_url"`
	FinalURL    string      `json:"final_url"`
	Clicks      clickCounts `json:"clicks"`
	Unavailable string      `json:"unavailable,omitempty"`
}

type clickCounts struct {
	Human int64 `json:"human"`
	Bot   int64 `json:"bot"`
	Test  int64 `json:"test"`
}

func (a *API) view(l *storage.Link) linkView {
	v := linkView{Link: l, ShortURL: a.Links.ShortURL(l)}
	if e := a.Links.Index.Get(l.Key()); e != nil {
		c := e.Link()
		t := c.Targets[0]
		v.FinalURL = t.Prefix + t.Fragment
		v.Clicks = clickCounts{e.Counters.Human.Load(), e.Counters.Bot.Load(), e.Counters.Test.Load()}
	}
	return v
}

// createdView is the answer to a create or update.
type createdView struct {
	Slug        string        `json:"slug"`
	Domain      string        `json:"domain,omitempty"`
	ShortURL    string        `json:"short_url"`
	Destination string        `json:"destination"`
	Warnings    []string      `json:"warnings"`
	Link        *storage.Link `json:"link"`
}

func createdOf(c *links.Created) createdView {
	return createdView{Slug: c.Link.Slug, Domain: c.Link.Domain, ShortURL: c.ShortURL, Destination: c.Destination, Warnings: c.Warnings, Link: c.Link}
}

func (a *API) createLink(w http.ResponseWriter, r *http.Request) {
	var spec links.Spec
	if !decode(w, r, maxBody, &spec) {
		return
	}
	c, err := a.Links.Create(&spec)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, createdOf(c))
}

// MaxBulk is the most links one bulk call creates.
const MaxBulk = 10000

func (a *API) bulkCreate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Links []*links.Spec `json:"links"`
	}
	if !decode(w, r, maxBulkBody, &req) {
		return
	}
	if len(req.Links) == 0 || len(req.Links) > MaxBulk {
		writeError(w, http.StatusBadRequest, "invalid_field", fmt.Sprintf("send 1 to %d links", MaxBulk), "links")
		return
	}
	for i, s := range req.Links {
		if s == nil {
			writeError(w, http.StatusBadRequest, "invalid_field", "a link is null", fmt.Sprintf("links[%d]", i))
			return
		}
	}
	type item struct {
		*createdView
		Error *itemError `json:"error,omitempty"`
	}
	res := a.Links.CreateMany(req.Links)
	out := struct {
		Created int    `json:"created"`
		Failed  int    `json:"failed"`
		Results []item `json:"results"`
		// Error is set when nothing was created, so the answer has the error shape of
		// every other 4xx and 5xx.
		Error *itemError `json:"error,omitempty"`
	}{Results: make([]item, len(res))}
	for i, x := range res {
		if x.Err != nil {
			out.Failed++
			out.Results[i].Error = itemErrorOf(x.Err, fmt.Sprintf("links[%d]", i))
			continue
		}
		out.Created++
		cv := createdOf(x.Created)
		out.Results[i].createdView = &cv
	}
	status := http.StatusCreated
	if out.Created == 0 {
		// Said as a single create would say it: the store failing is the server's
		// (retry), slugs all taken is a conflict, anything else the request's.
		code := "invalid_field"
		status = http.StatusBadRequest
		conflicts := 0
		for _, x := range out.Results {
			switch x.Error.Code {
			case "internal":
				status, code = http.StatusInternalServerError, "internal"
			case "conflict":
				conflicts++
			}
		}
		if code != "internal" && conflicts == len(out.Results) {
			status, code = http.StatusConflict, "conflict"
		}
		out.Error = &itemError{Code: code, Message: fmt.Sprintf("no link created: %d failed (each result says why)", out.Failed)}
	}
	writeJSON(w, status, out)
}

type itemError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func itemErrorOf(err error, prefix string) *itemError {
	switch e := err.(type) {
	case *links.FieldError:
		return &itemError{"invalid_field", e.Message, prefix + "." + e.Field}
	}
	if strings.Contains(err.Error(), "taken") {
		return &itemError{"conflict", err.Error(), prefix + ".slug"}
	}
	return &itemError{"internal", err.Error(), ""}
}

func (a *API) getLink(w http.ResponseWriter, r *http.Request) {
	l, _, err := a.Links.Get(domainOf(r), r.PathValue("slug"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.view(l))
}

func (a *API) updateLink(w http.ResponseWriter, r *http.Request) {
	var spec links.Spec
	if !decode(w, r, maxBody, &spec) {
		return
	}
	c, err := a.Links.Update(domainOf(r), r.PathValue("slug"), &spec)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, createdOf(c))
}

func (a *API) archiveLink(w http.ResponseWriter, r *http.Request) {
	c, err := a.Links.Archive(domainOf(r), r.PathValue("slug"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.view(c.Link))
}

func (a *API) listLinks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := links.Filter{Campaign: q.Get("campaign"), Medium: q.Get("medium"), Status: q.Get("status"), Limit: 100}
	if q.Has("domain") {
		d := q.Get("domain")
		f.Domain = &d
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "invalid_field", "limit must be 1 to 1000", "limit")
			return
		}
		f.Limit = n
	}
	if f.Status != "" && f.Status != storage.StatusActive && f.Status != storage.StatusPaused && f.Status != storage.StatusArchived {
		writeError(w, http.StatusBadRequest, "invalid_field", "status must be active, paused or archived", "status")
		return
	}
	if c := q.Get("cursor"); c != "" {
		k, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil || !strings.Contains(string(k), "\x00") {
			writeError(w, http.StatusBadRequest, "invalid_field", "cursor is not one this API gave out", "cursor")
			return
		}
		f.After = string(k)
	}
	ls, next, err := a.Links.List(f)
	if err != nil {
		writeErr(w, err)
		return
	}
	out := struct {
		Links      []linkView `json:"links"`
		NextCursor string     `json:"next_cursor,omitempty"`
	}{Links: make([]linkView, 0, len(ls))}
	for _, l := range ls {
		out.Links = append(out.Links, a.view(l))
	}
	if next != "" {
		out.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(next))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) createTokens(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Recipients []links.RecipientSpec `json:"recipients"`
	}
	if !decode(w, r, maxTokensBody, &req) {
		return
	}
	toks, err := a.Links.CreateTokens(domainOf(r), r.PathValue("slug"), req.Recipients)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, struct {
		Tokens []links.Token `json:"tokens"`
	}{toks})
}

// domainOf is the link domain a request names, lowercased as links store domains (host
// names are case-insensitive).
func domainOf(r *http.Request) string { return strings.ToLower(r.URL.Query().Get("domain")) }
