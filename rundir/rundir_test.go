package rundir

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fedcmi/fedcmi/metrics"
)

func schema() metrics.Schema {
	return metrics.Schema{Heads: []string{"fused", "audio_only", "visual_only"}, Classes: []string{"0", "1"}}
}

func round(n int, fused, dom float64) metrics.Round {
	return metrics.Round{Round: n, Heads: []float64{fused, 0.25, 0.125}, PerClass: []float64{0.5, math.NaN()},
		Dominance: dom, FirstDominant: 0.5, TrainLoss: 1, Clients: 2, Seconds: 1, Elapsed: float64(n) + 0.5}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dirNames lists dir, to check that no temporary file is left behind.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestCreate(t *testing.T) {
	tests := []struct {
		name      string
		existing  map[string]string // files present before Create
		overwrite bool
		wantErr   error
		wantGone  []string // files Create must remove
		wantKept  []string // files Create must leave
	}{
		{name: "new nested dir"},
		{name: "dir without results", existing: map[string]string{ConfigFile: "a: 1\n", MetricsCSV: "stale"}, wantKept: []string{ConfigFile, MetricsCSV}},
		{name: "refuses results", existing: map[string]string{MetricsJSONL: "{}\n"}, wantErr: ErrExists, wantKept: []string{MetricsJSONL}},
		{name: "overwrite", overwrite: true,
			existing: map[string]string{MetricsJSONL: "{}\n", MetricsCSV: "x\n", SummaryFile: "{}", ModelFile: "m", ConfigFile: "c"},
			wantGone: []string{MetricsJSONL, MetricsCSV, SummaryFile}, wantKept: []string{ModelFile, ConfigFile}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a", "b")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, body := range tc.existing {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			r, err := Create(dir, schema(), tc.overwrite)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Create err = %v, want %v", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if r.Dir() != dir {
				t.Errorf("Dir = %q, want %q", r.Dir(), dir)
			}
			for _, name := range tc.wantGone {
				if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s still there (%v)", name, err)
				}
			}
			for _, name := range tc.wantKept {
				if got := readFile(t, filepath.Join(dir, name)); got != tc.existing[name] {
					t.Errorf("%s = %q, want %q", name, got, tc.existing[name])
				}
			}
		})
	}
}

func TestCreateErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		s    metrics.Schema
		want string
	}{
		{"empty dir", "", schema(), "empty directory name"},
		{"under a file", filepath.Join(file, "run"), schema(), "rundir: create "},
		{"bad schema", t.TempDir(), metrics.Schema{Heads: []string{"a", "a"}}, "duplicate head name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Create(tc.dir, tc.s, false)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "rundir: ") {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	r, err := Create(dir, schema(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile(ConfigFile, []byte("old\n")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	tests := []struct {
		name    string
		write   func(io.Writer) error
		wantErr error
		want    string
	}{
		// More than the 64 KiB buffer reaches the temporary file before the failure.
		{"fails midway", func(w io.Writer) error {
			if _, err := w.Write([]byte(strings.Repeat("x", 100<<10))); err != nil {
				return err
			}
			return boom
		}, boom, "old\n"},
		{"fails at once", func(io.Writer) error { return boom }, boom, "old\n"},
		{"succeeds", func(w io.Writer) error {
			_, err := io.WriteString(w, "new\n")
			return err
		}, nil, "new\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := r.WriteAtomic(ConfigFile, tc.write)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if got := readFile(t, filepath.Join(dir, ConfigFile)); got != tc.want {
				t.Errorf("content = %q, want %q", got, tc.want)
			}
			if names := dirNames(t, dir); len(names) != 1 || names[0] != ConfigFile {
				t.Errorf("directory holds %q, want only %s", names, ConfigFile)
			}
		})
	}
	st, err := os.Stat(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v, want 0644", st.Mode().Perm())
	}
}

func TestWriteAtomicPanic(t *testing.T) {
	dir := t.TempDir()
	r, err := Create(dir, schema(), false)
	if err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() { _ = recover() }()
		_ = r.WriteAtomic(ModelFile, func(w io.Writer) error { panic("bug") })
	}()
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("directory holds %q after a panicking write", names)
	}
}

func TestWriteFileNames(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	r, err := Create(dir, schema(), false)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ok   bool
	}{
		{"notes.txt", true},
		{ModelFile, true},
		{".hidden", true},
		{"..x", true},
		{"", false},
		{".", false},
		{"..", false},
		{"../escape", false},
		{"sub/file", false},
		{"/abs", false},
		{`sub\file`, false},
		{`..\escape`, false},
		{"nul\x00byte", false},
		{MetricsJSONL, false},
		{MetricsCSV, false},
		{SummaryFile, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := r.WriteFile(tc.name, []byte("x"))
			if tc.ok != (err == nil) {
				t.Fatalf("WriteFile(%q) err = %v, want ok=%v", tc.name, err, tc.ok)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "rundir: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
	// Nothing escaped the run directory.
	if names := dirNames(t, filepath.Dir(dir)); len(names) != 1 || names[0] != "run" {
		t.Errorf("parent holds %q", names)
	}
	if err := r.WriteAtomic("x", nil); err == nil {
		t.Error("WriteAtomic with a nil function succeeded")
	}
}

func TestAppendAndFinish(t *testing.T) {
	dir := t.TempDir()
	r, err := Create(dir, schema(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	in := []metrics.Round{round(1, 0.5, 1.5), round(2, 0.75, math.NaN()), round(3, 0.625, 0.5)}
	for _, m := range in {
		if err := r.AppendRound(m); err != nil {
			t.Fatal(err)
		}
	}
	// A round that does not fit the schema is refused and not recorded.
	if err := r.AppendRound(metrics.Round{Round: 4, Heads: []float64{1}}); err == nil {
		t.Error("AppendRound accepted a round with 1 head")
	}
	// The caller may reuse its slices.
	in[0].Heads[0] = 0
	if got := r.Rounds(); len(got) != 3 || got[0].Heads[0] != 0.5 {
		t.Fatalf("Rounds = %+v", got)
	}

	sum, err := r.Finish(map[string]any{"dataset": "avmnist", "clients": 10})
	if err != nil {
		t.Fatal(err)
	}
	// Hand-computed: best fused 0.75 in round 2, dominance (1.5+0.5)/2,
	// seconds = last Elapsed.
	if sum.Rounds != 3 || sum.BestRound != 2 || sum.MeanDominance != 1 || sum.Seconds != 3.5 ||
		sum.Final["fused"] != 0.625 || sum.Best["fused"] != 0.75 {
		t.Errorf("summary = %+v", sum)
	}
	if err := r.AppendRound(round(4, 0.5, 1)); err == nil {
		t.Error("AppendRound after Finish succeeded")
	}

	// metrics.jsonl reads back.
	f, err := os.Open(filepath.Join(dir, MetricsJSONL))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, got, err := metrics.ReadJSONL(f)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.Heads, ",") != "fused,audio_only,visual_only" || strings.Join(s.Classes, ",") != "0,1" {
		t.Errorf("schema = %+v", s)
	}
	if len(got) != 3 || got[1].Heads[0] != 0.75 || !math.IsNaN(got[1].Dominance) || !math.IsNaN(got[2].PerClass[1]) {
		t.Errorf("rounds = %+v", got)
	}

	// metrics.csv reads back: header plus three rows of equal width.
	recs, err := csv.NewReader(strings.NewReader(readFile(t, filepath.Join(dir, MetricsCSV)))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	wantHeader := "round,fused,audio_only,visual_only,class_0,class_1,dominance,first_dominant,train_loss,clients,failures,seconds,elapsed"
	if len(recs) != 4 || strings.Join(recs[0], ",") != wantHeader {
		t.Fatalf("csv = %q", recs)
	}
	if strings.Join(recs[2], ",") != "2,0.75,0.25,0.125,0.5,,,0.5,1,2,0,1,2.5" {
		t.Errorf("csv row 2 = %q", recs[2])
	}

	// summary.json holds the summary and the extra fields.
	raw := readFile(t, filepath.Join(dir, SummaryFile))
	var back metrics.Summary
	if err := json.Unmarshal([]byte(raw), &back); err != nil {
		t.Fatal(err)
	}
	if back.BestRound != 2 || back.Best["fused"] != 0.75 || back.Rounds != 3 {
		t.Errorf("summary.json decodes to %+v", back)
	}
	var generic map[string]any
	if err := json.Unmarshal([]byte(raw), &generic); err != nil {
		t.Fatal(err)
	}
	extra, _ := generic["extra"].(map[string]any)
	if extra["dataset"] != "avmnist" || extra["clients"] != 10.0 {
		t.Errorf("extra = %v", generic["extra"])
	}

	// Finish is idempotent: a second call returns the same summary and does
	// not rewrite the file.
	sum2, err := r.Finish(map[string]any{"other": true})
	if err != nil || sum2.BestRound != sum.BestRound || sum2.Rounds != 3 {
		t.Errorf("second Finish = %+v, %v", sum2, err)
	}
	if readFile(t, filepath.Join(dir, SummaryFile)) != raw {
		t.Error("second Finish rewrote summary.json")
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close after Finish: %v", err)
	}

	// The directory now holds results and is refused.
	if _, err := Create(dir, schema(), false); !errors.Is(err, ErrExists) {
		t.Errorf("Create on a finished run: %v", err)
	}
}

func TestFinishWithoutRounds(t *testing.T) {
	dir := t.TempDir()
	r, err := Create(dir, schema(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	sum, err := r.Finish(nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rounds != 0 || sum.BestRound != 0 || !math.IsNaN(sum.MeanDominance) {
		t.Errorf("summary = %+v", sum)
	}
	var generic map[string]any
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, SummaryFile))), &generic); err != nil {
		t.Fatal(err)
	}
	if generic["dominance_mean"] != nil || generic["extra"] == nil {
		t.Errorf("summary.json = %v", generic)
	}
	// No rounds, so no metrics files: the directory may be reused.
	if _, err := Create(dir, schema(), false); err != nil {
		t.Errorf("Create after an empty run: %v", err)
	}
}

func TestFinishRetriesAfterError(t *testing.T) {
	dir := t.TempDir()
	r, err := Create(dir, schema(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AppendRound(round(1, 0.5, 1)); err != nil {
		t.Fatal(err)
	}
	// encoding/json refuses NaN, so this Finish fails without writing.
	if _, err := r.Finish(map[string]any{"x": math.NaN()}); err == nil || !strings.Contains(err.Error(), "rundir: encode summary extra") {
		t.Fatalf("Finish with NaN extra: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, SummaryFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("summary.json written after a failed Finish (%v)", err)
	}
	sum, err := r.Finish(map[string]any{"x": 1})
	if err != nil || sum.Rounds != 1 {
		t.Fatalf("retry Finish = %+v, %v", sum, err)
	}
}

func TestConcurrentAppend(t *testing.T) {
	dir := t.TempDir()
	r, err := Create(dir, schema(), false)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 1; i <= 8; i++ {
		wg.Go(func() {
			if err := r.AppendRound(round(i, 0.5, 1)); err != nil {
				t.Error(err)
			}
			_ = r.Rounds()
		})
	}
	wg.Wait()
	if _, err := r.Finish(nil); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, MetricsJSONL))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, got, err := metrics.ReadJSONL(f); err != nil || len(got) != 8 {
		t.Errorf("ReadJSONL: %d rounds, %v", len(got), err)
	}
}

func TestStaleCSVTruncated(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, MetricsCSV), []byte("stale,row\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Create(dir, schema(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AppendRound(round(1, 0.5, 1)); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, MetricsCSV)); !strings.HasPrefix(got, "round,") || strings.Count(got, "\n") != 2 {
		t.Errorf("metrics.csv = %q", got)
	}
}

func TestReadMetricsAndCompleted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if _, _, err := ReadMetrics(dir); err == nil || !strings.Contains(err.Error(), MetricsJSONL) {
		t.Fatalf("missing metrics: error %v", err)
	}
	r, err := Create(dir, schema(), false)
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 2; n++ {
		if err := r.AppendRound(round(n, 0.5*float64(n), 1.5)); err != nil {
			t.Fatal(err)
		}
	}
	if Completed(dir) {
		t.Fatal("completed before Finish")
	}
	s, rounds, err := ReadMetrics(dir)
	if err != nil || len(rounds) != 2 || rounds[1].Heads[0] != 1 || len(s.Heads) != 3 {
		t.Fatalf("ReadMetrics: %v %v %v", s, rounds, err)
	}
	for _, tc := range []struct {
		extra map[string]any
		want  bool
	}{{map[string]any{"completed": false}, false}, {map[string]any{"completed": true}, true}} {
		r, err := Create(dir, schema(), true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Finish(tc.extra); err != nil {
			t.Fatal(err)
		}
		if got := Completed(dir); got != tc.want {
			t.Errorf("extra %v: Completed %v, want %v", tc.extra, got, tc.want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, MetricsJSONL), []byte("{bad\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadMetrics(dir); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("bad metrics: error %v", err)
	}
}

// TestCreateRemovesStaleTemps: the temporary files of interrupted atomic
// writes are removed when the directory is opened, and nothing else is:
// not files that only resemble them, not directories, not the results.
func TestCreateRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	// A real temporary file name, as writeAtomic makes them.
	real, err := os.CreateTemp(dir, "."+ModelFile+".tmp*")
	if err != nil {
		t.Fatal(err)
	}
	real.WriteString("half a model")
	real.Close()
	stale := []string{filepath.Base(real.Name()), ".coordinator.safetensors.tmp123", ".config.yaml.tmp0"}
	kept := []string{
		ConfigFile, "notes.tmp1", ".hidden", ".x.tmp", ".x.tmp12a", "x.tmp12", ".model.safetensors.tmp12.bak",
	}
	for _, name := range append(append([]string(nil), stale[1:]...), kept...) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, ".d.tmp7"), 0o755); err != nil {
		t.Fatal(err)
	}
	kept = append(kept, ".d.tmp7")
	// A refused Create does not take the directory over.
	os.WriteFile(filepath.Join(dir, MetricsJSONL), []byte("{}\n"), 0o644)
	if _, err := Create(dir, schema(), false); !errors.Is(err, ErrExists) {
		t.Fatalf("Create: %v, want ErrExists", err)
	}
	if _, err := os.Stat(filepath.Join(dir, stale[1])); err != nil {
		t.Fatalf("a refused Create removed %s: %v", stale[1], err)
	}
	r, err := Create(dir, schema(), true)
	if err != nil {
		t.Fatal(err)
	}
	got := r.StaleTemps()
	slices.Sort(got)
	want := append([]string(nil), stale...)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("StaleTemps = %q, want %q", got, want)
	}
	for _, name := range stale {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale %s still there (%v)", name, err)
		}
	}
	for _, name := range kept {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s removed: %v", name, err)
		}
	}
}
