// Package sdk is what a forwarder plugin is written against: implement Forwarder, call
// Serve from main, and clickgate runs the binary out of process, feeding it every click
// and conversion. The SDK owns the handshake, protocol versions, gRPC and mTLS; a
// forwarder never sees go-plugin. Test a forwarder in-process with package sdktest.
package sdk

import (
	"context"
	"encoding/json"
	"time"
)

// Forwarder is a destination for clickgate's events. The host calls Configure once,
// then Forward with batches, then Close. Calls are not concurrent.
type Forwarder interface {
	// Info names the forwarder and documents its configuration.
	Info() Info
	// Configure validates and applies the plugin's "config" object from the plugins
	// file. A returned error is shown to the operator as is; make it name the field.
	Configure(ctx context.Context, config json.RawMessage) error
	// Forward delivers a batch and returns one Result per event, in order. Partial
	// success is normal: deliver what you can, ask to retry the rest. A returned error
	// means nothing was delivered: the whole batch is retried later, with back-off, by
	// the same process (prefer per-event results; an error counts as an attempt for
	// every event).
	Forward(ctx context.Context, events []Event) ([]Result, error)
	// Close releases resources; the process exits after it.
	Close(ctx context.Context) error
}

// Info describes a forwarder, for `plugin describe` and the host's logs.
type Info struct {
	Name        string
	Version     string
	Description string
	Config      []ConfigField
}

// ConfigField documents one configuration field.
type ConfigField struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Required    bool   `json:"required,omitempty"`
	Secret      bool   `json:"secret,omitempty"`
	Default     any    `json:"default,omitempty"`
	Description string `json:"description,omitempty"`
}

// Event types.
const (
	TypeClick      = "click"
	TypeConversion = "conversion"
)

// Event is one event to forward.
type Event struct {
	// ID is stable across redeliveries (the click ID for clicks): pass it on wherever
	// the destination deduplicates (messageId, event_id, unique_id, ...).
	ID   string
	Type string
	Time time.Time
	// JSON is the event document, as published to Kafka; its schema is in
	// configs/schemas/<type>.v<schema_version>.json.
	JSON json.RawMessage
}

// Click decodes a click event.
func (e Event) Click() (*ClickEvent, error) {
	var c ClickEvent
	if err := json.Unmarshal(e.JSON, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Status is the outcome of one event.
type Status int

// Outcomes.
const (
	// StatusDelivered: the destination has it.
	StatusDelivered Status = iota + 1
	// StatusRetry: try again later (after RetryAfter when set), e.g. on 429 or 5xx.
	StatusRetry
	// StatusFailed: it will never be accepted (e.g. 400); the host dead-letters it.
	StatusFailed
	// StatusNotSent: the forwarder did not try it in this call (the call ran short of
	// time, or an earlier request of the call had to wait), or sent it only in a request
	// refused for another of its events. The host retries it like StatusRetry, but
	// counts no attempt for it while the call tried other events, so events never sent
	// are not dead-lettered for attempts they did not make.
	StatusNotSent
)

// Result is the outcome for one event.
type Result struct {
	Status     Status
	RetryAfter time.Duration
	Reason     string
}

// Delivered reports an event delivered.
func Delivered() Result { return Result{Status: StatusDelivered} }

// Retry asks for a later retry, not before after (0: the host's back-off decides).
func Retry(after time.Duration, reason string) Result {
	return Result{Status: StatusRetry, RetryAfter: after, Reason: reason}
}

// NotSent reports an event the call did not try, to be sent again not before after (0:
// the host's back-off decides).
func NotSent(after time.Duration, reason string) Result {
	return Result{Status: StatusNotSent, RetryAfter: after, Reason: reason}
}

// Failed reports an event the destination will never accept.
func Failed(reason string) Result { return Result{Status: StatusFailed, Reason: reason} }

// All returns n copies of r: the result for a batch that succeeded or failed whole.
func All(n int, r Result) []Result {
	out := make([]Result, n)
	for i := range out {
		out[i] = r
	}
	return out
}
