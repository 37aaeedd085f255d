package edge

import (
	"bytes"
	"net/netip"
	"strings"
	"sync"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/proxy/bot"
	"github.com/clickgate/clickgate/proxy/events"
	"github.com/clickgate/clickgate/proxy/identity"
	"github.com/clickgate/clickgate/proxy/links"
	"github.com/clickgate/clickgate/storage"
)

// scratch is the per-request working memory of a redirect, pooled so a redirect
// allocates nothing in the steady state.
type scratch struct {
	link   links.Link // the tapped link, decoded from the index
	click  storage.Click
	id     []byte
	loc    []byte
	rec    []byte
	vid    []byte
	ip     []byte
	reason []byte
	ident  []byte
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{
		id: make([]byte, 0, 32), loc: make([]byte, 0, 512), rec: make([]byte, 0, 1024),
		vid: make([]byte, 0, 32), ip: make([]byte, 0, 64), reason: make([]byte, 0, 64),
	}
}}

func acquireScratch() *scratch { return scratchPool.Get().(*scratch) }

func releaseScratch(s *scratch) {
	s.click = storage.Click{}
	scratchPool.Put(s)
}

// b2s views bytes as a string without copying. Every such string is encoded into the
// click record before the handler returns and never kept, so the bytes (request memory
// or scratch) outlive every use.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// fillClick records who tapped, from where, and what identity the tap carried.
func (e *Edge) fillClick(ctx *fasthttp.RequestCtx, s *scratch, l *links.Link, t *links.Target, v bot.Verdict, token []byte) {
	c := &s.click
	c.Node, c.Domain, c.Slug, c.Campaign = e.NodeID, l.Domain, l.Slug, l.Campaign
	c.UTM, c.Variant = t.UTM, t.Variant
	c.UserAgent = b2s(ctx.UserAgent())
	c.Referrer = b2s(ctx.Referer())
	s.ip = e.clientIP(ctx, s.ip[:0])
	c.IP = b2s(s.ip)
	if c.Bot {
		s.reason = v.AppendReason(s.reason[:0])
		c.BotReason = b2s(s.reason)
	}
	if len(token) > 0 {
		c.Token = b2s(token)
		c.IdentitySource = "token"
	}
	if len(l.IdentityParams) > 0 && c.IdentitySource == "" {
		args := ctx.QueryArgs()
		for _, p := range l.IdentityParams {
			raw := args.Peek(p.Name)
			if len(raw) == 0 {
				continue
			}
			norm, err := identity.Normalize(p.Kind, plusRestored(p.Kind, b2s(raw)), e.Region)
			if err != nil {
				// An unfilled merge tag ("{{subscriber_id}}") or a typo: keep the click,
				// not the identity.
				continue
			}
			s.ident = append(s.ident[:0], e.Hasher.Stored(p.Kind, norm)...)
			c.IdentityKind, c.IdentityValue = p.Kind, b2s(s.ident)
			c.IdentitySource = p.Source
			if e.ClickSealer != nil {
				c.SealedUser = string(events.SealIdentity(e.ClickSealer, p.Kind, norm, c.ID[:]))
			}
			break
		}
	}
}

// parseForwarded reads an address as proxies write it: bare, or with a port
// (203.0.113.7:4711, [2001:db8::1]:4711).
//
// The form is told apart before parsing, since a failed parse allocates its error.
func parseForwarded(s string) (netip.Addr, bool) {
	var a netip.Addr
	var err error
	switch {
	case s == "":
		return a, false
	case s[0] == '[' && s[len(s)-1] == ']':
		a, err = netip.ParseAddr(s[1 : len(s)-1])
	case s[0] == '[' || strings.Count(s, ":") == 1:
		var ap netip.AddrPort
		ap, err = netip.ParseAddrPort(s)
		a = ap.Addr()
	default:
		a, err = netip.ParseAddr(s)
	}
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// plusRestored undoes what query decoding did to a '+' that a merge tag wrote into the
// link unencoded: it arrives as a space. No email holds a space, so each was a '+'
// (jane+sms@example.com); a phone's leading space was its '+' (+447700900123), which
// without it would be read as a number of the default region.
func plusRestored(kind, v string) string {
	switch {
	case kind == identity.Email && strings.Contains(v, " "):
		return strings.ReplaceAll(strings.TrimSpace(v), " ", "+")
	case kind == identity.Phone && strings.HasPrefix(v, " "):
		return "+" + strings.TrimLeft(v, " ")
	}
	return v
}

// clientIP is the peer address, or, when the edge sits behind a proxy that sets the
// configured header, the last address in it. A proxy appends the address it saw (nginx's
// $proxy_add_x_forwarded_for, load balancers' X-Forwarded-For): the entries before it
// are whatever the client sent, so the first would let anyone name their own address.
func (e *Edge) clientIP(ctx *fasthttp.RequestCtx, dst []byte) []byte {
	if e.ClientIPHeader != "" {
		// A proxy may add a header line of its own rather than append to the client's.
		if all := ctx.Request.Header.PeekAll(e.ClientIPHeader); len(all) > 0 {
			v := all[len(all)-1]
			if i := bytes.LastIndexByte(v, ','); i >= 0 {
				v = v[i+1:]
			}
			if a, ok := parseForwarded(b2s(bytes.TrimSpace(v))); ok {
				return a.AppendTo(dst)
			}
		}
	}
	ip := ctx.RemoteIP()
	if a, ok := netip.AddrFromSlice(ip); ok {
		return a.Unmap().AppendTo(dst)
	}
	return dst
}

// requestHost lowercases the Host header and drops its port, into dst.
func requestHost(dst, host []byte) []byte {
	if len(host) > cap(dst) {
		return dst
	}
	end := len(host)
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && bytes.IndexByte(host, ']') < i {
		end = i
	}
	for _, c := range host[:end] {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}
