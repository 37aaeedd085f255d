// Package events turns stored records into the JSON events clickgate publishes to Kafka
// and plugins. The shapes are a public contract, versioned by schema_version and
// described by the JSON Schemas in configs/schemas/.
package events

import (
	"encoding/json"
	"time"

	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/storage"
)

// SchemaVersion is the version of the event shapes below. Adding a field keeps it;
// renaming or removing one bumps it.
const SchemaVersion = 1

// Event types, also sent as the event_type header.
const (
	TypeClick = "click"
)

// Click is the click event.
type Click struct {
	SchemaVersion int         `json:"schema_version"`
	EventType     string      `json:"event_type"`
	EventID       string      `json:"event_id"`
	ClickID       string      `json:"click_id"`
	Time          time.Time   `json:"time"`
	Node          string      `json:"node"`
	Domain        string      `json:"domain,omitempty"`
	Slug          string      `json:"slug"`
	Campaign      string      `json:"campaign"`
	UTM           storage.UTM `json:"utm"`
	Variant       *int        `json:"variant,omitempty"`
	Destination   string      `json:"destination"`
	VisitorID     string      `json:"visitor_id"`
	NewVisitor    bool        `json:"new_visitor"`
	Identity      *Identity   `json:"identity,omitempty"`
	IP            string      `json:"ip,omitempty"`
	UserAgent     string      `json:"user_agent,omitempty"`
	Referrer      string      `json:"referrer,omitempty"`
	Bot           bool        `json:"bot"`
	BotReason     string      `json:"bot_reason,omitempty"`
	Test          bool        `json:"test"`
}

// Identity is what a click captured about who tapped: the kind, the stored value
// (customer IDs as given, emails and phones as keyed hashes), where it came from, and
// the per-recipient token if any.
type Identity struct {
	Kind   string `json:"kind,omitempty"`
	Value  string `json:"value,omitempty"`
	Source string `json:"source"`
	Token  string `json:"token,omitempty"`
}

// FromClick builds the click event of a stored click. The event ID is the click ID:
// stable across redeliveries, so consumers dedupe on it.
func FromClick(c *storage.Click) *Click {
	id := ids.ClickID(c.ID).String()
	e := &Click{
		SchemaVersion: SchemaVersion, EventType: TypeClick, EventID: id, ClickID: id,
		Time: c.Time, Node: c.Node, Domain: c.Domain, Slug: c.Slug, Campaign: c.Campaign, UTM: c.UTM,
		Destination: c.Destination, VisitorID: c.VisitorID, NewVisitor: c.NewVisitor, IP: c.IP,
		UserAgent: c.UserAgent, Referrer: c.Referrer, Bot: c.Bot, BotReason: c.BotReason, Test: c.Test,
	}
	if c.Variant >= 0 {
		v := c.Variant
		e.Variant = &v
	}
	if c.IdentitySource != "" {
		e.Identity = &Identity{Kind: c.IdentityKind, Value: c.IdentityValue, Source: c.IdentitySource, Token: c.Token}
	}
	return e
}

// Marshal encodes an event without HTML escaping, so URLs stay readable.
func Marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return b, nil
}
