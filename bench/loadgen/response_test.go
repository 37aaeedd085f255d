package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// chunkReader returns at most n bytes per Read, to cut responses at every boundary.
type chunkReader struct {
	data []byte
	n    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := min(c.n, len(p), len(c.data))
	copy(p, c.data[:k])
	c.data = c.data[k:]
	return k, nil
}

func TestReadGoodResponses(t *testing.T) {
	big := strings.Repeat("x", 9000)
	cases := []struct {
		name, in string
		keep     bool
		status   int
		location string
		body     string
		close    bool
	}{
		{"clickgate 302", "HTTP/1.1 302 Found\r\nServer: clickgate\r\nContent-Length: 0\r\nLocation: https://shop.example.com/p?utm_source=sms&cgid=01abc\r\nSet-Cookie: cg_vid=x\r\n\r\n",
			false, 302, "https://shop.example.com/p?utm_source=sms&cgid=01abc", "", false},
		{"nginx 302 with body", "HTTP/1.1 302 Moved Temporarily\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: 11\r\nConnection: keep-alive\r\nLocation: https://x/\r\n\r\n<html></ht>",
			true, 302, "https://x/", "<html></ht>", false},
		{"no reason phrase", "HTTP/1.1 204\r\n\r\n", false, 204, "", "", false},
		{"blanks around values, odd case", "HTTP/1.1 302 Found\r\nlOcAtIoN: \t /a \t\r\ncontent-LENGTH:  2 \r\n\r\nok", true, 302, "/a", "ok", false},
		{"chunked with extension and trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\nA\r\n, world!!!\r\n0\r\nTrailer: 1\r\n\r\n",
			true, 200, "", "hello, world!!!", false},
		{"connection close", "HTTP/1.1 404 Not Found\r\nConnection: keep-alive, Close\r\nContent-Length: 3\r\n\r\nnop", false, 404, "", "", true},
		{"HTTP/1.0 closes by default", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false, 200, "", "", true},
		{"HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", false, 200, "", "", false},
		{"body until EOF", "HTTP/1.1 200 OK\r\n\r\nall of it", true, 200, "", "all of it", true},
		{"304 ignores Content-Length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", false, 304, "", "", false},
		{"large header block", "HTTP/1.1 200 OK\r\nX-Big: " + big + "\r\nContent-Length: 0\r\n\r\n", false, 200, "", "", false},
		{"duplicate equal Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nz", true, 200, "", "z", false},
	}
	for _, c := range cases {
		for _, n := range []int{1, 3, 7, 4096} {
			rd := NewReader(&chunkReader{[]byte(c.in), n}, 0)
			var resp Response
			if err := rd.Read(&resp, c.keep); err != nil {
				t.Errorf("%s (reads of %d): %v", c.name, n, err)
				continue
			}
			if resp.Status != c.status || string(resp.Location) != c.location || (c.keep && string(resp.Body) != c.body) || resp.Close != c.close {
				t.Errorf("%s (reads of %d): got %d %q %q close=%v", c.name, n, resp.Status, resp.Location, resp.Body, resp.Close)
			}
			if c.location == "" && resp.Location != nil {
				t.Errorf("%s: Location %q where there is none", c.name, resp.Location)
			}
			if !resp.Close && rd.Buffered() != 0 {
				t.Errorf("%s: %d bytes left over", c.name, rd.Buffered())
			}
		}
	}
}

func TestReadKeepAliveSequence(t *testing.T) {
	one := "HTTP/1.1 302 Found\r\nContent-Length: 4\r\nLocation: /x\r\n\r\nbody"
	rd := NewReader(&chunkReader{[]byte(strings.Repeat(one, 100)), 37}, 0)
	var resp Response
	for i := 0; i < 100; i++ {
		if err := rd.Read(&resp, i%2 == 0); err != nil || resp.Status != 302 || string(resp.Location) != "/x" {
			t.Fatalf("response %d: %v %d %q", i, err, resp.Status, resp.Location)
		}
	}
	if err := rd.Read(&resp, false); err != io.EOF {
		t.Fatalf("after the last response: %v, want io.EOF", err)
	}
}

// TestReadHostile feeds what a broken or hostile server could send: every case must end
// in an error (never a panic, a hang or a made-up answer).
func TestReadHostile(t *testing.T) {
	cases := []struct {
		name, in string
		want     error
	}{
		{"empty", "", io.EOF},
		{"cut in the status line", "HTTP/1.1 30", io.ErrUnexpectedEOF},
		{"cut in the headers", "HTTP/1.1 302 Found\r\nLocation: /a\r\n", io.ErrUnexpectedEOF},
		{"cut in the body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", io.ErrUnexpectedEOF},
		{"cut in a chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc", io.ErrUnexpectedEOF},
		{"not HTTP", "SSH-2.0-OpenSSH_9.2\r\n\r\n", ErrMalformed},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", ErrMalformed},
		{"HTTP/1.2", "HTTP/1.2 200 OK\r\n\r\n", ErrMalformed},
		{"status with letters", "HTTP/1.1 3O2 Found\r\n\r\n", ErrMalformed},
		{"two-digit status", "HTTP/1.1 30 Found\r\n\r\n", ErrMalformed},
		{"four-digit status", "HTTP/1.1 3020 Found\r\n\r\n", ErrMalformed},
		{"status below 100", "HTTP/1.1 099 Low\r\n\r\n", ErrMalformed},
		{"header without colon", "HTTP/1.1 200 OK\r\nLocation /a\r\n\r\n", ErrMalformed},
		{"empty header name", "HTTP/1.1 200 OK\r\n: x\r\n\r\n", ErrMalformed},
		{"space before colon", "HTTP/1.1 200 OK\r\nLocation : /a\r\n\r\n", ErrMalformed},
		{"folded header", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", ErrMalformed},
		{"bare LF in value", "HTTP/1.1 302 Found\r\nLocation: /a\nSet-Cookie: x\r\n\r\n", ErrMalformed},
		{"NUL in value", "HTTP/1.1 302 Found\r\nLocation: /a\x00b\r\n\r\n", ErrMalformed},
		{"two Locations", "HTTP/1.1 302 Found\r\nLocation: /a\r\nLocation: /b\r\nContent-Length: 0\r\n\r\n", ErrMalformed},
		{"negative Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", ErrMalformed},
		{"Content-Length with sign", "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx", ErrMalformed},
		{"Content-Length list", "HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\nx", ErrMalformed},
		{"huge Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", ErrMalformed},
		{"Content-Length over the limit", "HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n", ErrTooLarge},
		{"conflicting Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy", ErrMalformed},
		{"Content-Length and chunked", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", ErrMalformed},
		{"unknown transfer coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", ErrMalformed},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", ErrMalformed},
		{"negative chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", ErrMalformed},
		{"chunk longer than its size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc\r\n0\r\n\r\n", ErrMalformed},
		{"chunks over the limit", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFF\r\n", ErrTooLarge},
		{"header block over the limit", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", MaxHeaderBytes) + "\r\n\r\n", ErrTooLarge},
		{"endless header line", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: b\r\n", 5000), ErrTooLarge},
		{"body until EOF over the limit", "HTTP/1.1 200 OK\r\n\r\n" + strings.Repeat("b", MaxBodyBytes+1), ErrTooLarge},
	}
	for _, c := range cases {
		for _, n := range []int{1, 4096} {
			rd := NewReader(&chunkReader{[]byte(c.in), n}, 0)
			var resp Response
			err := rd.Read(&resp, true)
			if !errors.Is(err, c.want) {
				t.Errorf("%s (reads of %d): got %v, want %v", c.name, n, err, c.want)
			}
		}
	}
}

// stuckReader never returns data: a reader loop must give up instead of spinning.
type stuckReader struct{}

func (stuckReader) Read([]byte) (int, error) { return 0, nil }

func TestReadNoProgress(t *testing.T) {
	var resp Response
	if err := NewReader(stuckReader{}, 0).Read(&resp, false); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("got %v, want io.ErrNoProgress", err)
	}
}

func TestQueryValue(t *testing.T) {
	cases := []struct{ url, name, want string }{
		{"https://x/p?utm_source=sms&cgid=01ab", "cgid", "01ab"},
		{"https://x/p?cgid=01ab&a=1", "cgid", "01ab"},
		{"https://x/p?xcgid=1&cgid=2", "cgid", "2"},
		{"https://x/p?cgid=", "cgid", ""},
		{"https://x/p?cgid", "cgid", ""},
		{"https://x/cgid=1", "cgid", ""},
		{"https://x/p?a=1#cgid=2", "cgid", ""},
		{"https://x/p?a=1&cgid=3#frag", "cgid", "3"},
	}
	for _, c := range cases {
		if got := string(QueryValue([]byte(c.url), c.name)); got != c.want {
			t.Errorf("QueryValue(%q, %q) = %q, want %q", c.url, c.name, got, c.want)
		}
	}
}

// FuzzReadResponse: any input, cut at any read size, must give a response or an error,
// never a panic or a hang; and where net/http also accepts the input, both agree on the
// status and the Location.
func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 302 Found\r\nContent-Length: 0\r\nLocation: https://x/?cgid=1\r\n\r\n"), uint8(1))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), uint8(5))
	f.Add([]byte("HTTP/1.0 404 Not Found\r\n\r\nnot here"), uint8(200))
	f.Add([]byte("HTTP/1.1 302 Found\r\nLocation: /a\r\nLocation: /b\r\n\r\n"), uint8(3))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		n := int(chunk)%64 + 1
		rd := NewReader(&chunkReader{append([]byte(nil), data...), n}, 0)
		var resp Response
		err := rd.Read(&resp, true)
		if err != nil {
			return
		}
		if resp.Status < 100 || resp.Status > 999 {
			t.Fatalf("status %d accepted", resp.Status)
		}
		if len(resp.Body) > MaxBodyBytes {
			t.Fatalf("body of %d bytes accepted", len(resp.Body))
		}
		if bytes.IndexByte(resp.Location, '\n') >= 0 || bytes.IndexByte(resp.Location, '\r') >= 0 {
			t.Fatalf("Location with a line break: %q", resp.Location)
		}
		hr, herr := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), nil)
		if herr != nil {
			return
		}
		defer hr.Body.Close()
		if hr.StatusCode != resp.Status {
			t.Fatalf("status %d, net/http says %d", resp.Status, hr.StatusCode)
		}
		if got := hr.Header.Values("Location"); len(got) == 1 && got[0] != string(resp.Location) {
			t.Fatalf("Location %q, net/http says %q", resp.Location, got[0])
		}
	})
}
