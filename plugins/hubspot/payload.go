package main

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/clickgate/clickgate/sdk"
)

// HubSpot's documented limits for custom event occurrences: 50 properties, values of
// 256 characters (1,024 for URL and referrer properties), property names of 50.
const (
	maxProperties     = 50
	maxValueChars     = 256
	maxURLValueChars  = 1024
	maxPropertyName   = 50
	maxEventsPerBatch = 500 // /events/v3/send/batch
	maxContactsBatch  = 100 // CRM object batch endpoints
)

// eventInput is one occurrence in POST /events/v3/send/batch.
type eventInput struct {
	EventName  string            `json:"eventName"`
	Email      string            `json:"email,omitempty"`
	OccurredAt string            `json:"occurredAt"`
	UUID       string            `json:"uuid"`
	Properties map[string]string `json:"properties,omitempty"`
}

// contactInput is one input of POST /crm/v3/objects/contacts/batch/upsert.
type contactInput struct {
	ID                 string            `json:"id"`
	IDProperty         string            `json:"idProperty"`
	ObjectWriteTraceID string            `json:"objectWriteTraceId"`
	Properties         map[string]string `json:"properties"`
}

// property is a configured event or contact property.
type property struct {
	name string
	src  source
	url  bool // a URL or referrer property, which takes longer values
}

// mapped is what one clickgate event becomes.
type mapped struct {
	event eventInput
	// email and contact are set when the contact is to be upserted first.
	email   string
	contact map[string]string
}

// mapEvent maps an event to its HubSpot occurrence and, when contacts are upserted,
// the contact's properties. The error says why HubSpot could never take the event.
func (h *HubSpot) mapEvent(e sdk.Event) (mapped, error) {
	var m mapped
	var name, timeField string
	var props []property
	switch e.Type {
	case sdk.TypeClick:
		name, props, timeField = h.cfg.ClickEvent, h.clickProps, "time"
		if name == "" {
			return m, errors.New("clicks are not sent: config.click_event is empty; keep clicks away from this plugin with events: [conversion] in the plugins file")
		}
	case sdk.TypeConversion:
		name, props, timeField = h.cfg.ConversionEvent, h.conversionProps, "occurred_at"
		if name == "" {
			return m, errors.New("conversions are not sent: config.conversion_event is empty; keep conversions away from this plugin with events: [click] in the plugins file")
		}
	default:
		return m, fmt.Errorf("event type %q is not click or conversion", e.Type)
	}
	doc, err := decodeDocument(e)
	if err != nil {
		return m, err
	}
	id := e.ID
	if id == "" {
		id, _, _ = doc.text(source{path: []string{"event_id"}})
	}
	if id == "" {
		return m, errors.New("event has no ID to derive HubSpot's uuid from")
	}
	at := e.Time
	if s, ok, _ := doc.text(source{path: []string{timeField}}); ok {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			at = t
		}
	}
	// A refund or rejection happened when its status changed, not when the purchase did.
	if s, ok, _ := doc.text(source{path: []string{"status_changed_at"}}); ok && e.Type == sdk.TypeConversion {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			at = t
		}
	}
	if at.Year() < 2000 || at.Year() > 9999 {
		return m, fmt.Errorf("%s event has no usable %s", e.Type, timeField)
	}
	email, _, err := doc.text(source{path: []string{"user", "email"}})
	if err != nil {
		return m, err
	}
	m.event = eventInput{EventName: name, Email: email, OccurredAt: at.UTC().Format("2006-01-02T15:04:05.000Z"), UUID: eventUUID(id)}
	for _, p := range props {
		v, ok, err := doc.text(p.src)
		if err != nil {
			return m, fmt.Errorf("property %s: %v", p.name, err)
		}
		if !ok {
			continue
		}
		limit := maxValueChars
		if p.url {
			limit = maxURLValueChars
		}
		if n := utf8.RuneCountInString(v); n > limit {
			return m, fmt.Errorf("property %s is %d characters; HubSpot takes at most %d (list URL properties in config.url_properties for 1,024)", p.name, n, limit)
		}
		if m.event.Properties == nil {
			m.event.Properties = make(map[string]string, len(props))
		}
		m.event.Properties[p.name] = v
	}
	if email == "" && (h.cfg.MatchingProperty == "" || m.event.Properties[h.cfg.MatchingProperty] == "") {
		return m, h.noIdentifier(e.Type)
	}
	if h.cfg.UpsertContacts && email != "" {
		m.email, m.contact = email, map[string]string{}
		for _, p := range h.contactProps[e.Type] {
			v, ok, err := doc.text(p.src)
			if err != nil {
				return m, fmt.Errorf("contact property %s: %v", p.name, err)
			}
			if ok {
				m.contact[p.name] = v
			}
		}
	}
	return m, nil
}

func (h *HubSpot) noIdentifier(typ string) error {
	also := ""
	if h.cfg.MatchingProperty != "" {
		also = fmt.Sprintf(" nor a value for the matching property %s", h.cfg.MatchingProperty)
	}
	if typ == sdk.TypeClick {
		return fmt.Errorf("click carries no email (user.email)%s, so HubSpot cannot tie it to a contact: "+
			"keep clicks away from this plugin (events: [conversion] in the plugins file), "+
			"or have clickgate send user data with clicks (CLICKGATE_EVENT_USER_DATA=all), "+
			"or match contacts by customer ID (config.matching_property)", also)
	}
	return fmt.Errorf("conversion carries no email (user.email)%s, so HubSpot cannot tie it to a contact", also)
}

// eventUUID derives the occurrence's uuid from the clickgate event ID: a name-based
// UUID (RFC 9562 version 5, URL namespace, name "urn:clickgate:event:<id>"). HubSpot
// accepts the first occurrence of a uuid and rejects the others, so a redelivered event
// is not counted twice.
func eventUUID(id string) string {
	const namespaceURL = "\x6b\xa7\xb8\x11\x9d\xad\x11\xd1\x80\xb4\x00\xc0\x4f\xd4\x30\xc8"
	h := sha1.New()
	h.Write([]byte(namespaceURL))
	h.Write([]byte("urn:clickgate:event:" + id))
	u := h.Sum(nil)[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// properties turns a configured name → source map into sorted properties.
func properties(field, eventType string, cfg map[string]string, urls map[string]bool, eventProps bool) ([]property, error) {
	names := make([]string, 0, len(cfg))
	for n := range cfg {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]property, 0, len(names))
	for _, n := range names {
		if eventProps {
			if err := checkEventPropertyName(n); err != nil {
				return nil, fmt.Errorf("config.%s.%s: %v", field, n, err)
			}
		} else if n == "" || n == "email" {
			return nil, fmt.Errorf("config.%s: %q cannot be set (email is the contact's ID)", field, n)
		}
		src, err := parseSource(cfg[n], eventType)
		if err != nil {
			return nil, fmt.Errorf("config.%s.%s: %v", field, n, err)
		}
		out = append(out, property{name: n, src: src, url: urls[n]})
	}
	if eventProps && len(out) > maxProperties {
		return nil, fmt.Errorf("config.%s: %d properties; HubSpot takes at most %d per occurrence", field, len(out), maxProperties)
	}
	return out, nil
}

// checkEventPropertyName applies HubSpot's rule for event property internal names.
func checkEventPropertyName(n string) error {
	if n == "" || len(n) > maxPropertyName {
		return fmt.Errorf("a property name has 1 to %d characters", maxPropertyName)
	}
	for i, r := range n {
		switch {
		case r >= 'a' && r <= 'z':
		case i > 0 && (r >= '0' && r <= '9' || r == '_'):
		default:
			return errors.New("a property name starts with a letter and has only lowercase letters, digits and underscores")
		}
	}
	return nil
}
