package report

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/rundir"
)

// Run is one run directory's results.
type Run struct {
	// Dir is the run directory.
	Dir string
	// Config is the run's resolved configuration (config.yaml).
	Config config.Config
	// Completed tells whether every round ran (summary.json).
	Completed bool
	// Schema and Rounds are the run's history (metrics.jsonl).
	Schema metrics.Schema
	Rounds []metrics.Round
	// Setting names the configuration fields in which the run differs from
	// some other loaded run, besides method and seed ("data.alpha=1");
	// "" when all loaded runs share one setting. Load sets it.
	Setting string
}

// Method is the run's federated method.
func (r *Run) Method() string { return r.Config.Method }

// notSetting reports whether the field at path makes no setting: the
// method and seed (the groups and their members) and what does not change
// results (config.RunLocal).
func notSetting(path string) bool {
	return path == "method" || path == "seed" || slices.Contains(config.RunLocal, path)
}

// unnamed reports whether the field at path is not part of a setting
// when the fields that do not change results are needed to keep runs
// apart: the method and seed, and the run's own name and place (which
// differ for every run, so that only one experiment run twice is told
// apart by them).
func unnamed(path string) bool {
	switch path {
	case "method", "seed", "name", "out_dir", "overwrite":
		return true
	}
	return false
}

// Load reads runs: each path is a run directory (one holding
// metrics.jsonl) or a directory searched for run directories at any depth,
// such as a sweep's out_dir. Runs are returned in the order of the paths,
// those found below one path in lexical order, each once, then sorted by
// SortRuns, with Setting set. Runs without any round are left out, and so
// is a path that holds a report (HTMLFile) and no run: the output of an
// earlier report, which a glob such as runs/*/ matches. It returns an
// error naming the file for an unreadable run, and when no run is found.
func Load(paths ...string) ([]*Run, error) {
	var dirs []string
	seen := map[string]bool{}
	for _, p := range paths {
		found, err := findRuns(p)
		if errors.Is(err, errNoRun) && len(paths) > 1 {
			if _, serr := os.Stat(filepath.Join(p, HTMLFile)); serr == nil {
				continue
			}
		}
		if err != nil {
			return nil, err
		}
		for _, d := range found {
			abs, err := filepath.Abs(d)
			if err != nil {
				return nil, fmt.Errorf("report: %w", err)
			}
			if !seen[abs] {
				seen[abs] = true
				dirs = append(dirs, d)
			}
		}
	}
	var runs []*Run
	for _, d := range dirs {
		r, err := LoadRun(d)
		if err != nil {
			return nil, err
		}
		if len(r.Rounds) > 0 {
			runs = append(runs, r)
		}
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("report: no run with results in %s", strings.Join(paths, ", "))
	}
	labelSettings(runs)
	SortRuns(runs)
	return runs, nil
}

// Finished splits runs into those that completed all their rounds
// (summary.json says so) and the others, stopped or still running, which
// a comparison at the final round would mix in at an earlier round. The
// finished ones get their Setting labels again, among themselves. It
// returns an error naming the unfinished runs if none finished.
func Finished(runs []*Run) (done, unfinished []*Run, err error) {
	for _, r := range runs {
		if r.Completed {
			done = append(done, r)
		} else {
			unfinished = append(unfinished, r)
		}
	}
	if len(done) == 0 {
		return nil, unfinished, fmt.Errorf("report: no finished run among %s (stopped or still running)", Dirs(unfinished))
	}
	labelSettings(done)
	SortRuns(done)
	return done, unfinished, nil
}

// Dirs lists the directories of runs, comma-separated.
func Dirs(runs []*Run) string {
	dirs := make([]string, len(runs))
	for i, r := range runs {
		dirs[i] = r.Dir
	}
	return strings.Join(dirs, ", ")
}

// findRuns returns p if it is a run directory, else the run directories
// below it in lexical order.
func findRuns(p string) ([]string, error) {
	if _, err := os.Stat(filepath.Join(p, rundir.MetricsJSONL)); err == nil {
		return []string{p}, nil
	}
	if _, err := os.Stat(p); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	var dirs []string
	err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == rundir.MetricsJSONL {
			dirs = append(dirs, filepath.Dir(path))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("report: search %s: %w", p, err)
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("report: %s %w (none has %s)", p, errNoRun, rundir.MetricsJSONL)
	}
	return dirs, nil
}

// errNoRun is findRuns' error for a folder without any run directory.
var errNoRun = errors.New("holds no run directory")

// LoadRun reads one run directory: config.yaml, metrics.jsonl and
// summary.json (whose absence means not completed). A round number outside
// 1..config.MaxRounds is an error naming metrics.jsonl: no run has one.
func LoadRun(dir string) (*Run, error) {
	r := &Run{Dir: dir, Config: config.Default()}
	// A run's config.yaml is a record: its paths are kept as written, not
	// taken relative to the run directory as an experiment file's are.
	path := filepath.Join(dir, rundir.ConfigFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("report: config: %w", err)
	}
	err = r.Config.Load(f, path)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	if r.Schema, r.Rounds, err = rundir.ReadMetrics(dir); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	// Figures place rounds on a float axis; a corrupt number (negative,
	// or near 2^63) would only draw nonsense.
	for i, m := range r.Rounds {
		if m.Round < 1 || m.Round > config.MaxRounds {
			return nil, fmt.Errorf("report: %s: round %d (record %d) outside 1..%d",
				filepath.Join(dir, rundir.MetricsJSONL), m.Round, i+1, config.MaxRounds)
		}
	}
	r.Completed = rundir.Completed(dir)
	return r, nil
}

// labelSettings sets each run's Setting to the fields, in declaration
// order, whose values differ among runs. Fields that do not change results
// (backend, parallel, tensorboard, data.cache_dir) count only when
// leaving them out would put two runs of one method and seed in one group
// (a sweep over backends, say), which would count that seed twice; the
// folder a run was found in, then its directory's name, only when even
// those leave two runs in a group (one experiment run twice).
func labelSettings(runs []*Run) {
	fields := config.Fields(&runs[0].Config)
	values := make([][]string, len(runs))
	for i, r := range runs {
		// A path recorded relative (a sweep before 2026-12-06 kept the
		// paths of flags as given) names the folder it names from here,
		// as a resume takes it.
		c := r.Config
		_ = c.AbsPaths() // fails only without a working directory, changing nothing
		for _, f := range config.Fields(&c) {
			values[i] = append(values[i], f.Default)
		}
	}
	label := func(skip func(path string) bool) {
		var differ []int
		for f, field := range fields {
			if skip(field.Path) {
				continue
			}
			for _, v := range values[1:] {
				if v[f] != values[0][f] {
					differ = append(differ, f)
					break
				}
			}
		}
		for i, r := range runs {
			parts := make([]string, len(differ))
			for k, f := range differ {
				parts[k] = fields[f].Path + "=" + values[i][f]
			}
			r.Setting = strings.Join(parts, ",")
		}
	}
	label(notSetting)
	if twiceInAGroup(runs) {
		label(unnamed)
	}
	if !twiceInAGroup(runs) {
		return
	}
	// The same experiment run twice: apart, so that no group counts a
	// seed twice. First every run of a folder that repeats a run of an
	// earlier folder, all its seeds together (a second copy of a sweep);
	// then, within a folder, every run that repeats an earlier one, by
	// its directory's name (a retry). The folder is where the run was
	// found, not the out_dir it recorded: copies made on other machines
	// may record one out_dir. Runs in the order given; the first keep
	// their settings.
	add := func(r *Run, part string) {
		if r.Setting != "" {
			part = r.Setting + "," + part
		}
		r.Setting = part
	}
	// The run's directory made absolute (and clean: a path typed with a
	// trailing slash, or ".", names the same run).
	abs := func(r *Run) string {
		if a, err := filepath.Abs(r.Dir); err == nil {
			return a
		}
		return filepath.Clean(r.Dir)
	}
	folder := func(r *Run) string { return filepath.Dir(abs(r)) }
	firstDir := map[groupKey]string{}
	apartDirs := map[string]bool{}
	for _, r := range runs {
		k := keyOf(r)
		if d, ok := firstDir[k]; !ok {
			firstDir[k] = folder(r)
		} else if d != folder(r) {
			apartDirs[folder(r)] = true
		}
	}
	for _, r := range runs {
		if apartDirs[folder(r)] {
			add(r, "folder="+folder(r))
		}
	}
	seen := map[groupKey]bool{}
	for _, r := range runs {
		k := keyOf(r)
		if seen[k] {
			add(r, "run="+filepath.Base(abs(r)))
			continue
		}
		seen[k] = true
	}
}

// groupKey is what a group holds one run of: a setting, a method, a seed.
type groupKey struct {
	setting, method string
	seed            uint64
}

// keyOf is r's groupKey.
func keyOf(r *Run) groupKey { return groupKey{r.Setting, r.Method(), r.Config.Seed} }

// twiceInAGroup reports whether two of runs share a setting, method and
// seed.
func twiceInAGroup(runs []*Run) bool {
	seen := make(map[groupKey]bool, len(runs))
	for _, r := range runs {
		k := keyOf(r)
		if seen[k] {
			return true
		}
		seen[k] = true
	}
	return false
}

// SortRuns orders runs by setting (in the order settings first appear),
// then by method (MethodOrder), then by seed, keeping the order otherwise.
func SortRuns(runs []*Run) {
	first := map[string]int{}
	for i, r := range runs {
		if _, ok := first[r.Setting]; !ok {
			first[r.Setting] = i
		}
	}
	slices.SortStableFunc(runs, func(a, b *Run) int {
		return cmp.Or(cmp.Compare(first[a.Setting], first[b.Setting]),
			MethodOrder(a.Method(), b.Method()), cmp.Compare(a.Config.Seed, b.Config.Seed))
	})
}

// MethodOrder compares method names for tables and legends: the paper's
// baselines fedavg-fused, fedavg and fedprox first, then other methods alphabetically,
// then fedcmi, then its ablations (fedcmi-*) alphabetically.
func MethodOrder(a, b string) int {
	rank := func(m string) int {
		switch {
		case m == "fedavg-fused":
			return -1
		case m == "fedavg":
			return 0
		case m == "fedprox":
			return 1
		case m == "fedcmi":
			return 3
		case strings.HasPrefix(m, "fedcmi-"):
			return 4
		}
		return 2
	}
	return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b))
}

// Labeled returns runs in the form metrics.Compare takes.
func Labeled(runs []*Run) []metrics.Labeled {
	out := make([]metrics.Labeled, len(runs))
	for i, r := range runs {
		out[i] = metrics.Labeled{Name: r.Dir, Setting: r.Setting, Method: r.Method(), Schema: r.Schema, Rounds: r.Rounds}
	}
	return out
}
