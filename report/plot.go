package report

import (
	"bytes"
	"fmt"
	"image/color"
	"maps"
	"math"
	"slices"
	"strconv"

	"github.com/fedcmi/fedcmi/metrics"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// pngDPI is the resolution of the PNG figures (the SVG ones are vector).
const pngDPI = 150

// palette is Okabe and Ito's colour-blind-safe palette; methods take its
// colours in MethodOrder, cycling after eight.
var palette = []color.RGBA{
	{0x00, 0x72, 0xB2, 0xff}, // blue
	{0xD5, 0x5E, 0x00, 0xff}, // vermillion
	{0x00, 0x9E, 0x73, 0xff}, // bluish green
	{0xCC, 0x79, 0xA7, 0xff}, // reddish purple
	{0xE6, 0x9F, 0x00, 0xff}, // orange
	{0x56, 0xB4, 0xE9, 0xff}, // sky blue
	{0x00, 0x00, 0x00, 0xff}, // black
	{0xF0, 0xE4, 0x42, 0xff}, // yellow
}

// translucent returns c with alpha a (0-255), premultiplied as image/color
// expects.
func translucent(c color.RGBA, a uint8) color.RGBA {
	f := float64(a) / 255
	return color.RGBA{uint8(float64(c.R) * f), uint8(float64(c.G) * f), uint8(float64(c.B) * f), a}
}

// point is one round of a series aggregated over a group's runs.
type point struct {
	X, Mean, Lo, Hi float64
	N               int // runs with a finite value at this round
}

// aggregate returns, per round number present in any run, the mean of
// value over the runs with a finite value there, and the band: mean ± std
// (sample std, 0 for one run) or, with BandMinMax, the minimum and maximum.
// Rounds without any finite value are left out.
func aggregate(runs []*Run, value func(metrics.Round) float64, band Band) []point {
	byRound := map[int][]float64{}
	for _, r := range runs {
		for _, m := range r.Rounds {
			v := value(m)
			if math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			byRound[m.Round] = append(byRound[m.Round], v)
		}
	}
	// The rounds present, not 0..max: a run's round numbers need not be
	// dense, and a huge one must not cost a loop over every number below.
	var pts []point
	for _, rd := range slices.Sorted(maps.Keys(byRound)) {
		vs := byRound[rd]
		mean, std, n := metrics.MeanStd(vs)
		p := point{X: float64(rd), Mean: mean, Lo: mean - std, Hi: mean + std, N: n}
		if band == BandMinMax {
			p.Lo, p.Hi = vs[0], vs[0]
			for _, v := range vs {
				p.Lo, p.Hi = min(p.Lo, v), max(p.Hi, v)
			}
		}
		pts = append(pts, p)
	}
	return pts
}

// seriesStyle tells one method's curves apart by three means, so that
// curves stay distinguishable where they coincide, in grey print and for
// colour-blind readers: colour, a dash pattern and a marker shape.
type seriesStyle struct {
	color  color.RGBA
	dashes []vg.Length
	glyph  draw.GlyphDrawer
}

// dashPatterns and glyphShapes cycle with the methods' order, at periods
// (4 and 5) prime to each other and to the palette's 8, so that no two of
// the first 40 methods share all three.
var (
	dashPatterns = [][]vg.Length{
		nil, // solid
		{vg.Points(6), vg.Points(3)},
		{vg.Points(2), vg.Points(2)},
		{vg.Points(8), vg.Points(3), vg.Points(2), vg.Points(3)},
	}
	glyphShapes = []draw.GlyphDrawer{
		draw.CircleGlyph{}, draw.BoxGlyph{}, draw.TriangleGlyph{}, draw.CrossGlyph{}, draw.PyramidGlyph{},
	}
)

// styleAt returns the style of the i-th method (MethodOrder).
func styleAt(i int) seriesStyle {
	return seriesStyle{
		color:  palette[i%len(palette)],
		dashes: dashPatterns[i%len(dashPatterns)],
		glyph:  glyphShapes[i%len(glyphShapes)],
	}
}

func (s seriesStyle) lineStyle() draw.LineStyle {
	return draw.LineStyle{Color: s.color, Width: vg.Points(1.5), Dashes: s.dashes}
}

func (s seriesStyle) glyphStyle() draw.GlyphStyle {
	return draw.GlyphStyle{Color: s.color, Radius: vg.Points(2.5), Shape: s.glyph}
}

// thumbnails returns the legend entry's pictures: the line and its marker.
func (s seriesStyle) thumbnails() []plot.Thumbnailer {
	return []plot.Thumbnailer{
		&plotter.Line{LineStyle: s.lineStyle()},
		&plotter.Scatter{GlyphStyle: s.glyphStyle()},
	}
}

// maxMarkers is how many markers a curve carries at most: enough to tell
// the curves apart, few enough not to clutter long runs.
const maxMarkers = 10

// addSeries adds a mean line with markers, and its band, to p.
func addSeries(p *plot.Plot, pts []point, st seriesStyle) error {
	if len(pts) == 0 {
		return nil
	}
	mean := make(plotter.XYs, len(pts))
	ring := make(plotter.XYs, 0, 2*len(pts))
	for i, q := range pts {
		mean[i] = plotter.XY{X: q.X, Y: q.Mean}
		ring = append(ring, plotter.XY{X: q.X, Y: q.Hi})
	}
	for i := len(pts) - 1; i >= 0; i-- {
		ring = append(ring, plotter.XY{X: pts[i].X, Y: pts[i].Lo})
	}
	if len(pts) > 1 {
		poly, err := plotter.NewPolygon(ring)
		if err != nil {
			return fmt.Errorf("band: %w", err)
		}
		poly.Color = translucent(st.color, 0x40)
		poly.LineStyle.Width = 0
		p.Add(poly)
		line, err := plotter.NewLine(mean)
		if err != nil {
			return fmt.Errorf("line: %w", err)
		}
		line.LineStyle = st.lineStyle()
		p.Add(line)
	}
	// Markers at evenly spaced points, the last one always marked.
	step := max(1, (len(mean)+maxMarkers-1)/maxMarkers)
	var marked plotter.XYs
	for i := len(mean) - 1; i >= 0; i -= step {
		marked = append(marked, mean[i])
	}
	s, err := plotter.NewScatter(marked)
	if err != nil {
		return fmt.Errorf("markers: %w", err)
	}
	s.GlyphStyle = st.glyphStyle()
	p.Add(s)
	return nil
}

// scaleAround pads an axis's data range by 5% on each side and widens it
// to include v (a reference line drawn as a function, which does not
// count as data).
func scaleAround(ax *plot.Axis, v float64) {
	lo, hi := min(ax.Min, v), max(ax.Max, v)
	if !(hi > lo) {
		lo, hi = v-0.5, v+0.5
	}
	pad := (hi - lo) * 0.05
	ax.Min, ax.Max = lo-pad, hi+pad
}

// bars draws one method's bars at data-unit positions, each with an error
// bar of ± its std (runs > 1). It implements plot.Plotter, plot.DataRanger
// and plot.Thumbnailer.
type bars struct {
	xs    []float64
	stats []metrics.Stat
	width float64 // in data units
	color color.RGBA
}

// Plot implements plot.Plotter.
func (b *bars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	err := draw.LineStyle{Color: color.Black, Width: vg.Points(0.8)}
	for i, x := range b.xs {
		s := b.stats[i]
		if s.N == 0 {
			continue
		}
		x0, x1 := trX(x-b.width/2), trX(x+b.width/2)
		y0, y1 := trY(0), trY(s.Mean)
		c.FillPolygon(b.color, c.ClipPolygonXY([]vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}}))
		if s.N > 1 && s.Std > 0 {
			xm, lo, hi := trX(x), trY(s.Mean-s.Std), trY(s.Mean+s.Std)
			capW := (x1 - x0) / 4
			c.StrokeLines(err, c.ClipLinesXY(
				[]vg.Point{{X: xm, Y: lo}, {X: xm, Y: hi}},
				[]vg.Point{{X: xm - capW, Y: lo}, {X: xm + capW, Y: lo}},
				[]vg.Point{{X: xm - capW, Y: hi}, {X: xm + capW, Y: hi}})...)
		}
	}
}

// DataRange implements plot.DataRanger.
func (b *bars) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax = math.Inf(1), math.Inf(-1)
	for i, x := range b.xs {
		xmin, xmax = min(xmin, x-b.width/2), max(xmax, x+b.width/2)
		if s := b.stats[i]; s.N > 0 {
			ymax = max(ymax, s.Mean+s.Std)
		}
	}
	return xmin, xmax, 0, ymax
}

// Thumbnail implements plot.Thumbnailer.
func (b *bars) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(b.color, []vg.Point{c.Min, {X: c.Max.X, Y: c.Min.Y}, c.Max, {X: c.Min.X, Y: c.Max.Y}})
}

// barChart plots stats[method][category] as grouped bars: one group per
// category, one bar per method.
func barChart(title, ylabel string, categories []string, methods []string, colors []color.RGBA, stats [][]metrics.Stat) *plot.Plot {
	p := newPlot(title, "", ylabel)
	p.Add(plotter.NewGrid())
	k := float64(len(methods))
	slot := 0.8 / k
	for m := range methods {
		b := &bars{width: slot * 0.9, color: colors[m], stats: stats[m]}
		for i := range categories {
			b.xs = append(b.xs, float64(i)-0.4+(float64(m)+0.5)*slot)
		}
		p.Add(b)
	}
	p.NominalX(categories...)
	p.X.Min, p.X.Max = -0.5, float64(len(categories))-0.5
	p.Y.Min, p.Y.Max = 0, max(1, p.Y.Max) // room for error bars above 1
	return p
}

func newPlot(title, xlabel, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	return p
}

// legendFor returns a legend with one entry per method.
func legendFor(methods []string, thumbs [][]plot.Thumbnailer) plot.Legend {
	l := plot.NewLegend()
	l.Top, l.Left = true, true
	l.Padding = vg.Points(4)
	l.ThumbnailWidth = vg.Points(28) // room for a dash pattern
	for i, m := range methods {
		l.Add(m, thumbs[i]...)
	}
	return l
}

// paintPanels draws plots side by side with the legend to their right, on
// a white background, under title if it is not empty.
func paintPanels(title string, plots []*plot.Plot, legend plot.Legend) func(draw.Canvas) {
	return func(c draw.Canvas) {
		c.FillPolygon(color.White, []vg.Point{c.Min, {X: c.Max.X, Y: c.Min.Y}, c.Max, {X: c.Min.X, Y: c.Max.Y}})
		pad := vg.Points(8)
		lw := legend.Rectangle(c).Size().X + 2*pad
		main := draw.Crop(c, 0, -lw, 0, 0)
		if title != "" {
			sty := plots[0].Title.TextStyle
			sty.XAlign, sty.YAlign = draw.XCenter, draw.YTop
			c.FillText(sty, vg.Point{X: (main.Min.X + main.Max.X) / 2, Y: c.Max.Y - pad/2}, title)
			main = draw.Crop(main, 0, 0, 0, -(sty.Rectangle(title).Size().Y + pad))
		}
		tiles := draw.Tiles{Rows: 1, Cols: len(plots), PadX: vg.Points(12), PadTop: pad, PadBottom: pad, PadLeft: pad, PadRight: pad}
		canvases := plot.Align([][]*plot.Plot{plots}, tiles, main)
		for i, p := range plots {
			p.Draw(canvases[0][i])
		}
		side := draw.Crop(c, c.Size().X-lw+pad, 0, 0, -2*pad)
		legend.Draw(side)
	}
}

// render paints a w x h figure as PNG and SVG. gonum/plot panics on some
// invalid input (e.g. non-finite axis ranges); that becomes an error.
func render(w, h vg.Length, paint func(draw.Canvas)) (pngData, svgData []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("plot: %v", r)
		}
	}()
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(pngDPI))
	paint(draw.New(img))
	var pb bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&pb); err != nil {
		return nil, nil, fmt.Errorf("encode PNG: %w", err)
	}
	svg := vgsvg.New(w, h)
	paint(draw.New(svg))
	var sb bytes.Buffer
	if _, err := svg.WriteTo(&sb); err != nil {
		return nil, nil, fmt.Errorf("encode SVG: %w", err)
	}
	return pb.Bytes(), sb.Bytes(), nil
}

// roundTicks marks rounds at a step of 1, 2 or 5 times a power of ten,
// the smallest that labels at most eight rounds.
type roundTicks struct{}

// Ticks implements plot.Ticker.
func (roundTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi >= lo) || math.IsInf(hi-lo, 0) {
		return nil
	}
	step := 1.0
	count := func(step float64) float64 { return math.Floor(hi/step) - math.Ceil(lo/step) + 1 }
	for i := 0; count(step) > 8; i++ {
		step = []float64{1, 2, 5}[(i+1)%3] * math.Pow(10, float64((i+1)/3))
	}
	// Counted, not x += step until past hi: beyond 2^53 adding step to a
	// float may leave it unchanged.
	first := math.Ceil(lo / step)
	var ticks []plot.Tick
	for i := range int(count(step)) {
		x := (first + float64(i)) * step
		ticks = append(ticks, plot.Tick{Value: x, Label: strconv.FormatFloat(x, 'f', 0, 64)})
	}
	return ticks
}
