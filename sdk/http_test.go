package sdk_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clickgate/clickgate/sdk"
)

// A redirected POST comes back as the redirect: no request follows it, with or
// without the body.
func TestHTTPClientDoesNotFollowRedirects(t *testing.T) {
	for _, code := range []int{301, 302, 303, 307, 308} {
		var followed atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/moved" {
				followed.Add(1)
				w.WriteHeader(http.StatusNoContent)
				return
			}
			http.Redirect(w, r, "/moved", code)
		}))
		resp, err := sdk.HTTPClient(5*time.Second).Post(srv.URL+"/hook", "application/json", strings.NewReader(`{"events":[]}`))
		if err != nil {
			t.Fatalf("%d: %v", code, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != code || resp.Header.Get("Location") != "/moved" || followed.Load() != 0 {
			t.Errorf("redirect %d: answered %d, Location %q, followed %d times", code, resp.StatusCode, resp.Header.Get("Location"), followed.Load())
		}
		srv.Close()
	}
}
