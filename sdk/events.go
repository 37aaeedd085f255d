package sdk

import (
	"encoding/json"
	"time"
)

// SchemaVersion is the version of the event documents this SDK describes.
const SchemaVersion = 1

// ClickEvent is the click event document (configs/schemas/click.v1.json).
type ClickEvent struct {
	SchemaVersion int       `json:"schema_version"`
	EventType     string    `json:"event_type"`
	EventID       string    `json:"event_id"`
	ClickID       string    `json:"click_id"`
	Time          time.Time `json:"time"`
	Node          string    `json:"node"`
	Domain        string    `json:"domain,omitempty"`
	Slug          string    `json:"slug"`
	Campaign      string    `json:"campaign"`
	UTM           UTM       `json:"utm"`
	Variant       *int      `json:"variant,omitempty"`
	Destination   string    `json:"destination"`
	VisitorID     string    `json:"visitor_id"`
	NewVisitor    bool      `json:"new_visitor"`
	Identity      *Identity `json:"identity,omitempty"`
	IP            string    `json:"ip,omitempty"`
	UserAgent     string    `json:"user_agent,omitempty"`
	Referrer      string    `json:"referrer,omitempty"`
	// User carries identifiers captured at the click in plain form; present only when
	// the operator opts in (CLICKGATE_EVENT_USER_DATA=all). Identity has them as kept.
	User      *User  `json:"user,omitempty"`
	Bot       bool   `json:"bot"`
	BotReason string `json:"bot_reason,omitempty"`
	Test      bool   `json:"test"`
}

// UTM holds a link's UTM values.
type UTM struct {
	Source   string `json:"source"`
	Medium   string `json:"medium"`
	Campaign string `json:"campaign"`
	Content  string `json:"content,omitempty"`
	Term     string `json:"term,omitempty"`
}

// Identity is what a click captured about who tapped. Value is the customer ID as
// given, or for email and phone a keyed hash clickgate computed (not the plain value).
type Identity struct {
	Kind   string `json:"kind,omitempty"`
	Value  string `json:"value,omitempty"`
	Source string `json:"source"`
	Token  string `json:"token,omitempty"`
}

// User identifies a person for destinations that match people themselves (ad
// platforms, CRMs, SMS platforms). Values are normalised the same way for every
// destination: Email trimmed and lowercased, Phone in E.164 with its leading '+',
// CustomerID exactly as given. Hash or reformat them the way each destination asks.
type User struct {
	Email      string `json:"email,omitempty"`
	Phone      string `json:"phone,omitempty"`
	CustomerID string `json:"customer_id,omitempty"`
}

// ConversionEvent is the conversion event document (configs/schemas/conversion.v1.json).
// A status change (refund, rejection) is a new event for the same conversion, with
// event_id "<source_event_id>:<status>", so destinations that dedupe on event_id keep it.
type ConversionEvent struct {
	SchemaVersion int       `json:"schema_version"`
	EventType     string    `json:"event_type"`
	EventID       string    `json:"event_id"`
	ConversionID  string    `json:"conversion_id"`
	SourceEventID string    `json:"source_event_id"`
	Type          string    `json:"type"`
	Status        string    `json:"status"`
	Value         *float64  `json:"value,omitempty"`
	Currency      string    `json:"currency,omitempty"`
	OccurredAt    time.Time `json:"occurred_at"`
	ReceivedAt    time.Time `json:"received_at"`
	// StatusChangedAt is when the refund or rejection that set Status happened; zero
	// while the conversion keeps the status it came with. EventTime picks it.
	StatusChangedAt time.Time  `json:"status_changed_at,omitzero"`
	ClickID         string     `json:"click_id,omitempty"`
	VisitorID       string     `json:"visitor_id,omitempty"`
	Identities      []Identity `json:"identities,omitempty"`
	// User is who the sender said converted, normalised; nil when the sender gave no
	// email, phone or customer ID, or when the operator turned user data off.
	User *User `json:"user,omitempty"`
	// Attribution is the last-click touch; nil when unattributed (Reason says why).
	Attribution *Touch  `json:"attribution"`
	FirstClick  *Touch  `json:"first_click,omitempty"`
	Linear      []Touch `json:"linear,omitempty"`
	Reason      string  `json:"reason,omitempty"`
	Source      string  `json:"source"`
}

// EventTime is when what the event announces happened: the refund or rejection for a
// conversion whose status changed, else the conversion. A destination that takes a
// reversal as an event of its own (a refund) stamps it with this, not with the purchase's
// time, which may lie past the destination's window for late events.
func (c *ConversionEvent) EventTime() time.Time {
	if !c.StatusChangedAt.IsZero() {
		return c.StatusChangedAt
	}
	return c.OccurredAt
}

// Touch is a click credited with a conversion.
type Touch struct {
	ClickID          string    `json:"click_id"`
	Slug             string    `json:"slug"`
	Domain           string    `json:"domain,omitempty"`
	Campaign         string    `json:"campaign"`
	UTM              UTM       `json:"utm"`
	Variant          *int      `json:"variant,omitempty"`
	ClickTime        time.Time `json:"click_time"`
	SecondsToConvert int64     `json:"seconds_to_convert"`
	Credit           float64   `json:"credit"`
}

// Conversion decodes a conversion event.
func (e Event) Conversion() (*ConversionEvent, error) {
	var c ConversionEvent
	if err := json.Unmarshal(e.JSON, &c); err != nil {
		return nil, err
	}
	return &c, nil
}
