package suite

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// build compiles a command of this module into dir.
func build(t *testing.T, dir, name, pkg string) {
	t.Helper()
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
}

// TestSuiteSmoke runs the whole driver on tiny settings: the fasthttp baseline and, unless
// -short, one clickgate scenario from the freshly built binary. It checks that what is
// written (Markdown, JSON, PNG, latest.*) is there and consistent.
func TestSuiteSmoke(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not on PATH")
	}
	bin := t.TempDir()
	build(t, bin, "baseline302", "../cmd/baseline302")
	short := testing.Short()
	if !short {
		build(t, bin, "clickgate", "../../cmd/clickgate")
	}
	results := t.TempDir()
	var out bytes.Buffer
	opt := Options{
		BinDir: bin, RepoDir: "../..", ResultsDir: results, Baseline: "fasthttp", Only: []string{"hot"}, BaselineOnly: short,
		Conns: 8, Warmup: 200 * time.Millisecond, Saturation: 400 * time.Millisecond, Constant: 400 * time.Millisecond,
		SettleTimeout: 2 * time.Second, Out: &out,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	md := out.String()
	t.Log("\n" + md)
	base := rep.Baseline.run(Saturation)
	if base == nil || base.Rate <= 0 || base.ErrorTotal != 0 {
		t.Fatalf("baseline saturation: %+v", base)
	}
	if c := rep.Baseline.run(Constant); c == nil || c.TargetRate != rep.Settings.ConstantRate || c.Answered == 0 {
		t.Fatalf("baseline constant run: %+v", c)
	}
	if base.Server.CPUPerRequestUS <= 0 || base.Server.PeakRSS <= 0 {
		t.Errorf("baseline server usage not measured: %+v", base.Server)
	}
	if !strings.Contains(md, "| baseline (fasthttp) | saturation |") || !strings.Contains(md, "| goal |") {
		t.Errorf("markdown lacks the baseline row or the goals:\n%s", md)
	}
	if !short {
		hot := rep.Scenarios[0]
		sat := hot.run(Saturation)
		if hot.Skipped != "" || sat == nil || sat.Answered == 0 || sat.ErrorTotal != 0 || sat.VsBaseline == nil {
			t.Fatalf("hot scenario: %+v %+v", hot, sat)
		}
		if !strings.Contains(md, "| one hot link | saturation |") {
			t.Errorf("markdown lacks the hot link row")
		}
	}
	for _, f := range []string{"latest.json", "latest.md", "latest.png"} {
		if st, err := os.Stat(filepath.Join(results, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	raw, _ := os.ReadFile(filepath.Join(results, "latest.json"))
	var back Report
	if err := json.Unmarshal(raw, &back); err != nil || back.Baseline == nil || back.Machine.GoVersion == "" {
		t.Errorf("latest.json: %v", err)
	}
	png, _ := os.ReadFile(filepath.Join(results, "latest.png"))
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Error("latest.png is not a PNG")
	}
	matches, _ := filepath.Glob(filepath.Join(results, "*-quick.json"))
	if len(matches) != 1 {
		t.Errorf("per-run JSON files: %v", matches)
	}
}

func TestSinkCounts(t *testing.T) {
	var k Sink
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetBodyString(`{"events":[{"event_id":"a"},{"event_id":"b"}]}`)
	k.Handler(&ctx)
	if ctx.Response.StatusCode() != 204 {
		t.Fatalf("status %d", ctx.Response.StatusCode())
	}
	var get fasthttp.RequestCtx
	get.Request.Header.SetMethod("GET")
	get.Request.SetRequestURI("/stats")
	k.Handler(&get)
	if got := string(get.Response.Body()); got != `{"requests":1,"events":2}` {
		t.Fatalf("stats %s", got)
	}
}
