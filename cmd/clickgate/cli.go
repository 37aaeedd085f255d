package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/clickgate/clickgate/proxy/preflight"
)

// client talks to the admin API.
type client struct {
	base  string
	token string
	http  *http.Client
}

func newClient() (*client, error) {
	base := os.Getenv("CLICKGATE_ADMIN_URL")
	if base == "" {
		addr := os.Getenv("CLICKGATE_ADMIN_LISTEN")
		if addr == "" {
			addr = "127.0.0.1:8081"
		}
		if strings.HasPrefix(addr, ":") {
			addr = "127.0.0.1" + addr
		}
		base = "http://" + addr
	}
	tok := os.Getenv("CLICKGATE_ADMIN_TOKEN")
	if tok == "" {
		dir := os.Getenv("CLICKGATE_DATA_DIR")
		if dir == "" {
			dir = "./data"
		}
		b, err := os.ReadFile(filepath.Join(dir, "admin.token"))
		if err != nil {
			return nil, fmt.Errorf("no admin token: set CLICKGATE_ADMIN_TOKEN or run from the directory holding %s", filepath.Join(dir, "admin.token"))
		}
		tok = strings.TrimSpace(string(b))
	}
	return &client{base: strings.TrimSuffix(base, "/"), token: tok, http: &http.Client{Timeout: 60 * time.Second}}, nil
}

// do calls the API and decodes a 2xx answer into out; a JSON error body becomes the error.
func (c *client) do(method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		if raw, ok := body.(json.RawMessage); ok {
			rd = bytes.NewReader(raw)
		} else {
			b, err := json.Marshal(body)
			if err != nil {
				return err
			}
			rd = bytes.NewReader(b)
		}
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message, Field string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			if e.Error.Field != "" {
				return fmt.Errorf("%s (%s): %s", e.Error.Field, e.Error.Code, e.Error.Message)
			}
			return fmt.Errorf("%s: %s", e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out == nil {
		return nil
	}
	if p, ok := out.(*json.RawMessage); ok {
		*p = raw
		return nil
	}
	return json.Unmarshal(raw, out)
}

func printJSON(raw json.RawMessage) {
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		os.Stdout.Write(raw)
		return
	}
	b.WriteByte('\n')
	os.Stdout.Write(b.Bytes())
}

func linksCmd(args []string) error {
	if len(args) == 0 {
		return errors.New("links: want create, bulk, get, list, update, archive, tokens or check")
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("links "+sub, flag.ContinueOnError)
	domain := fs.String("domain", "", "domain the link is on (empty: the default)")
	q := func() string {
		if *domain == "" {
			return ""
		}
		return "?domain=" + url.QueryEscape(*domain)
	}
	var raw json.RawMessage
	switch sub {
	case "create":
		slug := fs.String("slug", "", "custom slug (default: generated)")
		dest := fs.String("destination", "", "destination URL (required)")
		medium := fs.String("medium", "", "utm_medium (promotional, transactional, abandoned_cart, welcome_series)")
		campaign := fs.String("campaign", "", "utm_campaign")
		content := fs.String("content", "", "utm_content")
		term := fs.String("term", "", "utm_term")
		maxClicks := fs.Int64("max-clicks", 0, "stop after this many human clicks (0: no limit)")
		expires := fs.String("expires-at", "", "RFC 3339 expiry")
		if err := fs.Parse(args); err != nil {
			return err
		}
		body := map[string]any{"destination": *dest, "utm": map[string]string{"medium": *medium, "campaign": *campaign, "content": *content, "term": *term}}
		if *slug != "" {
			body["slug"] = *slug
		}
		if *domain != "" {
			body["domain"] = *domain
		}
		if *maxClicks > 0 {
			body["max_clicks"] = *maxClicks
		}
		if *expires != "" {
			body["expires_at"] = *expires
		}
		var out struct {
			ShortURL    string   `json:"short_url"`
			Destination string   `json:"destination"`
			Warnings    []string `json:"warnings"`
		}
		if err := c.do("POST", "/api/v1/links", body, &out); err != nil {
			return err
		}
		fmt.Printf("%s -> %s\n", out.ShortURL, out.Destination)
		for _, w := range out.Warnings {
			fmt.Println("warning:", w)
		}
		return nil
	case "bulk":
		if len(args) != 1 {
			return errors.New("links bulk FILE.json")
		}
		b, rerr := os.ReadFile(args[0])
		if rerr != nil {
			return rerr
		}
		err = c.do("POST", "/api/v1/links/bulk", json.RawMessage(b), &raw)
	case "get", "archive":
		if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
			return fmt.Errorf("links %s [-domain D] SLUG", sub)
		}
		method, path := "GET", "/api/v1/links/"+url.PathEscape(fs.Arg(0))
		if sub == "archive" {
			method, path = "POST", path+"/archive"
		}
		err = c.do(method, path+q(), nil, &raw)
	case "update":
		if err := fs.Parse(args); err != nil || fs.NArg() != 2 {
			return errors.New(`links update [-domain D] SLUG '{"max_clicks": 100}'`)
		}
		err = c.do("PATCH", "/api/v1/links/"+url.PathEscape(fs.Arg(0))+q(), json.RawMessage(fs.Arg(1)), &raw)
	case "list":
		campaign := fs.String("campaign", "", "only this campaign")
		status := fs.String("status", "", "active, paused or archived")
		limit := fs.Int("limit", 100, "page size")
		cursor := fs.String("cursor", "", "next_cursor of the previous page")
		if err := fs.Parse(args); err != nil {
			return err
		}
		v := url.Values{}
		for k, s := range map[string]string{"campaign": *campaign, "status": *status, "cursor": *cursor, "domain": *domain} {
			if s != "" {
				v.Set(k, s)
			}
		}
		v.Set("limit", fmt.Sprint(*limit))
		err = c.do("GET", "/api/v1/links?"+v.Encode(), nil, &raw)
	case "tokens":
		if err := fs.Parse(args); err != nil || fs.NArg() != 2 {
			return errors.New("links tokens [-domain D] SLUG FILE.csv")
		}
		recips, err := readRecipients(fs.Arg(1))
		if err != nil {
			return err
		}
		var out struct {
			Tokens []struct{ Token, URL string } `json:"tokens"`
		}
		if err := c.do("POST", "/api/v1/links/"+url.PathEscape(fs.Arg(0))+"/tokens"+q(), map[string]any{"recipients": recips}, &out); err != nil {
			return err
		}
		w := csv.NewWriter(os.Stdout)
		w.Write([]string{"row", "token", "url"})
		for i, t := range out.Tokens {
			w.Write([]string{fmt.Sprint(i + 1), t.Token, t.URL})
		}
		w.Flush()
		return w.Error()
	case "check":
		base := fs.String("base", "", "public base URL to test against (default: the link's short URL)")
		if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
			return errors.New("links check [-domain D] [-base URL] SLUG")
		}
		return check(c, fs.Arg(0), q(), *base)
	default:
		return fmt.Errorf("links: unknown subcommand %q", sub)
	}
	if err != nil {
		return err
	}
	printJSON(raw)
	return nil
}

// readRecipients reads a CSV send list: either a header naming phone, email and/or
// customer_id columns, or a single column whose kind is guessed per row.
func readRecipients(path string) ([]map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// Excel's "CSV UTF-8" starts with a byte-order mark, which would hide the first
	// header (or, quoted, fail the parse).
	rows, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\ufeff")))).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	// Send lists come from spreadsheets: "Phone", " Email ", "Customer ID" name the
	// columns as well as their API names do.
	cols := make([]string, len(rows[0]))
	header := false
	for i, c := range rows[0] {
		cols[i] = headerAliases[strings.NewReplacer(" ", "_", "-", "_").Replace(strings.ToLower(strings.TrimSpace(c)))]
		if cols[i] != "" {
			header = true
		}
	}
	var out []map[string]string
	if header {
		for _, r := range rows[1:] {
			m := map[string]string{}
			for i, c := range cols {
				if i < len(r) && strings.TrimSpace(r[i]) != "" && c != "" {
					v := strings.TrimSpace(r[i])
					if c == "msisdn" {
						c, v = "phone", msisdnPhone(v)
					}
					m[c] = v
					break
				}
			}
			out = append(out, m)
		}
		return out, nil
	}
	for _, r := range rows {
		v := strings.TrimSpace(r[0])
		switch {
		case strings.Contains(v, "@"):
			out = append(out, map[string]string{"email": v})
		case phoneLike(v):
			// Without its '+', read in CLICKGATE_DEFAULT_REGION by the server.
			out = append(out, map[string]string{"phone": v})
		default:
			out = append(out, map[string]string{"customer_id": v})
		}
	}
	return out, nil
}

// headerAliases names the column headers a send list may have, after lowercasing with
// spaces and hyphens as underscores, by the identity each holds.
var headerAliases = map[string]string{
	"phone": "phone", "phone_number": "phone", "mobile": "phone", "mobile_number": "phone", "msisdn": "msisdn",
	"email": "email", "e_mail": "email", "email_address": "email",
	"customer_id": "customer_id", "customerid": "customer_id",
}

// msisdnPhone writes an MSISDN, an international number without its '+', as a phone
// the server reads: with its '+', or after the international prefix 00; one written
// nationally (a leading 0) is left for the server to read in its default region.
func msisdnPhone(v string) string {
	switch {
	case strings.HasPrefix(v, "+"):
		return v
	case strings.HasPrefix(v, "00"):
		return "+" + v[2:]
	case strings.HasPrefix(v, "0"):
		return v
	}
	return "+" + v
}

// phoneLike reports whether v is written as a phone number is: with a '+', or at least
// seven digits punctuated as people write numbers ("(415) 555-0102"). Bare digits stay
// a customer ID (stores number their customers too); a header says otherwise.
func phoneLike(v string) bool {
	if strings.HasPrefix(v, "+") {
		return true
	}
	digits, marks := 0, 0
	for _, r := range v {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case strings.ContainsRune(" ().-", r):
			marks++
		default:
			return false
		}
	}
	return digits >= 7 && marks > 0
}

func check(c *client, slug, q, base string) error {
	var l struct {
		ShortURL string            `json:"short_url"`
		UTM      map[string]string `json:"utm"`
		Slug     string            `json:"slug"`
	}
	if err := c.do("GET", "/api/v1/links/"+url.PathEscape(slug)+q, nil, &l); err != nil {
		return err
	}
	short := l.ShortURL
	if base != "" {
		short = strings.TrimSuffix(base, "/") + "/" + l.Slug
	}
	param := os.Getenv("CLICKGATE_CLICK_PARAM")
	if param == "" {
		param = "cgid"
	}
	want := map[string]string{}
	for k, v := range l.UTM {
		want["utm_"+k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := preflight.Run(ctx, nil, preflight.Expect{ShortURL: short, UTM: want, ClickParam: param})
	if err != nil {
		return err
	}
	fmt.Printf("checking %s\n", short)
	for _, s := range rep.Steps {
		mark := "ok  "
		if !s.OK {
			mark = "FAIL"
		}
		if s.Detail != "" {
			fmt.Printf("  %s %s (%s)\n", mark, s.What, s.Detail)
		} else {
			fmt.Printf("  %s %s\n", mark, s.What)
		}
	}
	if rep.Location != "" {
		fmt.Printf("  Location: %s\n", rep.Location)
	}
	if !rep.OK() {
		return errors.New("preflight failed")
	}
	fmt.Println("preflight passed; recorded as a test click, not counted")
	return nil
}

func clicksCmd(args []string) error {
	if len(args) != 2 || args[0] != "get" {
		return errors.New("clicks get CLICK_ID")
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.do("GET", "/api/v1/clicks/"+url.PathEscape(args[1]), nil, &raw); err != nil {
		return err
	}
	printJSON(raw)
	return nil
}

// pluginsCmd shows plugin states; deadlettersCmd lists, shows, replays and purges what
// forwarders could not deliver.
func pluginsCmd(args []string) error {
	c, err := newClient()
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.do("GET", "/api/v1/plugins", nil, &raw); err != nil {
		return err
	}
	printJSON(raw)
	return nil
}

// deadLetterPage is how many dead letters `deadletters list` asks for at a time, the
// most the API answers.
const deadLetterPage = 1000

// listDeadLetters reads every dead letter of plugin, page after page.
func listDeadLetters(c *client, plugin string, page int) (json.RawMessage, error) {
	var all []json.RawMessage
	after := uint64(0)
	for {
		var out struct {
			DeadLetters []json.RawMessage `json:"dead_letters"`
			NextAfter   *uint64           `json:"next_after"`
		}
		if err := c.do("GET", fmt.Sprintf("/api/v1/deadletters?limit=%d&after=%d&plugin=%s", page, after, plugin), nil, &out); err != nil {
			return nil, err
		}
		all = append(all, out.DeadLetters...)
		// A cursor that does not move on would page for ever.
		if out.NextAfter == nil || *out.NextAfter <= after || len(out.DeadLetters) == 0 {
			break
		}
		after = *out.NextAfter
	}
	if all == nil {
		all = []json.RawMessage{}
	}
	return json.Marshal(map[string]any{"dead_letters": all})
}

func deadlettersCmd(args []string) error {
	usage := errors.New("deadletters list PLUGIN | show PLUGIN SEQ | replay PLUGIN [SEQ...] | purge PLUGIN [SEQ...] (PLUGIN kafka: the Kafka relay's)")
	if len(args) < 2 {
		return usage
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	sub, plugin, rest := args[0], url.PathEscape(args[1]), args[2:]
	var raw json.RawMessage
	switch {
	case sub == "list" && len(rest) == 0:
		raw, err = listDeadLetters(c, plugin, deadLetterPage)
	case sub == "show" && len(rest) == 1:
		err = c.do("GET", "/api/v1/deadletters/"+plugin+"/"+url.PathEscape(rest[0]), nil, &raw)
	case sub == "replay":
		var body any
		if len(rest) > 0 {
			seqs := make([]uint64, len(rest))
			for i, s := range rest {
				n, err := strconv.ParseUint(s, 10, 64)
				if err != nil {
					return fmt.Errorf("%q is not a sequence number", s)
				}
				seqs[i] = n
			}
			body = map[string]any{"seqs": seqs}
		}
		err = c.do("POST", "/api/v1/deadletters/"+plugin+"/replay", body, &raw)
	case sub == "purge" && len(rest) == 0:
		err = c.do("DELETE", "/api/v1/deadletters/"+plugin, nil, &raw)
	case sub == "purge":
		// One request a letter; a letter already gone stops nothing, and is not counted.
		purged := 0
		for _, s := range rest {
			seq, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return fmt.Errorf("%q is not a sequence number", s)
			}
			var out struct {
				Purged int `json:"purged"`
			}
			if err := c.do("DELETE", "/api/v1/deadletters/"+plugin+"/"+fmt.Sprint(seq), nil, &out); err != nil && !strings.Contains(err.Error(), "no such dead letter") {
				return err
			}
			purged += out.Purged
		}
		raw, _ = json.Marshal(map[string]int{"purged": purged})
	default:
		return usage
	}
	if err != nil {
		return err
	}
	printJSON(raw)
	return nil
}
