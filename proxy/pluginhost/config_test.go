package pluginhost

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOOK_SECRET", "s3cr3t-from-env")
	yaml := `plugins:
  - name: hook
    path: bin/webhook
    events: [click]
    linger: 20ms
    env: {TOKEN: "${HOOK_SECRET}", LITERAL: "pa$$w0rd$1$HOME"}
    config:
      url: https://hooks.example.com/x
      secret: ${HOOK_SECRET}
      literal: "pa$$w0rd$1$HOME"
      nested: {list: ["${HOOK_SECRET}", 1]}
      account: 9007199254740993
`
	p := filepath.Join(dir, "plugins.yaml")
	os.WriteFile(p, []byte(yaml), 0o600)
	f, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	s := f.Plugins[0]
	if s.Path != filepath.Join(dir, "bin/webhook") || s.BatchSize != 100 || s.Linger.Duration != 20*time.Millisecond ||
		s.Timeout.Duration != 30*time.Second || s.MaxAttempts != 10 || len(s.Events) != 1 {
		t.Fatalf("spec %+v", s)
	}
	// Only ${VAR} is replaced: a "$" elsewhere is part of the value, and numbers keep
	// every digit (2^53+1 is not a float64).
	if c := string(s.Config); !strings.Contains(c, `"secret":"s3cr3t-from-env"`) || !strings.Contains(c, `["s3cr3t-from-env",1]`) ||
		!strings.Contains(c, `"literal":"pa$$w0rd$1$HOME"`) || !strings.Contains(c, `"account":9007199254740993`) {
		t.Fatalf("config %s", c)
	}
	env := s.env()
	slices.Sort(env)
	if want := []string{"LITERAL=pa$$w0rd$1$HOME", "TOKEN=s3cr3t-from-env"}; !slices.Equal(env, want) {
		t.Fatalf("env %q, want %q", env, want)
	}
}

func TestLoadHostile(t *testing.T) {
	cases := map[string]string{
		`{"plugins":[{"name":"Bad Name","path":"x"}]}`:                           "name",
		`{"plugins":[{"name":"a","path":"x"},{"name":"a","path":"y"}]}`:          "used twice",
		`{"plugins":[{"name":"kafka","path":"x"}]}`:                              "Kafka relay",
		`{"plugins":[{"name":"a"}]}`:                                             "path",
		`{"plugins":[{"name":"a","path":"x","sha256":"abc"}]}`:                   "sha256",
		`{"plugins":[{"name":"a","path":"x","events":["open"]}]}`:                "events",
		`{"plugins":[{"name":"a","path":"x","batch_size":-1}]}`:                  "batch_size",
		`{"plugins":[{"name":"a","path":"x","timeout":"soon"}]}`:                 "duration",
		`{"plugins":[{"name":"a","path":"x","colour":"red"}]}`:                   "unknown field",
		`{"plugins":[{"name":"a","path":"x","config":{"k":"${NOPE_UNSET_1}"}}]}`: "NOPE_UNSET_1",
		`{"plugins":[{"name":"a","path":"x","env":{"K":"${NOPE_UNSET_2}"}}]}`:    "env.K: environment variable NOPE_UNSET_2",
		`plugins: [`: "yaml",
	}
	for body, want := range cases {
		p := filepath.Join(t.TempDir(), "p.yaml")
		os.WriteFile(p, []byte(body), 0o600)
		if _, err := Load(p); err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(want)) {
			t.Errorf("%s: err %v, want %q", body, err, want)
		}
	}
}
