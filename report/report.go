package report

import (
	"context"
	"encoding/base64"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/rundir"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
)

// Band chooses what the shaded band around a mean curve shows.
type Band int

const (
	// BandStd shades mean ± sample std over the group's runs (the default).
	BandStd Band = iota
	// BandMinMax shades from the smallest to the largest run.
	BandMinMax
)

// ParseBand reads "std" or "minmax".
func ParseBand(s string) (Band, error) {
	switch s {
	case "std", "":
		return BandStd, nil
	case "minmax":
		return BandMinMax, nil
	}
	return 0, fmt.Errorf("report: band %q: want std or minmax", s)
}

func (b Band) String() string {
	if b == BandMinMax {
		return "min–max"
	}
	return "mean ± std"
}

// Options are a report's settings; the zero value is valid.
type Options struct {
	// Title heads the HTML page ("" = "fedcmi report").
	Title string
	// Band is what the band around accuracy and dominance curves shows.
	Band Band
	// Pick is the round of each run the table and the bar charts report
	// (default: the final round).
	Pick metrics.Pick
	// YMin and YMax bound the accuracy axes (accuracy vs round and the
	// bars), to zoom in on close curves; both 0 means 0 to 1.
	YMin, YMax float64
}

// accuracyRange returns the accuracy axes' bounds.
func (o *Options) accuracyRange() (lo, hi float64) {
	if o.YMin == 0 && o.YMax == 0 {
		return 0, 1
	}
	return o.YMin, o.YMax
}

// File names in a report directory; figures are
// <kind>-<setting>.png and .svg, kind one of accuracy, bars, per-class,
// dominance, and trend-<field>.png and .svg.
const (
	HTMLFile     = "report.html"
	MarkdownFile = "summary.md"
	CSVFile      = "summary.csv"
)

// Figure is one figure of a report.
type Figure struct {
	// Kind is accuracy, bars, per-class, dominance or trend.
	Kind string
	// Setting is the setting whose runs it shows (trend: the swept field).
	Setting string
	// Caption describes it.
	Caption string
	// PNG and SVG are the file names in the report directory.
	PNG, SVG string
	// Width and Height are its size in CSS pixels (96 per inch).
	Width, Height int

	pngData, svgData []byte
}

// Result is what Build wrote.
type Result struct {
	// Dir is the report directory, HTML the page's path in it.
	Dir, HTML string
	// Rows is the comparison table shown on the page.
	Rows []metrics.Row
	// Figures lists the figures in page order.
	Figures []Figure
}

// group is the runs of one setting and method.
type group struct {
	setting, method string
	runs            []*Run
}

// groupRuns splits runs, sorted by SortRuns, into consecutive groups.
func groupRuns(runs []*Run) []group {
	var gs []group
	for _, r := range runs {
		if n := len(gs); n > 0 && gs[n-1].setting == r.Setting && gs[n-1].method == r.Method() {
			gs[n-1].runs = append(gs[n-1].runs, r)
			continue
		}
		gs = append(gs, group{setting: r.Setting, method: r.Method(), runs: []*Run{r}})
	}
	return gs
}

// Build writes a report of runs (as Load returns them) into dir, created
// if missing: the comparison table (summary.md, summary.csv), for each
// setting four figures as PNG and SVG (accuracy vs round per method with
// a band over seeds; fused and single-modality accuracy bars per method
// with error bars; per-class accuracy per method; mean dominance ratio vs
// round), for a sweep of one numeric field over three or more values a
// trend figure (accuracy against the field's value per method), and
// report.html, one self-contained page (figures embedded as
// data URIs) with the table and the figures. Runs must be sorted by
// SortRuns. The runs of one setting must share their heads and classes
// (an error names the first run that differs); a figure with nothing to
// show (no heads, no classes, no dominance measured) is left out. It stops
// between figures when ctx is done.
//
// The files are written only once all figures are drawn, each replaced
// atomically and report.html last: a build that fails or is cancelled
// while drawing leaves an earlier report in dir as it was, and a write
// error later never leaves a file cut short.
func Build(ctx context.Context, runs []*Run, dir string, opt Options) (*Result, error) {
	if len(runs) == 0 {
		return nil, fmt.Errorf("report: no runs")
	}
	rows, err := metrics.Compare(Labeled(runs), opt.Pick)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	groups := groupRuns(runs)
	if err := checkSchemas(groups); err != nil {
		return nil, err
	}
	if err := checkNotSource(dir); err != nil {
		return nil, err
	}
	res := &Result{Dir: dir, HTML: filepath.Join(dir, HTMLFile), Rows: rows}

	// Colours follow the methods of all settings, so a method keeps its
	// colour across figures.
	var methods []string
	for _, r := range runs {
		if !slices.Contains(methods, r.Method()) {
			methods = append(methods, r.Method())
		}
	}
	slices.SortFunc(methods, MethodOrder)
	styleOf := func(m string) seriesStyle { return styleAt(slices.Index(methods, m)) }

	var settings []string
	for _, g := range groups {
		if !slices.Contains(settings, g.setting) {
			settings = append(settings, g.setting)
		}
	}
	used := map[string]bool{}
	add := func(fig *Figure, base string) {
		fig.PNG, fig.SVG = base+".png", base+".svg"
		res.Figures = append(res.Figures, *fig)
	}
	for _, setting := range settings {
		var gs []group
		for _, g := range groups {
			if g.setting == setting {
				gs = append(gs, g)
			}
		}
		slug := fileSlug(setting, used)
		for _, kind := range []string{"accuracy", "bars", "per-class", "dominance"} {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("report: %w", err)
			}
			fig, err := makeFigure(kind, setting, gs, styleOf, opt)
			if err != nil {
				return nil, fmt.Errorf("report: %s figure of %s: %w", kind, settingTitle(setting), err)
			}
			if fig != nil {
				add(fig, kind+"-"+slug)
			}
		}
	}
	if field, xs, ok := trendField(settings); ok {
		fig, err := trendFigure(field, settings, xs, rows, styleOf, opt)
		if err != nil {
			return nil, fmt.Errorf("report: trend figure of %s: %w", field, err)
		}
		if fig != nil {
			add(fig, "trend-"+fileSlug(field, used))
		}
	}

	// Everything is drawn: write, the page last, so that it never refers
	// to figures not yet written.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	for _, f := range []struct {
		name  string
		write func(io.Writer, []metrics.Row) error
	}{{MarkdownFile, metrics.WriteComparison}, {CSVFile, metrics.WriteComparisonCSV}} {
		if err := writeFile(dir, f.name, func(w io.Writer) error { return f.write(w, rows) }); err != nil {
			return nil, err
		}
	}
	for _, fig := range res.Figures {
		for _, file := range []struct {
			name string
			data []byte
		}{{fig.PNG, fig.pngData}, {fig.SVG, fig.svgData}} {
			if err := writeFile(dir, file.name, func(w io.Writer) error { _, err := w.Write(file.data); return err }); err != nil {
				return nil, err
			}
		}
	}
	if err := writeFile(dir, HTMLFile, func(w io.Writer) error { return writeHTML(w, runs, res, opt) }); err != nil {
		return nil, err
	}
	return res, nil
}

// writeFile replaces dir/name with what write writes, atomically: a
// failed write leaves the old file, never a truncated one.
func writeFile(dir, name string, write func(io.Writer) error) error {
	if err := rundir.WriteFileAtomic(dir, name, write); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// checkSchemas returns an error naming the first run whose heads or
// classes differ from those of the first run of its setting: a setting's
// figures put its methods side by side head by head and class by class.
// Settings may differ from each other (the table handles that).
func checkSchemas(groups []group) error {
	first := map[string]*Run{}
	for _, g := range groups {
		for _, r := range g.runs {
			f, ok := first[g.setting]
			if !ok {
				first[g.setting] = r
				continue
			}
			if !slices.Equal(r.Schema.Heads, f.Schema.Heads) || !slices.Equal(r.Schema.Classes, f.Schema.Classes) {
				return fmt.Errorf("report: %s: heads %q and classes %q differ from those of %s (%q and %q), a run of the same setting (%s)",
					filepath.Join(r.Dir, rundir.MetricsJSONL), r.Schema.Heads, r.Schema.Classes,
					filepath.Join(f.Dir, rundir.MetricsJSONL), f.Schema.Heads, f.Schema.Classes, settingTitle(g.setting))
			}
		}
	}
	return nil
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// maxSlug bounds a setting's part of a file name, so that the longest
// figure name (per-class-<slug>.png) stays within the 255 bytes file
// systems allow.
const maxSlug = 200

// fileSlug turns a setting into a file-name part, unique among used: the
// whole setting with unsafe characters replaced, never cut short; a
// setting too long for a file name becomes "setting" and a number (the
// page and captions name it in full).
func fileSlug(setting string, used map[string]bool) string {
	s := strings.Trim(unsafeChars.ReplaceAllString(strings.ReplaceAll(setting, "=", "-"), "_"), "_.")
	if s == "" {
		s = "all"
	}
	if len(s) > maxSlug {
		s = "setting"
		for i := 1; ; i++ {
			if n := fmt.Sprintf("setting%d", i); !used[n] {
				s = n
				break
			}
		}
	}
	base := s
	for i := 2; used[s]; i++ {
		s = fmt.Sprintf("%s_%d", base, i)
	}
	used[s] = true
	return s
}

func settingTitle(setting string) string {
	if setting == "" {
		return "all runs"
	}
	return setting
}

// checkNotSource refuses a report directory that holds Go source files (a
// package folder: "report" relative to the repository root is the report
// package), so that a report never mixes its files into code.
func checkNotSource(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil // missing: created; unreadable: MkdirAll or a write says why
	}
	for _, e := range entries {
		if name := e.Name(); !e.IsDir() && (strings.HasSuffix(name, ".go") || name == "go.mod") {
			return fmt.Errorf("report: %s holds Go source files (%s); choose another output directory (-out)", dir, name)
		}
	}
	return nil
}

// fitTitle breaks a setting's title at its commas into lines no wider
// than width in style sty, so that long settings fit their figure.
func fitTitle(title string, sty text.Style, width vg.Length) string {
	parts := strings.SplitAfter(title, ",")
	var lines []string
	line := ""
	for _, p := range parts {
		if line != "" && sty.Width(line+p) > width {
			lines = append(lines, line)
			line = ""
		}
		line += p
	}
	return strings.Join(append(lines, line), "\n")
}

// makeFigure draws one kind of figure for the groups of one setting,
// which share one schema (checkSchemas); nil when there is nothing to draw
// (no dominance measured, no heads for accuracy or bars, no classes for
// per-class).
func makeFigure(kind, setting string, gs []group, styleOf func(string) seriesStyle, opt Options) (*Figure, error) {
	heads := gs[0].runs[0].Schema.Heads
	methods := make([]string, len(gs))
	styles := make([]seriesStyle, len(gs))
	colors := make([]color.RGBA, len(gs))
	for i, g := range gs {
		methods[i], styles[i] = g.method, styleOf(g.method)
		colors[i] = styles[i].color
	}
	accLo, accHi := opt.accuracyRange()
	seeds := func() string {
		n := 0
		for _, g := range gs {
			n = max(n, len(g.runs))
		}
		if n == 1 {
			return "one run per method"
		}
		return fmt.Sprintf("up to %d runs (seeds) per method", n)
	}()
	title := settingTitle(setting)
	var (
		plots   []*plot.Plot
		thumbs  [][]plot.Thumbnailer
		caption string
		w, h    vg.Length
	)
	switch kind {
	case "accuracy", "dominance":
		panels := metrics.SingleHeads(heads) // fused and each single-modality head
		ylabel := "test accuracy"
		if kind == "dominance" {
			panels = []int{-1}
			ylabel = "dominance (mean ratio ρ)"
		}
		panels = slices.DeleteFunc(panels, func(h int) bool { return h >= len(heads) })
		found := false
		for _, hd := range panels {
			name := title
			value := func(m metrics.Round) float64 { return m.Dominance }
			if hd >= 0 {
				name = heads[hd]
				value = func(m metrics.Round) float64 { return at(m.Heads, hd) }
			}
			p := newPlot(name, "round", ylabel)
			p.X.Tick.Marker = roundTicks{}
			p.Add(plotter.NewGrid())
			if kind == "dominance" {
				one := plotter.NewFunction(func(float64) float64 { return 1 })
				one.Color = color.Gray{0x80}
				one.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
				p.Add(one)
			}
			var legend [][]plot.Thumbnailer
			for i, g := range gs {
				pts := aggregate(g.runs, value, opt.Band)
				found = found || len(pts) > 0
				if err := addSeries(p, pts, styles[i]); err != nil {
					return nil, fmt.Errorf("%s: %w", g.method, err)
				}
				legend = append(legend, styles[i].thumbnails())
			}
			if kind == "dominance" {
				// Scaled to the data, with rho = 1 (balance) always in view.
				scaleAround(&p.Y, 1)
			} else {
				p.Y.Min, p.Y.Max = accLo, accHi
			}
			plots = append(plots, p)
			thumbs = legend
		}
		if !found {
			return nil, nil
		}
		if kind == "accuracy" {
			caption = fmt.Sprintf("Test accuracy vs round (%s): line = mean, band = %s over %s.", title, opt.Band, seeds)
			w, h = vg.Length(len(plots))*vg.Inch*2.6+vg.Inch*1.3, vg.Inch*3
		} else {
			caption = fmt.Sprintf("Dominance: the mean dominance ratio ρ of the round's multimodal training batches vs round (%s; ρ > 1: %s dominates; dashed grey line: ρ = 1): line = mean, band = %s over %s.",
				title, metrics.FirstModality(heads), opt.Band, seeds)
			w, h = vg.Inch*5.5, vg.Inch*3.2
		}
	case "bars", "per-class":
		var categories []string
		stats := make([][]metrics.Stat, len(gs))
		labeled := make([]metrics.Labeled, 0)
		for _, g := range gs {
			labeled = append(labeled, Labeled(g.runs)...)
		}
		rows, err := metrics.Compare(labeled, opt.Pick)
		if err != nil {
			return nil, err
		}
		which := "final"
		if opt.Pick == metrics.PickBest {
			which = "best-round"
		}
		if kind == "bars" {
			single := metrics.SingleHeads(heads)
			for _, hd := range single {
				categories = append(categories, heads[hd])
			}
			if len(categories) == 0 { // no accuracy recorded
				return nil, nil
			}
			for i, r := range rows {
				for _, hd := range single {
					if hd < len(r.Acc) {
						stats[i] = append(stats[i], r.Acc[hd])
					}
				}
			}
			p := barChart(title, fmt.Sprintf("%s test accuracy", which), categories, methods, colors, stats)
			if accLo != 0 || accHi != 1 {
				p.Y.Min, p.Y.Max = accLo, accHi
			}
			plots = []*plot.Plot{p}
			caption = fmt.Sprintf("%s accuracy of the fused and the single-modality heads per method (%s): bar = mean, error bar = ± std over %s.",
				upperFirst(which), title, seeds)
			w, h = vg.Inch*5.5, vg.Inch*3.2
		} else {
			categories = gs[0].runs[0].Schema.Classes
			if len(categories) == 0 { // no per_class recorded
				return nil, nil
			}
			for i, r := range rows {
				stats[i] = r.PerClass
			}
			p := barChart(title, fmt.Sprintf("%s fused accuracy", which), categories, methods, colors, stats)
			p.X.Label.Text = "class"
			if accLo != 0 || accHi != 1 {
				p.Y.Min, p.Y.Max = accLo, accHi
			}
			plots = []*plot.Plot{p}
			caption = fmt.Sprintf("%s fused test accuracy per class and method (%s): bar = mean, error bar = ± std over %s.",
				upperFirst(which), title, seeds)
			w, h = max(vg.Inch*5.5, vg.Length(len(categories)*len(gs))*vg.Inch*0.12+vg.Inch*2.5), vg.Inch*3.2
		}
		for i := range gs {
			thumbs = append(thumbs, []plot.Thumbnailer{&bars{color: colors[i]}})
		}
	default:
		return nil, fmt.Errorf("unknown figure kind %q", kind)
	}
	// Titles that name a setting are broken at commas to fit: the plots'
	// own within their panel, the accuracy figure's above its panels.
	legendW := vg.Inch * 1.3
	suptitle := ""
	if kind == "accuracy" && setting != "" {
		suptitle = fitTitle(setting, plots[0].Title.TextStyle, w-legendW)
		h += vg.Inch * 0.3 * vg.Length(strings.Count(suptitle, "\n")+1)
	} else {
		for _, p := range plots {
			p.Title.Text = fitTitle(p.Title.Text, p.Title.TextStyle, (w-legendW)/vg.Length(len(plots))-vg.Inch*0.6)
			h += vg.Inch * 0.2 * vg.Length(strings.Count(p.Title.Text, "\n"))
		}
	}
	pngData, svgData, err := render(w, h, paintPanels(suptitle, plots, legendFor(methods, thumbs)))
	if err != nil {
		return nil, err
	}
	return &Figure{Kind: kind, Setting: setting, Caption: caption, pngData: pngData, svgData: svgData,
		Width: int(math.Round(w.Points() / 72 * 96)), Height: int(math.Round(h.Points() / 72 * 96))}, nil
}

func at(xs []float64, i int) float64 {
	if i < len(xs) {
		return xs[i]
	}
	return math.NaN()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// dataURI returns data as a base64 data URI of the given media type.
func dataURI(mediaType string, data []byte) string {
	return "data:" + mediaType + ";base64," + base64.StdEncoding.EncodeToString(data)
}
