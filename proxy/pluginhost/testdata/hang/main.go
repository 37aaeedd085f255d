// Command hang is a test plugin whose Forward never returns.
package main

import (
	"context"
	"encoding/json"

	"github.com/clickgate/clickgate/sdk"
)

type hang struct{}

func (hang) Info() sdk.Info                                             { return sdk.Info{Name: "hang", Version: "test"} }
func (hang) Configure(context.Context, json.RawMessage) error           { return nil }
func (hang) Close(context.Context) error                                { return nil }
func (hang) Forward(context.Context, []sdk.Event) ([]sdk.Result, error) { select {} }

func main() { sdk.Serve(hang{}) }
