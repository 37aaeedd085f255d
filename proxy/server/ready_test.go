package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/storage"
)

// A commit failure no later commit has followed stops being reported after a while: a
// node with no traffic commits nothing, and its disk may have been freed since.
func TestCommitFailureLapses(t *testing.T) {
	db, err := storage.Open(storage.Options{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := &Server{DB: db}
	storageOf := func() string {
		_, body := s.ready()
		var out map[string]any
		json.Unmarshal(body, &out)
		return out["storage"].(string)
	}
	start := time.Now().Add(-10 * time.Minute)
	s.commitFailing.Store(&commitFailure{err: "no space left on device", since: start, last: time.Now()})
	if got := storageOf(); !strings.HasPrefix(got, "commits failing since ") {
		t.Fatalf("a recent failure: %q", got)
	}
	s.commitFailing.Store(&commitFailure{err: "no space left on device", since: start, last: time.Now().Add(-commitFailureLapse - time.Second)})
	if got := storageOf(); got != "ok" {
		t.Fatalf("a failure a lapse ago: %q", got)
	}
}
