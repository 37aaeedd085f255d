// Command hang is a test plugin whose Forward never returns: for every call, or, when
// configured with {"hang_on": PREFIX}, only for calls carrying an event whose ID starts
// with PREFIX, or with {"hang_on_json": TEXT}, whose document contains TEXT (the others
// are delivered, each call after {"delay": DURATION}). With {"not_sent_on": PREFIX}
// it answers events whose ID starts with PREFIX as not sent. With
// HANG_DESCRIBE set in its environment, it completes the handshake and then never
// answers the host's Describe.
package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/clickgate/clickgate/sdk"
)

type hang struct {
	prefix, text, notSent string
	delay                 time.Duration
}

// infoCalls counts calls of Info: Serve makes the first, before the handshake, to name
// its logger; Describe makes the next.
var infoCalls atomic.Int64

func (*hang) Info() sdk.Info {
	if infoCalls.Add(1) > 1 && os.Getenv("HANG_DESCRIBE") != "" {
		select {}
	}
	return sdk.Info{Name: "hang", Version: "test"}
}

func (*hang) Close(context.Context) error { return nil }

func (h *hang) Configure(_ context.Context, raw json.RawMessage) error {
	var c struct {
		HangOn     string `json:"hang_on"`
		HangOnJSON string `json:"hang_on_json"`
		NotSentOn  string `json:"not_sent_on"`
		Delay      string `json:"delay"`
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &c); err != nil {
			return err
		}
	}
	h.prefix, h.text, h.notSent = c.HangOn, c.HangOnJSON, c.NotSentOn
	if c.Delay != "" {
		d, err := time.ParseDuration(c.Delay)
		if err != nil {
			return err
		}
		h.delay = d
	}
	return nil
}

func (h *hang) Forward(_ context.Context, evs []sdk.Event) ([]sdk.Result, error) {
	time.Sleep(h.delay)
	out := make([]sdk.Result, len(evs))
	for i, e := range evs {
		switch {
		case h.notSent != "":
			if strings.HasPrefix(e.ID, h.notSent) {
				out[i] = sdk.NotSent(0, "not sent: the test says so")
				continue
			}
		case h.text != "":
			if strings.Contains(string(e.JSON), h.text) {
				select {}
			}
		case h.prefix == "" || strings.HasPrefix(e.ID, h.prefix):
			select {}
		}
		out[i] = sdk.Delivered()
	}
	return out, nil
}

func main() { sdk.Serve(&hang{}) }
