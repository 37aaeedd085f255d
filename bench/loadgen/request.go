package loadgen

import (
	"bytes"
	"strconv"
)

// Request is one request to send and what its answer must be. A Builder fills it in
// place, reusing its buffers, so building a request allocates nothing.
type Request struct {
	// Raw is the whole request as written to the connection: request line, headers and
	// body. It may point at a shared pre-built request; the generator never writes to it.
	Raw []byte
	// Status is the status code the answer must have.
	Status int
	// Location, when not nil, is what the answer's Location header must start with.
	Location []byte
	// ClickParam, when not empty, is a query parameter (e.g. "cgid") the Location must
	// carry with a non-empty value.
	ClickParam string
	// BodyContains, when not nil, must occur in the answer's body.
	BodyContains []byte

	// Buf and LocBuf are scratch space a Builder may append to and point Raw and
	// Location at.
	Buf, LocBuf []byte
}

// Source describes a workload. The generator asks it for one Builder per connection.
type Source interface {
	// NewBuilder returns a Builder used by one connection only; seed differs between
	// connections and runs, so builders can draw different random sequences and make
	// unique identifiers.
	NewBuilder(seed uint64) Builder
}

// Builder fills in the next request of one connection.
type Builder interface {
	// Build sets r to the next request and its expected answer.
	Build(r *Request)
}

// Fixed is a Source that sends the same pre-built request on every connection.
type Fixed Request

// NewBuilder implements Source.
func (f *Fixed) NewBuilder(uint64) Builder { return f }

// Build implements Builder: Raw and the expectations point at the shared request.
func (f *Fixed) Build(r *Request) {
	r.Raw, r.Status, r.Location, r.ClickParam, r.BodyContains = f.Raw, f.Status, f.Location, f.ClickParam, f.BodyContains
}

// Header is one request header.
type Header struct{ Name, Value string }

// AppendGet appends a GET request for path with the given Host and headers.
func AppendGet(dst []byte, host, path string, headers ...Header) []byte {
	dst = append(dst, "GET "...)
	dst = append(dst, path...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\n"...)
	for _, h := range headers {
		dst = append(dst, h.Name...)
		dst = append(dst, ": "...)
		dst = append(dst, h.Value...)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// AppendPost appends a POST request for path with the given Host, headers and body.
func AppendPost(dst []byte, host, path string, body []byte, headers ...Header) []byte {
	dst = append(dst, "POST "...)
	dst = append(dst, path...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\n"...)
	for _, h := range headers {
		dst = append(dst, h.Name...)
		dst = append(dst, ": "...)
		dst = append(dst, h.Value...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\n\r\n"...)
	return append(dst, body...)
}

// QueryValue returns the value of query parameter name in a URL, or nil. It looks only
// at the query (after '?', before '#').
func QueryValue(url []byte, name string) []byte {
	q := url
	if i := bytes.IndexByte(q, '?'); i >= 0 {
		q = q[i+1:]
	} else {
		return nil
	}
	if i := bytes.IndexByte(q, '#'); i >= 0 {
		q = q[:i]
	}
	for len(q) > 0 {
		var kv []byte
		if i := bytes.IndexByte(q, '&'); i >= 0 {
			kv, q = q[:i], q[i+1:]
		} else {
			kv, q = q, nil
		}
		if len(kv) > len(name) && kv[len(name)] == '=' && string(kv[:len(name)]) == name {
			return kv[len(name)+1:]
		}
	}
	return nil
}
