// Package config reads clickgate's configuration from CLICKGATE_* environment
// variables and validates it, so a bad value stops the process at start with one line
// that names the variable.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/nyaruka/phonenumbers"

	"github.com/clickgate/clickgate/proxy/attribution"
	"github.com/clickgate/clickgate/proxy/utm"
)

// Config is every setting of `clickgate serve`. The env tag names the variable; the
// default is what an unset variable means.
type Config struct {
	// Listen is the public edge: redirects, conversion intake, health.
	Listen string `env:"LISTEN" envDefault:":8080"`
	// AdminListen is the admin API and metrics. Keep it off the internet.
	AdminListen string `env:"ADMIN_LISTEN" envDefault:"127.0.0.1:8081"`
	// DataDir holds the Badger store, the admin token and the server secret.
	DataDir string `env:"DATA_DIR" envDefault:"./data"`
	// AdminToken is the admin API's bearer token. Empty: generated on first start into
	// DataDir/admin.token and printed once.
	AdminToken string `env:"ADMIN_TOKEN"`
	// IngestTokens are the bearer tokens the conversion intake accepts.
	IngestTokens []string `env:"INGEST_TOKENS" envSeparator:","`
	// KafkaBrokers, when set, turns on the Kafka relay.
	KafkaBrokers []string `env:"KAFKA_BROKERS" envSeparator:","`
	// Kafka settings, used when KafkaBrokers is set.
	KafkaClicksTopic      string        `env:"KAFKA_CLICKS_TOPIC" envDefault:"clickgate.clicks"`
	KafkaConversionsTopic string        `env:"KAFKA_CONVERSIONS_TOPIC" envDefault:"clickgate.conversions"`
	KafkaPartitions       int           `env:"KAFKA_PARTITIONS" envDefault:"6"`
	KafkaReplication      int           `env:"KAFKA_REPLICATION" envDefault:"-1"`
	KafkaBatchSize        int           `env:"KAFKA_BATCH_SIZE" envDefault:"5000"`
	KafkaLinger           time.Duration `env:"KAFKA_LINGER" envDefault:"5ms"`
	KafkaCompression      string        `env:"KAFKA_COMPRESSION" envDefault:"lz4"`
	KafkaTLS              bool          `env:"KAFKA_TLS" envDefault:"false"`
	KafkaTLSCAFile        string        `env:"KAFKA_TLS_CA_FILE"`
	KafkaTLSCertFile      string        `env:"KAFKA_TLS_CERT_FILE"`
	KafkaTLSKeyFile       string        `env:"KAFKA_TLS_KEY_FILE"`
	KafkaTLSSkipVerify    bool          `env:"KAFKA_TLS_SKIP_VERIFY" envDefault:"false"`
	KafkaSASLMechanism    string        `env:"KAFKA_SASL_MECHANISM"`
	KafkaSASLUsername     string        `env:"KAFKA_SASL_USERNAME"`
	KafkaSASLPassword     string        `env:"KAFKA_SASL_PASSWORD"`
	// OutboxMaxBacklog is the backlog (events) past which a consumer raises an alert.
	OutboxMaxBacklog uint64 `env:"OUTBOX_MAX_BACKLOG" envDefault:"10000000"`
	// AttributionWindow is the default window (e.g. 7d, 48h).
	AttributionWindow string `env:"ATTRIBUTION_WINDOW" envDefault:"7d"`
	// AttributionWindows overrides it per type and campaign:
	// "purchase=48h,spring_sale/*=14d,promo/purchase=24h".
	AttributionWindows string `env:"ATTRIBUTION_WINDOWS"`
	// DedupeHorizon is how long a conversion's event ID is remembered.
	DedupeHorizon string `env:"DEDUPE_HORIZON" envDefault:"30d"`
	// EventUserData says which events carry plain identifiers to Kafka and plugins:
	// "conversions" (the email, phone and customer ID a conversion's sender gave, kept
	// sealed until forwarded), "all" (also the identity captured at a click, from an
	// identity parameter or a recipient token, kept sealed with the click or token), or
	// "none".
	EventUserData string `env:"EVENT_USER_DATA" envDefault:"conversions"`
	// StrictConversionTypes rejects types outside purchase, lead, signup, add_to_cart, call.
	StrictConversionTypes bool `env:"STRICT_CONVERSION_TYPES" envDefault:"false"`
	// Windows and Horizon are the parsed forms.
	Windows attribution.Windows `env:"-"`
	Horizon time.Duration       `env:"-"`
	// ClickParam carries the click ID to the destination.
	ClickParam string `env:"CLICK_PARAM" envDefault:"cgid"`
	// CookieDomain is the visitor cookie's Domain (e.g. ".brand.com"). Empty: the
	// request host only.
	CookieDomain string `env:"COOKIE_DOMAIN"`
	// PluginsFile is the plugin configuration file.
	PluginsFile string `env:"PLUGINS_FILE"`
	// NodeID names this edge; it is part of every click ID. Default: the host name.
	NodeID string `env:"NODE_ID"`
	// PublicURL is the scheme and host of short URLs for links without a domain.
	// Default: http://localhost plus the port of Listen.
	PublicURL string `env:"PUBLIC_URL"`
	// Domains, when set, restricts the domains links may be created on.
	Domains []string `env:"DOMAINS" envSeparator:","`
	// UTMStrict rejects UTM values not already in canonical form instead of
	// normalising them.
	UTMStrict bool `env:"UTM_STRICT" envDefault:"false"`
	// UTMMediums is the list utm_medium must come from.
	UTMMediums string `env:"UTM_MEDIUMS" envDefault:"promotional,transactional,abandoned_cart,welcome_series"`
	// Mediums is UTMMediums parsed and canonical.
	Mediums []string `env:"-"`
	// Region reads phone numbers that lack a country code (ISO 3166 code).
	Region string `env:"DEFAULT_REGION" envDefault:"US"`
	// ClientIPHeader names a header with the client address set by a trusted proxy.
	ClientIPHeader string `env:"CLIENT_IP_HEADER"`
	// MaxHeaderBytes caps the request line and headers (fasthttp's ReadBufferSize);
	// bigger requests get 431.
	MaxHeaderBytes int `env:"MAX_HEADER_BYTES" envDefault:"8192"`
	// ShutdownTimeout bounds the wait for in-flight requests on SIGTERM.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"15s"`
	// SyncWrites fsyncs every group commit: survives power loss, costs throughput.
	SyncWrites bool `env:"SYNC_WRITES" envDefault:"false"`
	// CacheMB is the Badger block cache.
	CacheMB int64 `env:"CACHE_MB" envDefault:"32"`
	// SeedLinks is a JSON file of links created at start when missing (demo data).
	SeedLinks string `env:"SEED_LINKS"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"LOG_LEVEL" envDefault:"info"`
	// LogFormat is json or text.
	LogFormat string `env:"LOG_FORMAT" envDefault:"json"`
}

// Prefix is the prefix of every variable.
const Prefix = "CLICKGATE_"

// Load reads the environment. Errors name the variable, e.g.
// "CLICKGATE_LISTEN: address "x" has no port".
func Load() (*Config, error) { return LoadFrom(os.Environ()) }

// LoadFrom reads the given KEY=VALUE list (for tests).
func LoadFrom(environ []string) (*Config, error) {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	var c Config
	err := env.ParseWithOptions(&c, env.Options{Prefix: Prefix, Environment: m})
	if err != nil {
		return nil, explain(err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// explain turns env's field-named errors into variable-named ones.
func explain(err error) error {
	var agg env.AggregateError
	if errors.As(err, &agg) && len(agg.Errors) > 0 {
		err = agg.Errors[0]
	}
	var pe env.ParseError
	if errors.As(err, &pe) {
		if f, ok := reflect.TypeOf(Config{}).FieldByName(pe.Name); ok {
			return fmt.Errorf("%s%s: %v", Prefix, f.Tag.Get("env"), pe.Err)
		}
	}
	return fmt.Errorf("configuration: %v", err)
}

func bad(name, format string, a ...any) error {
	return fmt.Errorf("%s%s: %s", Prefix, name, fmt.Sprintf(format, a...))
}

func (c *Config) validate() error {
	for name, addr := range map[string]string{"LISTEN": c.Listen, "ADMIN_LISTEN": c.AdminListen} {
		if _, port, err := net.SplitHostPort(addr); err != nil {
			return bad(name, "%q is not host:port (%v)", addr, err)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return bad(name, "%q has no valid port", addr)
		}
	}
	if c.Listen == c.AdminListen && !strings.HasSuffix(c.Listen, ":0") {
		return bad("ADMIN_LISTEN", "must differ from CLICKGATE_LISTEN")
	}
	if c.DataDir == "" {
		return bad("DATA_DIR", "is empty")
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		return bad("ADMIN_TOKEN", "is shorter than 16 characters")
	}
	for _, t := range c.IngestTokens {
		if len(strings.TrimSpace(t)) < 16 {
			return bad("INGEST_TOKENS", "every token needs at least 16 characters")
		}
	}
	for i, b := range c.KafkaBrokers {
		c.KafkaBrokers[i] = strings.TrimSpace(b)
		if _, _, err := net.SplitHostPort(c.KafkaBrokers[i]); err != nil {
			return bad("KAFKA_BROKERS", "%q is not host:port", b)
		}
	}
	switch c.KafkaCompression {
	case "none", "gzip", "snappy", "lz4", "zstd":
	default:
		return bad("KAFKA_COMPRESSION", "%q must be none, gzip, snappy, lz4 or zstd", c.KafkaCompression)
	}
	for name, t := range map[string]string{"KAFKA_CLICKS_TOPIC": c.KafkaClicksTopic, "KAFKA_CONVERSIONS_TOPIC": c.KafkaConversionsTopic} {
		if t == "" || len(t) > 249 || strings.Trim(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
			return bad(name, "%q is not a Kafka topic name", t)
		}
	}
	if c.KafkaPartitions < 1 || c.KafkaPartitions > 10000 {
		return bad("KAFKA_PARTITIONS", "%d is outside 1..10000", c.KafkaPartitions)
	}
	if c.KafkaReplication == 0 || c.KafkaReplication < -1 {
		return bad("KAFKA_REPLICATION", "must be -1 (broker default) or at least 1")
	}
	if c.KafkaBatchSize < 1 || c.KafkaBatchSize > 100000 {
		return bad("KAFKA_BATCH_SIZE", "%d is outside 1..100000", c.KafkaBatchSize)
	}
	if c.KafkaLinger < 0 || c.KafkaLinger > time.Second {
		return bad("KAFKA_LINGER", "must be between 0 and 1s")
	}
	switch strings.ToLower(c.KafkaSASLMechanism) {
	case "", "plain", "scram-sha-256", "scram-sha-512":
	default:
		return bad("KAFKA_SASL_MECHANISM", "%q must be plain, scram-sha-256 or scram-sha-512", c.KafkaSASLMechanism)
	}
	if c.KafkaSASLMechanism != "" && c.KafkaSASLUsername == "" {
		return bad("KAFKA_SASL_USERNAME", "is required with CLICKGATE_KAFKA_SASL_MECHANISM")
	}
	if !validParam(c.ClickParam) {
		return bad("CLICK_PARAM", "%q must be 1 to 32 of letters, digits, '_' and '-'", c.ClickParam)
	}
	if strings.HasPrefix(strings.ToLower(c.ClickParam), "utm_") {
		return bad("CLICK_PARAM", "%q collides with UTM parameters", c.ClickParam)
	}
	if c.CookieDomain != "" {
		d := strings.ToLower(strings.TrimPrefix(c.CookieDomain, "."))
		if d == "" || strings.ContainsAny(d, " /:;,") || !strings.Contains(d, ".") && d != "localhost" {
			return bad("COOKIE_DOMAIN", "%q is not a domain like .brand.com", c.CookieDomain)
		}
		c.CookieDomain = strings.ToLower(c.CookieDomain)
	}
	if c.NodeID == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "edge"
		}
		c.NodeID = h
	}
	if len(c.NodeID) > 64 || strings.ContainsFunc(c.NodeID, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return bad("NODE_ID", "%q must be at most 64 printable ASCII characters", c.NodeID)
	}
	if c.PublicURL == "" {
		_, port, _ := net.SplitHostPort(c.Listen)
		c.PublicURL = "http://localhost:" + port
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return bad("PUBLIC_URL", "%q must be like https://go.brand.com", c.PublicURL)
	}
	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	for i, d := range c.Domains {
		c.Domains[i] = strings.ToLower(strings.TrimSpace(d))
		if c.Domains[i] == "" {
			return bad("DOMAINS", "has an empty entry")
		}
	}
	if _, ok := phonenumbers.GetSupportedRegions()[c.Region]; !ok {
		return bad("DEFAULT_REGION", "%q is not a region code like US or GB", c.Region)
	}
	if c.ClientIPHeader != "" && !validParam(c.ClientIPHeader) {
		return bad("CLIENT_IP_HEADER", "%q is not a header name", c.ClientIPHeader)
	}
	if c.MaxHeaderBytes < 1024 || c.MaxHeaderBytes > 1<<20 {
		return bad("MAX_HEADER_BYTES", "%d is outside 1024..1048576", c.MaxHeaderBytes)
	}
	if c.ShutdownTimeout <= 0 {
		return bad("SHUTDOWN_TIMEOUT", "must be positive")
	}
	if c.CacheMB < 1 || c.CacheMB > 1<<16 {
		return bad("CACHE_MB", "%d is outside 1..65536", c.CacheMB)
	}
	def, err := attribution.ParseDuration(c.AttributionWindow)
	if err != nil || def <= 0 {
		return bad("ATTRIBUTION_WINDOW", "%q is not a duration like 7d or 48h", c.AttributionWindow)
	}
	if c.Windows, err = attribution.ParseWindows(def, c.AttributionWindows); err != nil {
		return bad("ATTRIBUTION_WINDOWS", "%v", err)
	}
	if c.Horizon, err = attribution.ParseDuration(c.DedupeHorizon); err != nil || c.Horizon < time.Hour {
		return bad("DEDUPE_HORIZON", "%q is not a duration of an hour or more, like 30d", c.DedupeHorizon)
	}
	switch c.EventUserData {
	case "conversions", "all", "none":
	default:
		return bad("EVENT_USER_DATA", "%q is not conversions, all or none", c.EventUserData)
	}
	m, err := utm.ParseMediums(c.UTMMediums)
	if err != nil {
		return bad("UTM_MEDIUMS", "%v", err)
	}
	c.Mediums = m
	if _, err := c.SlogLevel(); err != nil {
		return bad("LOG_LEVEL", "%v", err)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return bad("LOG_FORMAT", "%q must be json or text", c.LogFormat)
	}
	return nil
}

// SlogLevel returns LogLevel as a slog level.
func (c *Config) SlogLevel() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return 0, fmt.Errorf("%q must be debug, info, warn or error", c.LogLevel)
	}
	return l, nil
}

func validParam(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
