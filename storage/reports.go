package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/axiomhq/hyperloglog"
	"github.com/dgraph-io/badger/v4"
	"github.com/segmentio/encoding/json"
)

// Report counters are kept as events arrive, by an outbox consumer, so a report reads
// counters rather than every click. A cell is one day of one link (with its campaign,
// medium and content); reports add cells up.
//
// Distinct visitors and time to conversion cannot be added up exactly without keeping
// every visitor and every conversion, which a report over millions of clicks would then
// read: each cell keeps a HyperLogLog sketch of its visitors (about 0.8 % standard
// error, exact in practice for small counts) and a histogram of times to conversion
// (buckets at most 4 % wide), which add up across any grouping and period.
const (
	prefixReport   = 'R'
	rCell          = 'c' // R c day(4) cell-id       -> cell record (appendCell): counters and visitor sketch
	rSketch        = 's' // R s day(4) cell-id       -> the sketch, in the older layout (cell record JSON only)
	rAccounted     = 'a' // R a conversion-id        -> Contribution (JSON)
	prefixCampaign = 'G' // G campaign -> Campaign (JSON)
)

// Time to conversion histogram buckets: one per second below ttcExact, then each 4 %
// wider than the last, so a percentile read from them is within 2 % of the exact one.
const (
	ttcExact  = 25
	ttcGrowth = 1.04
)

// TTCBucket is the histogram bucket of a time to conversion in seconds.
func TTCBucket(seconds int64) int {
	if seconds < ttcExact {
		return int(max(seconds, 0))
	}
	return ttcExact + int(math.Log(float64(seconds)/ttcExact)/math.Log(ttcGrowth))
}

// TTCValue is the seconds a bucket stands for: the geometric middle of its bounds.
func TTCValue(bucket int) int64 {
	if bucket < ttcExact {
		return int64(bucket)
	}
	lo := ttcExact * math.Pow(ttcGrowth, float64(bucket-ttcExact))
	return int64(math.Round(lo * math.Sqrt(ttcGrowth)))
}

// CellID names a report cell: the dimensions every report groups by.
type CellID struct {
	Campaign string `json:"campaign"`
	Medium   string `json:"medium"`
	Content  string `json:"content"`
	Domain   string `json:"domain"`
	Slug     string `json:"slug"`
}

func parseCellID(b []byte) CellID {
	parts := bytes.SplitN(b, []byte{0}, 6)
	var c CellID
	for i, p := range []*string{&c.Campaign, &c.Medium, &c.Content, &c.Domain, &c.Slug} {
		if i < len(parts) {
			*p = string(parts[i])
		}
	}
	return c
}

// Day is a UTC calendar day, counted from the Unix epoch.
type Day uint32

// DayOf returns the day of t.
func DayOf(t time.Time) Day { return Day(t.UTC().Unix() / 86400) }

// Time returns the day's start.
func (d Day) Time() time.Time { return time.Unix(int64(d)*86400, 0).UTC() }

func cellKey(kind byte, d Day, id CellID) []byte { return appendCellKey(nil, kind, d, id) }

// appendCellKey appends the key of a cell record to dst.
func appendCellKey(dst []byte, kind byte, d Day, id CellID) []byte {
	dst = binary.BigEndian.AppendUint32(append(dst, prefixReport, kind), uint32(d))
	for _, s := range [...]string{id.Campaign, id.Medium, id.Content, id.Domain, id.Slug} {
		dst = append(append(dst, s...), 0)
	}
	return dst
}

// A cell record is cellRecordV3, the reports cursor the cell counts up to as a uvarint
// (cellRecord.through), the length of the cell's JSON as a uvarint, the JSON, then the
// HyperLogLog sketch of its human visitors (empty when it had none). cellRecordV2 is the
// same without the cursor. Cells written before those kept their sketch in a record of
// its own (rSketch) and are only JSON, starting with '{'; the first flush that rewrites
// one moves its sketch in. One record instead of two halves the reads of a cell that is
// not cached: under uniform traffic over many links, nearly every click's.
const (
	cellRecordV2 = 2
	cellRecordV3 = 3
)

// cellRecord is what a cell record holds besides the Cell.
type cellRecord struct {
	sketch  []byte // a view into the record, nil when it has none
	through uint64 // the cell counts the outbox events before this sequence
	legacy  bool   // the record is from before sketches moved in
}

func appendCell(dst []byte, c *Cell, sketch []byte, through uint64) ([]byte, error) {
	js, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	dst = binary.AppendUvarint(append(dst, cellRecordV3), through)
	dst = binary.AppendUvarint(dst, uint64(len(js)))
	return append(append(dst, js...), sketch...), nil
}

// errCorruptCell is what decodeCell returns for a record it cannot read: made once, as
// it is on the path of every cell the index consumer loads.
var errCorruptCell = fmt.Errorf("cell record: %w", ErrCorrupt)

// decodeCell decodes a cell record into c.
func decodeCell(v []byte, c *Cell) (cellRecord, error) {
	if len(v) > 0 && v[0] == '{' {
		return cellRecord{legacy: true}, json.Unmarshal(v, c)
	}
	var r cellRecord
	if len(v) == 0 || v[0] != cellRecordV2 && v[0] != cellRecordV3 {
		return r, errCorruptCell
	}
	i := 1
	if v[0] == cellRecordV3 {
		through, w := binary.Uvarint(v[i:])
		if w <= 0 {
			return r, errCorruptCell
		}
		r.through, i = through, i+w
	}
	n, w := binary.Uvarint(v[i:])
	if w <= 0 || n > uint64(len(v)-i-w) {
		return r, errCorruptCell
	}
	js, sketch := v[i+w:i+w+int(n)], v[i+w+int(n):]
	if err := json.Unmarshal(js, c); err != nil {
		return r, errCorruptCell
	}
	if len(sketch) > 0 {
		r.sketch = sketch
	}
	return r, nil
}

// legacySketchKey is the key of a cell's sketch in the older layout.
func legacySketchKey(cellKey string) []byte {
	k := []byte(cellKey)
	k[1] = rSketch
	return k
}

// Cell holds one day of one link's counters.
type Cell struct {
	HumanClicks int64 `json:"human_clicks"`
	BotClicks   int64 `json:"bot_clicks"`
	// TTC counts attributed conversions (last click, in the clicked link's cell) by
	// TTCBucket of their seconds to convert.
	TTC map[int]int64 `json:"ttc,omitempty"`
	// Conversions by type (last click), and those refunded or rejected, shown apart.
	Conversions map[string]int64 `json:"conversions,omitempty"`
	Reversed    map[string]int64 `json:"reversed,omitempty"`
	// Revenue is purchase value net of refunds, per currency, under each model.
	Revenue       map[string]float64 `json:"revenue,omitempty"`
	FirstRevenue  map[string]float64 `json:"first_click_revenue,omitempty"`
	LinearRevenue map[string]float64 `json:"linear_revenue,omitempty"`
}

// Contribution records the state a conversion was last counted in, so a status change
// takes exactly that back: its parts follow from the conversion record, whose touches,
// value and time never change.
type Contribution struct {
	Status string `json:"status"`
	Type   string `json:"type"`
}

// Part is one cell's share of a conversion.
type Part struct {
	Day      Day     `json:"day"`
	Cell     CellID  `json:"cell"`
	Model    string  `json:"model"` // last, first, linear
	Value    float64 `json:"value"`
	Currency string  `json:"currency,omitempty"`
}

// Campaign is what an operator (or an integration) tells clickgate about a campaign.
type Campaign struct {
	ID                  string    `json:"id"`
	MessagesSent        *int64    `json:"messages_sent,omitempty"`
	Cost                *float64  `json:"cost,omitempty"`
	Currency            string    `json:"currency,omitempty"`
	PlatformConversions *int64    `json:"platform_conversions,omitempty"`
	UpdatedAt           time.Time `json:"updated_at"`
}

// PutCampaign stores campaign metadata.
func (db *DB) PutCampaign(c *Campaign) error {
	v, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := db.bdb.Update(func(txn *badger.Txn) error { return txn.Set(append([]byte{prefixCampaign}, c.ID...), v) }); err != nil {
		return fmt.Errorf("storage: put campaign: %w", err)
	}
	return nil
}

// EachCampaign calls fn with the metadata of every campaign, until it returns false.
func (db *DB) EachCampaign(fn func(*Campaign) bool) error {
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixCampaign}, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var c Campaign
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &c) }); err != nil {
				return err
			}
			if !fn(&c) {
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: read campaigns: %w", err)
	}
	return nil
}

// GetCampaign reads campaign metadata.
func (db *DB) GetCampaign(id string) (*Campaign, error) {
	var c Campaign
	err := db.bdb.View(func(txn *badger.Txn) error {
		it, err := txn.Get(append([]byte{prefixCampaign}, id...))
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error { return json.Unmarshal(v, &c) })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("storage: get campaign: %w", err)
	}
	return &c, nil
}

// CellData is a cell read for a report, with the sketch of its visitors.
type CellData struct {
	Day  Day
	ID   CellID
	Cell Cell
	// Visitors is nil when the cell saw no human click.
	Visitors *hyperloglog.Sketch
}

// ReportCells reads every cell of the days [from, to).
func (db *DB) ReportCells(from, to Day) ([]*CellData, error) {
	byKey := map[string]*CellData{}
	var out []*CellData
	err := db.bdb.View(func(txn *badger.Txn) error {
		scan := func(kind byte, fn func(d Day, rest []byte, item *badger.Item) error) error {
			p := []byte{prefixReport, kind}
			it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: true, PrefetchSize: 256})
			defer it.Close()
			for it.Seek(binary.BigEndian.AppendUint32(p, uint32(from))); it.Valid(); it.Next() {
				k := it.Item().Key()
				d := Day(binary.BigEndian.Uint32(k[2:6]))
				if d >= to {
					break
				}
				if err := fn(d, k[6:], it.Item()); err != nil {
					return err
				}
			}
			return nil
		}
		if err := scan(rCell, func(d Day, rest []byte, item *badger.Item) error {
			cd := &CellData{Day: d, ID: parseCellID(rest)}
			key := string(item.Key()[2:])
			if err := item.Value(func(v []byte) error {
				rec, err := decodeCell(v, &cd.Cell)
				sketch := rec.sketch
				if rec.legacy {
					byKey[key] = cd // its sketch is in its own record, read below
				}
				if err != nil || sketch == nil {
					return err
				}
				cd.Visitors = hyperloglog.New14()
				if err := cd.Visitors.UnmarshalBinary(sketch); err != nil {
					return fmt.Errorf("visitor sketch of %v: %w", cd.ID, err)
				}
				return nil
			}); err != nil {
				return err
			}
			out = append(out, cd)
			return nil
		}); err != nil {
			return err
		}
		if len(byKey) == 0 {
			return nil
		}
		// Some cells are from before sketches moved into the cell record.
		return scan(rSketch, func(d Day, rest []byte, item *badger.Item) error {
			cd := byKey[string(item.Key()[2:])]
			if cd == nil {
				return nil
			}
			return item.Value(func(v []byte) error {
				sk := hyperloglog.New14()
				if err := sk.UnmarshalBinary(v); err != nil {
					return fmt.Errorf("visitor sketch of %v: %w", cd.ID, err)
				}
				cd.Visitors = sk
				return nil
			})
		})
	})
	if err != nil {
		return nil, fmt.Errorf("storage: report cells: %w", err)
	}
	return out, nil
}

// conversionParts splits a conversion over the cells it counts in: the last click's
// first, then the first click's, then each linear touch's (credit summed per cell).
func conversionParts(c *Conversion) []Part {
	day := DayOf(c.OccurredAt)
	value := 0.0
	if c.Value != nil {
		value = *c.Value
	}
	last := CellID{} // unattributed
	if c.LastClick != nil {
		last = touchCell(c.LastClick)
	}
	parts := make([]Part, 1, 2+len(c.Linear))
	parts[0] = Part{Day: day, Cell: last, Model: "last", Value: value, Currency: c.Currency}
	if c.FirstClick != nil {
		parts = append(parts, Part{Day: day, Cell: touchCell(c.FirstClick), Model: "first", Value: value, Currency: c.Currency})
	}
	linear := len(parts)
	for _, t := range c.Linear {
		cell := touchCell(&t)
		// A linear scan: a conversion has a handful of touches, and a map per
		// conversion cost more than the scan.
		i := slices.IndexFunc(parts[linear:], func(p Part) bool { return p.Cell == cell })
		if i >= 0 {
			parts[linear+i].Value += value * t.Credit
			continue
		}
		parts = append(parts, Part{Day: day, Cell: cell, Model: "linear", Value: value * t.Credit, Currency: c.Currency})
	}
	return parts
}

func touchCell(t *Touch) CellID {
	return CellID{Campaign: t.Campaign, Medium: t.UTM.Medium, Content: t.UTM.Content, Domain: t.Domain, Slug: t.Slug}
}
