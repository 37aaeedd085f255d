package storage

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Recipient is the identity behind a per-recipient token. Kind is customer_id, email or
// phone; Value is the customer ID as given or a keyed hash of the normalised email or
// phone, never the plaintext.
type Recipient struct {
	Token string
	Kind  string
	Value string
}

// PutRecipients stores tokens for one link. It refuses, writing nothing, when a token is
// already taken.
func (db *DB) PutRecipients(domain, slug string, rs []Recipient) error {
	lk := LinkKey(domain, slug)
	err := db.bdb.View(func(txn *badger.Txn) error {
		for _, r := range rs {
			_, err := txn.Get(tokenKey(lk, r.Token))
			if err == nil {
				return fmt.Errorf("token %q is taken", r.Token)
			}
			if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: put recipients: %w", err)
	}
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	for _, r := range rs {
		v := append(append(append([]byte{}, r.Kind...), 0), r.Value...)
		if err := wb.Set(tokenKey(lk, r.Token), v); err != nil {
			return fmt.Errorf("storage: put recipient: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("storage: put recipients: %w", err)
	}
	return nil
}

// GetRecipient resolves a per-recipient token.
func (db *DB) GetRecipient(domain, slug, token string) (*Recipient, error) {
	r := &Recipient{Token: token}
	err := db.bdb.View(func(txn *badger.Txn) error {
		it, err := txn.Get(tokenKey(LinkKey(domain, slug), token))
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			for i, c := range v {
				if c == 0 {
					r.Kind, r.Value = string(v[:i]), string(v[i+1:])
					return nil
				}
			}
			return ErrCorrupt
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("storage: get recipient: %w", err)
	}
	return r, nil
}
