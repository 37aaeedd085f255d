package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits of what the response reader accepts. A benchmark target that answers more than
// this is misbehaving, and the reader says so instead of buffering without bound.
const (
	// MaxHeaderBytes bounds the status line plus headers of one response.
	MaxHeaderBytes = 16 << 10
	// MaxBodyBytes bounds one response body (read through, or kept when asked for).
	MaxBodyBytes = 1 << 20
)

// Errors of the response reader. Each is wrapped with detail; errors.Is finds the kind.
var (
	// ErrMalformed is a response that is not valid HTTP/1.x.
	ErrMalformed = errors.New("malformed response")
	// ErrTooLarge is a header block or body over the reader's limits.
	ErrTooLarge = errors.New("response too large")
)

// Response is one parsed answer. The reader reuses it: Location and Body stay valid until
// the next Read into the same Response.
type Response struct {
	// Status is the three-digit status code.
	Status int
	// Location is the value of the Location header, without surrounding blanks; nil
	// when the response has none.
	Location []byte
	// Body is the body when the caller asked to keep it, else nil.
	Body []byte
	// Close is set when the server will close the connection after this response
	// (Connection: close, HTTP/1.0 without keep-alive, or a body delimited by EOF).
	Close bool

	loc  []byte
	body []byte
}

// Reader reads HTTP/1.x responses from one connection with a fixed buffer and no
// allocation per response. It understands exactly what a benchmark needs: the status,
// Location, the body length (Content-Length, chunked, or until close) and Connection.
// It is not safe for concurrent use.
type Reader struct {
	rd   io.Reader
	buf  []byte
	r, w int
}

// NewReader returns a Reader over rd with a buffer of size bytes (at least 4 KiB; it
// grows up to MaxHeaderBytes for a large header block).
func NewReader(rd io.Reader, size int) *Reader {
	if size < 4096 {
		size = 4096
	}
	return &Reader{rd: rd, buf: make([]byte, size)}
}

// Reset points the reader at a new connection and drops anything buffered.
func (r *Reader) Reset(rd io.Reader) {
	r.rd, r.r, r.w = rd, 0, 0
}

// Buffered reports how many bytes were read from the connection but not consumed: after
// a complete response on a keep-alive connection it should be 0, since the client never
// pipelines.
func (r *Reader) Buffered() int { return r.w - r.r }

// fill reads more bytes into the buffer, compacting it first; io.EOF is returned as is
// so callers can tell a clean close from a broken response.
func (r *Reader) fill() error {
	if r.r > 0 {
		copy(r.buf, r.buf[r.r:r.w])
		r.w -= r.r
		r.r = 0
	}
	if r.w == len(r.buf) {
		if len(r.buf) >= MaxHeaderBytes {
			return fmt.Errorf("%w: header block over %d bytes", ErrTooLarge, MaxHeaderBytes)
		}
		nb := make([]byte, min(2*len(r.buf), MaxHeaderBytes))
		copy(nb, r.buf[:r.w])
		r.buf = nb
	}
	for range 100 {
		n, err := r.rd.Read(r.buf[r.w:])
		r.w += n
		if n > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// Read parses the next response into resp. With keepBody the body is copied into
// resp.Body (bounded by MaxBodyBytes); without it the body is read and dropped. A
// connection closed before the first byte of a response gives io.EOF; closed in the
// middle, io.ErrUnexpectedEOF.
func (r *Reader) Read(resp *Response, keepBody bool) error {
	resp.Status, resp.Location, resp.Body, resp.Close = 0, nil, nil, false
	// Find the end of the header block, scanning only bytes not scanned before.
	scanned := 0
	end := -1
	for {
		if i := bytes.Index(r.buf[r.r+scanned:r.w], crlfcrlf); i >= 0 {
			end = r.r + scanned + i
			break
		}
		scanned = max(0, r.w-r.r-3)
		started := r.w > r.r
		if err := r.fill(); err != nil {
			if err == io.EOF && started {
				return fmt.Errorf("%w in the header block", io.ErrUnexpectedEOF)
			}
			return err
		}
	}
	head := r.buf[r.r:end]
	r.r = end + 4

	line, rest, _ := bytes.Cut(head, crlf)
	http10, err := parseStatusLine(line, resp)
	if err != nil {
		return err
	}
	resp.Close = http10
	var (
		contentLength int64 = -1
		chunked       bool
		sawLocation   bool
	)
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, crlf)
		name, value, ok := bytes.Cut(line, colon)
		if !ok || len(name) == 0 || !isToken(name) {
			return fmt.Errorf("%w: header line %q", ErrMalformed, clip(line))
		}
		value = trimBlanks(value)
		if !validValue(value) {
			return fmt.Errorf("%w: control byte in header %q", ErrMalformed, clip(name))
		}
		switch {
		case equalFold(name, "content-length"):
			n, ok := parseDecimal(value)
			if !ok {
				return fmt.Errorf("%w: Content-Length %q", ErrMalformed, clip(value))
			}
			if contentLength >= 0 && n != contentLength {
				return fmt.Errorf("%w: two different Content-Length values", ErrMalformed)
			}
			contentLength = n
		case equalFold(name, "transfer-encoding"):
			if !equalFold(value, "chunked") {
				return fmt.Errorf("%w: Transfer-Encoding %q not supported", ErrMalformed, clip(value))
			}
			chunked = true
		case equalFold(name, "location"):
			if sawLocation {
				return fmt.Errorf("%w: two Location headers", ErrMalformed)
			}
			sawLocation = true
			resp.loc = append(resp.loc[:0], value...)
			resp.Location = resp.loc
		case equalFold(name, "connection"):
			if hasToken(value, "close") {
				resp.Close = true
			} else if http10 && hasToken(value, "keep-alive") {
				resp.Close = false
			}
		}
	}
	if chunked && contentLength >= 0 {
		// Both framings at once is how responses get smuggled; a client must not guess.
		return fmt.Errorf("%w: both Content-Length and chunked", ErrMalformed)
	}
	if contentLength > MaxBodyBytes {
		return fmt.Errorf("%w: Content-Length %d over %d", ErrTooLarge, contentLength, MaxBodyBytes)
	}
	if keepBody {
		resp.body = resp.body[:0]
	}
	switch {
	case resp.Status < 200 || resp.Status == 204 || resp.Status == 304:
		// No body by definition, whatever the headers say.
	case chunked:
		err = r.readChunked(resp, keepBody)
	case contentLength >= 0:
		err = r.readN(resp, contentLength, keepBody)
	default:
		resp.Close = true
		err = r.readToEOF(resp, keepBody)
	}
	if err != nil {
		return err
	}
	if keepBody {
		resp.Body = resp.body
	}
	return nil
}

var (
	crlf     = []byte("\r\n")
	crlfcrlf = []byte("\r\n\r\n")
	colon    = []byte(":")
)

// parseStatusLine reads "HTTP/1.x NNN[ reason]" and reports whether it is HTTP/1.0.
func parseStatusLine(line []byte, resp *Response) (http10 bool, err error) {
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' ||
		(line[7] != '0' && line[7] != '1') || (len(line) > 12 && line[12] != ' ') {
		return false, fmt.Errorf("%w: status line %q", ErrMalformed, clip(line))
	}
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return false, fmt.Errorf("%w: status code in %q", ErrMalformed, clip(line))
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return false, fmt.Errorf("%w: status code %d", ErrMalformed, code)
	}
	if !validValue(line[12:]) {
		return false, fmt.Errorf("%w: control byte in status line", ErrMalformed)
	}
	resp.Status = code
	return line[7] == '0', nil
}

// readN consumes n body bytes.
func (r *Reader) readN(resp *Response, n int64, keep bool) error {
	for n > 0 {
		if r.r == r.w {
			if err := r.fill(); err != nil {
				return bodyErr(err)
			}
		}
		k := int(min(int64(r.w-r.r), n))
		if keep {
			resp.body = append(resp.body, r.buf[r.r:r.r+k]...)
		}
		r.r += k
		n -= int64(k)
	}
	return nil
}

// readToEOF consumes a body that ends when the server closes the connection.
func (r *Reader) readToEOF(resp *Response, keep bool) error {
	var total int64
	for {
		k := r.w - r.r
		total += int64(k)
		if total > MaxBodyBytes {
			return fmt.Errorf("%w: body over %d bytes", ErrTooLarge, MaxBodyBytes)
		}
		if keep {
			resp.body = append(resp.body, r.buf[r.r:r.w]...)
		}
		r.r = r.w
		if err := r.fill(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// readChunked consumes a chunked body and its trailers.
func (r *Reader) readChunked(resp *Response, keep bool) error {
	var total int64
	for {
		line, err := r.line()
		if err != nil {
			return err
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i] // chunk extensions carry nothing a benchmark needs
		}
		size, ok := parseHex(trimBlanks(line))
		if !ok {
			return fmt.Errorf("%w: chunk size %q", ErrMalformed, clip(line))
		}
		if total += size; total > MaxBodyBytes {
			return fmt.Errorf("%w: chunked body over %d bytes", ErrTooLarge, MaxBodyBytes)
		}
		if size == 0 {
			for { // trailers, up to the empty line
				line, err := r.line()
				if err != nil {
					return err
				}
				if len(line) == 0 {
					return nil
				}
			}
		}
		if err := r.readN(resp, size, keep); err != nil {
			return err
		}
		line, err = r.line()
		if err != nil {
			return err
		}
		if len(line) != 0 {
			return fmt.Errorf("%w: chunk longer than its size", ErrMalformed)
		}
	}
}

// line returns the next CRLF-terminated line (without CRLF), consumed; it is valid until
// the next read.
func (r *Reader) line() ([]byte, error) {
	scanned := 0
	for {
		if i := bytes.Index(r.buf[r.r+scanned:r.w], crlf); i >= 0 {
			l := r.buf[r.r : r.r+scanned+i]
			r.r += scanned + i + 2
			return l, nil
		}
		scanned = max(0, r.w-r.r-1)
		if err := r.fill(); err != nil {
			return nil, bodyErr(err)
		}
	}
}

func bodyErr(err error) error {
	if err == io.EOF {
		return fmt.Errorf("%w in the body", io.ErrUnexpectedEOF)
	}
	return err
}

func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func parseHex(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}

func trimBlanks(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// tokenChars marks the bytes allowed in a header field name (RFC 9110 tchar).
var tokenChars = func() (t [256]bool) {
	for c := '!'; c <= '~'; c++ {
		t[c] = !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c)
	}
	return t
}()

// isToken reports whether b is a valid header field name (RFC 9110 token).
func isToken(b []byte) bool {
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return true
}

// validValue rejects control bytes other than tab in a header value (a bare CR or LF
// here means the framing is broken).
func validValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// hasToken reports whether a comma-separated header value lists tok (case-insensitive).
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var item []byte
		item, v, _ = bytes.Cut(v, []byte(","))
		if equalFold(trimBlanks(item), tok) {
			return true
		}
	}
	return false
}

// clip shortens b for an error message.
func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
