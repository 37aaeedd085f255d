package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/sdk"
	"github.com/clickgate/clickgate/sdk/sdktest"
)

func TestForward(t *testing.T) {
	ctx := context.Background()
	dest := sdktest.NewRecorder(t, func(r sdktest.Request) sdktest.Reply {
		if r.Method != "POST" || r.Header.Get("Authorization") != "Bearer s3cret" {
			return sdktest.Reply{Status: 401}
		}
		return sdktest.Reply{Status: 200}
	})
	p := sdktest.Connect(t, &Poster{}) // the real gRPC protocol, in-process
	if err := p.Configure(ctx, json.RawMessage(`{"url": "`+dest.URL+`", "token": "s3cret"}`)); err != nil {
		t.Fatal(err)
	}

	click := sdk.ClickEvent{EventType: "click", EventID: "06j0000000000000000000000a", Slug: "spring26", Time: time.Now().UTC()}
	doc, _ := json.Marshal(click)
	events := []sdk.Event{
		{ID: click.EventID, Type: sdk.TypeClick, Time: click.Time, JSON: doc},
		{ID: "06j0000000000000000000000b", Type: sdk.TypeClick, Time: click.Time, JSON: []byte(`{"broken`)},
	}
	res, err := p.Forward(ctx, events)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != sdk.StatusDelivered || res[1].Status != sdk.StatusFailed {
		t.Errorf("results %+v, want delivered, failed", res)
	}
	reqs := dest.Requests()
	if len(reqs) != 1 || string(reqs[0].Body) != "["+string(doc)+"]" {
		t.Fatalf("requests %+v", reqs)
	}

	// The destination is down: retry, not before its Retry-After.
	dest.Respond(func(sdktest.Request) sdktest.Reply {
		return sdktest.Reply{Status: 503, Header: http.Header{"Retry-After": {"30"}}}
	})
	res, err = p.Forward(ctx, events[:1])
	if err != nil || res[0].Status != sdk.StatusRetry || res[0].RetryAfter != 30*time.Second {
		t.Errorf("on 503: %+v, %v", res, err)
	}

	err = p.Configure(ctx, json.RawMessage(`{"url": "ftp://example.com"}`))
	if err == nil || !strings.Contains(err.Error(), "config.url") {
		t.Errorf("bad url accepted: %v", err)
	}
}
