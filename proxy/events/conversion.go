package events

import (
	"github.com/clickgate/clickgate/sdk"
	"github.com/clickgate/clickgate/storage"
)

// TypeConversion is the conversion event type.
const TypeConversion = "conversion"

// Conversion is the conversion event.
type Conversion = sdk.ConversionEvent

// FromConversion builds the conversion event of a stored conversion in its current state.
func FromConversion(c *storage.Conversion) *Conversion {
	eid := c.EventID
	if c.Status != "approved" {
		eid += ":" + c.Status
	}
	e := &Conversion{
		SchemaVersion: SchemaVersion, EventType: TypeConversion, EventID: eid, ConversionID: c.ID, SourceEventID: c.EventID,
		Type: c.Type, Status: c.Status, Value: c.Value, Currency: c.Currency, OccurredAt: c.OccurredAt, ReceivedAt: c.ReceivedAt, StatusChangedAt: c.StatusChangedAt,
		ClickID: c.ClickID, VisitorID: c.VisitorID, Attribution: touch(c.LastClick), FirstClick: touch(c.FirstClick),
		Reason: c.Reason, Source: c.Source,
	}
	for _, id := range c.Identities {
		e.Identities = append(e.Identities, sdk.Identity{Kind: id.Kind, Value: id.Value, Source: "conversion"})
	}
	for i := range c.Linear {
		e.Linear = append(e.Linear, *touch(&c.Linear[i]))
	}
	return e
}

func touch(t *storage.Touch) *sdk.Touch {
	if t == nil {
		return nil
	}
	return &sdk.Touch{
		ClickID: t.ClickID, Slug: t.Slug, Domain: t.Domain, Campaign: t.Campaign,
		UTM:     sdk.UTM{Source: t.UTM.Source, Medium: t.UTM.Medium, Campaign: t.UTM.Campaign, Content: t.UTM.Content, Term: t.UTM.Term},
		Variant: t.Variant, ClickTime: t.ClickTime, SecondsToConvert: t.SecondsToConvert, Credit: t.Credit,
	}
}
