// Package pluginhost runs forwarder plugins out of process and feeds each one the outbox
// at its own durable cursor: batches with a deadline per call, retries with back-off
// that honour the plugin's retry delays, dead letters for what a destination refuses,
// and relaunch of plugins that crash or hang. Redirects never wait on it.
package pluginhost

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/clickgate/clickgate/sdk"
)

// File is the plugins file (CLICKGATE_PLUGINS_FILE), JSON or YAML.
type File struct {
	Plugins []Spec `json:"plugins"`
}

// Spec declares one plugin.
type Spec struct {
	// Name identifies the plugin: its cursor, metrics, logs and dead letters.
	Name string `json:"name"`
	// Path is the binary; relative paths are relative to the plugins file.
	Path string `json:"path"`
	// SHA256, when set, must match the binary before it is run.
	SHA256 string `json:"sha256,omitempty"`
	// Events it receives: "click", "conversion" (default both).
	Events []string `json:"events,omitempty"`
	// Campaigns, when set, limits events to these campaigns.
	Campaigns []string `json:"campaigns,omitempty"`
	// IncludeBots sends bot and preview clicks too (default: humans only).
	IncludeBots bool `json:"include_bots,omitempty"`
	// IncludeTests sends preflight test clicks too.
	IncludeTests bool `json:"include_tests,omitempty"`
	// BatchSize is the most events per call (default 100).
	BatchSize int `json:"batch_size,omitempty"`
	// Linger waits for a fuller batch (default 50ms).
	Linger Duration `json:"linger,omitempty"`
	// Timeout bounds each call (default 30s); a plugin past it is killed and relaunched.
	Timeout Duration `json:"timeout,omitempty"`
	// MaxAttempts before an event is dead-lettered (default 10).
	MaxAttempts int `json:"max_attempts,omitempty"`
	// Env adds variables to the plugin's environment, e.g. secrets: "${VAR}" takes the
	// value of VAR from clickgate's own environment.
	Env map[string]string `json:"env,omitempty"`
	// Config is the plugin's own configuration, passed to it as JSON.
	Config json.RawMessage `json:"config,omitempty"`
}

// Duration is a time.Duration written as "50ms" in the file.
type Duration struct{ time.Duration }

// UnmarshalJSON reads "10s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration like \"10s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("want a duration like \"10s\", got %q", s)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes "10s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Load reads and validates a plugins file.
func Load(path string) (*File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var f File
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	seen := map[string]bool{}
	for i := range f.Plugins {
		s := &f.Plugins[i]
		at := fmt.Sprintf("%s: plugins[%d]", path, i)
		if !nameRE.MatchString(s.Name) {
			return nil, fmt.Errorf("%s.name: %q must be lowercase letters, digits, '-' or '_'", at, s.Name)
		}
		if s.Name == "kafka" {
			return nil, fmt.Errorf("%s.name: \"kafka\" names the Kafka relay's dead letters; pick another", at)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("%s.name: %q is used twice", at, s.Name)
		}
		seen[s.Name] = true
		if s.Path == "" {
			return nil, fmt.Errorf("%s.path: required", at)
		}
		if !filepath.IsAbs(s.Path) {
			s.Path = filepath.Join(filepath.Dir(path), s.Path)
		}
		if s.SHA256 != "" && !regexp.MustCompile(`^[0-9a-fA-F]{64}$`).MatchString(s.SHA256) {
			return nil, fmt.Errorf("%s.sha256: want 64 hex digits", at)
		}
		if len(s.Events) == 0 {
			s.Events = []string{sdk.TypeClick, sdk.TypeConversion}
		}
		for _, e := range s.Events {
			if e != sdk.TypeClick && e != sdk.TypeConversion {
				return nil, fmt.Errorf("%s.events: %q is not click or conversion", at, e)
			}
		}
		if s.BatchSize == 0 {
			s.BatchSize = 100
		}
		if s.BatchSize < 1 || s.BatchSize > 10000 {
			return nil, fmt.Errorf("%s.batch_size: want 1 to 10000", at)
		}
		if s.Linger.Duration == 0 {
			s.Linger.Duration = 50 * time.Millisecond
		}
		if s.Timeout.Duration == 0 {
			s.Timeout.Duration = 30 * time.Second
		}
		if s.MaxAttempts == 0 {
			s.MaxAttempts = 10
		}
		if s.MaxAttempts < 1 {
			return nil, fmt.Errorf("%s.max_attempts: want at least 1", at)
		}
		if len(s.Config) == 0 {
			s.Config = json.RawMessage("{}")
		}
		cfg, err := expandEnv(s.Config)
		if err != nil {
			return nil, fmt.Errorf("%s.config: %w", at, err)
		}
		for k, v := range s.Env {
			var missing []string
			if s.Env[k] = expandRefs(v, &missing); len(missing) > 0 {
				return nil, fmt.Errorf("%s.env.%s: environment variable %s is not set", at, k, missing[0])
			}
		}
		s.Config = cfg
	}
	return &f, nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandRefs replaces each ${VAR} in s with clickgate's environment and adds the names
// of unset variables to missing. Nothing else is special: a "$" elsewhere (a secret
// such as "pa$$w0rd") stays as written.
func expandRefs(s string, missing *[]string) string {
	return envRef.ReplaceAllStringFunc(s, func(m string) string {
		name := envRef.FindStringSubmatch(m)[1]
		val, ok := os.LookupEnv(name)
		if !ok {
			*missing = append(*missing, name)
		}
		return val
	})
}

// expandEnv replaces ${VAR} in the config's string values with clickgate's environment,
// so secrets stay out of the plugins file. A reference to an unset variable is an error
// rather than an empty secret. Numbers are kept as written (a decode into float64
// would round integers past 2^53).
func expandEnv(raw json.RawMessage) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var missing []string
	var walk func(any) any
	walk = func(x any) any {
		switch t := x.(type) {
		case string:
			return expandRefs(t, &missing)
		case map[string]any:
			for k, e := range t {
				t[k] = walk(e)
			}
		case []any:
			for i, e := range t {
				t[i] = walk(e)
			}
		}
		return x
	}
	v = walk(v)
	if len(missing) > 0 {
		return nil, fmt.Errorf("environment variable %s is not set", missing[0])
	}
	return json.Marshal(v)
}

// env is the plugin's environment, its ${VAR} references expanded by Load.
func (s *Spec) env() []string {
	var out []string
	for k, v := range s.Env {
		out = append(out, k+"="+v)
	}
	return out
}
