// Package sweep runs a grid of experiments (methods x seeds x settings) one
// after another, resumably, and condenses them into a comparison table.
//
// # Sweep file
//
//	base: configs/mfeat.yaml      # experiment file the cells start from (optional)
//	out_dir: runs/sweep-mfeat     # one run directory per cell below it
//	methods: [fedavg, fedprox, fedcmi]
//	seeds: [1, 2, 3]
//	grid:                         # config fields (dotted paths) and their values
//	  data.alpha: [1e8, 1]
//	  data.multi_ratio: [0.5]
//
// A cell is one method, one seed and one combination of grid values; it
// runs in <out_dir>/<setting>/<method>-seed<seed>, where <setting> names the
// grid values ("data.alpha=1,data.multi_ratio=0.5", or "default" without a
// grid). A cell whose summary says it completed is never run again, so an
// interrupted sweep continues where it stopped.
//
// # Table
//
// Summarize reads the cells' results and writes one row per setting and
// method: mean ± sample std over seeds of the final fused and per-modality
// accuracies and of the best round (summary.md and summary.csv).
package sweep

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/rundir"
	"github.com/fedcmi/fedcmi/sim"
	"go.yaml.in/yaml/v3"
)

// Spec is a sweep file.
type Spec struct {
	// Base is an experiment file the cells start from ("" = defaults),
	// relative to the working directory.
	Base string `yaml:"base"`
	// OutDir holds the cells' run directories and the summary.
	OutDir string `yaml:"out_dir"`
	// Methods and Seeds are crossed with every grid combination.
	Methods []string `yaml:"methods"`
	Seeds   []uint64 `yaml:"seeds"`
	// Grid maps config paths to the values to try (in the text form a
	// flag takes).
	Grid map[string][]string `yaml:"grid"`
}

// Load reads a sweep file.
func Load(path string) (*Spec, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	var s Spec
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("sweep: %s: %w", path, err)
	}
	return &s, nil
}

// Cell is one experiment of a sweep.
type Cell struct {
	Setting string // grid values, "default" without a grid
	Method  string
	Seed    uint64
	Config  config.Config
	Dir     string
}

// Cells expands the spec into its experiments, in a fixed order (settings,
// then methods, then seeds), each config validated.
func (s *Spec) Cells() ([]Cell, error) {
	if s.OutDir == "" {
		return nil, errors.New("sweep: out_dir is required")
	}
	if len(s.Methods) == 0 || len(s.Seeds) == 0 {
		return nil, errors.New("sweep: methods and seeds must each list at least one value")
	}
	base := config.Default()
	if s.Base != "" {
		if err := base.LoadFile(s.Base); err != nil {
			return nil, err
		}
	}
	paths := make([]string, 0, len(s.Grid))
	for p, vals := range s.Grid {
		if len(vals) == 0 {
			return nil, fmt.Errorf("sweep: grid %s lists no values", p)
		}
		paths = append(paths, p)
	}
	sort.Strings(paths)
	// Cartesian product of the grid values, first path slowest.
	combos := [][]string{nil}
	for _, p := range paths {
		var next [][]string
		for _, c := range combos {
			for _, v := range s.Grid[p] {
				next = append(next, append(append([]string(nil), c...), v))
			}
		}
		combos = next
	}
	var cells []Cell
	for _, combo := range combos {
		setting := "default"
		if len(paths) > 0 {
			parts := make([]string, len(paths))
			for i, p := range paths {
				parts[i] = p + "=" + combo[i]
			}
			setting = strings.Join(parts, ",")
		}
		for _, method := range s.Methods {
			for _, seed := range s.Seeds {
				cfg := base
				for i, p := range paths {
					if err := cfg.Set(p, combo[i]); err != nil {
						return nil, fmt.Errorf("sweep: %w", err)
					}
				}
				cfg.Method, cfg.Seed = method, seed
				cfg.OutDir = filepath.Join(s.OutDir, setting)
				cfg.Name = fmt.Sprintf("%s-seed%d", method, seed)
				cfg.Overwrite = true // only unfinished cells are run, see Run
				if err := cfg.Validate(); err != nil {
					return nil, fmt.Errorf("sweep: cell %s %s seed %d: %w", setting, method, seed, err)
				}
				cells = append(cells, Cell{Setting: setting, Method: method, Seed: seed, Config: cfg,
					Dir: filepath.Join(cfg.OutDir, cfg.Name)})
			}
		}
	}
	return cells, nil
}

// Completed reports whether the run directory holds a completed run.
func Completed(dir string) bool {
	raw, err := os.ReadFile(filepath.Join(dir, rundir.SummaryFile))
	if err != nil {
		return false
	}
	var s struct {
		Extra struct {
			Completed bool `json:"completed"`
		} `json:"extra"`
	}
	return json.Unmarshal(raw, &s) == nil && s.Extra.Completed
}

// Run runs every cell that has not completed, one after another, and
// writes the summary. progress, if not nil, gets one line per cell.
func Run(ctx context.Context, s *Spec, log *slog.Logger, progress io.Writer) error {
	cells, err := s.Cells()
	if err != nil {
		return err
	}
	if log == nil {
		log = slog.Default()
	}
	for i, c := range cells {
		if Completed(c.Dir) {
			if progress != nil {
				fmt.Fprintf(progress, "[%d/%d] %s %s seed %d: done before, skipped\n", i+1, len(cells), c.Setting, c.Method, c.Seed)
			}
			continue
		}
		res, err := sim.Run(ctx, c.Config, sim.Options{Logger: log})
		if err != nil {
			return fmt.Errorf("sweep: cell %s %s seed %d: %w", c.Setting, c.Method, c.Seed, err)
		}
		if progress != nil {
			last := res.Rounds[len(res.Rounds)-1]
			fmt.Fprintf(progress, "[%d/%d] %s %s seed %d: %s %.4f after %d rounds (%.1fs)\n", i+1, len(cells),
				c.Setting, c.Method, c.Seed, res.Schema.Heads[0], last.Heads[0], last.Round, res.Summary.Seconds)
		}
	}
	return Summarize(cells, s.OutDir)
}

// Row is one line of the comparison table: a setting and a method, with
// mean and sample std over seeds.
type Row struct {
	Setting, Method string
	Runs            int
	Heads           []string
	Mean, Std       []float64 // per head, final round
	BestRound       float64   // mean over seeds
}

// Table groups completed cells by setting and method, in cell order.
func Table(cells []Cell) ([]Row, error) {
	var rows []Row
	index := map[string]int{}
	finals := map[string][][]float64{}
	bests := map[string][]float64{}
	for _, c := range cells {
		if !Completed(c.Dir) {
			continue
		}
		f, err := os.Open(filepath.Join(c.Dir, rundir.MetricsJSONL))
		if err != nil {
			return nil, fmt.Errorf("sweep: %w", err)
		}
		schema, rounds, err := metrics.ReadJSONL(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("sweep: %s: %w", c.Dir, err)
		}
		if len(rounds) == 0 {
			continue
		}
		key := c.Setting + "\x00" + c.Method
		k, ok := index[key]
		if !ok {
			k = len(rows)
			index[key] = k
			rows = append(rows, Row{Setting: c.Setting, Method: c.Method, Heads: schema.Heads})
			finals[key] = make([][]float64, len(schema.Heads))
		}
		last := rounds[len(rounds)-1]
		for h := range schema.Heads {
			finals[key][h] = append(finals[key][h], last.Heads[h])
		}
		bests[key] = append(bests[key], float64(metrics.Summarize(schema, rounds).BestRound))
		rows[k].Runs++
	}
	for i := range rows {
		key := rows[i].Setting + "\x00" + rows[i].Method
		for h := range rows[i].Heads {
			m, s, _ := metrics.MeanStd(finals[key][h])
			rows[i].Mean = append(rows[i].Mean, m)
			rows[i].Std = append(rows[i].Std, s)
		}
		rows[i].BestRound, _, _ = metrics.MeanStd(bests[key])
	}
	return rows, nil
}

// WriteMarkdown writes rows as a Markdown table.
func WriteMarkdown(w io.Writer, rows []Row) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "(no completed runs)")
		return err
	}
	fmt.Fprintf(w, "| setting | method | runs | %s | best round |\n", strings.Join(rows[0].Heads, " | "))
	fmt.Fprintf(w, "|---|---|---|%s---|\n", strings.Repeat("---|", len(rows[0].Heads)))
	for _, r := range rows {
		cells := make([]string, len(r.Heads))
		for h := range r.Heads {
			cells[h] = fmt.Sprintf("%.3f ± %.3f", r.Mean[h], r.Std[h])
		}
		if _, err := fmt.Fprintf(w, "| %s | %s | %d | %s | %.1f |\n", r.Setting, r.Method, r.Runs, strings.Join(cells, " | "), r.BestRound); err != nil {
			return err
		}
	}
	return nil
}

// WriteCSV writes rows as CSV: setting, method, runs, <head>_mean, <head>_std..., best_round.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if len(rows) > 0 {
		header := []string{"setting", "method", "runs"}
		for _, h := range rows[0].Heads {
			header = append(header, h+"_mean", h+"_std")
		}
		cw.Write(append(header, "best_round"))
	}
	for _, r := range rows {
		rec := []string{r.Setting, r.Method, strconv.Itoa(r.Runs)}
		for h := range r.Heads {
			rec = append(rec, strconv.FormatFloat(r.Mean[h], 'g', 6, 64), strconv.FormatFloat(r.Std[h], 'g', 6, 64))
		}
		cw.Write(append(rec, strconv.FormatFloat(r.BestRound, 'g', 4, 64)))
	}
	cw.Flush()
	return cw.Error()
}

// Summarize writes summary.md and summary.csv for the cells into outDir.
func Summarize(cells []Cell, outDir string) error {
	rows, err := Table(cells)
	if err != nil {
		return err
	}
	for name, write := range map[string]func(io.Writer, []Row) error{"summary.md": WriteMarkdown, "summary.csv": WriteCSV} {
		var buf bytes.Buffer
		if err := write(&buf, rows); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(outDir, name), buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
	}
	return nil
}
