// Command hang is a test plugin whose Forward never returns: for every call, or, when
// configured with {"hang_on": PREFIX}, only for calls carrying an event whose ID starts
// with PREFIX (the others are delivered).
package main

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/clickgate/clickgate/sdk"
)

type hang struct{ prefix string }

func (*hang) Info() sdk.Info              { return sdk.Info{Name: "hang", Version: "test"} }
func (*hang) Close(context.Context) error { return nil }

func (h *hang) Configure(_ context.Context, raw json.RawMessage) error {
	var c struct {
		HangOn string `json:"hang_on"`
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &c); err != nil {
			return err
		}
	}
	h.prefix = c.HangOn
	return nil
}

func (h *hang) Forward(_ context.Context, evs []sdk.Event) ([]sdk.Result, error) {
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
