package storage

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"
)

func testConversion() *Conversion {
	v, zero, two := 129.5, 0, 2
	at := time.Date(2026, 11, 20, 14, 3, 4, 567890123, time.UTC)
	touch := func(id string, variant *int, credit float64) Touch {
		return Touch{
			ClickID: id, Slug: "spring", Domain: "go.example.com", Campaign: "spring_sale",
			UTM:     UTM{Source: "sms", Medium: "promotional", Campaign: "spring_sale", Content: "msg_a", Term: "ünïcode"},
			Variant: variant, ClickTime: at.Add(-time.Hour), SecondsToConvert: 3600, Credit: credit,
		}
	}
	last, first := touch("c2", &two, 1), touch("c1", &zero, 1)
	return &Conversion{
		ID: "conv1", EventID: "order-1", Type: "purchase", Status: "approved", Value: &v, Currency: "EUR",
		OccurredAt: at, ReceivedAt: at.Add(time.Second), ClickID: "c2", VisitorID: "v1",
		Identities: []IdentityRef{{Kind: "email", Value: "hash1"}, {Kind: "customer_id", Value: "42"}},
		LastClick:  &last, FirstClick: &first,
		Linear: []Touch{touch("c1", &zero, 0.5), touch("c2", nil, 0.5)},
		Source: "api",
	}
}

func TestConversionRecordRoundTrip(t *testing.T) {
	full := testConversion()
	bare := &Conversion{ID: "conv2", EventID: "e", Type: "lead", Status: "approved", Reason: "no click in any window", Source: "postback"}
	noClickTime := testConversion()
	noClickTime.LastClick.ClickTime = time.Time{}
	negative := testConversion()
	*negative.Value = -0.25
	refunded := testConversion()
	refunded.Status, refunded.Revision, refunded.StatusChangedAt = "refunded", 1, refunded.OccurredAt.Add(72*time.Hour+time.Nanosecond)
	for name, c := range map[string]*Conversion{"full": full, "bare": bare, "zero click time": noClickTime, "negative value": negative, "refunded": refunded} {
		got, err := DecodeConversion(AppendConversion(nil, c))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, c)
		}
	}
}

// Records written as JSON before the binary form still read the same.
func TestConversionRecordReadsJSON(t *testing.T) {
	c := testConversion()
	old, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeConversion(old)
	if err != nil {
		t.Fatal(err)
	}
	c.Revision = -1 // unknown: the JSON form never kept it
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("\n got %+v\nwant %+v", got, c)
	}
}

func TestDecodeConversionHostile(t *testing.T) {
	good := AppendConversion(nil, testConversion())
	with := func(prefix []byte, rest ...byte) []byte { return append(append([]byte{}, prefix...), rest...) }
	cases := map[string][]byte{
		"empty":           {},
		"marker only":     {conversionRecordV1},
		"other version":   with([]byte{0xC2}, good[1:]...),
		"unknown flags":   with([]byte{conversionRecordV1, 0x80}, good[2:]...),
		"trailing":        with(good, 0),
		"huge string":     {conversionRecordV1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"varint overflow": {conversionRecordV1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
		"endless varint":  {conversionRecordV1, 0, 0x80, 0x80},
		// Nine empty strings, then a million identities in a record of a few bytes.
		"huge list":       {conversionRecordV1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0, 0x84, 0x3d},
		"bad json":        []byte(`{"conversion_id":`),
		"json wrong type": []byte(`{"conversion_id":1}`),
	}
	// A record cut anywhere does not decode.
	for i := range len(good) - 1 {
		cases[fmt.Sprintf("cut at %d", i)] = good[:i]
	}
	badFlag := AppendConversion(nil, &Conversion{LastClick: &Touch{}})
	badFlag[len(badFlag)-1-8-1-1] = 7 // the touch's click time flag
	cases["bad click time flag"] = badFlag
	badVariant := AppendConversion(nil, &Conversion{LastClick: &Touch{}})
	badVariant = append(badVariant[:len(badVariant)-1-8-1-1-1], 0xff, 0xff, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	cases["variant out of range"] = badVariant
	for name, b := range cases {
		if c, err := DecodeConversion(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %+v, %v; want ErrCorrupt", name, c, err)
		}
	}
}

func FuzzDecodeConversion(f *testing.F) {
	f.Add(AppendConversion(nil, testConversion()))
	f.Add(AppendConversion(nil, &Conversion{ID: "x"}))
	old, _ := json.Marshal(testConversion())
	f.Add(old)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeConversion(b)
		if err != nil {
			return
		}
		again, err := DecodeConversion(AppendConversion(nil, c))
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(AppendConversion(nil, again), AppendConversion(nil, c)) {
			t.Fatalf("re-encoding changed the record:\n%+v\n%+v", c, again)
		}
	})
}

func BenchmarkConversionRecord(b *testing.B) {
	c := testConversion()
	for range 8 {
		c.Linear = append(c.Linear, c.Linear[0])
	}
	b.Run("binary", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = AppendConversion(buf[:0], c)
			if _, err := DecodeConversion(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		for b.Loop() {
			buf, _ := json.Marshal(c)
			var got Conversion
			if err := json.Unmarshal(buf, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A status change counted in a later flush than its conversion moves it from counted to
// reversed: the report consumer reads what was counted because the change's revision
// says it is not the conversion as first committed.
func TestStatusChangeInALaterFlush(t *testing.T) {
	db := openTest(t, t.TempDir())
	db.reportsFlushEvery.Store(int64(10 * time.Millisecond))
	defer runTest(db)()

	counts := func() (conversions, reversed int64) {
		cells, err := db.ReportCells(0, DayOf(time.Now())+1)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cells {
			conversions += c.Cell.Conversions["purchase"]
			reversed += c.Cell.Reversed["purchase"]
		}
		return
	}
	waitFor := func(conversions, reversed int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, r := counts()
			if c == conversions && r == reversed {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("counted %d, reversed %d; want %d, %d", c, r, conversions, reversed)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	c := testConversion()
	c.Revision = 0
	c.OccurredAt = time.Now()
	id := [16]byte{1}
	if _, err := db.PutConversion(id, c, time.Hour, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(1, 0)
	time.Sleep(50 * time.Millisecond) // several flushes later
	c.Status, c.Revision = "refunded", 1
	if _, err := db.PutConversion(id, c, time.Hour, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(0, 1)
}
