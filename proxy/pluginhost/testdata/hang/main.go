// Command hang is a test plugin whose Forward never returns: for every call, or, when
// configured with {"hang_on": PREFIX}, only for calls carrying an event whose ID starts
// with PREFIX (the others are delivered, each call after {"delay": DURATION}).
package main

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/clickgate/clickgate/sdk"
)

type hang struct {
	prefix string
	delay  time.Duration
}

func (*hang) Info() sdk.Info              { return sdk.Info{Name: "hang", Version: "test"} }
func (*hang) Close(context.Context) error { return nil }

func (h *hang) Configure(_ context.Context, raw json.RawMessage) error {
	var c struct {
		HangOn string `json:"hang_on"`
		Delay  string `json:"delay"`
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &c); err != nil {
			return err
		}
	}
	h.prefix = c.HangOn
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
		if h.prefix == "" || strings.HasPrefix(e.ID, h.prefix) {
			select {}
		}
		out[i] = sdk.Delivered()
	}
	return out, nil
}

func main() { sdk.Serve(&hang{}) }
