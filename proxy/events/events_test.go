package events

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/sdk"
	"github.com/clickgate/clickgate/storage"
)

func sample() *storage.Click {
	return &storage.Click{
		ID: [16]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, Time: time.Date(2026, 11, 27, 1, 2, 3, 456789000, time.UTC),
		Node: "edge-1", Slug: "spring", Campaign: "spring_sale", UTM: storage.UTM{Source: "sms", Medium: "promotional", Campaign: "spring_sale", Content: "a"},
		Variant: 1, Destination: "https://shop.example.com/p?a=1&utm_source=sms&cgid=x#frag", VisitorID: "05121zy3sxeqecpfsd5zcb4wqj",
		NewVisitor: true, IdentityKind: "customer_id", IdentityValue: "c-42", IdentitySource: "param:rid",
		IP: "203.0.113.7", UserAgent: "Mozilla/5.0 \"quoted\" \\ back\tslash \x01 <html> & \u2028 é \xff", Referrer: "", Bot: true, BotReason: "preview:whatsapp,head",
	}
}

// The hand-written encoder produces the same document as encoding/json on the struct.
func TestAppendClickJSONMatchesStruct(t *testing.T) {
	variants := []func(*storage.Click){
		func(c *storage.Click) {},
		func(c *storage.Click) { c.Variant, c.IdentitySource, c.Domain = -1, "", "go.brand.com" },
		func(c *storage.Click) {
			c.Token, c.IdentitySource, c.IdentityKind, c.IdentityValue = "tok", "token", "", ""
		},
		func(c *storage.Click) {
			c.UTM.Content, c.UTM.Term, c.Test, c.Bot, c.BotReason = "", "vip", true, false, ""
		},
	}
	users := []*sdk.User{nil, {Email: "a@b.co"}, {Phone: "+14155550123", CustomerID: "c-\"42\""}, {}}
	for i, mod := range variants {
		c := sample()
		mod(c)
		u := users[i%len(users)]
		ev := FromClick(c)
		ev.User = u
		want, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		got := AppendClickJSON(nil, c, u)
		var a, b any
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatalf("case %d: invalid JSON %v\n%s", i, err, got)
		}
		json.Unmarshal(want, &b)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("case %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// Every shape of click event (identity by parameter or token, variant, bot, test)
// validates against the published schema.
func TestClickEventsMatchSchema(t *testing.T) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	schema, err := c.Compile("../../configs/schemas/click.v1.json")
	if err != nil {
		t.Fatal(err)
	}
	for i, mod := range []func(*storage.Click){
		func(c *storage.Click) {},
		func(c *storage.Click) { c.Variant, c.IdentitySource, c.Domain = -1, "", "go.brand.com" },
		func(c *storage.Click) {
			c.Token, c.IdentitySource, c.IdentityKind, c.IdentityValue = "tok", "token", "phone", "ab12"
		},
		func(c *storage.Click) {
			c.UTM.Content, c.UTM.Term, c.Test, c.Bot, c.BotReason = "", "vip", true, false, ""
		},
	} {
		ck := sample()
		ck.ID = ids.NewClickIDs(1).New(time.Now())
		mod(ck)
		var u *sdk.User
		if i%2 == 1 {
			u = &sdk.User{Email: "a@b.co", Phone: "+14155550123"}
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(AppendClickJSON(nil, ck, u)))
		if err != nil {
			t.Fatal(err)
		}
		if err := schema.Validate(inst); err != nil {
			t.Errorf("case %d: %v", i, err)
		}
	}
}

func FuzzAppendClickJSON(f *testing.F) {
	f.Add("Mozilla/5.0", "https://x.example/", "\xff\x00\"\\", "")
	f.Add("", "", "", "a@b.co")
	f.Fuzz(func(t *testing.T, ua, dest, ref, email string) {
		c := sample()
		c.UserAgent, c.Destination, c.Referrer = ua, dest, ref
		var u *sdk.User
		if email != "" {
			u = &sdk.User{Email: email}
		}
		got := AppendClickJSON(nil, c, u)
		var a, b any
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatalf("invalid JSON: %v\n%q", err, got)
		}
		ev := FromClick(c)
		ev.User = u
		want, _ := json.Marshal(ev)
		json.Unmarshal(want, &b)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("differs from encoding/json:\n got %s\nwant %s", got, want)
		}
	})
}

func BenchmarkAppendClickJSON(b *testing.B) {
	c := sample()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendClickJSON(buf[:0], c, nil)
	}
}

func BenchmarkMarshalClickStruct(b *testing.B) {
	c := sample()
	b.ReportAllocs()
	for b.Loop() {
		json.Marshal(FromClick(c))
	}
}
