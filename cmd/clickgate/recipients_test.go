package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

// Send lists as spreadsheets write them: a header in any case, or one column of values
// whose kind shows in their form (a phone without its '+' included).
func TestReadRecipients(t *testing.T) {
	for _, tc := range []struct {
		name, csv string
		want      []map[string]string
	}{
		{"header", "phone,email\n+14155550101,\n,a@b.co\n", []map[string]string{{"phone": "+14155550101"}, {"email": "a@b.co"}}},
		{"header in a spreadsheet's case", "Phone, Email \n4155550101,\n,A@B.co\n", []map[string]string{{"phone": "4155550101"}, {"email": "A@B.co"}}},
		{"customer ID column", "Name,Customer ID\nJane,c-9\n", []map[string]string{{"customer_id": "c-9"}}},
		{"Excel's byte-order mark and other names", "\ufeffMobile Number,E-mail\n4155550101,\n,a@b.co\n", []map[string]string{{"phone": "4155550101"}, {"email": "a@b.co"}}},
		{"byte-order mark and quoted headers", "\ufeff\"Phone\",\"Email\"\n\"+14155550101\",\n", []map[string]string{{"phone": "+14155550101"}}},
		// An MSISDN is international without its '+', not a number of the default region.
		{"MSISDN", "MSISDN\n447700900123\n+447700900124\n00447700900125\n07700900126\n", []map[string]string{
			{"phone": "+447700900123"}, {"phone": "+447700900124"}, {"phone": "+447700900125"}, {"phone": "07700900126"}}},
		// Bare digits may be a store's customer number: a customer ID, unless a header
		// names the column.
		{"one column", "+14155550101\n(415) 555-0102\n415.555.0104\n6871563157530\na@b.co\ncust-42\n", []map[string]string{
			{"phone": "+14155550101"}, {"phone": "(415) 555-0102"}, {"phone": "415.555.0104"}, {"customer_id": "6871563157530"},
			{"email": "a@b.co"}, {"customer_id": "cust-42"}}},
	} {
		path := filepath.Join(t.TempDir(), "r.csv")
		if err := os.WriteFile(path, []byte(tc.csv), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := readRecipients(path)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}

// deadletters list reads page after page while the API says there is more, so a long
// list is not cut at one page.
func TestListDeadLettersPages(t *testing.T) {
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.RawQuery)
		after, _ := strconv.Atoi(r.URL.Query().Get("after"))
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		var page []map[string]int
		for s := after + 1; s <= 5 && len(page) < limit; s++ {
			page = append(page, map[string]int{"seq": s})
		}
		out := map[string]any{"dead_letters": page}
		if len(page) == limit {
			out["next_after"] = page[len(page)-1]["seq"]
		}
		json.NewEncoder(w).Encode(out)
	}))
	defer srv.Close()
	raw, err := listDeadLetters(&client{base: srv.URL, token: "t", http: srv.Client()}, "hook", 2)
	defer func() {
		// A server whose cursor does not move on ends the listing after one page.
		stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"dead_letters":[{"seq":7}],"next_after":7}`))
		}))
		defer stuck.Close()
		if _, err := listDeadLetters(&client{base: stuck.URL, token: "t", http: stuck.Client()}, "hook", 1); err != nil {
			t.Errorf("stuck cursor: %v", err)
		}
	}()
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		DeadLetters []struct{ Seq int } `json:"dead_letters"`
	}
	json.Unmarshal(raw, &got)
	if len(got.DeadLetters) != 5 || got.DeadLetters[4].Seq != 5 || len(asked) != 3 {
		t.Fatalf("%s after requests %q, want the five letters in three pages", raw, asked)
	}
}
