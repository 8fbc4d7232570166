package report

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

func TestFileSlug(t *testing.T) {
	long := strings.Repeat("data.synthetic.signal=1,0.35,", 5) // 145 characters
	huge := strings.Repeat("data.synthetic.signal=1,0.35,", 10)
	used := map[string]bool{}
	for _, tc := range []struct{ setting, want string }{
		{"", "all"},
		{"data.alpha=1", "data.alpha-1"},
		{"data.alpha=1", "data.alpha-1_2"},
		{long, strings.Trim(strings.ReplaceAll(strings.ReplaceAll(long, "=", "-"), ",", "_"), "_")},
		{huge, "setting1"},
		{huge + "x", "setting2"},
	} {
		if got := fileSlug(tc.setting, used); got != tc.want {
			t.Errorf("fileSlug(%q) = %q, want %q", tc.setting, got, tc.want)
		}
	}
}

func TestFitTitle(t *testing.T) {
	sty := plot.New().Title.TextStyle
	title := "data.alpha=1,data.multi_ratio=0.5,clients_per_round=10,train.lr=0.01"
	width := sty.Width("data.multi_ratio=0.5,clients_per_round=10,") + vg.Points(1)
	got := fitTitle(title, sty, width)
	lines := strings.Split(got, "\n")
	if strings.ReplaceAll(got, "\n", "") != title || len(lines) < 2 {
		t.Fatalf("fitTitle = %q", got)
	}
	for _, l := range lines {
		if sty.Width(l) > width && strings.Count(l, ",") > 1 {
			t.Errorf("line %q is wider than %v", l, width)
		}
	}
	if got := fitTitle("data.alpha=1", sty, vg.Inch*5); got != "data.alpha=1" {
		t.Errorf("short title broken: %q", got)
	}
}

// TestStyles: the first 40 methods differ in colour, dashes or marker,
// and neighbours in all three.
func TestStyles(t *testing.T) {
	key := func(s seriesStyle) string {
		return strings.Join([]string{
			regexp.MustCompile(`\s+`).ReplaceAllString(strings.TrimSpace(strings.Trim(fmtAny(s.color), "{}")), ","),
			fmtAny(s.dashes), fmtAny(s.glyph),
		}, "|")
	}
	seen := map[string]int{}
	for i := range 40 {
		k := key(styleAt(i))
		if j, dup := seen[k]; dup {
			t.Errorf("methods %d and %d share a style", j, i)
		}
		seen[k] = i
		a, b := styleAt(i), styleAt(i+1)
		if a.color == b.color || fmtAny(a.dashes) == fmtAny(b.dashes) || fmtAny(a.glyph) == fmtAny(b.glyph) {
			t.Errorf("methods %d and %d share a colour, dashes or marker", i, i+1)
		}
	}
}

func TestScaleAround(t *testing.T) {
	for _, tc := range []struct{ min, max, lo, hi float64 }{
		{1.1, 1.3, 0.985, 1.315}, // 1 comes into view, 0 does not
		{2, 5, 0.8, 5.2},
		{0.5, 0.9, 0.475, 1.025},
		{1, 1, 0.45, 1.55}, // no spread: a unit around 1
	} {
		ax := plot.New().Y
		ax.Min, ax.Max = tc.min, tc.max
		scaleAround(&ax, 1)
		if d := ax.Min - tc.lo; d > 1e-9 || d < -1e-9 {
			t.Errorf("[%v, %v]: min %v, want %v", tc.min, tc.max, ax.Min, tc.lo)
		}
		if d := ax.Max - tc.hi; d > 1e-9 || d < -1e-9 {
			t.Errorf("[%v, %v]: max %v, want %v", tc.min, tc.max, ax.Max, tc.hi)
		}
	}
}

// TestAccuracyZoom: -ymin/-ymax set the accuracy axes; the dominance axis
// follows its data (the fixture's ratios lie in 1..5) and not 0.
func TestAccuracyZoom(t *testing.T) {
	runs, err := Load(sweepFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	ticks := func(opt Options, name string) string {
		out := t.TempDir()
		if _, err := Build(context.Background(), runs, out, opt); err != nil {
			t.Fatal(err)
		}
		svg, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(regexp.MustCompile(`>(-?[0-9.]+)</text>`).FindAllString(string(svg), -1), " ")
	}
	def := ticks(Options{}, "accuracy-data.alpha-1.svg")
	zoom := ticks(Options{YMin: 0.6, YMax: 0.9}, "accuracy-data.alpha-1.svg")
	if !strings.Contains(def, ">0.0</text>") || !strings.Contains(def, ">1.0</text>") {
		t.Errorf("default accuracy axis ticks %s, want 0 to 1", def)
	}
	if strings.Contains(zoom, ">0.0</text>") || !strings.Contains(zoom, ">0.6</text>") || !strings.Contains(zoom, ">0.9</text>") {
		t.Errorf("zoomed accuracy axis ticks %s, want 0.6 to 0.9", zoom)
	}
	if dom := ticks(Options{}, "dominance-data.alpha-1.svg"); strings.Contains(dom, ">0</text>") || strings.Contains(dom, ">0.0</text>") || !strings.Contains(dom, ">5</text>") {
		t.Errorf("dominance axis ticks %s, want the data's range 1..5 without 0", dom)
	}
}

func TestBuildRefusesSourceFolder(t *testing.T) {
	runs, err := Load(sweepFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "doc.go"), []byte("package x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Build(context.Background(), runs, dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "holds Go source files") {
		t.Fatalf("Build into a package folder: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("Build wrote %d files beside the source", len(entries)-1)
	}
}

func fmtAny(x any) string { return fmt.Sprintf("%T%v", x, x) }
