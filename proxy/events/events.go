// Package events turns stored records into the JSON events clickgate publishes to Kafka
// and plugins. The shapes are a public contract, versioned by schema_version and
// described by the JSON Schemas in configs/schemas/.
package events

import (
	"encoding/json"

	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/sdk"
	"github.com/clickgate/clickgate/storage"
)

// SchemaVersion is the version of the event shapes below. Adding a field keeps it;
// renaming or removing one bumps it.
const SchemaVersion = sdk.SchemaVersion

// Event types, also sent as the event_type header.
const (
	TypeClick = "click"
)

// Click is the click event; its shape is the SDK's, the public contract plugins read.
type Click = sdk.ClickEvent

// Identity is what a click captured about who tapped.
type Identity = sdk.Identity

// FromClick builds the click event of a stored click. The event ID is the click ID:
// stable across redeliveries, so consumers dedupe on it.
func FromClick(c *storage.Click) *Click {
	id := ids.ClickID(c.ID).String()
	e := &Click{
		SchemaVersion: SchemaVersion, EventType: TypeClick, EventID: id, ClickID: id,
		Time: c.Time, Node: c.Node, Domain: c.Domain, Slug: c.Slug, Campaign: c.Campaign,
		UTM:         sdk.UTM{Source: c.UTM.Source, Medium: c.UTM.Medium, Campaign: c.UTM.Campaign, Content: c.UTM.Content, Term: c.UTM.Term},
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
