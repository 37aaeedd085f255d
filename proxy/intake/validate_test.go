package intake

import (
	"bytes"
	"encoding/json"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/proxy/identity"
)

// Whatever a client sends, validation either names a field or yields a conversion
// whose every value is within bounds.
func FuzzValidate(f *testing.F) {
	f.Add([]byte(`{"event_id":"o-1","type":"purchase","value":10,"currency":"USD","user":{"email":"a@b.co","phone":"+14155552671"}}`))
	f.Add([]byte(`{"event_id":"o-2","type":"lead","occurred_at":"2026-01-01T00:00:00Z","status":"refunded"}`))
	f.Add([]byte(`{"event_id":" ","type":"PURCHASE","value":-1}`))
	in := New([]string{"tok"})
	in.Hasher, in.Region = identity.NewHasher([]byte("k")), "US"
	hexRE := regexp.MustCompile(`^[0-9a-f]{64}$`)
	f.Fuzz(func(t *testing.T, raw []byte) {
		var x Input
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if dec.Decode(&x) != nil {
			return
		}
		now := time.Now()
		v, err := in.validate(&x, now)
		if err != nil {
			if _, ok := err.(*FieldError); !ok {
				t.Fatalf("error is not a field error: %v", err)
			}
			return
		}
		if !eventIDRE.MatchString(v.eventID) || !typeRE.MatchString(v.typ) || v.occurred.After(now.Add(in.Skew)) {
			t.Fatalf("accepted %+v from %s", v, raw)
		}
		if v.value != nil && (math.IsNaN(*v.value) || math.IsInf(*v.value, 0) || *v.value < 0 || v.currency == "") {
			t.Fatalf("accepted value %v %q", *v.value, v.currency)
		}
		for _, id := range v.idents {
			if id.Kind != identity.CustomerID && !hexRE.MatchString(id.Value) {
				t.Fatalf("%s stored in the clear: %q", id.Kind, id.Value)
			}
		}
	})
}

func TestNestingWithin(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, c := range []struct {
		name string
		body string
		max  int
		ok   bool
	}{
		{"flat object", `{"a":1}`, 1, true},
		{"at the limit", deep(3), 3, true},
		{"one past the limit", deep(4), 3, false},
		{"objects and arrays count alike", `{"a":[{"b":[1]}]}`, 3, false},
		{"brackets inside a string", `{"a":"[[[[{{{{"}`, 1, true},
		{"an escaped quote does not end the string", `{"a":"\"[[[["}`, 1, true},
		{"an escaped backslash ends before the quote", `{"a":"\\"}` + deep(2), 1, false},
		{"unbalanced closers do not hide openers", `]]]]` + deep(2), 1, false},
		{"an unterminated string hides the rest", `{"a":"` + deep(5), 1, true},
		{"empty", ``, 0, true},
	} {
		if got := nestingWithin([]byte(c.body), c.max); got != c.ok {
			t.Errorf("%s: nestingWithin(%q, %d) = %v, want %v", c.name, c.body, c.max, got, c.ok)
		}
	}
}
