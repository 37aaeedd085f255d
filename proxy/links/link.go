package links

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/clickgate/clickgate/proxy/identity"
	"github.com/clickgate/clickgate/proxy/utm"
	"github.com/clickgate/clickgate/storage"
)

// Spec is a link as the admin API receives it. Pointer fields distinguish "not given"
// from zero values, so an update changes only what it names.
type Spec struct {
	Slug           *string           `json:"slug,omitempty"`
	Domain         *string           `json:"domain,omitempty"`
	Destination    *string           `json:"destination,omitempty"`
	UTM            *UTMSpec          `json:"utm,omitempty"`
	Campaign       *string           `json:"campaign,omitempty"`
	Variants       *[]VariantSpec    `json:"variants,omitempty"`
	ForwardQuery   *bool             `json:"forward_query,omitempty"`
	IdentityParams map[string]string `json:"identity_params,omitempty"`
	MaxClicks      *int64            `json:"max_clicks,omitempty"`
	ExpiresAt      *string           `json:"expires_at,omitempty"`
	Status         *string           `json:"status,omitempty"`
}

// UTMSpec is the utm object of a link request.
type UTMSpec struct {
	Source   string `json:"source,omitempty"`
	Medium   string `json:"medium"`
	Campaign string `json:"campaign"`
	Content  string `json:"content,omitempty"`
	Term     string `json:"term,omitempty"`
}

// VariantSpec is one A/B variant in a request.
type VariantSpec struct {
	Destination string `json:"destination"`
	Weight      int    `json:"weight"`
	Content     string `json:"content"`
}

// FieldError is a rejected field; the admin API turns it into a 400 naming the field.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, a ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, a...)}
}

// Rules are the settings link validation depends on.
type Rules struct {
	UTM utm.Policy
	// ClickParam is the query parameter carrying the click ID; destinations and identity
	// parameters may not claim it.
	ClickParam string
	// Domains, when non-empty, lists the domains a link may be created on.
	Domains []string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

const (
	maxVariants      = 26
	maxWeight        = 10000
	maxIdentityParam = 8
	maxCampaignLen   = 100
)

// Apply validates spec and applies it to l (a zero Link for a create). It returns the
// warnings a user should see: every value the naming policy changed, UTM parameters
// removed from a destination, and the like. On error l may be partly changed; callers
// apply to a copy.
func (r *Rules) Apply(l *storage.Link, spec *Spec, create bool) ([]string, error) {
	var warnings []string
	if create {
		l.ForwardQuery = true
		l.Status = storage.StatusActive
		if spec.Domain != nil {
			d := strings.ToLower(strings.TrimSpace(*spec.Domain))
			if err := validDomain(d); err != nil {
				return nil, fieldErr("domain", "%v", err)
			}
			if len(r.Domains) > 0 && d != "" && !contains(r.Domains, d) {
				return nil, fieldErr("domain", "domain %q is not served here (allowed: %s)", d, strings.Join(r.Domains, ", "))
			}
			l.Domain = d
		}
		if spec.Slug != nil && *spec.Slug != "" {
			if err := ValidSlug(*spec.Slug); err != nil {
				return nil, fieldErr("slug", "%v", err)
			}
			l.Slug = *spec.Slug
		}
		if spec.Destination == nil && (spec.Variants == nil || len(*spec.Variants) == 0) {
			return nil, fieldErr("destination", "destination is required")
		}
		if spec.UTM == nil {
			return nil, fieldErr("utm", "utm is required (medium and campaign at least)")
		}
	} else if spec.Slug != nil || spec.Domain != nil {
		return nil, fieldErr("slug", "slug and domain cannot change; create a new link")
	}

	if spec.Destination != nil {
		d, w, err := r.destination(*spec.Destination, "destination")
		if err != nil {
			return nil, err
		}
		l.Destination = d
		warnings = append(warnings, w...)
	}
	if spec.UTM != nil {
		v, changes, err := r.UTM.Normalize(utm.Values{
			Source: spec.UTM.Source, Medium: spec.UTM.Medium, Campaign: spec.UTM.Campaign,
			Content: spec.UTM.Content, Term: spec.UTM.Term,
		})
		if err != nil {
			var fe *utm.FieldError
			if errors.As(err, &fe) {
				return nil, &FieldError{Field: fe.Field, Message: fe.Message}
			}
			return nil, fieldErr("utm", "%v", err)
		}
		for _, c := range changes {
			warnings = append(warnings, fmt.Sprintf("%s: %q normalised to %q", c.Field, c.From, c.To))
		}
		// The report campaign follows utm_campaign unless it was given apart: a link
		// whose utm_campaign changes is reported under the new one, as analytics tools
		// will show it.
		if l.Campaign == "" || spec.Campaign == nil && (create || l.Campaign == l.UTM.Campaign) {
			l.Campaign = v.Campaign
		}
		l.UTM = storage.UTM{Source: v.Source, Medium: v.Medium, Campaign: v.Campaign, Content: v.Content, Term: v.Term}
	}
	if spec.Campaign != nil {
		raw := strings.TrimSpace(*spec.Campaign)
		if len(raw) > maxCampaignLen || strings.ContainsFunc(raw, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return nil, fieldErr("campaign", "campaign must be at most %d printable characters", maxCampaignLen)
		}
		// Reports group by it and campaign metadata is found by it: normalised as
		// utm_campaign is, "Spring Sale" and "spring sale " are one campaign.
		c := CampaignName(raw)
		switch {
		case raw == "":
			c = l.UTM.Campaign
		case len(c) > maxCampaignLen:
			return nil, fieldErr("campaign", "campaign %q is %d characters once normalised, more than %d", raw, len(c), maxCampaignLen)
		case c != raw:
			warnings = append(warnings, fmt.Sprintf("campaign: %q normalised to %q", raw, c))
		}
		l.Campaign = c
	}
	if spec.Variants != nil {
		vs, w, err := r.variants(*spec.Variants)
		if err != nil {
			return nil, err
		}
		l.Variants = vs
		warnings = append(warnings, w...)
		if len(vs) > 0 && l.Destination == "" {
			l.Destination = vs[0].Destination
		}
	}
	if len(l.Variants) > 0 && l.UTM.Content != "" && spec.UTM != nil && spec.UTM.Content != "" {
		warnings = append(warnings, "utm.content is set per variant; the link's own utm.content is not used")
	}
	if spec.ForwardQuery != nil {
		l.ForwardQuery = *spec.ForwardQuery
	}
	if spec.IdentityParams != nil {
		if err := r.identityParams(spec.IdentityParams); err != nil {
			return nil, err
		}
		l.IdentityParams = spec.IdentityParams
		if len(l.IdentityParams) == 0 {
			l.IdentityParams = nil
		}
	}
	if spec.MaxClicks != nil {
		if *spec.MaxClicks < 0 {
			return nil, fieldErr("max_clicks", "max_clicks must be 0 (unlimited) or more")
		}
		l.MaxClicks = *spec.MaxClicks
	}
	if spec.ExpiresAt != nil {
		if *spec.ExpiresAt == "" {
			l.ExpiresAt = nil
		} else {
			t, err := time.Parse(time.RFC3339, *spec.ExpiresAt)
			if err != nil {
				return nil, fieldErr("expires_at", "expires_at must be RFC 3339, e.g. 2026-12-31T23:59:59Z")
			}
			t = t.UTC()
			if create && !t.After(r.now()) {
				return nil, fieldErr("expires_at", "expires_at is in the past")
			}
			l.ExpiresAt = &t
		}
	}
	if spec.Status != nil {
		switch *spec.Status {
		case storage.StatusActive, storage.StatusPaused, storage.StatusArchived:
			if l.Status == storage.StatusArchived && *spec.Status != storage.StatusArchived {
				// Archived is for good (the link answers 410 from then on); paused is
				// the state to leave.
				return nil, fieldErr("status", "an archived link stays archived: pause a link to stop it for a while, or create a new one")
			}
			l.Status = *spec.Status
		default:
			return nil, fieldErr("status", "status must be active, paused or archived")
		}
	}
	return warnings, nil
}

func (r *Rules) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// CampaignName is the form a campaign name is kept and matched in: snake case, as
// utm_campaign is, so "Spring Sale" and "spring sale " are one campaign. Snake case keeps
// Latin letters and digits only, so a name with letters of another script ("春のセール
// 2026") is kept whole instead, lowercased and in one Unicode form: "Q4 春" and "Q4 秋"
// stay two campaigns, "РАСПРОДАЖА" and "Распродажа" are one.
func CampaignName(s string) string {
	s = strings.TrimSpace(s)
	if c := utm.Snake(s); c == s {
		return s // already its own form, the common case: reports ask for every cell's
	}
	for _, r := range s {
		if unicode.IsLetter(r) && utm.Snake(string(r)) == "" {
			return strings.ToLower(norm.NFC.String(s))
		}
	}
	return utm.Snake(s)
}

// destination validates a destination and removes UTM parameters it carries, since the
// link's own values must win and duplicates would split the data.
func (r *Rules) destination(raw, field string) (string, []string, error) {
	if err := ValidateDestination(raw); err != nil {
		return "", nil, fieldErr(field, "%v", err)
	}
	var notes []string
	if ascii, err := asciiDestination(raw); err != nil {
		return "", nil, fieldErr(field, "%v", err)
	} else if ascii != raw {
		notes = append(notes, fmt.Sprintf("%s: written as %s (a Location header carries ASCII only)", field, ascii))
		raw = ascii
	}
	base, q, _, frag := splitDestination(raw)
	for _, pair := range strings.Split(q, "&") {
		if q != "" && queryKey(pair) == r.ClickParam {
			return "", nil, fieldErr(field, "destination already carries the click parameter %q", r.ClickParam)
		}
	}
	kept, removed := stripUTM(q)
	if len(removed) == 0 {
		return raw, notes, nil
	}
	out := base
	if kept != "" {
		out += "?" + kept
	}
	out += frag
	return out, append(notes, fmt.Sprintf("%s: removed %s; the link's UTM values replace them", field, strings.Join(removed, "&"))), nil
}

func (r *Rules) variants(in []VariantSpec) ([]storage.Variant, []string, error) {
	if len(in) == 0 {
		return nil, nil, nil
	}
	if len(in) == 1 || len(in) > maxVariants {
		return nil, nil, fieldErr("variants", "an A/B test needs 2 to %d variants", maxVariants)
	}
	var out []storage.Variant
	var warnings []string
	seen := map[string]bool{}
	for i, v := range in {
		f := fmt.Sprintf("variants[%d]", i)
		d, w, err := r.destination(v.Destination, f+".destination")
		if err != nil {
			return nil, nil, err
		}
		warnings = append(warnings, w...)
		if v.Weight < 1 || v.Weight > maxWeight {
			return nil, nil, fieldErr(f+".weight", "weight must be 1 to %d", maxWeight)
		}
		content := v.Content
		if content == "" {
			content = "variant_" + string(rune('a'+i))
			warnings = append(warnings, fmt.Sprintf("%s.content: none given, using %q", f, content))
		}
		// Only the content matters here; the other values just have to pass.
		medium := "promotional"
		if len(r.UTM.Mediums) > 0 {
			medium = r.UTM.Mediums[0]
		}
		norm, changes, err := r.UTM.Normalize(utm.Values{Source: "sms", Medium: medium, Campaign: "x", Content: content})
		if err != nil {
			var fe *utm.FieldError
			if errors.As(err, &fe) {
				return nil, nil, fieldErr(f+".content", "%s", fe.Message)
			}
			return nil, nil, fieldErr(f+".content", "%v", err)
		}
		for _, c := range changes {
			if c.Field == "utm.content" {
				warnings = append(warnings, fmt.Sprintf("%s.content: %q normalised to %q", f, c.From, c.To))
			}
		}
		if seen[norm.Content] {
			return nil, nil, fieldErr(f+".content", "content %q is used by another variant; each variant needs its own", norm.Content)
		}
		seen[norm.Content] = true
		out = append(out, storage.Variant{Destination: d, Weight: v.Weight, Content: norm.Content})
	}
	return out, warnings, nil
}

func (r *Rules) identityParams(m map[string]string) error {
	if len(m) > maxIdentityParam {
		return fieldErr("identity_params", "at most %d identity parameters", maxIdentityParam)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := "identity_params." + k
		if k == "" || len(k) > 64 || strings.IndexFunc(k, func(c rune) bool { return !(c < 0x80 && slugByte(byte(c)) || c == '.') }) >= 0 {
			return fieldErr(f, "parameter names are 1 to 64 of letters, digits, '-', '_' and '.'")
		}
		if isUTMKey(k) || k == r.ClickParam {
			return fieldErr(f, "%q is not available as an identity parameter", k)
		}
		if !identity.ValidKind(m[k]) {
			return fieldErr(f, "identity kind must be customer_id, email or phone")
		}
	}
	return nil
}

func validDomain(d string) error {
	if d == "" {
		return nil
	}
	if len(d) > 253 {
		return errors.New("domain is too long")
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("domain %q is not a host name", d)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("domain %q is not a host name", d)
			}
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
