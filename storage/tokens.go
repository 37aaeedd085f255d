package storage

import (
	"bytes"
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
	// Sealed is the plain identity, sealed, kept only when the operator opts in to
	// forwarding identifiers captured at clicks.
	Sealed []byte
}

// TokenTakenError is PutRecipients refusing a token the link already has.
type TokenTakenError struct{ Token string }

func (e *TokenTakenError) Error() string { return fmt.Sprintf("token %q is taken", e.Token) }

// PutRecipients stores tokens for one link. It refuses, writing nothing, when a token is
// already taken (a *TokenTakenError).
func (db *DB) PutRecipients(domain, slug string, rs []Recipient) error {
	lk := LinkKey(domain, slug)
	err := db.bdb.View(func(txn *badger.Txn) error {
		for _, r := range rs {
			_, err := txn.Get(tokenKey(lk, r.Token))
			if err == nil {
				return &TokenTakenError{r.Token}
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
		// kind NUL value [NUL sealed]: kinds and values never hold a NUL.
		v := append(append(append([]byte{}, r.Kind...), 0), r.Value...)
		if len(r.Sealed) > 0 {
			v = append(append(v, 0), r.Sealed...)
		}
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
	var r *Recipient
	err := db.bdb.View(func(txn *badger.Txn) error {
		var err error
		r, err = getRecipient(txn, domain, slug, token)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("storage: get recipient: %w", err)
	}
	return r, nil
}

func getRecipient(txn *badger.Txn, domain, slug, token string) (*Recipient, error) {
	it, err := txn.Get(tokenKey(LinkKey(domain, slug), token))
	if err != nil {
		return nil, err
	}
	r := &Recipient{Token: token}
	return r, it.Value(func(v []byte) error {
		kind, rest, ok := bytes.Cut(v, []byte{0})
		if !ok {
			return ErrCorrupt
		}
		value, sealed, _ := bytes.Cut(rest, []byte{0})
		r.Kind, r.Value = string(kind), string(value)
		if len(sealed) > 0 {
			r.Sealed = append([]byte(nil), sealed...)
		}
		return nil
	})
}
