package storage

import "encoding/binary"

// Key layout. One byte of prefix per record kind keeps each kind in its own sorted range,
// so a prefix scan never wanders into another kind. Besides the ones below:
// conversions.go has K (conversions), E (dedupe keys), Q (conversions by event ID, kept
// past the dedupe horizon), U (sealed identifiers) and V (a state a status change
// replaced, under the event that announced it); visitors.go P (clicks by visitor), I and
// J (the identity graph); deadletters.go X; reports.go R (report counters) and G
// (campaign metadata).
const (
	prefixLink     = 'L' // L domain 0x00 slug            -> Link (JSON)
	prefixCounters = 'N' // N domain 0x00 slug            -> human, bot, test (3×uint64): read once into the checkpoint journal (checkpoint.go S)
	prefixClick    = 'C' // C click-id(16)                -> click record (binary)
	prefixOutbox   = 'O' // O seq(8, big endian)          -> outbox entry
	prefixToken    = 'T' // T domain 0x00 slug 0x00 token -> recipient identity
	prefixMeta     = 'M' // M name                        -> value
)

const (
	metaOutboxSeq   = "outbox_seq"   // highest outbox sequence ever written
	metaCountersSeq = "counters_seq" // outbox sequence the counter checkpoint covers
)

// LinkKey is the identity of a link inside storage: its domain and slug joined by a NUL,
// which neither may contain.
func LinkKey(domain, slug string) string { return domain + "\x00" + slug }

func linkKey(lk string) []byte       { return append([]byte{prefixLink}, lk...) }
func metaKey(name string) []byte     { return append([]byte{prefixMeta}, name...) }
func clickKey(id [16]byte) []byte    { return append([]byte{prefixClick}, id[:]...) }
func tokenPrefix(lk string) []byte   { return append(append([]byte{prefixToken}, lk...), 0) }
func outboxKey(seq uint64) []byte    { return binary.BigEndian.AppendUint64([]byte{prefixOutbox}, seq) }
func tokenKey(lk, tok string) []byte { return append(tokenPrefix(lk), tok...) }
