package storage

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/segmentio/encoding/json"
)

// Link statuses.
const (
	StatusActive   = "active"
	StatusPaused   = "paused"
	StatusArchived = "archived"
)

// UTM holds a link's five UTM values, already normalised by the proxy's naming policy.
type UTM struct {
	Source   string `json:"source"`
	Medium   string `json:"medium"`
	Campaign string `json:"campaign"`
	Content  string `json:"content,omitempty"`
	Term     string `json:"term,omitempty"`
}

// Variant is one weighted destination of an A/B test.
type Variant struct {
	Destination string `json:"destination"`
	Weight      int    `json:"weight"`
	Content     string `json:"content"`
}

// Link is a short link as stored. The proxy validates every field before it gets here.
type Link struct {
	Domain         string            `json:"domain,omitempty"`
	Slug           string            `json:"slug"`
	Destination    string            `json:"destination"`
	UTM            UTM               `json:"utm"`
	Campaign       string            `json:"campaign,omitempty"`
	Variants       []Variant         `json:"variants,omitempty"`
	ForwardQuery   bool              `json:"forward_query"`
	IdentityParams map[string]string `json:"identity_params,omitempty"`
	MaxClicks      int64             `json:"max_clicks,omitempty"`
	ExpiresAt      *time.Time        `json:"expires_at,omitempty"`
	Status         string            `json:"status"`
	CreatedAt      time.Time         `json:"created_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
}

// Key returns the link's storage identity.
func (l *Link) Key() string { return LinkKey(l.Domain, l.Slug) }

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("not found")

// PutLinks writes links in as few transactions as Badger allows. With ifAbsent, it fails
// with ErrExists naming the first link that already exists and writes nothing.
func (db *DB) PutLinks(links []*Link, ifAbsent bool) error {
	if ifAbsent {
		err := db.bdb.View(func(txn *badger.Txn) error {
			for _, l := range links {
				_, err := txn.Get(linkKey(l.Key()))
				if err == nil {
					return &ExistsError{Domain: l.Domain, Slug: l.Slug}
				}
				if !errors.Is(err, badger.ErrKeyNotFound) {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	for _, l := range links {
		v, err := json.Marshal(l)
		if err != nil {
			return fmt.Errorf("storage: encode link %q: %w", l.Slug, err)
		}
		if err := wb.Set(linkKey(l.Key()), v); err != nil {
			return fmt.Errorf("storage: put link %q: %w", l.Slug, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("storage: put links: %w", err)
	}
	return nil
}

// ExistsError says a link with that domain and slug is already stored.
type ExistsError struct{ Domain, Slug string }

func (e *ExistsError) Error() string {
	if e.Domain == "" {
		return fmt.Sprintf("slug %q is taken", e.Slug)
	}
	return fmt.Sprintf("slug %q is taken on %s", e.Slug, e.Domain)
}

// GetLink reads one link.
func (db *DB) GetLink(domain, slug string) (*Link, error) {
	var l Link
	err := db.bdb.View(func(txn *badger.Txn) error {
		it, err := txn.Get(linkKey(LinkKey(domain, slug)))
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error { return json.Unmarshal(v, &l) })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("storage: get link %q: %w", slug, err)
	}
	return &l, nil
}

// ScanLinks calls fn for every link in key order starting after the link key `after`
// (empty for the beginning) until fn returns false.
func (db *DB) ScanLinks(after string, fn func(*Link) bool) error {
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixLink}, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		start := []byte{prefixLink}
		if after != "" {
			start = append(linkKey(after), 0)
		}
		for it.Seek(start); it.Valid(); it.Next() {
			var l Link
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &l) }); err != nil {
				return fmt.Errorf("decode link %q: %w", bytes.TrimPrefix(it.Item().Key(), []byte{prefixLink}), err)
			}
			if !fn(&l) {
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: scan links: %w", err)
	}
	return nil
}
