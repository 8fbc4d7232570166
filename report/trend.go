package report

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/fedcmi/fedcmi/metrics"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// minTrendSettings is how many values a swept field needs for a trend
// figure: with two, the bars of each setting say as much.
const minTrendSettings = 3

// trendField returns the one configuration field that settings vary, and
// its value in each setting, when every setting is "field=number" for the
// same field and there are at least minTrendSettings of them (a sweep over
// fedcmi.c1 or data.missing_rate, say); ok is false otherwise.
func trendField(settings []string) (field string, xs []float64, ok bool) {
	if len(settings) < minTrendSettings {
		return "", nil, false
	}
	for _, s := range settings {
		f, v, found := strings.Cut(s, "=")
		if !found || strings.Contains(v, "=") || (field != "" && f != field) {
			return "", nil, false
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return "", nil, false
		}
		field = f
		xs = append(xs, x)
	}
	return field, xs, true
}

// trendFigure draws, for a sweep over one numeric field, the picked test
// accuracy of the fused and the single-modality heads against the field's
// value: one line per method (mean), band ± std over seeds; nil when no
// run recorded accuracy.
func trendFigure(field string, settings []string, xs []float64, rows []metrics.Row, styleOf func(string) seriesStyle, opt Options) (*Figure, error) {
	xOf := map[string]float64{}
	for i, s := range settings {
		xOf[s] = xs[i]
	}
	var methods []string
	for _, r := range rows {
		if !slices.Contains(methods, r.Method) {
			methods = append(methods, r.Method)
		}
	}
	slices.SortFunc(methods, MethodOrder)
	// Settings may differ in their heads (checkSchemas allows it): the
	// panels are the first row's that has heads, and each row is read by
	// head name.
	var heads []string
	for _, r := range rows {
		if len(r.Heads) > 0 {
			heads = r.Heads
			break
		}
	}
	if len(heads) == 0 { // no accuracy recorded
		return nil, nil
	}
	which := "final"
	if opt.Pick == metrics.PickBest {
		which = "best-round"
	}
	accLo, accHi := opt.accuracyRange()
	var plots []*plot.Plot
	for _, hd := range metrics.SingleHeads(heads) {
		p := newPlot(heads[hd], field, which+" test accuracy")
		p.Add(plotter.NewGrid())
		for _, m := range methods {
			pts := trendSeries(rows, xOf, m, heads[hd])
			if err := addSeries(p, pts, styleOf(m)); err != nil {
				return nil, fmt.Errorf("%s: %w", m, err)
			}
		}
		p.Y.Min, p.Y.Max = accLo, accHi
		plots = append(plots, p)
	}
	thumbs := make([][]plot.Thumbnailer, len(methods))
	for i, m := range methods {
		thumbs[i] = styleOf(m).thumbnails()
	}
	w, h := vg.Length(len(plots))*vg.Inch*2.6+vg.Inch*1.3, vg.Inch*3
	pngData, svgData, err := render(w, h, paintPanels("", plots, legendFor(methods, thumbs)))
	if err != nil {
		return nil, err
	}
	caption := fmt.Sprintf("%s test accuracy of the fused and the single-modality heads against %s: line = mean, band = ± std over the runs (seeds) of each method and value.",
		upperFirst(which), field)
	return &Figure{Kind: "trend", Setting: field, Caption: caption, pngData: pngData, svgData: svgData,
		Width: int(math.Round(w.Points() / 72 * 96)), Height: int(math.Round(h.Points() / 72 * 96))}, nil
}

// trendSeries returns method's points of the named head, one per setting
// (at its value xOf[setting]) in increasing x: mean ± std of the picked
// accuracy. Rows without that head are left out.
func trendSeries(rows []metrics.Row, xOf map[string]float64, method, head string) []point {
	var pts []point
	for _, r := range rows {
		hd := slices.Index(r.Heads, head)
		if r.Method != method || hd < 0 || hd >= len(r.Acc) || r.Acc[hd].N == 0 {
			continue
		}
		st := r.Acc[hd]
		q := point{X: xOf[r.Setting], Mean: st.Mean, Lo: st.Mean - st.Std, Hi: st.Mean + st.Std, N: st.N}
		if math.IsNaN(st.Std) { // one run: no spread
			q.Lo, q.Hi = st.Mean, st.Mean
		}
		pts = append(pts, q)
	}
	slices.SortFunc(pts, func(a, b point) int { return cmp.Compare(a.X, b.X) })
	return pts
}
