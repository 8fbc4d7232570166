// Package sweep runs a grid of experiments (methods x seeds x settings),
// one or a few at a time, resumably, and condenses them into a comparison
// table.
//
// # Sweep file
//
//	base: configs/mfeat.yaml      # experiment file the cells start from (optional)
//	out_dir: runs/sweep-mfeat     # one run directory per cell below it
//	methods: [fedavg, fedprox, fedcmi]
//	seeds: [1, 2, 3]
//	parallel: 2                   # cells run at once (default 1)
//	settings:                     # explicit settings (optional) ...
//	  - {data.partition: iid}
//	  - {data.alpha: 1}
//	grid:                         # ... each crossed with every grid combination
//	  data.multi_ratio: [0.5, 1]
//	  clients_per_round: [10]
//
// A cell is one method, one seed and one setting: one entry of settings
// (if any) combined with one combination of grid values; any experiment
// field (dotted path) can be set. It runs in
// <out_dir>/<setting>/<method>-seed<seed>, where <setting> names its values
// ("data.alpha=1,data.multi_ratio=0.5", the setting's own fields first, or
// "default" without settings and grid).
//
// # Resuming
//
// A cell whose summary says it completed is never run again, so an
// interrupted sweep continues where it stopped; a cell that crashed or was
// interrupted starts again from round 1, its old results removed.
//
// # Parallel cells
//
// With parallel N > 1, N cells run at once and each cell trains
// max(1, P/N) clients at once, where P is the experiment's parallel field,
// so the machine is not oversubscribed. Results do not depend on either
// number: every cell is seeded on its own. Cancelling the context stops
// every running cell at its clients' next batch; each keeps its completed
// rounds and is marked unfinished, so the next run restarts it. The first
// cell that fails stops the others the same way.
//
// # Table
//
// Summarize reads the completed cells' results and writes one row per
// setting and method (metrics.Compare): mean ± sample std over seeds of the
// final fused and per-modality accuracies and of the best round
// (summary.md and summary.csv in out_dir).
package sweep

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

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
	// Settings lists explicit settings, each a map of config paths to
	// values (in the text form a flag takes); every one is crossed with
	// every grid combination. Empty: the grid alone.
	Settings []map[string]string `yaml:"settings"`
	// Grid maps config paths to the values to try (in the text form a
	// flag takes).
	Grid map[string][]string `yaml:"grid"`
	// Parallel is the number of cells run at once (0 means 1).
	Parallel int `yaml:"parallel"`
	// Override, if not nil, changes the base experiment before each
	// cell's setting is applied (fedcmi sweep's field flags).
	Override func(*config.Config) error `yaml:"-"`
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
		return nil, fmt.Errorf("sweep: %s: %w", path, config.PlainYAMLError(err))
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

// assignment is one config path and the value a setting gives it.
type assignment struct{ path, value string }

// settings expands the spec's settings and grid into the settings of its
// cells, each a list of assignments, in a fixed order: settings in file
// order, each crossed with the grid combinations (sorted paths, first path
// slowest).
func (s *Spec) settings() ([][]assignment, error) {
	paths := make([]string, 0, len(s.Grid))
	for p, vals := range s.Grid {
		if len(vals) == 0 {
			return nil, fmt.Errorf("sweep: grid %s lists no values", p)
		}
		paths = append(paths, p)
	}
	sort.Strings(paths)
	combos := [][]assignment{nil}
	for _, p := range paths {
		var next [][]assignment
		for _, c := range combos {
			for _, v := range s.Grid[p] {
				next = append(next, append(slices.Clone(c), assignment{p, v}))
			}
		}
		combos = next
	}
	explicit := [][]assignment{nil}
	if len(s.Settings) > 0 {
		explicit = explicit[:0]
		for i, set := range s.Settings {
			if len(set) == 0 {
				return nil, fmt.Errorf("sweep: settings entry %d is empty", i+1)
			}
			var a []assignment
			for _, p := range slices.Sorted(maps.Keys(set)) {
				if _, ok := s.Grid[p]; ok {
					return nil, fmt.Errorf("sweep: %s is set both in settings entry %d and in the grid", p, i+1)
				}
				a = append(a, assignment{p, set[p]})
			}
			explicit = append(explicit, a)
		}
	}
	var out [][]assignment
	for _, e := range explicit {
		for _, c := range combos {
			out = append(out, append(slices.Clone(e), c...))
		}
	}
	return out, nil
}

// settingName names a setting by its assignments, "default" if none.
func settingName(a []assignment) string {
	if len(a) == 0 {
		return "default"
	}
	parts := make([]string, len(a))
	for i, x := range a {
		parts[i] = x.path + "=" + x.value
	}
	return strings.Join(parts, ",")
}

// Cells expands the spec into its experiments, in a fixed order (settings,
// then methods, then seeds), each config validated. Each cell's parallel
// field is divided among the cells that run at once (see the package
// documentation).
func (s *Spec) Cells() ([]Cell, error) {
	if s.OutDir == "" {
		return nil, errors.New("sweep: out_dir is required")
	}
	if len(s.Methods) == 0 || len(s.Seeds) == 0 {
		return nil, errors.New("sweep: methods and seeds must each list at least one value")
	}
	if s.Parallel < 0 {
		return nil, fmt.Errorf("sweep: parallel %d: must be >= 0", s.Parallel)
	}
	base := config.Default()
	if s.Base != "" {
		if err := base.LoadFile(s.Base); err != nil {
			return nil, err
		}
	}
	if s.Override != nil {
		if err := s.Override(&base); err != nil {
			return nil, fmt.Errorf("sweep: %w", err)
		}
	}
	settings, err := s.settings()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var cells []Cell
	for _, set := range settings {
		setting := settingName(set)
		if seen[setting] {
			return nil, fmt.Errorf("sweep: setting %s appears twice", setting)
		}
		seen[setting] = true
		for _, method := range s.Methods {
			for _, seed := range s.Seeds {
				cfg := base
				for _, a := range set {
					if err := cfg.Set(a.path, a.value); err != nil {
						return nil, fmt.Errorf("sweep: %w", err)
					}
				}
				cfg.Method, cfg.Seed = method, seed
				cfg.OutDir = filepath.Join(s.OutDir, setting)
				cfg.Name = fmt.Sprintf("%s-seed%d", method, seed)
				cfg.Overwrite = true // only unfinished cells are run, see Run
				cfg.Parallel = max(1, cfg.Parallel/max(1, s.Parallel))
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

// Run runs every cell that has not completed, s.Parallel at a time (see the
// package documentation), and then writes the summary of the completed
// cells, also when stopped early. progress, if not nil, gets one line per
// cell, from one goroutine at a time. Run returns once every cell it
// started has stopped: with nil when all completed, else with the first
// cell's failure or, when ctx was cancelled, ctx's error.
func Run(ctx context.Context, s *Spec, log *slog.Logger, progress io.Writer) error {
	cells, err := s.Cells()
	if err != nil {
		return err
	}
	if log == nil {
		log = slog.Default()
	}
	var mu sync.Mutex // guards progress and firstErr
	say := func(format string, args ...any) {
		if progress == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(progress, format, args...)
	}
	var todo []int
	for i, c := range cells {
		if rundir.Completed(c.Dir) {
			say("[%d/%d] %s %s seed %d: done before, skipped\n", i+1, len(cells), c.Setting, c.Method, c.Seed)
			continue
		}
		todo = append(todo, i)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var firstErr error
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(max(1, s.Parallel), len(todo)) {
		wg.Go(func() {
			for i := range work {
				if runCtx.Err() != nil {
					continue // stopping: start no more cells
				}
				c := cells[i]
				clog := log.With("setting", c.Setting, "method", c.Method, "seed", c.Seed)
				res, err := sim.Run(runCtx, c.Config, sim.Options{Logger: clog})
				if err != nil {
					done := 0
					if res != nil {
						done = len(res.Rounds)
					}
					say("[%d/%d] %s %s seed %d: stopped after %d rounds: %v\n", i+1, len(cells), c.Setting, c.Method, c.Seed, done, err)
					mu.Lock()
					if firstErr == nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
						firstErr = fmt.Errorf("sweep: cell %s %s seed %d: %w", c.Setting, c.Method, c.Seed, err)
						cancel()
					}
					mu.Unlock()
					continue
				}
				last := res.Rounds[len(res.Rounds)-1]
				say("[%d/%d] %s %s seed %d: %s %.4f after %d rounds (%.1fs)\n", i+1, len(cells),
					c.Setting, c.Method, c.Seed, res.Schema.Heads[0], last.Heads[0], last.Round, res.Summary.Seconds)
			}
		})
	}
feed:
	for _, i := range todo {
		select {
		case work <- i:
		case <-runCtx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()

	sumErr := Summarize(cells, s.OutDir)
	switch {
	case firstErr != nil:
		return errors.Join(firstErr, sumErr)
	case ctx.Err() != nil:
		return errors.Join(fmt.Errorf("sweep: %w", ctx.Err()), sumErr)
	}
	return sumErr
}

// Table loads the completed cells' metrics and compares them
// (metrics.Compare at the final round): one row per setting and method, in
// cell order.
func Table(cells []Cell) ([]metrics.Row, error) {
	var runs []metrics.Labeled
	for _, c := range cells {
		if !rundir.Completed(c.Dir) {
			continue
		}
		schema, rounds, err := rundir.ReadMetrics(c.Dir)
		if err != nil {
			return nil, fmt.Errorf("sweep: %w", err)
		}
		if len(rounds) == 0 {
			continue
		}
		runs = append(runs, metrics.Labeled{Name: c.Dir, Setting: c.Setting, Method: c.Method, Schema: schema, Rounds: rounds})
	}
	return metrics.Compare(runs, metrics.PickFinal)
}

// Summary file names in a sweep's out_dir.
const (
	SummaryMarkdown = "summary.md"
	SummaryCSV      = "summary.csv"
)

// Summarize writes summary.md and summary.csv for the completed cells into
// outDir (created if missing).
func Summarize(cells []Cell, outDir string) error {
	rows, err := Table(cells)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	for _, f := range []struct {
		name  string
		write func(io.Writer, []metrics.Row) error
	}{{SummaryMarkdown, metrics.WriteComparison}, {SummaryCSV, metrics.WriteComparisonCSV}} {
		var buf bytes.Buffer
		if err := f.write(&buf, rows); err != nil {
			return fmt.Errorf("sweep: %s: %w", f.name, err)
		}
		if err := os.WriteFile(filepath.Join(outDir, f.name), buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
	}
	return nil
}
