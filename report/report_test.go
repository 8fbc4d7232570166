package report

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	stdhtml "html"
	"image/png"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fedcmi/fedcmi/internal/fedtest"
	"github.com/fedcmi/fedcmi/metrics"
)

func TestAggregate(t *testing.T) {
	runs, err := Load(sweepFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	cmi := runs[2:4] // data.alpha=1 fedcmi, seeds 1 and 2
	if cmi[0].Method() != "fedcmi" || cmi[1].Method() != "fedcmi" {
		t.Fatalf("fixture order: %s %s", cmi[0].Dir, cmi[1].Dir)
	}
	dom := func(m metrics.Round) float64 { return m.Dominance }
	fused := func(m metrics.Round) float64 { return m.Heads[0] }
	s := math.Sqrt(0.5) // std of two values 1 apart
	for _, tc := range []struct {
		name  string
		value func(metrics.Round) float64
		band  Band
		want  []point
	}{
		// Dominance: rounds 1 and 2 have two runs; round 3 only seed 2's
		// (seed 1's is NaN), so its band is empty.
		{"dominance std", dom, BandStd, []point{{1, 2.5, 2.5 - s, 2.5 + s, 2}, {2, 2, 2 - s, 2 + s, 2}, {3, 1, 1, 1, 1}}},
		{"fused min-max", fused, BandMinMax, []point{{1, 0.45, 0.4, 0.5, 2}, {2, 0.7, 0.6, 0.8, 2}, {3, 0.6, 0.5, 0.7, 2}}},
	} {
		got := aggregate(cmi, tc.value, tc.band)
		ok := len(got) == len(tc.want)
		for i := 0; ok && i < len(got); i++ {
			g, w := got[i], tc.want[i]
			ok = g.X == w.X && g.N == w.N && math.Abs(g.Mean-w.Mean) < 1e-12 && math.Abs(g.Lo-w.Lo) < 1e-12 && math.Abs(g.Hi-w.Hi) < 1e-12
		}
		if !ok {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// within fails t if f does not return within a few seconds (a hang would
// otherwise only end with the test binary's timeout).
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no answer after 10 s", what)
	}
}

// TestAggregateSparse: rounds are aggregated as they occur, whatever
// their numbers, in increasing order; none is made up in between.
func TestAggregateSparse(t *testing.T) {
	run := func(rounds ...int) *Run {
		r := &Run{}
		for _, rd := range rounds {
			r.Rounds = append(r.Rounds, metrics.Round{Round: rd, Dominance: float64(rd % 7)})
		}
		return r
	}
	for _, tc := range []struct {
		name string
		runs []*Run
		want []float64 // X of the points
	}{
		{"gaps", []*Run{run(1, 5, 1000), run(3, 5)}, []float64{1, 3, 5, 1000}},
		{"huge", []*Run{run(2, math.MaxInt)}, []float64{2, math.MaxInt}},
		{"billion", []*Run{run(1e9)}, []float64{1e9}},
	} {
		var got []point
		within(t, tc.name, func() { got = aggregate(tc.runs, func(m metrics.Round) float64 { return m.Dominance }, BandStd) })
		var xs []float64
		for _, p := range got {
			xs = append(xs, p.X)
		}
		if !slices.Equal(xs, tc.want) {
			t.Errorf("%s: rounds %v, want %v", tc.name, xs, tc.want)
		}
	}
}

// checkPNG decodes data as a PNG of the figure's size at pngDPI.
func checkPNG(t *testing.T, name string, data []byte, f Figure) {
	t.Helper()
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		t.Errorf("%s: not a PNG: %v", name, err)
		return
	}
	wantW := int(math.Round(float64(f.Width) / 96 * pngDPI))
	if cfg.Width < wantW-1 || cfg.Width > wantW+1 || cfg.Height < 100 {
		t.Errorf("%s: %dx%d pixels, want width %d", name, cfg.Width, cfg.Height, wantW)
	}
}

// checkSVG parses data as XML whose root element is svg, with some drawing.
func checkSVG(t *testing.T, name string, data []byte) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	root, paths := "", 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Errorf("%s: not XML: %v", name, err)
			return
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			if se.Name.Local == "path" {
				paths++
			}
		}
	}
	if root != "svg" || paths < 10 {
		t.Errorf("%s: root element %q with %d paths, want svg with a drawing", name, root, paths)
	}
}

func TestBuild(t *testing.T) {
	runs, err := Load(sweepFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "report")
	res, err := Build(context.Background(), runs, out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Two settings x four figures.
	var kinds []string
	for _, f := range res.Figures {
		kinds = append(kinds, f.Kind+" "+f.Setting)
		for _, name := range []string{f.PNG, f.SVG} {
			data, err := os.ReadFile(filepath.Join(out, name))
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(name, ".png") {
				checkPNG(t, name, data, f)
			} else {
				checkSVG(t, name, data)
			}
		}
	}
	want := "accuracy data.alpha=1,bars data.alpha=1,per-class data.alpha=1,dominance data.alpha=1," +
		"accuracy data.alpha=100,bars data.alpha=100,per-class data.alpha=100,dominance data.alpha=100"
	if got := strings.Join(kinds, ","); got != want {
		t.Errorf("figures %s, want %s", got, want)
	}
	if _, err := os.Stat(filepath.Join(out, "accuracy-data.alpha-1.svg")); err != nil {
		t.Errorf("figure file name: %v", err)
	}

	// The table against hand-computed values (final rounds, see
	// sweepFixture). fedavg, alpha 1: fused 0.6 and 0.4, audio 0.5 and 0.3,
	// visual 0.3 and 0.1 (std 0.1414 each), rho 2 and 3, best rounds 3 and 2
	// (std 0.7071). fedcmi: fused 0.7 and 0.5, audio 0.6 and 0.7 (std
	// 0.0707), visual 0.4 and 0.2, rho NaN and 1, best rounds 3 and 2.
	// alpha 100: one interrupted fedavg run of two rounds.
	html, err := os.ReadFile(res.HTML)
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(out, MarkdownFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ setting, method, runs, fused, audio, visual, rho, first, round, best string }{
		{"data.alpha=1", "fedavg", "2", "0.500 ± 0.141", "0.400 ± 0.141", "0.200 ± 0.141", "2.50", "1.00", "3", "2.5 ± 0.7"},
		{"data.alpha=1", "fedcmi", "2", "0.600 ± 0.141", "0.650 ± 0.071", "0.300 ± 0.141", "1.00", "1.00", "3", "2.5 ± 0.7"},
		{"data.alpha=100", "fedavg", "1", "0.950 ± 0.000", "0.900 ± 0.000", "0.600 ± 0.000", "1.00", "1.00", "2", "2.0 ± 0.0"},
	} {
		row := `<tr><td class="text">` + tc.setting + `</td><td class="text">` + tc.method + `</td><td>` + tc.runs + `</td><td>` +
			tc.fused + `</td><td>` + tc.audio + `</td><td>` + tc.visual + `</td><td>` + tc.audio + `</td><td>` + tc.visual +
			`</td><td>` + tc.rho + `</td><td>` + tc.first + `</td><td>` + tc.round + `</td><td>` + tc.best + `</td></tr>`
		if !strings.Contains(string(html), row) {
			t.Errorf("HTML lacks the row\n%s", row)
		}
		line := "| " + strings.Join([]string{tc.setting, tc.method, tc.runs, tc.fused, tc.audio, tc.visual, tc.audio, tc.visual, tc.rho, tc.first, tc.round, tc.best}, " | ") + " |"
		if !strings.Contains(string(md), line) {
			t.Errorf("summary.md lacks the line\n%s\n%s", line, md)
		}
	}
	// Per class (fused ∓ 0.1): fedavg alpha 1, class 1: 0.7 and 0.5.
	if pc := res.Rows[0].PerClass[1]; math.Abs(pc.Mean-0.6) > 1e-12 || math.Abs(pc.Std-0.1*math.Sqrt2) > 1e-12 {
		t.Errorf("per-class %+v", pc)
	}

	// Self-contained: every figure is embedded as a PNG data URI, nothing
	// is fetched.
	imgs := regexp.MustCompile(`<img src="data:image/png;base64,([^"]+)"`).FindAllSubmatch(html, -1)
	if len(imgs) != len(res.Figures) {
		t.Errorf("%d embedded images for %d figures", len(imgs), len(res.Figures))
	}
	for i, m := range imgs {
		data, err := base64.StdEncoding.DecodeString(stdhtml.UnescapeString(string(m[1]))) // the template writes + as &#43;
		if err != nil {
			t.Fatal(err)
		}
		checkPNG(t, "embedded "+res.Figures[i].PNG, data, res.Figures[i])
	}
	if regexp.MustCompile(`(src|href)="(https?:)?//`).Match(html) {
		t.Error("the page refers to the network")
	}

	// Cancelled: no report.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Build(ctx, runs, t.TempDir(), Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled build: %v", err)
	}
}

func TestParseBand(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Band
		ok   bool
	}{{"std", BandStd, true}, {"", BandStd, true}, {"minmax", BandMinMax, true}, {"range", 0, false}} {
		got, err := ParseBand(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseBand(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestRoundTicks(t *testing.T) {
	for _, tc := range []struct {
		lo, hi float64
		want   string
	}{
		{1, 3, "1 2 3"},
		{1, 8, "1 2 3 4 5 6 7 8"},
		{1, 9, "2 4 6 8"},
		{1, 30, "5 10 15 20 25 30"},
		{1, 200, "50 100 150 200"},
		{0, 1000, "0 200 400 600 800 1000"},
		// Past 2^53, x + step == x for small steps.
		{1e20, 1e20, "100000000000000000000"},
		{0x1p60, 0x1p60 + 256, "*"}, // steps of 50 at a spacing of 256: any 1 to 8 ticks
	} {
		var got []string
		within(t, fmt.Sprintf("ticks %v..%v", tc.lo, tc.hi), func() {
			for _, tk := range (roundTicks{}).Ticks(tc.lo, tc.hi) {
				got = append(got, tk.Label)
			}
		})
		if tc.want == "*" {
			if len(got) < 1 || len(got) > 8 {
				t.Errorf("ticks %v..%v: %v, want 1 to 8", tc.lo, tc.hi, got)
			}
		} else if strings.Join(got, " ") != tc.want {
			t.Errorf("ticks %v..%v: %v, want %s", tc.lo, tc.hi, got, tc.want)
		}
	}
}

// TestBuildSchemas: runs whose metrics.jsonl lacks accuracy or per_class
// (which metrics.ReadJSONL accepts) get the figures they have data for;
// runs of one setting that disagree on heads or classes are an error
// naming both files. Settings may differ.
func TestBuildSchemas(t *testing.T) {
	const (
		full    = `{"round":1,"accuracy":{"fused":0.5,"audio_only":0.4},"per_class":{"0":0.4,"1":0.6},"dominance":1.2}`
		noClass = `{"round":1,"accuracy":{"fused":0.5,"audio_only":0.4},"dominance":1.2}`
		noAcc   = `{"round":1,"dominance":1.2}`
		three   = `{"round":1,"accuracy":{"fused":0.5,"audio_only":0.4},"per_class":{"0":0.4,"1":0.6,"2":0.5},"dominance":1.2}`
		fused   = `{"round":1,"accuracy":{"fused":0.5},"per_class":{"0":0.4,"1":0.6},"dominance":1.2}`
	)
	type run struct {
		dir, method string
		alpha       float64
		jsonl       string
	}
	for _, tc := range []struct {
		name    string
		runs    []run
		figures string // kinds and settings, or
		err     []string
	}{
		{"no per_class", []run{{"a", "fedcmi", 1, noClass}}, "accuracy,bars,dominance", nil},
		{"no accuracy", []run{{"a", "fedcmi", 1, noAcc}}, "dominance", nil},
		{"no accuracy, three settings", []run{{"a1", "fedcmi", 1, noAcc}, {"a2", "fedcmi", 2, noAcc}, {"a4", "fedcmi", 4, noAcc}},
			"dominance data.alpha=1,dominance data.alpha=2,dominance data.alpha=4", nil}, // and no trend
		{"classes differ", []run{{"a", "fedcmi", 1, three}, {"b", "fedavg", 1, full}}, "", []string{"a/metrics.jsonl", "b/metrics.jsonl", `["0" "1" "2"]`}},
		{"heads differ", []run{{"a", "fedcmi", 1, full}, {"b", "fedavg", 1, fused}}, "", []string{"a/metrics.jsonl", "b/metrics.jsonl", `["fused"]`}},
		{"per_class missing in one", []run{{"a", "fedcmi", 1, full}, {"b", "fedavg", 1, noClass}}, "", []string{"a/metrics.jsonl", "b/metrics.jsonl", "[]"}},
		{"settings differ", []run{{"a1", "fedcmi", 1, noAcc}, {"a2", "fedcmi", 2, full}},
			"dominance data.alpha=1,accuracy data.alpha=2,bars data.alpha=2,per-class data.alpha=2,dominance data.alpha=2", nil},
	} {
		root := t.TempDir()
		for _, r := range tc.runs {
			writeRawRun(t, root, r.dir, r.method, r.alpha, r.jsonl+"\n")
		}
		runs, err := Load(root)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		out := filepath.Join(t.TempDir(), "report")
		var res *Result
		within(t, tc.name, func() { res, err = Build(context.Background(), runs, out, Options{}) })
		if tc.err != nil {
			for _, want := range tc.err {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("%s: error %v, want one containing %s", tc.name, err, want)
				}
			}
			if _, serr := os.Stat(out); serr == nil {
				t.Errorf("%s: the failed build wrote %s", tc.name, out)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var kinds []string
		for _, f := range res.Figures {
			kinds = append(kinds, strings.TrimSpace(f.Kind+" "+f.Setting))
		}
		if got := strings.Join(kinds, ","); got != tc.figures {
			t.Errorf("%s: figures %s, want %s", tc.name, got, tc.figures)
		}
	}
}

// TestBuildTableHeads: the page's table has a column for every head of any
// setting, "-" where a setting lacks it.
func TestBuildTableHeads(t *testing.T) {
	root := t.TempDir()
	writeRawRun(t, root, "a1", "fedcmi", 1, `{"round":1,"dominance":1.2}`+"\n")
	writeRawRun(t, root, "a2", "fedcmi", 2, `{"round":1,"accuracy":{"fused":0.5,"audio_only":0.25},"dominance":1.2}`+"\n")
	runs, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Build(context.Background(), runs, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(res.HTML)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"<th>runs</th><th>fused</th><th>audio_only</th><th>dominance</th><th>audio dominant</th>",
		`<td class="text">data.alpha=1</td><td class="text">fedcmi</td><td>1</td><td>-</td><td>-</td><td>1.20</td>`,
		`<td class="text">data.alpha=2</td><td class="text">fedcmi</td><td>1</td><td>0.500 ± 0.000</td><td>0.250 ± 0.000</td><td>1.20</td>`,
	} {
		if !strings.Contains(string(html), want) {
			t.Errorf("the page lacks\n%s", want)
		}
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, HTMLFile), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		write func(io.Writer) error
		want  string
	}{
		{"failed", func(w io.Writer) error { io.WriteString(w, "partial"); return errors.New("disk full") }, "old"},
		{"done", func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }, "new"},
	} {
		err := writeFile(dir, HTMLFile, tc.write)
		if (err != nil) != (tc.want == "old") {
			t.Errorf("%s: %v", tc.name, err)
		}
		if err != nil && !strings.Contains(err.Error(), filepath.Join(dir, HTMLFile)) {
			t.Errorf("%s: error %v does not name the file", tc.name, err)
		}
		got, _ := os.ReadFile(filepath.Join(dir, HTMLFile))
		if string(got) != tc.want {
			t.Errorf("%s: file holds %q, want %q", tc.name, got, tc.want)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Errorf("%s: %d files, want 1 (no temporary file left)", tc.name, len(ents))
		}
	}
}

// TestBuildCancelKeepsReport: a build cancelled midway leaves the earlier
// report as it was, not a mix of old and new files.
func TestBuildCancelKeepsReport(t *testing.T) {
	runs, err := Load(sweepFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "report")
	if _, err := Build(context.Background(), runs[:2], out, Options{}); err != nil {
		t.Fatal(err)
	}
	snapshot := func() map[string]string {
		m := map[string]string{}
		ents, err := os.ReadDir(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(out, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			m[e.Name()] = string(b)
		}
		return m
	}
	before := snapshot()
	for _, n := range []int{1, 5} {
		if _, err := Build(fedtest.ErrAfter(int64(n)), runs, out, Options{Title: "new"}); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled after %d figures: %v", n, err)
		}
		if !maps.Equal(snapshot(), before) {
			t.Errorf("cancelled after %d figures: the report directory changed", n)
		}
	}
}
