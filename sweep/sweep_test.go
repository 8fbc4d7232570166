package sweep

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"codeberg.org/sbinet/npyio/npz"

	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/report"
	"github.com/fedcmi/fedcmi/rundir"
	"github.com/fedcmi/fedcmi/sim"
)

func writeSpec(t *testing.T, out string) *Spec {
	t.Helper()
	base := filepath.Join(t.TempDir(), "base.yaml")
	yml := "rounds: 2\nclients: 4\nclients_per_round: 2\ndata:\n  min_size: 5\n  synthetic:\n    train_per_class: 30\n    test_per_class: 10\n"
	if err := os.WriteFile(base, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	return &Spec{
		Base: base, OutDir: out, Methods: []string{"fedavg", "fedcmi"}, Seeds: []uint64{1, 2},
		Grid: map[string][]string{"data.alpha": {"1e8", "1"}},
	}
}

func TestCells(t *testing.T) {
	s := writeSpec(t, t.TempDir())
	cells, err := s.Cells()
	if err != nil {
		t.Fatal(err)
	}
	if len(cells) != 8 {
		t.Fatalf("%d cells, want 2 settings x 2 methods x 2 seeds", len(cells))
	}
	c := cells[5] // second setting, fedavg, seed 2
	if c.Setting != "data.alpha=1" || c.Method != "fedavg" || c.Seed != 2 || c.Config.Data.Alpha != 1 || c.Config.Rounds != 2 {
		t.Fatalf("cell %+v", c)
	}
	if !strings.HasSuffix(c.Dir, filepath.Join("data.alpha=1", "fedavg-seed2")) {
		t.Fatalf("dir %s", c.Dir)
	}
}

// TestCellsSettings checks the settings (IID vs Dirichlet, share
// of multimodal clients, clients per round) and how parallel cells share
// the experiment's client parallelism.
func TestCellsSettings(t *testing.T) {
	s := writeSpec(t, t.TempDir())
	s.Settings = []map[string]string{{"data.partition": "iid"}, {"data.partition": "dirichlet", "data.alpha": "0.5"}}
	s.Grid = map[string][]string{"data.multi_ratio": {"0.5", "1"}, "clients_per_round": {"2", "4"}}
	s.Methods, s.Seeds = []string{"fedavg"}, []uint64{7}
	for _, tc := range []struct{ sweepParallel, cellParallel int }{{0, 2}, {1, 2}, {2, 1}, {5, 1}} {
		s.Parallel = tc.sweepParallel
		cells, err := s.Cells()
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			"data.partition=iid,clients_per_round=2,data.multi_ratio=0.5",
			"data.partition=iid,clients_per_round=2,data.multi_ratio=1",
			"data.partition=iid,clients_per_round=4,data.multi_ratio=0.5",
			"data.partition=iid,clients_per_round=4,data.multi_ratio=1",
			"data.alpha=0.5,data.partition=dirichlet,clients_per_round=2,data.multi_ratio=0.5",
			"data.alpha=0.5,data.partition=dirichlet,clients_per_round=2,data.multi_ratio=1",
			"data.alpha=0.5,data.partition=dirichlet,clients_per_round=4,data.multi_ratio=0.5",
			"data.alpha=0.5,data.partition=dirichlet,clients_per_round=4,data.multi_ratio=1",
		}
		if len(cells) != len(want) {
			t.Fatalf("%d cells, want %d", len(cells), len(want))
		}
		for i, c := range cells {
			if c.Setting != want[i] {
				t.Errorf("cell %d setting %s, want %s", i, c.Setting, want[i])
			}
			if c.Config.Parallel != tc.cellParallel {
				t.Errorf("sweep parallel %d: cell parallel %d, want %d", tc.sweepParallel, c.Config.Parallel, tc.cellParallel)
			}
		}
		c := cells[7].Config
		if c.Data.Partition != "dirichlet" || c.Data.Alpha != 0.5 || c.ClientsPerRound != 4 || c.Data.MultiRatio != 1 || c.Seed != 7 {
			t.Errorf("last cell config %+v", c)
		}
	}
}

func TestCellsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Spec)
		want string
	}{
		{"unknown field", func(s *Spec) { s.Grid["data.alhpa"] = []string{"1"} }, "grid sets data.alhpa: no such experiment field (did you mean data.alpha?)"},
		{"unknown setting field", func(s *Spec) { s.Settings = []map[string]string{{"data.partiton": "iid"}} },
			"settings entry 1 sets data.partiton: no such experiment field (did you mean data.partition?)"},
		{"no values", func(s *Spec) { s.Grid["data.alpha"] = nil }, "grid data.alpha lists no values"},
		{"bad value", func(s *Spec) { s.Grid["data.multi_ratio"] = []string{"2"} }, "data.multi_ratio"},
		{"empty setting", func(s *Spec) { s.Settings = []map[string]string{{}} }, "settings entry 1 is empty"},
		{"setting and grid", func(s *Spec) { s.Settings = []map[string]string{{"data.alpha": "1"}} }, "data.alpha is set both"},
		{"repeated setting", func(s *Spec) {
			s.Grid = nil
			s.Settings = []map[string]string{{"data.alpha": "1"}, {"data.alpha": "1"}}
		}, "appears twice"},
		{"negative parallel", func(s *Spec) { s.Parallel = -1 }, "parallel -1"},
		{"no seeds", func(s *Spec) { s.Seeds = nil }, "seeds"},
		// Repeated methods or seeds would run cells in one directory.
		{"repeated method", func(s *Spec) { s.Methods = []string{"fedavg", "fedcmi", "fedavg"} }, "methods lists fedavg twice"},
		{"repeated seed", func(s *Spec) { s.Seeds = []uint64{1, 1} }, "seeds lists 1 twice"},
		// The sweep sets these per cell: a grid or setting would be ignored.
		{"grid method", func(s *Spec) { s.Grid["method"] = []string{"fedprox", "scaffold"} }, "grid sets method: the sweep sets it per cell from its methods field"},
		{"grid seed", func(s *Spec) { s.Grid["seed"] = []string{"7", "8"} }, "grid sets seed: the sweep sets it per cell from its seeds field"},
		{"setting name", func(s *Spec) { s.Settings = []map[string]string{{"name": "x"}} }, "settings entry 1 sets name: the sweep sets it per cell"},
		{"setting out_dir", func(s *Spec) { s.Settings = []map[string]string{{"data.partition": "iid"}, {"out_dir": "x"}} }, "settings entry 2 sets out_dir: the sweep sets it per cell; set the sweep's out_dir"},
		{"grid overwrite", func(s *Spec) { s.Grid["overwrite"] = []string{"false"} }, "grid sets overwrite"},
		// Too many cells are refused before any is built; 8 fields x 10
		// values ran out of memory; 30 fields overflow an int.
		{"huge grid", func(s *Spec) { s.Grid = bigGrid(8, 10) }, "400000000 cells (2 methods x 2 seeds x 1 setting x 100000000 grid combinations): more than 10000;"},
		{"overflowing grid", func(s *Spec) { s.Grid = bigGrid(30, 10) }, "4000000000000000000000000000000 cells"},
		{"huge settings", func(s *Spec) {
			s.Grid = bigGrid(3, 10)
			s.Settings = make([]map[string]string, 3)
		}, "12000 cells (2 methods x 2 seeds x 3 settings x 1000 grid combinations)"},
		// Values that look alike once made a directory name.
		{"same directory", func(s *Spec) {
			s.Grid = map[string][]string{"data.split_dir": {"a/b", "a_b"}}
		}, "cells data.split_dir=a/b fedavg seed 1 and data.split_dir=a_b fedavg seed 1 would share the run directory"},
	} {
		s := writeSpec(t, t.TempDir())
		tc.edit(s)
		if _, err := s.Cells(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// bigGrid is a grid of n fields (that need not exist) of k values each.
func bigGrid(n, k int) map[string][]string {
	g := map[string][]string{}
	for i := range n {
		vals := make([]string, k)
		for j := range vals {
			vals[j] = fmt.Sprint(j)
		}
		g[fmt.Sprintf("f%02d", i)] = vals
	}
	return g
}

// TestCellDirs: values with separators or dots make one directory below
// out_dir, never a nested one or one outside it; the setting keeps them
// as given, the cell's config made absolute.
func TestCellDirs(t *testing.T) {
	for _, tc := range []struct{ value, dir string }{
		{"1", "data.split_dir=1"},
		{"../../../x", "data.split_dir=.._.._.._x"},
		{"/abs/path", "data.split_dir=_abs_path"},
		{`a\b`, "data.split_dir=a_b"},
		{"..", "data.split_dir=.."},
	} {
		out := t.TempDir()
		s := writeSpec(t, out)
		s.Grid = map[string][]string{"data.split_dir": {tc.value}}
		s.Methods, s.Seeds = []string{"fedavg"}, []uint64{1}
		cells, err := s.Cells()
		if err != nil {
			t.Fatalf("%s: %v", tc.value, err)
		}
		c := cells[0]
		if want := filepath.Join(out, tc.dir, "fedavg-seed1"); c.Dir != want || c.Config.OutDir != filepath.Dir(want) {
			t.Errorf("%s: dir %s, out_dir %s, want %s", tc.value, c.Dir, c.Config.OutDir, want)
		}
		// The config records the path made absolute, as simulate's does.
		abs, err := filepath.Abs(tc.value)
		if err != nil {
			t.Fatal(err)
		}
		if c.Setting != "data.split_dir="+tc.value || c.Config.Data.SplitDir != abs {
			t.Errorf("%s: setting %s, split_dir %s, want %s", tc.value, c.Setting, c.Config.Data.SplitDir, abs)
		}
	}
}

// TestRepeatedSeedRunsOnce is the reported case: seeds [1, 1] ran the
// cell twice and the summary counted it as two runs.
func TestRepeatedSeedRunsOnce(t *testing.T) {
	out := t.TempDir()
	s := writeSpec(t, out)
	s.Grid, s.Methods, s.Seeds = nil, []string{"fedavg"}, []uint64{1, 1}
	err := Run(context.Background(), s, Options{Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "seeds lists 1 twice") {
		t.Fatalf("error %v", err)
	}
	if entries, _ := os.ReadDir(out); len(entries) > 0 {
		t.Errorf("refused sweep wrote %d entries in out_dir", len(entries))
	}
}

func TestRunResumesAndSummarizes(t *testing.T) {
	out := t.TempDir()
	s := writeSpec(t, out)
	s.Grid = map[string][]string{"data.alpha": {"1"}}
	quiet := slog.New(slog.DiscardHandler)
	var progress strings.Builder
	if err := Run(context.Background(), s, Options{Logger: quiet, Progress: &progress}); err != nil {
		t.Fatal(err)
	}
	if strings.Count(progress.String(), "after 2 rounds") != 4 {
		t.Fatalf("progress:\n%s", progress.String())
	}
	// A second run finds every cell done.
	progress.Reset()
	if err := Run(context.Background(), s, Options{Logger: quiet, Progress: &progress}); err != nil {
		t.Fatal(err)
	}
	if strings.Count(progress.String(), "skipped") != 4 {
		t.Fatalf("rerun ran cells again:\n%s", progress.String())
	}
	md, err := os.ReadFile(filepath.Join(out, SummaryMarkdown))
	if err != nil {
		t.Fatal(err)
	}
	// One setting: no setting column, as fedcmi table prints it.
	if !strings.HasPrefix(string(md), "| method | runs |") || !strings.Contains(string(md), "\n| fedavg | 2 |") || !strings.Contains(string(md), "\n| fedcmi | 2 |") {
		t.Fatalf("summary.md:\n%s", md)
	}
	cells, _ := s.Cells()
	rows, err := Table(cells)
	if err != nil || len(rows) != 2 || rows[0].Runs != 2 || math.IsNaN(rows[0].Acc[0].Mean) || rows[0].Acc[0].Std < 0 {
		t.Fatalf("rows %+v, %v", rows, err)
	}
	// The table is the mean ± std of the cells' final rounds.
	var fused []float64
	for _, c := range cells[:2] {
		_, rounds, err := rundir.ReadMetrics(c.Dir)
		if err != nil {
			t.Fatal(err)
		}
		fused = append(fused, rounds[len(rounds)-1].Heads[0])
	}
	if m, sd, _ := metrics.MeanStd(fused); rows[0].Acc[0].Mean != m || rows[0].Acc[0].Std != sd {
		t.Errorf("fedavg fused %+v, want mean %v std %v of %v", rows[0].Acc[0], m, sd, fused)
	}
	csv, err := os.ReadFile(filepath.Join(out, SummaryCSV))
	if err != nil || !strings.HasPrefix(string(csv), "setting,method,runs,fused_mean,fused_std,") {
		t.Fatalf("summary.csv: %v\n%s", err, csv)
	}
}

// cancelOnFirst is a progress writer that cancels a sweep when the first
// cell finishes.
type cancelOnFirst struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	text   strings.Builder
}

func (w *cancelOnFirst) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if strings.Contains(string(p), "after 2 rounds") {
		w.cancel()
	}
	return w.text.Write(p)
}

// sameRounds compares two histories' measured values (not wall times).
func sameRounds(a, b []metrics.Round) bool {
	eq := func(x, y float64) bool { return x == y || math.IsNaN(x) && math.IsNaN(y) }
	eqs := func(x, y []float64) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if !eq(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Round != y.Round || !eqs(x.Heads, y.Heads) || !eqs(x.PerClass, y.PerClass) || !eq(x.Dominance, y.Dominance) ||
			!eq(x.FirstDominant, y.FirstDominant) || !eq(x.TrainLoss, y.TrainLoss) || x.Clients != y.Clients || x.Failures != y.Failures {
			return false
		}
	}
	return true
}

// TestParallelInterruptResume runs a sweep one cell at a time, and the same
// sweep two cells at a time with a crashed cell left over from before,
// interrupted after its first cell and resumed: every cell's results and
// the summary must be identical.
func TestParallelInterruptResume(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	ref := writeSpec(t, filepath.Join(t.TempDir(), "serial"))
	ref.Grid = map[string][]string{"data.alpha": {"1"}}
	if err := Run(context.Background(), ref, Options{Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	refCells, err := ref.Cells()
	if err != nil {
		t.Fatal(err)
	}

	par := *ref
	par.OutDir = filepath.Join(t.TempDir(), "parallel")
	par.Parallel = 2
	cells, err := par.Cells()
	if err != nil {
		t.Fatal(err)
	}
	// The last cell crashed in an earlier sweep: one bogus round, no summary.
	crashed := cells[len(cells)-1]
	r, err := rundir.Create(crashed.Dir, metrics.Schema{Heads: []string{"fused", "x", "y"}, Classes: []string{"0"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AppendRound(metrics.Round{Round: 1, Heads: []float64{0.123, 0, 0}, PerClass: []float64{0}}); err != nil {
		t.Fatal(err)
	}
	r.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &cancelOnFirst{cancel: cancel}
	err = Run(ctx, &par, Options{Logger: quiet, Progress: w})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted sweep: error %v, want context.Canceled\n%s", err, w.text.String())
	}
	done := 0
	for _, c := range cells {
		if rundir.Completed(c.Dir) {
			done++
		}
	}
	if done == 0 || done == len(cells) {
		t.Fatalf("%d of %d cells completed after the interruption, want some but not all:\n%s", done, len(cells), w.text.String())
	}
	// Summary of what completed is written also when stopped.
	if md, err := os.ReadFile(filepath.Join(par.OutDir, SummaryMarkdown)); err != nil || !strings.Contains(string(md), "\n| fedavg |") {
		t.Fatalf("summary after interruption: %v\n%s", err, md)
	}

	var progress strings.Builder
	if err := Run(context.Background(), &par, Options{Logger: quiet, Progress: &progress}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(progress.String(), "skipped"); got != done {
		t.Errorf("resume skipped %d cells, want the %d completed:\n%s", got, done, progress.String())
	}
	for i, c := range cells {
		_, want, err := rundir.ReadMetrics(refCells[i].Dir)
		if err != nil {
			t.Fatal(err)
		}
		_, got, err := rundir.ReadMetrics(c.Dir)
		if err != nil {
			t.Fatal(err)
		}
		if !rundir.Completed(c.Dir) || !sameRounds(got, want) {
			t.Errorf("cell %s: parallel results %+v differ from serial %+v", c.Dir, got, want)
		}
	}
	a, _ := os.ReadFile(filepath.Join(ref.OutDir, SummaryMarkdown))
	b, _ := os.ReadFile(filepath.Join(par.OutDir, SummaryMarkdown))
	if string(a) != string(b) || len(a) == 0 {
		t.Errorf("summaries differ:\nserial:\n%s\nparallel:\n%s", a, b)
	}
}

// TestShippedSweeps expands every sweep file in configs/ from another
// working directory: their base is relative to them.
func TestShippedSweeps(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("..", "configs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	files, err := filepath.Glob(filepath.Join(dir, "sweep-*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no sweep files: %v", err)
	}
	for _, f := range files {
		s, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if _, err := s.Cells(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestBaseRelativeToSweepFile: a sweep file's base is relative to the
// file's folder, from any working directory, and its cells are those the
// same base gave when named from the working directory (as it used to
// be), so that sweeps run before resume. A missing base names the sweep
// file and the base field.
func TestBaseRelativeToSweepFile(t *testing.T) {
	root := t.TempDir()
	sub := filepath.Join(root, "configs")
	if err := os.MkdirAll(filepath.Join(root, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(sub, "exp.yaml")
	// A path field, relative to the experiment file, made absolute.
	yml := "rounds: 2\nclients: 4\nclients_per_round: 2\ndata:\n  min_size: 5\n  cache_dir: ../cache\n  split_dir: ../data\n"
	if err := os.WriteFile(base, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	// The cells as a base named from the working directory gave them.
	t.Chdir(root)
	want, err := (&Spec{Base: filepath.Join("configs", "exp.yaml"), OutDir: "runs/x", Methods: []string{"fedavg"}, Seeds: []uint64{1}}).Cells()
	if err != nil {
		t.Fatal(err)
	}
	if want[0].Config.Data.SplitDir != filepath.Join(root, "data") {
		t.Fatalf("split_dir %s", want[0].Config.Data.SplitDir)
	}
	other := t.TempDir()
	for _, tc := range []struct {
		name, base, cwd string
		abs             bool // the sweep file given by its absolute path
	}{
		{"beside it", "exp.yaml", root, false},
		{"beside it, from elsewhere", "exp.yaml", other, true},
		{"up and down", "../configs/exp.yaml", other, true},
		{"from the sweep's folder", "./exp.yaml", sub, false},
		{"absolute", base, other, true},
	} {
		file := filepath.Join(sub, "sweep.yaml")
		if err := os.WriteFile(file, []byte("base: "+tc.base+"\nout_dir: runs/x\nmethods: [fedavg]\nseeds: [1]\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Chdir(tc.cwd)
		if !tc.abs {
			rel, err := filepath.Rel(tc.cwd, file)
			if err != nil {
				t.Fatal(err)
			}
			file = rel
		}
		s, err := Load(file)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		cells, err := s.Cells()
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		a, _ := cells[0].Config.YAML()
		b, _ := want[0].Config.YAML()
		if string(a) != string(b) {
			t.Errorf("%s: cell config\n%s\nwant\n%s", tc.name, a, b)
		}
	}

	t.Chdir(root)
	file := filepath.Join("configs", "sweep.yaml")
	if err := os.WriteFile(file, []byte("base: configs/exp.yaml\nout_dir: runs/x\nmethods: [fedavg]\nseeds: [1]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Cells()
	want0 := "sweep: " + file + ": base configs/exp.yaml: config: open " + filepath.Join("configs", "configs", "exp.yaml") + ": no such file or directory (base is relative to the sweep file's folder)"
	if err == nil || err.Error() != want0 {
		t.Errorf("missing base: error %v, want %s", err, want0)
	}
}

// TestLoadErrors: mistakes in a sweep file are reported as in an
// experiment file: with the file, the line and the closest name.
func TestLoadErrors(t *testing.T) {
	const head = "out_dir: runs/x\nmethods: [fedavg]\nseeds: [1]\n"
	for _, tc := range []struct {
		name, yml, want string
	}{
		{"unknown field", "method: [fedavg]\nseeds: [1]\n", "line 1: unknown field method (did you mean methods?)"},
		{"unknown field later", head + "grids:\n  data.alpha: [1]\n", "line 4: unknown field grids (did you mean grid?)"},
		{"far from any field", head + "colour: red\n", "line 4: unknown field colour"},
		{"grid key", head + "grid:\n  data.multi_ratio: [0.5]\n  data.alhpa: [1, 2]\n", "line 6: grid sets data.alhpa: no such experiment field (did you mean data.alpha?)"},
		{"settings key", head + "settings:\n  - {data.partition: iid}\n  - {data.partiton: dirichlet}\n", "line 6: settings entry 2 sets data.partiton: no such experiment field (did you mean data.partition?)"},
		{"grid sets method", head + "grid:\n  method: [fedprox]\n", "line 5: grid sets method: the sweep sets it per cell from its methods field"},
		{"grid value", head + "grid:\n  data.alpha:\n    - 1\n    - abc\n", `line 7: grid data.alpha: "abc" is not a number`},
		{"settings value", head + "settings:\n  - {clients: many}\n", `line 5: settings entry 1, clients: "many" is not an integer`},
		// Shapes are the decoder's to report, in plain words.
		{"grid as a list", head + "grid: [data.alpha]\n", "line 4: a list is not a section of key: value lines"},
	} {
		file := filepath.Join(t.TempDir(), "sweep.yaml")
		if err := os.WriteFile(file, []byte(tc.yml), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(file)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), file) {
			t.Errorf("%s: error %v, want one naming %s and saying %q", tc.name, err, file, tc.want)
		}
	}
	// Anchors, aliases and merges are followed, not reported.
	file := filepath.Join(t.TempDir(), "sweep.yaml")
	yml := head + "grid:\n  data.alpha: &a [1, 2]\n  data.multi_ratio: [0.5]\nsettings:\n  - &s {data.partition: iid}\n  - {<<: *s, data.min_size: 5}\n"
	if err := os.WriteFile(file, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(file); err != nil {
		t.Errorf("valid file: %v", err)
	}
}

// TestSummaryIsTable: summary.md and summary.csv are what fedcmi table
// prints for out_dir (report.Load, metrics.Compare): the same setting
// labels (the fields in which runs differ, none for one setting) and the
// same order of settings and methods, whatever the sweep file's order.
func TestSummaryIsTable(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings []map[string]string
		grid     map[string][]string
		methods  []string
		rows     []string // setting and method of each row
	}{
		{"settings with a shared value", []map[string]string{{"data.partition": "iid"}, {"data.partition": "dirichlet", "data.alpha": "1"}}, nil,
			[]string{"fedcmi", "fedavg"},
			[]string{"data.partition=dirichlet fedavg", "data.partition=dirichlet fedcmi", "data.partition=iid fedavg", "data.partition=iid fedcmi"}},
		{"one setting", nil, map[string][]string{"data.alpha": {"1"}}, []string{"fedcmi", "fedavg"},
			[]string{" fedavg", " fedcmi"}},
		{"default", nil, nil, []string{"fedavg"}, []string{" fedavg"}},
		// Cells apart only in fields that do not change results: they still
		// get rows of their own (report labels them by those fields).
		{"run-local grid", nil, map[string][]string{"tensorboard": {"false", "true"}}, []string{"fedavg"},
			[]string{"tensorboard=false fedavg", "tensorboard=true fedavg"}},
	} {
		out := t.TempDir()
		s := writeSpec(t, out)
		s.Settings, s.Grid, s.Methods, s.Seeds = tc.settings, tc.grid, tc.methods, []uint64{1}
		if err := Run(context.Background(), s, Options{Logger: slog.New(slog.DiscardHandler)}); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		cells, err := s.Cells()
		if err != nil {
			t.Fatal(err)
		}
		rows, err := Table(cells)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rows {
			got = append(got, r.Setting+" "+r.Method)
		}
		if !slices.Equal(got, tc.rows) {
			t.Errorf("%s: rows %q, want %q", tc.name, got, tc.rows)
		}
		runs, err := report.Load(out)
		if err != nil {
			t.Fatal(err)
		}
		want, err := metrics.Compare(report.Labeled(runs), metrics.PickFinal)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range summaryFiles {
			var table bytes.Buffer
			if err := f.write(&table, want); err != nil {
				t.Fatal(err)
			}
			summary, err := os.ReadFile(filepath.Join(out, f.name))
			if err != nil {
				t.Fatal(err)
			}
			if string(summary) != table.String() {
				t.Errorf("%s: %s\n%s\ndiffers from fedcmi table's\n%s", tc.name, f.name, summary, table.String())
			}
		}
	}
}

// TestChangedConfigRefused: after the sweep's config changed (rounds 2 ->
// 3), its completed cells are not taken as done: the sweep refuses, naming
// the cells and fields and the way out, and runs nothing; with
// RerunChanged it runs them again and the summary is the new one's. A
// change of a field that does not change results (parallel) reuses them.
func TestChangedConfigRefused(t *testing.T) {
	out := t.TempDir()
	s := writeSpec(t, out)
	s.Methods, s.Grid = []string{"fedavg"}, map[string][]string{"data.alpha": {"1"}}
	quiet := slog.New(slog.DiscardHandler)
	if err := Run(context.Background(), s, Options{Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	cells, err := s.Cells()
	if err != nil {
		t.Fatal(err)
	}
	summary := func() string {
		b, err := os.ReadFile(filepath.Join(out, SummaryMarkdown))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	before := summary()

	// A field that does not change results: every cell is reused.
	s.Parallel = 2
	var progress strings.Builder
	if err := Run(context.Background(), s, Options{Logger: quiet, Progress: &progress}); err != nil {
		t.Fatal(err)
	}
	if strings.Count(progress.String(), "skipped") != len(cells) {
		t.Fatalf("parallel changed: cells ran again:\n%s", progress.String())
	}

	yml := "rounds: 3\nclients: 4\nclients_per_round: 2\ndata:\n  min_size: 5\n  synthetic:\n    train_per_class: 30\n    test_per_class: 10\n"
	if err := os.WriteFile(s.Base, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	progress.Reset()
	err = Run(context.Background(), s, Options{Logger: quiet, Progress: &progress})
	if !errors.Is(err, ErrChangedCells) {
		t.Fatalf("changed rounds: error %v, want ErrChangedCells\n%s", err, progress.String())
	}
	for _, want := range []string{"rounds: 2 -> 3", cells[0].Dir, cells[1].Dir, "-rerun_changed", "(2 of 2)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "parallel") {
		t.Errorf("error %q names parallel", err)
	}
	for _, c := range cells {
		if _, rounds, err := rundir.ReadMetrics(c.Dir); err != nil || len(rounds) != 2 {
			t.Errorf("refused sweep touched %s: %d rounds, %v", c.Dir, len(rounds), err)
		}
	}
	if summary() != before {
		t.Error("refused sweep rewrote the summary")
	}

	progress.Reset()
	if err := Run(context.Background(), s, Options{Logger: quiet, Progress: &progress, RerunChanged: true}); err != nil {
		t.Fatal(err)
	}
	if strings.Count(progress.String(), "after 3 rounds") != len(cells) {
		t.Fatalf("rerun:\n%s", progress.String())
	}
	for _, c := range cells {
		if _, rounds, err := rundir.ReadMetrics(c.Dir); err != nil || len(rounds) != 3 || !rundir.Completed(c.Dir) {
			t.Errorf("%s after the rerun: %d rounds, %v", c.Dir, len(rounds), err)
		}
	}
	if summary() == before {
		t.Error("summary not rewritten after the rerun")
	}
	// And now they are the sweep's: skipped.
	progress.Reset()
	if err := Run(context.Background(), s, Options{Logger: quiet, Progress: &progress}); err != nil || strings.Count(progress.String(), "skipped") != len(cells) {
		t.Fatalf("after the rerun: %v\n%s", err, progress.String())
	}
}

// TestTableLeavesOutChangedCells: the summary holds only cells run with
// the sweep's current settings.
func TestTableLeavesOutChangedCells(t *testing.T) {
	s := writeSpec(t, t.TempDir())
	s.Methods, s.Grid = []string{"fedavg"}, map[string][]string{"data.alpha": {"1"}}
	if err := Run(context.Background(), s, Options{Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	cells, err := s.Cells()
	if err != nil {
		t.Fatal(err)
	}
	rows, err := Table(cells)
	if err != nil || len(rows) != 1 || rows[0].Runs != 2 {
		t.Fatalf("rows %+v, %v", rows, err)
	}
	cells[0].Config.Train.LR = 0.5
	rows, err = Table(cells)
	if err != nil || len(rows) != 1 || rows[0].Runs != 1 {
		t.Fatalf("with a changed cell: rows %+v, %v", rows, err)
	}
}

// TestRoundsPrefixed: with Rounds set, every round of every cell is
// written once, prefixed with its cell.
func TestRoundsPrefixed(t *testing.T) {
	s := writeSpec(t, t.TempDir())
	s.Methods, s.Grid = []string{"fedavg"}, map[string][]string{"data.alpha": {"1"}}
	s.Parallel = 2
	var rounds strings.Builder
	if err := Run(context.Background(), s, Options{Logger: slog.New(slog.DiscardHandler), Rounds: &rounds}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(rounds.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 2 cells x 2 rounds:\n%s", len(lines), rounds.String())
	}
	for _, want := range []string{"[1/2] data.alpha=1 fedavg seed 1: round   1/2", "[2/2] data.alpha=1 fedavg seed 2: round   2/2"} {
		if !strings.Contains(rounds.String(), want) {
			t.Errorf("no line %q in\n%s", want, rounds.String())
		}
	}
}

// cancelOnLine cancels when a line containing at is written.
type cancelOnLine struct {
	at     string
	cancel context.CancelFunc
}

func (w cancelOnLine) Write(p []byte) (int, error) {
	if strings.Contains(string(p), w.at) {
		w.cancel()
	}
	return len(p), nil
}

// TestInterruptedCellResumes: a cell interrupted after its second of four
// rounds continues from its checkpoint when the sweep runs again, to the
// results of an uninterrupted sweep.
func TestInterruptedCellResumes(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	ref := writeSpec(t, filepath.Join(t.TempDir(), "ref"))
	ref.Methods, ref.Seeds, ref.Grid = []string{"scaffold"}, []uint64{1}, nil
	yml := "rounds: 4\nclients: 4\nclients_per_round: 2\ndata:\n  min_size: 5\n  synthetic:\n    train_per_class: 30\n    test_per_class: 10\n"
	if err := os.WriteFile(ref.Base, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), ref, Options{Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	s := *ref
	s.OutDir = filepath.Join(t.TempDir(), "interrupted")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := Run(ctx, &s, Options{Logger: quiet, Rounds: cancelOnLine{"round   2/4", cancel}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted sweep: %v", err)
	}
	var progress strings.Builder
	if err := Run(context.Background(), &s, Options{Logger: quiet, Progress: &progress}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(progress.String(), "resuming from its checkpoint") {
		t.Errorf("progress:\n%s", progress.String())
	}
	refCells, _ := ref.Cells()
	cells, _ := s.Cells()
	_, want, err := rundir.ReadMetrics(refCells[0].Dir)
	if err != nil {
		t.Fatal(err)
	}
	_, got, err := rundir.ReadMetrics(cells[0].Dir)
	if err != nil {
		t.Fatal(err)
	}
	if !sameRounds(got, want) {
		t.Errorf("resumed cell %+v differs from the uninterrupted %+v", got, want)
	}
	raw, err := os.ReadFile(filepath.Join(cells[0].Dir, rundir.SummaryFile))
	if err != nil || !strings.Contains(string(raw), `"resumed_after_round": 2`) {
		t.Errorf("summary does not say the cell resumed after round 2: %v\n%s", err, raw)
	}
}

// syncBuffer is a strings.Builder safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestStatusLine: with a status line, the sweep draws the cells' progress,
// clears it before each cell's line and leaves the terminal clear.
func TestStatusLine(t *testing.T) {
	s := writeSpec(t, t.TempDir())
	s.Methods, s.Grid, s.Parallel = []string{"fedavg"}, map[string][]string{"data.alpha": {"1"}}, 2
	var term syncBuffer
	status := sim.NewStatusLine(&term, 200)
	if err := Run(context.Background(), s, Options{Logger: slog.New(slog.DiscardHandler), Progress: &term, Rounds: &term, Status: status}); err != nil {
		t.Fatal(err)
	}
	out := term.String()
	if !strings.HasPrefix(out, "\r0/2 done") || !strings.Contains(out, "after 2 rounds") {
		t.Errorf("terminal:\n%q", out)
	}
	// Every drawn status ("\r<text>\x1b[K") is followed by a redraw or
	// cleared ("\r\x1b[K") before other output, and none is left at the end.
	for i := 0; ; {
		k := strings.Index(out[i:], "\x1b[K")
		if k < 0 {
			break
		}
		k += i
		drawn := k > 0 && out[k-1] != '\r'
		if drawn && (k+3 == len(out) || out[k+3] != '\r') {
			t.Errorf("status line not cleared before %q", out[k+3:min(len(out), k+60)])
		}
		i = k + 3
	}
}

// writeNPZ writes an npz data set of two modalities "a" and "b" into dir:
// rows one-hot feature rows per split, labels cycling over three classes,
// row i's one at i+shift (so that another shift is other data of the same
// shape).
func writeNPZ(t *testing.T, dir string, rows, shift int) {
	t.Helper()
	for _, name := range []string{"train.npz", "test.npz"} {
		feats := make([][]float32, rows)
		labels := make([]int64, rows)
		for i := range feats {
			feats[i] = make([]float32, 16)
			feats[i][(i+shift)%16] = 1
			labels[i] = int64(i % 3)
		}
		if err := npz.Write(filepath.Join(dir, name), map[string]any{"a.npy": feats, "b.npy": feats, "labels.npy": labels}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestChangedDataRefused: a completed cell whose data changed since it ran
// (the same config, the data folder's files replaced) is refused like a
// changed config, naming the data folder; a sweep stopped before running
// it again leaves it out of the summary; -rerun_changed runs it again, and
// then it is skipped, also once the data folder is gone.
func TestChangedDataRefused(t *testing.T) {
	data := t.TempDir()
	writeNPZ(t, data, 60, 0)
	out := t.TempDir()
	base := filepath.Join(t.TempDir(), "base.yaml")
	yml := fmt.Sprintf("rounds: 2\nclients: 3\nclients_per_round: 3\ndata:\n  source: npz\n  dir: %s\n  modalities: [a, b]\n  min_size: 5\n", data)
	if err := os.WriteFile(base, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Spec{Base: base, OutDir: out, Methods: []string{"fedavg"}, Seeds: []uint64{1, 2}}
	quiet := slog.New(slog.DiscardHandler)
	if err := Run(context.Background(), s, Options{Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	var progress strings.Builder
	if err := Run(context.Background(), s, Options{Logger: quiet, Progress: &progress}); err != nil || strings.Count(progress.String(), "skipped") != 2 {
		t.Fatalf("the same data: %v\n%s", err, progress.String())
	}
	summary := filepath.Join(out, SummaryMarkdown)
	before, err := os.ReadFile(summary)
	if err != nil {
		t.Fatal(err)
	}

	writeNPZ(t, data, 60, 1)
	err = Run(context.Background(), s, Options{Logger: quiet})
	if !errors.Is(err, ErrChangedCells) {
		t.Fatalf("other data: %v, want ErrChangedCells", err)
	}
	for _, want := range []string{"ran on data of digest", "data.dir " + data, "(2 of 2)", "-rerun_changed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if after, _ := os.ReadFile(summary); !bytes.Equal(after, before) {
		t.Error("a refused sweep rewrote the summary")
	}

	// Stopped before any cell ran again (the npz data are read without
	// looking at the context): the summary leaves both out.
	stopped, stop := context.WithCancel(context.Background())
	stop()
	if err := Run(stopped, s, Options{Logger: quiet, RerunChanged: true}); !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped rerun: %v, want context.Canceled", err)
	}
	if b, err := os.ReadFile(summary); err != nil || strings.Contains(string(b), "fedavg") {
		t.Errorf("summary after a stopped rerun: %v\n%s", err, b)
	}

	progress.Reset()
	if err := Run(context.Background(), s, Options{Logger: quiet, RerunChanged: true, Progress: &progress}); err != nil || strings.Count(progress.String(), "after 2 rounds") != 2 {
		t.Fatalf("rerun: %v\n%s", err, progress.String())
	}
	progress.Reset()
	if err := Run(context.Background(), s, Options{Logger: quiet, Progress: &progress}); err != nil || strings.Count(progress.String(), "skipped") != 2 {
		t.Fatalf("after the rerun: %v\n%s", err, progress.String())
	}

	// The data folder gone: the finished cells cannot be checked, and are
	// kept (a warning says so), so that the summary can still be made.
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	progress.Reset()
	if err := Run(context.Background(), s, Options{Logger: quiet, Progress: &progress}); err != nil || strings.Count(progress.String(), "skipped") != 2 {
		t.Fatalf("the data gone: %v\n%s", err, progress.String())
	}
}
