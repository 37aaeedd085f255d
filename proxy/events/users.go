package events

import (
	"encoding/json"
	"fmt"

	"github.com/clickgate/clickgate/proxy/identity"
	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/sdk"
	"github.com/clickgate/clickgate/storage"
)

// Users is the policy for plain identifiers in events. Conversions carry the ones their
// sender gave, kept sealed until the events are read; clicks carry the ones captured at
// the click (identity parameter, recipient token) only when Clicks is set, which the
// operator opts in to (CLICKGATE_EVENT_USER_DATA=all). A nil Sealer puts none anywhere.
type Users struct {
	Sealer *identity.Sealer
	Clicks bool
}

// Recipients resolves per-recipient tokens.
type Recipients interface {
	GetRecipient(domain, slug, token string) (*storage.Recipient, error)
}

// Conversion returns the user sealed with an outbox conversion event: nil when none was
// kept (the sender gave none, user data is off, or every consumer had already read it),
// an error when it does not open (e.g. the server secret changed).
func (u Users) Conversion(e storage.Event) (*sdk.User, error) {
	if len(e.Sealed) == 0 || u.Sealer == nil {
		return nil, nil
	}
	user, err := u.open(e.Sealed, e.Ref[:])
	if err != nil {
		return nil, fmt.Errorf("conversion %x: %w", e.Ref, err)
	}
	return user, nil
}

// Click returns the user captured at a click, nil when clicks carry none.
func (u Users) Click(rs Recipients, c *storage.Click) (*sdk.User, error) {
	if u.Sealer == nil || !u.Clicks {
		return nil, nil
	}
	if c.SealedUser != "" {
		user, err := u.open([]byte(c.SealedUser), c.ID[:])
		if err != nil {
			return nil, fmt.Errorf("click %s: %w", ids.ClickID(c.ID), err)
		}
		return user, nil
	}
	if c.Token == "" {
		return nil, nil
	}
	r, err := rs.GetRecipient(c.Domain, c.Slug, c.Token)
	if err != nil || len(r.Sealed) == 0 {
		return nil, nil // a token issued before the opt-in, or revoked
	}
	user, err := u.open(r.Sealed, RecipientSealAD(c.Domain, c.Slug, c.Token))
	if err != nil {
		return nil, fmt.Errorf("click %s, token %s: %w", ids.ClickID(c.ID), c.Token, err)
	}
	return user, nil
}

func (u Users) open(sealed, ad []byte) (*sdk.User, error) {
	plain, err := u.Sealer.Open(sealed, ad)
	if err != nil {
		return nil, err
	}
	var user sdk.User
	if err := json.Unmarshal(plain, &user); err != nil {
		return nil, fmt.Errorf("sealed identifiers: %w", err)
	}
	return &user, nil
}

// SealIdentity seals one normalised identity as a user document (identity kinds are the
// user's field names) for the record ad names.
func SealIdentity(s *identity.Sealer, kind, normalized string, ad []byte) []byte {
	plain, _ := json.Marshal(map[string]string{kind: normalized}) // cannot fail
	return s.Seal(plain, ad)
}

// RecipientSealAD binds a recipient's sealed identity to its link and token.
func RecipientSealAD(domain, slug, token string) []byte {
	return []byte(storage.LinkKey(domain, slug) + "\x00" + token)
}
