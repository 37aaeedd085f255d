package bot

import (
	"errors"
	"fmt"
	"strings"
)

// reasonNames are the persisted names of the reason bits, in bit order.
// They are stored with every bot click: never rename or reorder them.
var reasonNames = [reasonCount]string{
	"preview",
	"crawler",
	"http_library",
	"head",
	"prefetch",
	"missing_ua",
	"headless",
	"scanner",
}

const (
	// maxAgentLen bounds agent names; see validAgent.
	maxAgentLen = 32
	// maxReasonLen bounds ParseReason input: every reason once plus one agent
	// fits with room to spare, so anything longer is garbage and is rejected
	// before any work proportional to its size.
	maxReasonLen = 128
)

// AppendReason appends v's reasons to dst as a stable, comma-separated list
// in bit order, e.g. "preview:whatsapp,head", and returns the extended slice.
// The agent follows the reason it was matched under (or the first reason if
// it belongs to none of them). A human verdict appends nothing. Undefined
// reason bits and agent names that are not 1-32 bytes of [a-z0-9_-] are
// omitted, so the output always parses with ParseReason.
//
// AppendReason does not allocate when dst has room.
func (v Verdict) AppendReason(dst []byte) []byte {
	rs := v.Reasons & allReasons
	if rs == 0 {
		return dst
	}
	var agentAt Reason
	if v.Agent != "" && validAgent(v.Agent) {
		agentAt = agentPlacement(rs, v.Agent)
	}
	first := true
	for i, name := range reasonNames {
		r := Reason(1) << i
		if rs&r == 0 {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, name...)
		if r == agentAt {
			dst = append(dst, ':')
			dst = append(dst, v.Agent...)
		}
	}
	return dst
}

// agentPlacement returns the reason in rs that agent is written after: the
// reason Classify reports it under if present, else the lowest set reason.
func agentPlacement(rs Reason, agent string) Reason {
	if ai, ok := m.agents[agent]; ok && rs&ai.reason != 0 {
		return ai.reason
	}
	return rs & -rs
}

// ParseReason parses what AppendReason wrote back into a Verdict. The empty
// string is the human verdict. Reasons must be known, unique and in
// AppendReason's order; at most one agent may appear, after any reason, so
// strings stay readable if a later version files an agent under a different
// reason. Agent names unknown to this version are accepted (they may come
// from a newer one); known names are returned as the package's static strings.
func ParseReason(s string) (Verdict, error) {
	var v Verdict
	if s == "" {
		return v, nil
	}
	if len(s) > maxReasonLen {
		return Verdict{}, fmt.Errorf("bot: reason string too long (%d bytes, max %d)", len(s), maxReasonLen)
	}
	last := -1
	for {
		piece := s
		comma := strings.IndexByte(s, ',')
		if comma >= 0 {
			piece = s[:comma]
		}
		name, agent, hasAgent := strings.Cut(piece, ":")
		idx := reasonIndex(name)
		switch {
		case name == "":
			return Verdict{}, errors.New("bot: empty reason in reason string")
		case idx < 0:
			return Verdict{}, fmt.Errorf("bot: unknown reason %q", name)
		case idx <= last:
			return Verdict{}, fmt.Errorf("bot: reason %q repeated or out of order", name)
		}
		last = idx
		v.Reasons |= 1 << idx
		if hasAgent {
			if v.Agent != "" {
				return Verdict{}, errors.New("bot: more than one agent in reason string")
			}
			if !validAgent(agent) {
				return Verdict{}, fmt.Errorf("bot: invalid agent name %q", agent)
			}
			v.Agent = internAgent(agent)
		}
		if comma < 0 {
			return v, nil
		}
		s = s[comma+1:]
	}
}

func reasonIndex(name string) int {
	for i, n := range reasonNames {
		if n == name {
			return i
		}
	}
	return -1
}

// internAgent returns the package's static copy of a known agent name, so
// decoded verdicts do not pin the (possibly large) buffer they came from.
func internAgent(a string) string {
	if ai, ok := m.agents[a]; ok {
		return ai.name
	}
	return a
}

// validAgent reports whether a is 1-32 bytes of [a-z0-9_-]: safe to embed in
// the comma/colon syntax and in logs.
func validAgent(a string) bool {
	if len(a) == 0 || len(a) > maxAgentLen {
		return false
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
