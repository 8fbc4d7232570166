package report

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/rundir"
)

// fixture describes one run directory made for a test.
type fixture struct {
	dir       string // relative to the test's root
	method    string
	seed      uint64
	alpha     float64
	completed bool
	// fused, aOnly, vOnly, dom per round; per class: fused - 0.1, fused + 0.1
	fused, aOnly, vOnly, dom []float64
}

var fixtureSchema = metrics.Schema{Heads: []string{"fused", "audio_only", "visual_only", "audio_both", "visual_both"}, Classes: []string{"0", "1"}}

// writeRun writes f's run directory below root with the rundir and
// metrics packages, the way a simulation does.
func writeRun(t *testing.T, root string, f fixture) string {
	t.Helper()
	dir := filepath.Join(root, f.dir)
	cfg := config.Default()
	cfg.Method, cfg.Seed, cfg.Data.Alpha, cfg.Rounds = f.method, f.seed, f.alpha, 3
	cfg.OutDir, cfg.Name = filepath.Dir(dir), filepath.Base(dir)
	r, err := rundir.Create(dir, fixtureSchema, false)
	if err != nil {
		t.Fatal(err)
	}
	y, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile(rundir.ConfigFile, y); err != nil {
		t.Fatal(err)
	}
	for i := range f.fused {
		m := metrics.Round{Round: i + 1, Heads: []float64{f.fused[i], f.aOnly[i], f.vOnly[i], f.aOnly[i], f.vOnly[i]},
			PerClass: []float64{f.fused[i] - 0.1, f.fused[i] + 0.1}, Dominance: f.dom[i], FirstDominant: 1,
			TrainLoss: 1 / float64(i+1), Clients: 2, Seconds: 1, Elapsed: float64(i + 1)}
		if err := r.AppendRound(m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Finish(map[string]any{"completed": f.completed, "method": f.method}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeRawRun writes a run directory below root holding a config.yaml of
// method and alpha and jsonl as its metrics.jsonl, for histories that
// rundir would not write.
func writeRawRun(t *testing.T, root, dir, method string, alpha float64, jsonl string) string {
	t.Helper()
	dir = filepath.Join(root, dir)
	cfg := config.Default()
	cfg.Method, cfg.Data.Alpha = method, alpha
	cfg.OutDir, cfg.Name = filepath.Dir(dir), filepath.Base(dir)
	y, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{rundir.ConfigFile: y, rundir.MetricsJSONL: []byte(jsonl)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestLoadRoundRange: a round number no run can have is an error naming
// the file, not a figure with an axis to 2^63 (or a loop over every round
// below it).
func TestLoadRoundRange(t *testing.T) {
	for _, tc := range []struct {
		name, jsonl, want string
	}{
		{"max int", `{"round":9223372036854775807,"accuracy":{"fused":0.5}}`, "round 9223372036854775807 (record 1) outside 1..1000000"},
		{"above MaxRounds", `{"round":1}` + "\n" + `{"round":1000001}`, "round 1000001 (record 2) outside"},
		{"zero", `{"round":0}`, "round 0 (record 1) outside"},
		{"negative", `{"round":-3}`, "round -3 (record 1) outside"},
		{"MaxRounds", `{"round":1}` + "\n" + `{"round":1000000}`, ""},
	} {
		dir := writeRawRun(t, t.TempDir(), "run", "fedavg", 1, tc.jsonl+"\n")
		_, err := LoadRun(dir)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), filepath.Join(dir, rundir.MetricsJSONL)) {
			t.Errorf("%s: error %v, want one naming %s and containing %q", tc.name, err, rundir.MetricsJSONL, tc.want)
		}
	}
}

// sweepFixture is a small sweep: two settings (alpha 1 and 100), fedcmi
// and fedavg, two seeds each, three rounds, and a run without rounds.
func sweepFixture(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range []fixture{
		{dir: "sw/a1/fedcmi-seed1", method: "fedcmi", seed: 1, alpha: 1, completed: true,
			fused: []float64{0.5, 0.6, 0.7}, aOnly: []float64{0.5, 0.5, 0.6}, vOnly: []float64{0.2, 0.3, 0.4}, dom: []float64{2, 1.5, math.NaN()}},
		{dir: "sw/a1/fedcmi-seed2", method: "fedcmi", seed: 2, alpha: 1, completed: true,
			fused: []float64{0.4, 0.8, 0.5}, aOnly: []float64{0.4, 0.7, 0.7}, vOnly: []float64{0.1, 0.2, 0.2}, dom: []float64{3, 2.5, 1}},
		{dir: "sw/a1/fedavg-seed1", method: "fedavg", seed: 1, alpha: 1, completed: true,
			fused: []float64{0.3, 0.4, 0.6}, aOnly: []float64{0.3, 0.4, 0.5}, vOnly: []float64{0.1, 0.1, 0.3}, dom: []float64{4, 3, 2}},
		{dir: "sw/a1/fedavg-seed2", method: "fedavg", seed: 2, alpha: 1, completed: true,
			fused: []float64{0.2, 0.5, 0.4}, aOnly: []float64{0.2, 0.4, 0.3}, vOnly: []float64{0.1, 0.2, 0.1}, dom: []float64{5, 4, 3}},
		{dir: "sw/a100/fedavg-seed1", method: "fedavg", seed: 1, alpha: 100, completed: false,
			fused: []float64{0.9, 0.95}, aOnly: []float64{0.8, 0.9}, vOnly: []float64{0.5, 0.6}, dom: []float64{1, 1}},
		{dir: "sw/a100/fedcmi-seed1", method: "fedcmi", seed: 1, alpha: 100, completed: false},
	} {
		writeRun(t, root, f)
	}
	return filepath.Join(root, "sw")
}

func TestLoad(t *testing.T) {
	sw := sweepFixture(t)
	runs, err := Load(sw, filepath.Join(sw, "a1", "fedavg-seed2")) // the second path repeats a run
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range runs {
		rel, _ := filepath.Rel(sw, r.Dir)
		got = append(got, r.Setting+" "+r.Method()+" "+rel)
	}
	want := []string{
		"data.alpha=1 fedavg a1/fedavg-seed1", "data.alpha=1 fedavg a1/fedavg-seed2",
		"data.alpha=1 fedcmi a1/fedcmi-seed1", "data.alpha=1 fedcmi a1/fedcmi-seed2",
		"data.alpha=100 fedavg a100/fedavg-seed1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("runs\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !runs[0].Completed || runs[4].Completed || len(runs[0].Rounds) != 3 || runs[0].Rounds[2].Heads[0] != 0.6 {
		t.Errorf("first run %+v, last %+v", runs[0], runs[4])
	}
	// One setting: no label.
	one, err := Load(filepath.Join(sw, "a1"))
	if err != nil || len(one) != 4 || one[0].Setting != "" {
		t.Errorf("one setting: %v %+v", err, one)
	}
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(sw, "nope"), "nope"},
		{filepath.Join(sw, "a100", "fedcmi-seed1"), "holds no run directory"}, // interrupted before its first round
		{t.TempDir(), "holds no run directory"},
	} {
		if _, err := Load(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%s): error %v, want one containing %q", tc.path, err, tc.want)
		}
	}
	// A report's output among the paths (runs/*/ after report wrote
	// runs/report) is left out; alone, or without its report.html, it is
	// still a folder without runs.
	out := filepath.Join(filepath.Dir(sw), "report")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(filepath.Join(sw, "a1"), out); err == nil || !strings.Contains(err.Error(), "holds no run directory") {
		t.Errorf("a folder without runs or report: %v, want refused", err)
	}
	if err := os.WriteFile(filepath.Join(out, HTMLFile), []byte("<html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if runs, err := Load(filepath.Join(sw, "a1"), out); err != nil || len(runs) != 4 {
		t.Errorf("with a report folder among the paths: %d runs, %v; want the 4", len(runs), err)
	}
	if _, err := Load(out); err == nil {
		t.Error("a report folder alone: no error")
	}

	bad := filepath.Join(sw, "a1", "fedavg-seed1", rundir.ConfigFile)
	if err := os.WriteFile(bad, []byte("rounds: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(sw); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad config: error %v, want one naming %s", err, bad)
	}
}

func TestMethodOrder(t *testing.T) {
	ms := []string{"fedcmi-noinf", "pmr", "fedcmi", "scaffold", "fedprox", "fedavg", "fedcmi-notemp", "harmony"}
	slices.SortFunc(ms, MethodOrder)
	want := []string{"fedavg", "fedprox", "harmony", "pmr", "scaffold", "fedcmi", "fedcmi-noinf", "fedcmi-notemp"}
	if !slices.Equal(ms, want) {
		t.Errorf("order %v, want %v", ms, want)
	}
}

// TestLoadSameExperimentTwice: one experiment run twice puts its later
// copy in a group of its own, so that no group counts a seed twice, and
// leaves every other run where it was: two copies of a sweep (two
// out_dirs) are told apart by out_dir, each keeping its seeds together; a
// retry under another name in one folder by name, the other methods and
// seeds staying in one group.
func TestLoadSameExperimentTwice(t *testing.T) {
	root := t.TempDir()
	curve := []float64{0.5, 0.6, 0.7}
	run := func(dir, method string, seed uint64) fixture {
		return fixture{dir: dir, method: method, seed: seed, alpha: 1, completed: true, fused: curve, aOnly: curve, vOnly: curve, dom: curve}
	}
	for _, f := range []fixture{
		run("copy1/fedcmi-seed1", "fedcmi", 1), run("copy1/fedcmi-seed2", "fedcmi", 2),
		run("copy2/fedcmi-seed1", "fedcmi", 1), run("copy2/fedcmi-seed2", "fedcmi", 2),
		run("dup/a", "fedcmi", 1), run("dup/retry", "fedcmi", 1), run("dup/c", "fedcmi", 2),
		run("dup/d", "fedavg", 1), run("dup/e", "fedavg", 2),
	} {
		writeRun(t, root, f)
	}
	groups := func(runs []*Run) map[string][]string {
		out := map[string][]string{}
		for _, r := range runs {
			out[r.Setting] = append(out[r.Setting], filepath.Base(r.Dir))
		}
		return out
	}
	slash := string(filepath.Separator)
	for _, paths := range [][]string{
		{filepath.Join(root, "copy1"), filepath.Join(root, "copy2")},
		// The second copy's run directories typed with trailing slashes.
		{filepath.Join(root, "copy1"), filepath.Join(root, "copy2", "fedcmi-seed1") + slash, filepath.Join(root, "copy2", "fedcmi-seed2") + slash},
	} {
		copies, err := Load(paths...)
		if err != nil {
			t.Fatal(err)
		}
		if g := groups(copies); twiceInAGroup(copies) || len(g) != 2 || len(g[""]) != 2 || len(g["folder="+filepath.Join(root, "copy2")]) != 2 {
			t.Errorf("two copies of a sweep (%v): groups %v, want two of two runs told apart by their folder", paths, g)
		}
	}
	dup, err := Load(filepath.Join(root, "dup"))
	if err != nil {
		t.Fatal(err)
	}
	if g := groups(dup); twiceInAGroup(dup) || len(g) != 2 || len(g[""]) != 4 || !slices.Equal(g["run=retry"], []string{"retry"}) {
		t.Errorf("a retry under another name: groups %v, want the retry alone and the other four together", g)
	}
	once, err := Load(filepath.Join(root, "copy1"))
	if err != nil || len(groups(once)) != 1 || once[0].Setting != "" {
		t.Errorf("one experiment, two seeds: %v, groups %v", err, groups(once))
	}

	// A second copy with a retry in it, and an uneven copy (a seed more):
	// the copy's runs stay together, the retry apart from them.
	for _, f := range []fixture{
		run("x/fedcmi-seed1", "fedcmi", 1), run("y/fedcmi-seed1", "fedcmi", 1), run("y/retry", "fedcmi", 1),
		run("u/fedcmi-seed1", "fedcmi", 1), run("u/fedcmi-seed2", "fedcmi", 2),
		run("w/fedcmi-seed1", "fedcmi", 1), run("w/fedcmi-seed2", "fedcmi", 2), run("w/fedcmi-seed3", "fedcmi", 3),
	} {
		writeRun(t, root, f)
	}
	retry, err := Load(filepath.Join(root, "x"), filepath.Join(root, "y"))
	if err != nil {
		t.Fatal(err)
	}
	if g := groups(retry); twiceInAGroup(retry) || len(g) != 3 {
		t.Errorf("a copy with a retry: groups %v, want three of one run", g)
	}
	// Three copies made on machines that recorded one out_dir: told apart
	// by the folder each was found in (the last given as its run
	// directory, with a trailing slash).
	for _, m := range []string{"m1", "m2", "m3"} {
		d := writeRun(t, root, run(m+"/fedcmi-seed1", "fedcmi", 1))
		r, err := LoadRun(d)
		if err != nil {
			t.Fatal(err)
		}
		r.Config.OutDir = "/scratch/runs"
		y, err := r.Config.YAML()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, rundir.ConfigFile), y, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	three, err := Load(filepath.Join(root, "m1"), filepath.Join(root, "m2"), filepath.Join(root, "m3", "fedcmi-seed1")+string(filepath.Separator))
	if err != nil {
		t.Fatal(err)
	}
	if g := groups(three); twiceInAGroup(three) || len(g) != 3 {
		t.Errorf("three copies recording one out_dir: groups %v, want three", g)
	}
	uneven, err := Load(filepath.Join(root, "u"), filepath.Join(root, "w"))
	if err != nil {
		t.Fatal(err)
	}
	if g := groups(uneven); twiceInAGroup(uneven) || len(g) != 2 || len(g[""]) != 2 || len(g["folder="+filepath.Join(root, "w")]) != 3 {
		t.Errorf("an uneven copy: groups %v, want the copy's three runs together", g)
	}
}

// TestLoadRelativePaths: a run that recorded a path relative (a sweep
// before 2026-12-06 kept the paths of flags as given) is in one setting
// with runs that recorded it made absolute.
func TestLoadRelativePaths(t *testing.T) {
	root := t.TempDir()
	t.Chdir(root)
	curve := []float64{0.5, 0.6, 0.7}
	for i, dir := range []string{"data", filepath.Join(root, "data")} {
		d := writeRun(t, root, fixture{dir: fmt.Sprintf("runs/fedcmi-seed%d", i+1), method: "fedcmi", seed: uint64(i + 1), alpha: 1, completed: true, fused: curve, aOnly: curve, vOnly: curve, dom: curve})
		r, err := LoadRun(d)
		if err != nil {
			t.Fatal(err)
		}
		r.Config.Data.Dir = dir
		y, err := r.Config.YAML()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, rundir.ConfigFile), y, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runs, err := Load(filepath.Join(root, "runs"))
	if err != nil || runs[0].Setting != "" || runs[1].Setting != "" {
		t.Errorf("data.dir relative and absolute: %v, settings %q and %q; want one setting", err, runs[0].Setting, runs[1].Setting)
	}
}
