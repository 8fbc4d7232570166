package report

import (
	"fmt"
	"html/template"
	"io"
	"path/filepath"

	"github.com/fedcmi/fedcmi/metrics"
)

// page is what the HTML template shows.
type page struct {
	Title       string
	Pick        string
	WithSetting bool
	Heads       []string
	First       string // modality 0, for the "dominant" column
	Rows        []pageRow
	Sections    []pageSection
	Runs        []pageRun
}

type pageRow struct {
	Setting, Method string
	Runs            int
	Acc             []string
	Dominance       string
	First           string
	Round           string
	BestRound       string
}

type pageSection struct {
	Title   string
	Figures []pageFigure
}

type pageFigure struct {
	Src           template.URL
	Alt, Caption  string
	PNG, SVG      string
	Width, Height int
}

type pageRun struct {
	Dir, Setting, Method string
	Seed                 uint64
	Rounds               int
	Completed            bool
}

var pageTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; white-space: nowrap; }
/* Long settings, headers and run paths wrap; numbers do not. What is still
   wider than the page scrolls sideways inside .scroll, never off screen. */
th, td.text { white-space: normal; overflow-wrap: anywhere; }
td.text { min-width: 8em; }
th:first-child, td:first-child, td.text { text-align: left; }
thead th { background: #f3f3f3; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; max-width: 60em; }
.scroll { overflow-x: auto; max-width: 100%; margin: 1em 0; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<h2 id="summary">Summary</h2>
<p>Test accuracy at each run's {{.Pick}} round: mean ± sample std over the runs (seeds) of a method and setting; dominance is the mean dominance ratio ρ of that round's multimodal training batches, "dominant" the share of multimodal training batches, over all rounds, that took the first modality as the dominant one, best round the round of best fused accuracy.</p>
<div class="scroll"><table id="summary-table">
<thead><tr>{{if .WithSetting}}<th>setting</th>{{end}}<th>method</th><th>runs</th>{{range .Heads}}<th>{{.}}</th>{{end}}<th>dominance</th><th>{{.First}} dominant</th><th>round</th><th>best round</th></tr></thead>
<tbody>
{{- range .Rows}}
<tr>{{if $.WithSetting}}<td class="text">{{.Setting}}</td>{{end}}<td class="text">{{.Method}}</td><td>{{.Runs}}</td>{{range .Acc}}<td>{{.}}</td>{{end}}<td>{{.Dominance}}</td><td>{{.First}}</td><td>{{.Round}}</td><td>{{.BestRound}}</td></tr>
{{- end}}
</tbody>
</table></div>
{{range .Sections}}
<h2>{{.Title}}</h2>
{{- range .Figures}}
<figure>
<img src="{{.Src}}" alt="{{.Alt}}" width="{{.Width}}" height="{{.Height}}">
<figcaption>{{.Caption}} Files: <a href="{{.PNG}}">{{.PNG}}</a>, <a href="{{.SVG}}">{{.SVG}}</a>.</figcaption>
</figure>
{{- end}}
{{end}}
<h2 id="runs">Runs</h2>
<div class="scroll"><table id="runs-table">
<thead><tr><th>run directory</th><th>setting</th><th>method</th><th>seed</th><th>rounds</th><th>completed</th></tr></thead>
<tbody>
{{- range .Runs}}
<tr><td class="text">{{.Dir}}</td><td class="text">{{.Setting}}</td><td class="text">{{.Method}}</td><td>{{.Seed}}</td><td>{{.Rounds}}</td><td class="text">{{if .Completed}}yes{{else}}no{{end}}</td></tr>
{{- end}}
</tbody>
</table></div>
</body>
</html>
`))

// writeHTML writes the report page: the summary table, the figures of
// each setting as PNG data URIs, and the list of runs.
func writeHTML(w io.Writer, runs []*Run, res *Result, opt Options) error {
	p := page{Title: opt.Title, Pick: "final"}
	if p.Title == "" {
		p.Title = "fedcmi report"
	}
	if opt.Pick == metrics.PickBest {
		p.Pick = "best"
	}
	// A row without one of the heads shows "-" there.
	p.Heads = metrics.AllHeads(res.Rows)
	p.First = metrics.FirstModality(p.Heads)
	for _, r := range res.Rows {
		p.WithSetting = p.WithSetting || r.Setting != ""
		row := pageRow{Setting: r.Setting, Method: r.Method, Runs: r.Runs,
			Dominance: fmtMean(r.Dominance, 2), First: fmtMean(r.FirstDominant, 2), Round: fmtMean(r.Round, 0), BestRound: metrics.FormatStat(r.BestRound, 1)}
		for _, h := range p.Heads {
			cell := "-"
			for i, rh := range r.Heads {
				if rh == h {
					cell = metrics.FormatStat(r.Acc[i], 3)
				}
			}
			row.Acc = append(row.Acc, cell)
		}
		p.Rows = append(p.Rows, row)
	}
	for _, f := range res.Figures {
		title := settingTitle(f.Setting)
		if n := len(p.Sections); n == 0 || p.Sections[n-1].Title != title {
			p.Sections = append(p.Sections, pageSection{Title: title})
		}
		s := &p.Sections[len(p.Sections)-1]
		s.Figures = append(s.Figures, pageFigure{Src: template.URL(dataURI("image/png", f.pngData)),
			Alt: fmt.Sprintf("%s figure, %s", f.Kind, title), Caption: f.Caption, PNG: f.PNG, SVG: f.SVG,
			Width: f.Width, Height: f.Height})
	}
	for _, r := range runs {
		p.Runs = append(p.Runs, pageRun{Dir: filepath.ToSlash(r.Dir), Setting: r.Setting, Method: r.Method(),
			Seed: r.Config.Seed, Rounds: len(r.Rounds), Completed: r.Completed})
	}
	return pageTemplate.Execute(w, p)
}

func fmtMean(s metrics.Stat, prec int) string {
	if s.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%.*f", prec, s.Mean)
}
