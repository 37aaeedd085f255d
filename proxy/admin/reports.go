package admin

import (
	"math"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/currency"

	"github.com/clickgate/clickgate/proxy/links"
	"github.com/clickgate/clickgate/proxy/reports"
	"github.com/clickgate/clickgate/storage"
)

func (a *API) getCampaign(w http.ResponseWriter, r *http.Request) {
	id, ok := campaignID(w, r)
	if !ok {
		return
	}
	c, err := a.DB.GetCampaign(id)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// campaignID is the campaign the path names, normalised as links store campaigns, so
// that "Black Friday" is the campaign of the links created with it (black_friday).
func campaignID(w http.ResponseWriter, r *http.Request) (string, bool) {
	raw := r.PathValue("id")
	id := links.CampaignName(raw)
	if id == "" || len(id) > 100 || !utf8.ValidString(raw) || strings.ContainsFunc(raw, unicode.IsControl) {
		writeError(w, http.StatusBadRequest, "invalid_field", "campaign id must be 1 to 100 printable characters", "id")
		return "", false
	}
	return id, true
}

// putCampaign sets a campaign's metadata: messages sent, cost and its currency, and the
// conversions the SMS platform reports (for the discrepancy).
func (a *API) putCampaign(w http.ResponseWriter, r *http.Request) {
	id, ok := campaignID(w, r)
	if !ok {
		return
	}
	var c storage.Campaign
	if !decode(w, r, maxBody, &c) {
		return
	}
	switch {
	case c.MessagesSent != nil && *c.MessagesSent < 0:
		writeError(w, http.StatusBadRequest, "invalid_field", "messages_sent must be 0 or more", "messages_sent")
		return
	case c.Cost != nil && (*c.Cost < 0 || math.IsInf(*c.Cost, 0) || math.IsNaN(*c.Cost)):
		writeError(w, http.StatusBadRequest, "invalid_field", "cost must be 0 or more", "cost")
		return
	case c.Cost != nil && c.Currency == "":
		writeError(w, http.StatusBadRequest, "invalid_field", "currency is required with cost", "currency")
		return
	case c.PlatformConversions != nil && *c.PlatformConversions < 0:
		writeError(w, http.StatusBadRequest, "invalid_field", "platform_conversions must be 0 or more", "platform_conversions")
		return
	}
	if c.Currency != "" {
		if u, err := currency.ParseISO(c.Currency); err != nil || u.String() != c.Currency {
			writeError(w, http.StatusBadRequest, "invalid_field", "currency must be an ISO 4217 code like USD", "currency")
			return
		}
	}
	c.ID, c.UpdatedAt = id, time.Now().UTC()
	if err := a.DB.PutCampaign(&c); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// campaignReport: GET /api/v1/reports/campaigns?from=YYYY-MM-DD&to=YYYY-MM-DD&group_by=…&format=json|csv
func (a *API) campaignReport(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	now := time.Now().UTC()
	query := reports.Query{From: now.AddDate(0, 0, -6), To: now, GroupBy: q.Get("group_by")}
	if query.GroupBy == "" {
		query.GroupBy = "campaign"
	}
	if !slices.Contains(reports.GroupBys, query.GroupBy) {
		writeError(w, http.StatusBadRequest, "invalid_field", "group_by must be campaign, medium, content, link, day or week", "group_by")
		return
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"from", &query.From}, {"to", &query.To}} {
		if s := q.Get(f.name); s != "" {
			t, err := time.Parse(time.DateOnly, s)
			if err != nil {
				writeError(w, http.StatusBadRequest, "invalid_field", f.name+" must be a date like 2026-11-27", f.name)
				return
			}
			*f.dst = t
		}
	}
	if q.Get("from") == "" && q.Get("to") != "" {
		// The default period is the seven days to the end, wherever that is.
		query.From = query.To.AddDate(0, 0, -6)
	}
	if query.To.Before(query.From) || query.To.Sub(query.From) > 3*366*24*time.Hour {
		writeError(w, http.StatusBadRequest, "invalid_field", "to must be on or after from, at most three years later", "to")
		return
	}
	rep, err := reports.Build(a.DB, query)
	if err != nil {
		writeErr(w, err)
		return
	}
	switch q.Get("format") {
	case "", "json":
		writeJSON(w, http.StatusOK, rep)
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		if err := rep.WriteCSV(w); err != nil {
			a.Log.Warn("report: writing the CSV", "err", err)
		}
	default:
		writeError(w, http.StatusBadRequest, "invalid_field", "format must be json or csv", "format")
	}
}
