// Package sweep runs a grid of experiments (methods x seeds x settings),
// one or a few at a time, resumably, and condenses them into a comparison
// table.
//
// # Sweep file
//
//	base: mfeat.yaml              # experiment file the cells start from (optional), relative to this file
//	out_dir: runs/sweep-mfeat     # one run directory per cell below it, relative to the working directory
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
// "default" without settings and grid; path separators in values become
// "_", so every cell stays one directory below out_dir). Methods and seeds
// must not repeat, and no two cells may share a directory. Grid and
// settings must not set method, seed, name, out_dir or overwrite: the
// sweep sets them per cell. A sweep has at most MaxCells cells.
//
// As an experiment file's paths are relative to the file, base is relative
// to the sweep file's folder, so that a sweep file works from any working
// directory; out_dir, like an experiment's, is relative to the working
// directory: runs go where the user runs them.
//
// # Resuming
//
// Each cell is keyed by its resolved experiment, saved as config.yaml in
// its run directory. A cell whose summary says it completed with the
// cell's current config is never run again, so an interrupted sweep
// continues where it stopped; a cell that was interrupted continues from
// its last completed round (sim.Options.Resume), to the results an
// uninterrupted run gives; one without a checkpoint, or whose config
// changed, starts again from round 1, its old results removed.
//
// A completed cell whose config differs from the sweep's now (the sweep
// file, or the base experiment file, changed in a field that changes
// results: anything but name, out_dir, overwrite, parallel, backend, tensorboard and
// data.cache_dir), or which ran on other data than its config reads now
// (a data folder replaced, features from another preprocessing: the
// digest in its summary.json; cells of an older fedcmi record none and
// are not checked), makes Run refuse before running anything, with an error
// naming each such cell and the fields that differ; Options.RerunChanged
// (fedcmi sweep -rerun_changed) runs them again instead, each cell's old
// directory replaced only when its new run starts. The summary only ever
// holds cells run with the current config.
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
// (summary.md and summary.csv in out_dir). The cells are read, labelled and
// ordered as fedcmi table reads out_dir (report.Load), so that summary.md is
// the table fedcmi table prints for out_dir when out_dir holds the sweep's
// completed cells alone.
package sweep

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"log/slog"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/report"
	"github.com/fedcmi/fedcmi/rundir"
	"github.com/fedcmi/fedcmi/sim"
	"go.yaml.in/yaml/v3"
)

// Spec is a sweep file.
type Spec struct {
	// Base is an experiment file the cells start from ("" = defaults):
	// relative to the sweep file's folder in a file Load read, else to the
	// working directory.
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

	// file is the sweep file Load read ("" for a Spec built in code):
	// base is relative to its folder, and errors about base name it.
	file string
}

// Load reads a sweep file. Errors name the file and the line: an unknown
// field with the closest known one ("did you mean methods?"), and a grid or
// settings key that is no experiment field, or that the sweep sets per
// cell, or a value its field does not take, with the closest field path.
func Load(path string) (*Spec, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	// DecodeYAML names an unknown field's line and closest name; the grid
	// and settings keys, which it takes as any text, are checked then on
	// the node tree, which has their lines.
	var s Spec
	if err := config.DecodeYAML(bytes.NewReader(raw), path, &s); err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("sweep: %s: %w", path, err)
	}
	if err := checkNodes(&doc); err != nil {
		return nil, fmt.Errorf("sweep: %s: %w", path, err)
	}
	s.file = path
	return &s, nil
}

// fieldPaths lists the experiment fields' dotted paths, which grid and
// settings keys name.
var fieldPaths = func() []string {
	d := config.Default()
	var paths []string
	for _, f := range config.Fields(&d) {
		paths = append(paths, f.Path)
	}
	return paths
}()

// checkNodes checks the keys and values of a sweep file's grid and
// settings, naming the line of the first mistake. Parts of another shape
// are the decoder's to report.
func checkNodes(doc *yaml.Node) error {
	top := resolveAlias(doc)
	if top.Kind == yaml.DocumentNode && len(top.Content) == 1 {
		top = resolveAlias(top.Content[0])
	}
	if top.Kind != yaml.MappingNode {
		return nil
	}
	for k, v := range mapping(top) {
		switch k.Value {
		case "grid":
			if v.Kind != yaml.MappingNode {
				continue
			}
			for gk, gv := range mapping(v) {
				if err := checkPath(gk.Value); err != nil {
					return fmt.Errorf("line %d: grid sets %s: %w", gk.Line, gk.Value, err)
				}
				if gv.Kind != yaml.SequenceNode {
					continue
				}
				for _, x := range gv.Content {
					if err := checkValue(gk.Value, resolveAlias(x), "grid "+gk.Value); err != nil {
						return err
					}
				}
			}
		case "settings":
			if v.Kind != yaml.SequenceNode {
				continue
			}
			for i, entry := range v.Content {
				if entry = resolveAlias(entry); entry.Kind != yaml.MappingNode {
					continue
				}
				for sk, sv := range mapping(entry) {
					if err := checkPath(sk.Value); err != nil {
						return fmt.Errorf("line %d: settings entry %d sets %s: %w", sk.Line, i+1, sk.Value, err)
					}
					if err := checkValue(sk.Value, sv, fmt.Sprintf("settings entry %d, %s", i+1, sk.Value)); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// mapping yields the scalar keys of mapping node m and their values
// (aliases resolved), skipping merge keys (<<), which the decoder expands.
func mapping(m *yaml.Node) iter.Seq2[*yaml.Node, *yaml.Node] {
	return func(yield func(*yaml.Node, *yaml.Node) bool) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k := m.Content[i]
			if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
				continue
			}
			if !yield(k, resolveAlias(m.Content[i+1])) {
				return
			}
		}
	}
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// checkValue refuses a scalar value n that the field at path does not
// take (as its flag would), naming the value's line and where it is.
func checkValue(path string, n *yaml.Node, where string) error {
	if n == nil || n.Kind != yaml.ScalarNode {
		return nil
	}
	probe := config.Default()
	if err := probe.Set(path, n.Value); err != nil {
		var fe *config.FieldError
		if errors.As(err, &fe) {
			err = fe.Err // without "config: <path>: ", which where says
		}
		return fmt.Errorf("line %d: %s: %w", n.Line, where, err)
	}
	return nil
}

// checkPath refuses a grid or settings key that is no experiment field,
// suggesting the closest one, or that the sweep sets per cell.
func checkPath(path string) error {
	if why, ok := perCell[path]; ok {
		return errors.New(why)
	}
	if slices.Contains(fieldPaths, path) {
		return nil
	}
	msg := "no such experiment field"
	if s := config.Closest(path, fieldPaths); s != "" {
		msg += " (did you mean " + s + "?)"
	}
	return errors.New(msg)
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

// MaxCells bounds a sweep's cells, so that a grid too large to ever run is
// refused before it is expanded rather than running out of memory; even
// 10000 cells take seconds to expand and validate.
const MaxCells = 10000

// perCell says what the sweep sets per cell, in place of a grid or
// settings value for these paths, which would be silently replaced.
var perCell = map[string]string{
	"method":    "the sweep sets it per cell from its methods field; list the methods there",
	"seed":      "the sweep sets it per cell from its seeds field; list the seeds there",
	"name":      "the sweep sets it per cell (<method>-seed<seed>)",
	"out_dir":   "the sweep sets it per cell; set the sweep's out_dir field instead",
	"overwrite": "the sweep sets it per cell",
}

// checkCount refuses a sweep of more than MaxCells cells, counted exactly
// (the product may overflow an int).
func (s *Spec) checkCount(paths []string) error {
	combos := big.NewInt(1)
	for _, p := range paths {
		combos.Mul(combos, big.NewInt(int64(len(s.Grid[p]))))
	}
	settings := max(1, len(s.Settings))
	n := new(big.Int).Set(combos)
	for _, k := range []int{len(s.Methods), len(s.Seeds), settings} {
		n.Mul(n, big.NewInt(int64(k)))
	}
	if n.Cmp(big.NewInt(MaxCells)) <= 0 {
		return nil
	}
	plural := "s"
	if settings == 1 {
		plural = ""
	}
	return fmt.Errorf("sweep: %s cells (%d methods x %d seeds x %d setting%s x %s grid combinations): more than %d; split the sweep or shorten its lists",
		n, len(s.Methods), len(s.Seeds), settings, plural, combos, MaxCells)
}

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
	if err := s.checkCount(paths); err != nil {
		return nil, err
	}
	for _, p := range paths {
		if err := checkPath(p); err != nil {
			return nil, fmt.Errorf("sweep: grid sets %s: %w", p, err)
		}
	}
	for i, set := range s.Settings {
		for _, p := range slices.Sorted(maps.Keys(set)) {
			if err := checkPath(p); err != nil {
				return nil, fmt.Errorf("sweep: settings entry %d sets %s: %w", i+1, p, err)
			}
		}
	}
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

// settingDir names a setting's directory: its name with path separators
// replaced, so that values such as "../x" or "a/b" make one directory
// below out_dir. The name holds "=" unless it is "default", so it is never
// "." or "..". Different names may map to one directory: Cells refuses
// cells that share one.
func settingDir(name string) string { return separators.Replace(name) }

var separators = strings.NewReplacer("/", "_", `\`, "_")

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
	// A repeated method or seed would run its cells in one directory.
	if err := repeated("methods", s.Methods); err != nil {
		return nil, err
	}
	if err := repeated("seeds", s.Seeds); err != nil {
		return nil, err
	}
	base := config.Default()
	if s.Base != "" {
		if err := base.LoadFile(s.basePath()); err != nil {
			return nil, s.baseError(err)
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
	dirs := map[string]string{} // cell directory -> the cell's label
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
				cfg.OutDir = filepath.Join(s.OutDir, settingDir(setting))
				cfg.Name = fmt.Sprintf("%s-seed%d", method, seed)
				cfg.Overwrite = true // only unfinished cells are run, see Run
				cfg.Parallel = max(1, cfg.Parallel/max(1, s.Parallel))
				// As simulate's: a cell's config.yaml names the same folders
				// from anywhere (paths from flags and grid values are
				// relative to the working directory, the base file's to it).
				if err := cfg.AbsPaths(); err != nil {
					return nil, fmt.Errorf("sweep: %w", err)
				}
				if err := fl.CheckConfig(&cfg); err != nil {
					return nil, fmt.Errorf("sweep: cell %s %s seed %d: %w", setting, method, seed, err)
				}
				dir := filepath.Join(cfg.OutDir, cfg.Name)
				label := fmt.Sprintf("%s %s seed %d", setting, method, seed)
				if other, ok := dirs[dir]; ok {
					return nil, fmt.Errorf("sweep: cells %s and %s would share the run directory %s (path separators in values become _)", other, label, dir)
				}
				dirs[dir] = label
				cells = append(cells, Cell{Setting: setting, Method: method, Seed: seed, Config: cfg, Dir: dir})
			}
		}
	}
	return cells, nil
}

// basePath returns the base experiment file's path: Base, taken relative
// to the sweep file's folder if Load read one.
func (s *Spec) basePath() string {
	if s.file == "" || filepath.IsAbs(s.Base) {
		return s.Base
	}
	return filepath.Join(filepath.Dir(s.file), s.Base)
}

// baseError names the sweep file and its base field in an error loading
// the base file; for a relative base not found, it says where base is
// looked for, since it used to be relative to the working directory.
func (s *Spec) baseError(err error) error {
	where := "sweep: "
	if s.file != "" {
		where += s.file + ": "
	}
	if s.file != "" && !filepath.IsAbs(s.Base) && errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%sbase %s: %w (base is relative to the sweep file's folder)", where, s.Base, err)
	}
	return fmt.Errorf("%sbase %s: %w", where, s.Base, err)
}

// repeated refuses a list (methods, seeds) with a value twice.
func repeated[T comparable](field string, list []T) error {
	seen := make(map[T]bool, len(list))
	for _, v := range list {
		if seen[v] {
			return fmt.Errorf("sweep: %s lists %v twice", field, v)
		}
		seen[v] = true
	}
	return nil
}

// Options are a sweep's run settings.
type Options struct {
	// Logger receives the cells' logs, each with the cell's setting,
	// method and seed; nil uses slog.Default().
	Logger *slog.Logger
	// Progress, if not nil, gets one line per cell.
	Progress io.Writer
	// Rounds, if not nil, gets every round of every cell, each line
	// prefixed with its cell.
	Rounds io.Writer
	// Status, if not nil, shows the running cells' rounds and steps live.
	Status *sim.StatusLine
	// RerunChanged runs again the completed cells whose saved config
	// differs from the sweep's; without it, Run refuses such a sweep
	// (ErrChangedCells).
	RerunChanged bool
	// TuneGC is each cell's sim.Options.TuneGC when cells run one at a
	// time (parallel 1, or one cell left to run); parallel cells keep the
	// process's setting.
	TuneGC bool
}

// ErrChangedCells is wrapped by Run's error when completed cells were run
// with other settings than the sweep's current ones, or on other data.
var ErrChangedCells = errors.New("sweep: completed cells were run with other settings or data")

// maxListed bounds the changed cells an error lists one by one.
const maxListed = 8

// cellLabel names a cell in progress lines: "[3/8] data.alpha=1 fedavg seed 2".
func cellLabel(i, n int, c Cell) string {
	return fmt.Sprintf("[%d/%d] %s %s seed %d", i+1, n, c.Setting, c.Method, c.Seed)
}

// Run runs every cell that has not completed, s.Parallel at a time (see the
// package documentation), and then writes the summary of the completed
// cells, also when stopped early. A completed cell whose saved config
// (config.yaml) differs from the cell's config now, in any field that
// changes results, or which ran on other data than its config's read now
// (sim.DataCheck), makes Run refuse before running anything, naming the
// cells and fields, unless opt.RerunChanged. An unfinished cell resumes
// from its checkpoint when its config is unchanged, else starts anew.
// Run returns once every cell it started has stopped: with nil when all
// completed, else with the first cell's failure or, when ctx was
// cancelled, ctx's error.
func Run(ctx context.Context, s *Spec, opt Options) error {
	cells, err := s.Cells()
	if err != nil {
		return err
	}
	log := opt.Logger
	if log == nil {
		log = slog.Default()
	}
	var mu sync.Mutex // guards progress, firstErr, trackers and finished
	say := func(format string, args ...any) {
		if opt.Progress == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(opt.Status.Writer(opt.Progress), format, args...)
	}
	var todo []int
	resume := make([]bool, len(cells))
	var changed []string
	check := sim.NewDataCheck(ctx, log)
	// Completed cells run on other data: left out of the summary unless
	// run again (a config change keeps them out by itself, see Table).
	staleData := map[int]bool{}
	for i, c := range cells {
		changes, err := sim.ConfigChanges(c.Dir, c.Config)
		saved := err == nil
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("sweep: cell %s %s seed %d: %w", c.Setting, c.Method, c.Seed, err)
		}
		same := saved && len(changes) == 0
		completed := rundir.Completed(c.Dir)
		why := sim.Changes(changes)
		if !saved {
			why = "no " + rundir.ConfigFile
		}
		if completed && same {
			// The same experiment on other data (a data folder replaced,
			// another preprocessing) would mix two data sets in one table.
			if why, err = check.Changed(c.Dir, c.Config); err != nil {
				return fmt.Errorf("sweep: cell %s %s seed %d: %w", c.Setting, c.Method, c.Seed, err)
			}
			if why == "" {
				say("%s: done before, skipped\n", cellLabel(i, len(cells), c))
				continue
			}
			staleData[i] = true
		}
		if completed {
			changed = append(changed, fmt.Sprintf("%s %s seed %d (%s): %s", c.Setting, c.Method, c.Seed, c.Dir, why))
		} else {
			resume[i] = same
		}
		todo = append(todo, i)
	}
	if len(changed) > 0 && !opt.RerunChanged {
		list := changed[:min(len(changed), maxListed)]
		more := ""
		if len(changed) > len(list) {
			more = fmt.Sprintf("\n  ... and %d more", len(changed)-len(list))
		}
		return fmt.Errorf("%w than the sweep's now (%d of %d):\n  %s%s\nrun the sweep with -rerun_changed to run them again (their old results are replaced), or set another out_dir to keep them",
			ErrChangedCells, len(changed), len(cells), strings.Join(list, "\n  "), more)
	}
	for _, c := range changed {
		log.Info("cell run with other settings: running it again", "cell", c)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	trackers := map[int]*sim.Tracker{} // of the running cells
	finished := len(cells) - len(todo)
	if opt.Status != nil {
		opt.Status.Start(func() string {
			mu.Lock()
			defer mu.Unlock()
			running := slices.Sorted(maps.Keys(trackers))
			parts := []string{fmt.Sprintf("%d/%d done", finished, len(cells))}
			for _, i := range running {
				st := trackers[i].Status()
				text := st.String()
				if len(running) > 1 {
					text = st.Short() // several cells share the line
				}
				parts = append(parts, fmt.Sprintf("[%d] %s s%d: %s", i+1, cells[i].Method, cells[i].Seed, text))
			}
			return strings.Join(parts, " | ")
		}, 250*time.Millisecond)
		defer opt.Status.Stop()
	}
	var firstErr error
	work := make(chan int)
	var wg sync.WaitGroup
	runs := min(max(1, s.Parallel), len(todo))
	for range runs {
		wg.Go(func() {
			for i := range work {
				if runCtx.Err() != nil {
					continue // stopping: start no more cells
				}
				c := cells[i]
				label := cellLabel(i, len(cells), c)
				clog := log.With("setting", c.Setting, "method", c.Method, "seed", c.Seed)
				// The garbage collector's target is the process's: only
				// cells run one at a time set it, each for itself.
				so := sim.Options{Logger: clog, Resume: resume[i], TuneGC: opt.TuneGC && runs == 1, Runs: runs}
				if opt.Rounds != nil {
					so.Progress = &prefixWriter{mu: &mu, w: opt.Status.Writer(opt.Rounds), prefix: label + ": "}
				}
				if opt.Status != nil {
					so.Tracker = sim.NewTracker()
					mu.Lock()
					trackers[i] = so.Tracker
					mu.Unlock()
				}
				if resume[i] {
					if _, err := os.Stat(filepath.Join(c.Dir, sim.CheckpointFile)); err == nil {
						say("%s: resuming from its checkpoint\n", label)
					}
				}
				res, err := sim.Run(runCtx, c.Config, so)
				mu.Lock()
				delete(trackers, i)
				if err == nil {
					finished++
					delete(staleData, i) // run again on the data now
				}
				mu.Unlock()
				if err != nil {
					done := 0
					if res != nil {
						done = len(res.Rounds)
					}
					say("%s: stopped after %d rounds: %v\n", label, done, err)
					mu.Lock()
					if firstErr == nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
						firstErr = fmt.Errorf("sweep: cell %s %s seed %d: %w", c.Setting, c.Method, c.Seed, err)
						cancel()
					}
					mu.Unlock()
					continue
				}
				last := res.Rounds[len(res.Rounds)-1]
				say("%s: %s %.4f after %d rounds (%.1fs)\n", label, res.Schema.Heads[0], last.Heads[0], last.Round, res.Summary.Seconds)
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

	var current []Cell
	for i, c := range cells {
		if !staleData[i] {
			current = append(current, c)
		}
	}
	sumErr := Summarize(current, s.OutDir)
	switch {
	case firstErr != nil:
		return errors.Join(firstErr, sumErr)
	case ctx.Err() != nil:
		return errors.Join(fmt.Errorf("sweep: %w", ctx.Err()), sumErr)
	}
	return sumErr
}

// prefixWriter writes every line with a prefix, one Write at a time
// across the writers sharing mu.
type prefixWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []byte
	for line := range bytes.Lines(b) {
		out = append(append(out, p.prefix...), line...)
	}
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Table compares the completed cells run with their current config
// (metrics.Compare at the final round): one row per setting and method. A
// cell whose run directory was run with other settings
// (sim.ConfigChanges) is left out: its results are not the sweep's. The
// cells are read, labelled and ordered by report.Load, as fedcmi table
// reads the sweep's out_dir: a setting is named by the fields in which the
// cells differ ("" when they share one), settings come in the order of
// their directories' names, methods in report.MethodOrder. So the table is
// fedcmi table's for out_dir whenever out_dir holds the sweep's completed
// cells alone, and the two never disagree on the same runs.
func Table(cells []Cell) ([]metrics.Row, error) {
	var dirs []string
	for _, c := range cells {
		if !rundir.Completed(c.Dir) {
			continue
		}
		if changes, err := sim.ConfigChanges(c.Dir, c.Config); err != nil || len(changes) > 0 {
			continue
		}
		dirs = append(dirs, c.Dir)
	}
	if len(dirs) == 0 {
		return nil, nil
	}
	// The order in which fedcmi table finds them below out_dir
	// (filepath.WalkDir: folder by folder, each in lexical order), on which
	// the order of the settings depends.
	slices.SortFunc(dirs, func(a, b string) int {
		return slices.Compare(strings.Split(a, string(filepath.Separator)), strings.Split(b, string(filepath.Separator)))
	})
	runs, err := report.Load(dirs...)
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	return metrics.Compare(report.Labeled(runs), metrics.PickFinal)
}

// Summary file names in a sweep's out_dir.
const (
	SummaryMarkdown = "summary.md"
	SummaryCSV      = "summary.csv"
)

// summaryFiles are the files Summarize writes and the writer of each.
var summaryFiles = []struct {
	name  string
	write func(io.Writer, []metrics.Row) error
}{{SummaryMarkdown, metrics.WriteComparison}, {SummaryCSV, metrics.WriteComparisonCSV}}

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
	for _, f := range summaryFiles {
		// Atomically: a stop mid-write keeps the previous summary whole.
		if err := rundir.WriteFileAtomic(outDir, f.name, func(w io.Writer) error { return f.write(w, rows) }); err != nil {
			return fmt.Errorf("sweep: %s: %w", f.name, err)
		}
	}
	return nil
}
