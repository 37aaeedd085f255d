package sdk

import "time"

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
	Bot           bool      `json:"bot"`
	BotReason     string    `json:"bot_reason,omitempty"`
	Test          bool      `json:"test"`
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
