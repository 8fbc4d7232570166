package report

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	stdhtml "html"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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
	} {
		var got []string
		for _, tk := range (roundTicks{}).Ticks(tc.lo, tc.hi) {
			got = append(got, tk.Label)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("ticks %v..%v: %v, want %s", tc.lo, tc.hi, got, tc.want)
		}
	}
}
