package identity

import (
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	cases := []struct {
		kind, in, want string
		ok             bool
	}{
		{Email, "  Jane.Doe@Example.COM ", "jane.doe@example.com", true},
		{Email, "no-at-sign", "", false},
		{Email, "a@b", "", false},
		{Email, "a b@c.com", "", false},
		{Phone, "+1 (415) 555-2671", "+14155552671", true},
		{Phone, "415-555-2671", "+14155552671", true},
		{Phone, "+44 20 7946 0958", "+442079460958", true},
		{Phone, "12", "", false},
		{Phone, "call me", "", false},
		{CustomerID, " 42 ", "42", true},
		{CustomerID, "", "", false},
		{CustomerID, "a\r\nb", "", false},
		{CustomerID, strings.Repeat("x", 300), "", false},
		{CustomerID, "\xff", "", false},
		// Merge tags the sending platform left unfilled name no one.
		{CustomerID, "{{subscriber_id}}", "", false},
		{CustomerID, "{{ customer.id }}", "", false},
		{CustomerID, "*|SUB_ID|*", "", false},
		{CustomerID, "%%CustomerID%%", "", false},
		{CustomerID, "[[id]]", "", false},
		{CustomerID, "${id}", "", false},
		{CustomerID, "{% id %}", "", false},
		{CustomerID, "<%= id %>", "", false},
		{CustomerID, "%CUSTOMER_ID%", "", false},
		{CustomerID, "{id}", "", false},
		{CustomerID, "[subscriber]", "", false},
		{CustomerID, "cust_{42}|7*", "cust_{42}|7*", true},
		{CustomerID, "%", "%", true},
		{CustomerID, "{customer.id}", "", false},
		{CustomerID, "[Customer ID]", "", false},
		{CustomerID, "{First Name}", "", false},
		{CustomerID, "%Customer Id%", "", false},
		{CustomerID, "{customer-id}", "", false},
		{CustomerID, "[custom1]", "", false},
		{CustomerID, "{custom_field_1}", "", false},
		{CustomerID, "%FIELD1%", "", false},
		{CustomerID, "{ab12-cd34}", "{ab12-cd34}", true}, // hex and hyphens: an ID
		{CustomerID, "{3F2504E0-4F89-11D3-9A0C-0305E82C3301}", "{3F2504E0-4F89-11D3-9A0C-0305E82C3301}", true}, // a braced GUID
		{CustomerID, "[A123]", "[A123]", true},
		{CustomerID, "%20%", "%20%", true},
		{"ssn", "1", "", false},
	}
	for _, c := range cases {
		got, err := Normalize(c.kind, c.in, "US")
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("Normalize(%s, %q) = %q, %v; want %q ok=%v", c.kind, c.in, got, err, c.want, c.ok)
		}
	}
}

func TestHasherKeyed(t *testing.T) {
	a, b := NewHasher([]byte("k1")), NewHasher([]byte("k2"))
	if a.Stored(Email, "x@y.com") == b.Stored(Email, "x@y.com") {
		t.Fatal("hash does not depend on the key")
	}
	if a.Stored(Email, "x@y.com") == a.Stored(Phone, "x@y.com") {
		t.Fatal("hash does not depend on the kind")
	}
	if a.Stored(CustomerID, "42") != "42" {
		t.Fatal("customer IDs are stored as given")
	}
	if len(a.Stored(Phone, "+14155552671")) != 64 {
		t.Fatal("want hex SHA-256")
	}
}

func FuzzNormalize(f *testing.F) {
	f.Add(Email, "a@b.co")
	f.Add(Phone, "+14155552671")
	f.Fuzz(func(t *testing.T, kind, v string) {
		n, err := Normalize(kind, v, "US")
		if err != nil {
			return
		}
		again, err := Normalize(kind, n, "US")
		if err != nil || again != n {
			t.Fatalf("not a fixed point: %q -> %q -> %q (%v)", v, n, again, err)
		}
	})
}
