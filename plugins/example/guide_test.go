package main

// This file is not part of the guide: it keeps sdk/GUIDE.md honest. The guide's Go code
// blocks must be this package's files, verbatim, and its describe output and plugins
// files must be what the SDK prints and what clickgate loads.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"

	"github.com/clickgate/clickgate/proxy/pluginhost"
	"github.com/clickgate/clickgate/sdk"
)

var fence = regexp.MustCompile("(?ms)^```(\\w+)\\n(.*?)^```$")

func guideBlocks(t *testing.T) map[string][]string {
	t.Helper()
	guide, err := os.ReadFile("../../sdk/GUIDE.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string][]string{}
	for _, m := range fence.FindAllStringSubmatch(string(guide), -1) {
		blocks[m[1]] = append(blocks[m[1]], m[2])
	}
	return blocks
}

func TestGuideCodeIsThisPackage(t *testing.T) {
	blocks := guideBlocks(t)["go"]
	files := []string{"main.go", "main_test.go"}
	if len(blocks) != len(files) {
		t.Fatalf("the guide has %d Go blocks, want %d (%v)", len(blocks), len(files), files)
	}
	for i, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if blocks[i] != string(src) {
			t.Errorf("Go block %d of sdk/GUIDE.md differs from plugins/example/%s: copy the file into the guide", i+1, name)
		}
	}
}

func TestGuideDescribeOutput(t *testing.T) {
	blocks := guideBlocks(t)["json"]
	if len(blocks) != 2 {
		t.Fatalf("the guide has %d JSON blocks, want 2 (describe, plugins file)", len(blocks))
	}
	var got struct {
		Name            string            `json:"name"`
		Version         string            `json:"version"`
		ProtocolVersion int               `json:"protocol_version"`
		Description     string            `json:"description"`
		Config          []sdk.ConfigField `json:"config"`
	}
	if err := json.Unmarshal([]byte(blocks[0]), &got); err != nil {
		t.Fatal(err)
	}
	info := (&Poster{}).Info()
	if got.Name != info.Name || got.Version != info.Version || got.ProtocolVersion != sdk.ProtocolVersion ||
		got.Description != info.Description || !reflect.DeepEqual(got.Config, info.Config) {
		t.Errorf("the guide's describe output %+v is not what the plugin prints (%+v)", got, info)
	}
}

func TestGuidePluginsFiles(t *testing.T) {
	t.Setenv("COLLECTOR_TOKEN", "tok")
	blocks := guideBlocks(t)
	files := map[string]string{"plugins.yaml": blocks["yaml"][0], "plugins.json": blocks["json"][1]}
	for name, text := range files {
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := pluginhost.Load(path)
		if err != nil {
			t.Fatalf("%s from the guide: %v", name, err)
		}
		p := f.Plugins[0]
		var cfg Config
		if err := json.Unmarshal(p.Config, &cfg); err != nil || cfg.Token != "tok" || cfg.URL == "" {
			t.Errorf("%s: config %s", name, p.Config)
		}
		if err := (&Poster{}).Configure(t.Context(), p.Config); err != nil {
			t.Errorf("%s: the example rejects the guide's config: %v", name, err)
		}
		if p.Name != "myforwarder" || p.BatchSize != 100 || p.IncludeBots || len(p.Events) != 2 || len(p.Campaigns) != 1 || p.SHA256 == "" {
			t.Errorf("%s: %+v", name, p)
		}
	}
}
