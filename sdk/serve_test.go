package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/clickgate/clickgate/sdk"
	"github.com/clickgate/clickgate/sdk/sdktest"
)

// failing is a forwarder whose Forward returns err.
type failing struct{ err error }

func (f failing) Info() sdk.Info                                   { return sdk.Info{Name: "failing"} }
func (f failing) Configure(context.Context, json.RawMessage) error { return nil }
func (f failing) Close(context.Context) error                      { return nil }
func (f failing) Forward(context.Context, []sdk.Event) ([]sdk.Result, error) {
	return nil, f.err
}

// An error returned by Forward reaches the host as Unknown, whatever it wraps: the host
// retries the batch in the same process on Unknown and kills the plugin on the codes
// of a broken call (DeadlineExceeded, Canceled, Unavailable...).
func TestForwardErrorIsUnknown(t *testing.T) {
	for _, err := range []error{
		errors.New("destination said no"),
		fmt.Errorf("post: %w", context.DeadlineExceeded), // an HTTP client's timeout
		fmt.Errorf("post: %w", context.Canceled),
		status.Error(codes.Unavailable, "a status of its own"),
	} {
		p := sdktest.Connect(t, failing{err})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, got := p.Forward(ctx, []sdk.Event{{ID: "e1", Type: sdk.TypeClick, JSON: []byte(`{}`)}})
		cancel()
		if status.Code(got) != codes.Unknown {
			t.Errorf("Forward returning %v reached the host as %v (%v), want Unknown", err, status.Code(got), got)
		}
	}
}

// answering is a forwarder that answers its results, one per event.
type answering struct{ results []sdk.Result }

func (f answering) Info() sdk.Info                                   { return sdk.Info{Name: "answering"} }
func (f answering) Configure(context.Context, json.RawMessage) error { return nil }
func (f answering) Close(context.Context) error                      { return nil }
func (f answering) Forward(context.Context, []sdk.Event) ([]sdk.Result, error) {
	return f.results, nil
}

// Every outcome reaches the host as the forwarder gave it, its wait and reason with it.
func TestResultsSurviveTheWire(t *testing.T) {
	want := []sdk.Result{
		sdk.Delivered(),
		sdk.Retry(3*time.Second, "429"),
		sdk.Failed("400 bad event"),
		sdk.NotSent(2*time.Second, "not sent after an earlier request of the call: 429"),
	}
	p := sdktest.Connect(t, answering{want})
	evs := make([]sdk.Event, len(want))
	for i := range evs {
		evs[i] = sdk.Event{ID: fmt.Sprint(i), Type: sdk.TypeClick, JSON: []byte(`{}`)}
	}
	got, err := p.Forward(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("result %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}
