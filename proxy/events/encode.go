package events

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/sdk"
	"github.com/clickgate/clickgate/storage"
)

// AppendClickJSON appends the click event of a stored click as JSON, with u as its user
// (nil: none): the same document as json.Marshal of FromClick(c) with User set, written
// without reflection because the relay encodes every click and draining a backlog must
// outpace the redirects that fill it.
func AppendClickJSON(dst []byte, c *storage.Click, u *sdk.User) []byte {
	var idBuf [ids.ClickIDLen]byte
	id := ids.ClickID(c.ID).Append(idBuf[:0])
	dst = append(dst, `{"schema_version":`...)
	dst = strconv.AppendInt(dst, SchemaVersion, 10)
	dst = append(dst, `,"event_type":"click","event_id":"`...)
	dst = append(dst, id...)
	dst = append(dst, `","click_id":"`...)
	dst = append(dst, id...)
	dst = append(dst, `","time":"`...)
	dst = c.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')
	dst = appendField(dst, "node", c.Node, false)
	dst = appendField(dst, "domain", c.Domain, true)
	dst = appendField(dst, "slug", c.Slug, false)
	dst = appendField(dst, "campaign", c.Campaign, false)
	dst = append(dst, `,"utm":{"source":`...)
	dst = appendString(dst, c.UTM.Source)
	dst = appendField(dst, "medium", c.UTM.Medium, false)
	dst = appendField(dst, "campaign", c.UTM.Campaign, false)
	dst = appendField(dst, "content", c.UTM.Content, true)
	dst = appendField(dst, "term", c.UTM.Term, true)
	dst = append(dst, '}')
	if c.Variant >= 0 {
		dst = append(dst, `,"variant":`...)
		dst = strconv.AppendInt(dst, int64(c.Variant), 10)
	}
	dst = appendField(dst, "destination", c.Destination, false)
	dst = appendField(dst, "visitor_id", c.VisitorID, false)
	dst = append(dst, `,"new_visitor":`...)
	dst = strconv.AppendBool(dst, c.NewVisitor)
	if c.IdentitySource != "" {
		dst = append(dst, `,"identity":{"source":`...)
		dst = appendString(dst, c.IdentitySource)
		dst = appendField(dst, "kind", c.IdentityKind, true)
		dst = appendField(dst, "value", c.IdentityValue, true)
		dst = appendField(dst, "token", c.Token, true)
		dst = append(dst, '}')
	}
	dst = appendField(dst, "ip", c.IP, true)
	dst = appendField(dst, "user_agent", c.UserAgent, true)
	dst = appendField(dst, "referrer", c.Referrer, true)
	if u != nil {
		dst = append(dst, `,"user":{`...)
		n := len(dst)
		dst = appendField(dst, "email", u.Email, true)
		dst = appendField(dst, "phone", u.Phone, true)
		dst = appendField(dst, "customer_id", u.CustomerID, true)
		if len(dst) > n {
			dst = append(dst[:n], dst[n+1:]...) // the first field's comma
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `,"bot":`...)
	dst = strconv.AppendBool(dst, c.Bot)
	dst = appendField(dst, "bot_reason", c.BotReason, true)
	dst = append(dst, `,"test":`...)
	dst = strconv.AppendBool(dst, c.Test)
	return append(dst, '}')
}

func appendField(dst []byte, name, v string, omitEmpty bool) []byte {
	if omitEmpty && v == "" {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return appendString(dst, v)
}

// appendString writes a JSON string: quotes, backslashes and control characters
// escaped, invalid UTF-8 replaced by U+FFFD as encoding/json does.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
