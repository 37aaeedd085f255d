package sdk

import (
	"net/http"
	"time"
)

// HTTPClient returns a client for a forwarder's API calls, with timeout per request,
// that does not follow redirects. Go's default client turns a POST redirected by 301,
// 302 or 303 into a GET without the body, and a 2xx to that GET would count the events
// as delivered when they were never sent. With this client a redirect comes back as
// the response: fail the events with its Location, so the operator fixes the URL.
func HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
