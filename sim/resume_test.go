package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/internal/fedtest"
	"github.com/fedcmi/fedcmi/rundir"
)

// lineHook calls f with the number of every line written to it (the
// simulation's per-round progress).
type lineHook struct {
	mu sync.Mutex
	n  int
	f  func(n int)
}

func (w *lineHook) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	w.f(w.n)
	return len(p), nil
}

// TestResumeEqualsUninterrupted interrupts runs of methods with every kind
// of state carried between rounds (SCAFFOLD's control variates on both
// sides, personal branches, the pooled dominance table, FedMDrop's
// prototypes) by cancelling their context, resumes them and compares
// them with uninterrupted runs, bit for bit: the metrics and the final
// model. Runs are interrupted between rounds, in the middle of a round
// (with no checkpoint but the one written when the run stops), and in a
// crash between the client states and the checkpoint of a round.
func TestResumeEqualsUninterrupted(t *testing.T) {
	const rounds = 5
	setups := []struct {
		name string
		edit func(*config.Config)
	}{
		{"fedavg", nil},
		{"fedcmi", nil},
		{"scaffold", nil},
		{"fedcmi-personalized", func(c *config.Config) { c.Method, c.FedCMI.Personalized = "fedcmi", true }},
		{"fedcmi-fedstats", nil},
		{"fedmdrop", nil},
		// fedrelearn keeps the initial model it re-initialises towards.
		{"fedrelearn", func(c *config.Config) { c.FedRelearn.Every = 1 }},
		// fedgb keeps its running estimate of each head's generalisation.
		{"fedgb", nil},
		// harmony's clients keep their fine-tuned encoders in its fusion
		// stage (rounds 2-5).
		{"harmony", func(c *config.Config) { c.Harmony.UnimodalRounds = 1 }},
		// The server optimizer's moments and the adaptive clip bound are
		// strategy state (fl.Stateful) too.
		{"fedavg-adam-dp", func(c *config.Config) {
			c.Method, c.Server.Optimizer = "fedavg", "adam"
			c.DP.Clip, c.DP.NoiseMultiplier, c.DP.Adaptive = 1, 0.1, true
		}},
	}
	for _, su := range setups {
		t.Run(su.name, func(t *testing.T) {
			cfg := small(t, su.name)
			cfg.Rounds, cfg.Parallel = rounds, 2
			if su.edit != nil {
				su.edit(&cfg)
			}
			want, err := Run(context.Background(), cfg, Options{Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			for _, stop := range []string{"between rounds", "mid-round", "crash before checkpoint"} {
				cfg := cfg
				cfg.OutDir = t.TempDir()
				dir := filepath.Join(cfg.OutDir, cfg.RunName())
				ctx, cancel := context.WithCancel(context.Background())
				opt := Options{Logger: quiet}
				stopAfter := 2
				var earlier map[string][]byte // checkpoint files before the crash
				switch stop {
				case "between rounds":
					opt.Progress = &lineHook{f: func(n int) {
						if n == stopAfter {
							cancel()
						}
					}}
				case "mid-round":
					// No checkpoint after a round: the one written when
					// the run stops is all there is.
					opt.checkpointEvery = 100
					opt.Tracker = NewTracker()
					opt.Tracker.afterStep = func(round, steps int) {
						if round == stopAfter+1 && steps >= 3 {
							cancel()
						}
					}
				case "crash before checkpoint":
					// A checkpoint after every second round. When round 4
					// is reported, its checkpoint is not written yet and the
					// files on disk are round 2's: keep them, to put back
					// all but the client states the run then wrote for
					// round 4, as a crash between the client states and the
					// checkpoint leaves them. Clients that trained in
					// rounds 3 and 4 must resume with their states of 2.
					opt.checkpointEvery, stopAfter = 2, 4
					opt.Progress = &lineHook{f: func(n int) {
						if n == stopAfter {
							earlier = snapshot(t, dir)
							cancel()
						}
					}}
				}
				part, err := Run(ctx, cfg, opt)
				cancel()
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("%s: interrupted run: %v", stop, err)
				}
				if len(part.Rounds) != stopAfter || rundir.Completed(dir) {
					t.Fatalf("%s: interrupted after %d rounds, want %d", stop, len(part.Rounds), stopAfter)
				}
				for name, b := range earlier {
					if _, err := os.Stat(filepath.Join(dir, name)); err == nil && filepath.Dir(name) == ClientStateDir {
						continue // written before the crash
					}
					if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				got, err := Run(context.Background(), cfg, Options{Logger: quiet, Resume: true})
				if err != nil {
					t.Fatalf("%s: resume: %v", stop, err)
				}
				fedtest.SameRounds(t, got.Rounds, want.Rounds)
				fedtest.SameModel(t, got.Dir, want.Dir)
				// The clients' own models: their kept parts survived.
				if !reflect.DeepEqual(got.Own, want.Own) {
					t.Errorf("%s: own models %+v, uninterrupted %+v", stop, got.Own, want.Own)
				}
				_, onDisk, err := rundir.ReadMetrics(dir)
				if err != nil {
					t.Fatal(err)
				}
				fedtest.SameRounds(t, onDisk, want.Rounds)
				if !rundir.Completed(dir) {
					t.Errorf("%s: resumed run not marked complete", stop)
				}
				from := stopAfter
				if earlier != nil {
					from = 2 // the checkpoint before the crash
				}
				if raw, err := os.ReadFile(filepath.Join(dir, rundir.SummaryFile)); err != nil || !strings.Contains(string(raw), fmt.Sprintf(`"resumed_after_round": %d`, from)) {
					t.Errorf("%s: the run did not resume after round %d: %v\n%s", stop, from, err, raw)
				}
				for _, name := range []string{CheckpointFile, ClientStateDir} {
					if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
						t.Errorf("%s: %s left after the run completed", stop, name)
					}
				}
				if t.Failed() {
					t.Fatalf("resumed after interruption %s differs", stop)
				}
			}
		})
	}
}

// snapshot returns the checkpoint files in run directory dir by their
// path relative to it.
func snapshot(t *testing.T, dir string) map[string][]byte {
	out := map[string][]byte{}
	names := []string{CheckpointFile}
	es, _ := os.ReadDir(filepath.Join(dir, ClientStateDir))
	for _, e := range es {
		names = append(names, filepath.Join(ClientStateDir, e.Name()))
	}
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
		}
		out[name] = b
	}
	return out
}

// TestResumeRefusals: a resume whose config differs names the fields and
// runs nothing; a completed run is returned as it is; a directory without
// a checkpoint starts from round 1; a corrupt checkpoint is refused.
func TestResumeRefusals(t *testing.T) {
	cfg := small(t, "fedavg")
	cfg.Rounds = 3
	part := interruptedAfterRound1(t, cfg)
	dir := part.Dir
	modelBefore, _ := os.ReadFile(filepath.Join(dir, rundir.ModelFile))

	changed := cfg
	changed.Rounds, changed.Train.LR = 5, 0.123
	changed.Parallel, changed.Overwrite = 3, true // these do not count
	_, err := Run(context.Background(), changed, Options{Logger: quiet, Resume: true})
	if !errors.Is(err, ErrConfigChanged) {
		t.Fatalf("changed config: %v, want ErrConfigChanged", err)
	}
	for _, want := range []string{"rounds: 3 -> 5", "train.lr: 0.01 -> 0.123", "-overwrite", dir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "parallel") || strings.Contains(err.Error(), "overwrite:") {
		t.Errorf("error %q names fields that do not change results", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, rundir.ModelFile)); string(after) != string(modelBefore) {
		t.Error("refused resume touched the run directory")
	}

	// Without -resume (or -overwrite) the directory is refused.
	if _, err := Run(context.Background(), cfg, Options{Logger: quiet}); !errors.Is(err, rundir.ErrExists) || !strings.Contains(err.Error(), "-resume") {
		t.Errorf("run over an unfinished run: %v", err)
	}

	// A corrupt checkpoint is refused with its name.
	ckPath := filepath.Join(dir, CheckpointFile)
	good, err := os.ReadFile(ckPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ckPath, good[:len(good)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), cfg, Options{Logger: quiet, Resume: true}); err == nil || !strings.Contains(err.Error(), CheckpointFile) {
		t.Errorf("corrupt checkpoint: %v", err)
	}
	os.WriteFile(ckPath, good, 0o644)

	res, err := Run(context.Background(), cfg, Options{Logger: quiet, Resume: true})
	if err != nil || len(res.Rounds) != 3 {
		t.Fatalf("resume: %v, %d rounds", err, len(res.Rounds))
	}
	// Resuming a completed run runs nothing and returns its result.
	again, err := Run(context.Background(), cfg, Options{Logger: quiet, Resume: true})
	if err != nil || len(again.Rounds) != 3 || again.Rounds[2].Heads[0] != res.Rounds[2].Heads[0] {
		t.Fatalf("resume of a complete run: %v, %+v", err, again)
	}

	// A completed run whose summary is unreadable has no checkpoint left:
	// resuming it must not start again and replace its rounds.
	sum := filepath.Join(dir, rundir.SummaryFile)
	if err := os.WriteFile(sum, []byte(`{"trunc`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), cfg, Options{Logger: quiet, Resume: true}); err == nil ||
		!strings.Contains(err.Error(), "metrics of 3 rounds but no "+CheckpointFile) {
		t.Errorf("resume of a completed run without its summary: %v", err)
	}
	if _, rounds, err := rundir.ReadMetrics(dir); err != nil || len(rounds) != 3 {
		t.Errorf("the refused resume left %d rounds (%v), want 3", len(rounds), err)
	}

	// Nothing to resume: the run starts from round 1.
	fresh := cfg
	fresh.OutDir = t.TempDir()
	res, err = Run(context.Background(), fresh, Options{Logger: quiet, Resume: true})
	if err != nil || len(res.Rounds) != 3 {
		t.Fatalf("resume without a run: %v", err)
	}
}

// TestResumeWithTensorBoard: tensorboard does not change a run's numbers
// (runLocal), so an interrupted run resumes with it turned on; and a run
// started anew with -overwrite leaves no event file of the old run.
func TestResumeWithTensorBoard(t *testing.T) {
	cfg := small(t, "fedavg")
	cfg.Rounds = 3
	part := interruptedAfterRound1(t, cfg)
	on := cfg
	on.TensorBoard = true
	if res, err := Run(context.Background(), on, Options{Logger: quiet, Resume: true}); err != nil || len(res.Rounds) != 3 {
		t.Fatalf("resume with tensorboard: %v", err)
	}
	events := filepath.Join(part.Dir, rundir.TensorBoardFile)
	if _, err := os.Stat(events); err != nil {
		t.Fatalf("no event file after the resume: %v", err)
	}
	again := cfg
	again.Overwrite = true
	if _, err := Run(context.Background(), again, Options{Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(events); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the old run's event file is still there after -overwrite: %v", err)
	}
}

// TestResumeWithoutClientStates: a SCAFFOLD run copied or restored
// without its clients' states is refused, not resumed with fresh control
// variates (which would not give the uninterrupted run's result).
func TestResumeWithoutClientStates(t *testing.T) {
	cfg := small(t, "scaffold")
	cfg.Rounds = 3
	part := interruptedAfterRound1(t, cfg)
	if err := os.RemoveAll(filepath.Join(part.Dir, ClientStateDir)); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), cfg, Options{Logger: quiet, Resume: true}); err == nil || !strings.Contains(err.Error(), "no client states") {
		t.Fatalf("resume without the clients' states: %v", err)
	}
}

// interruptedAfterRound1 runs cfg and cancels it once round 1 is done, as
// Ctrl-C would; the run directory keeps round 1 and its checkpoint.
func interruptedAfterRound1(t *testing.T, cfg config.Config) *Result {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	part, err := Run(ctx, cfg, Options{Logger: quiet, Progress: &lineHook{f: func(n int) {
		if n == 1 {
			cancel()
		}
	}}})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	return part
}

// TestResumeRunOfOlderVersion: a run made by an older fedcmi, whose saved
// config and checkpoint digest lack fields added since (here one field and
// one whole section), resumes when the current experiment has them at
// their defaults, and is refused, naming the field, when it does not.
func TestResumeRunOfOlderVersion(t *testing.T) {
	cfg := small(t, "fedavg")
	cfg.Rounds = 3
	part := interruptedAfterRound1(t, cfg)
	current, err := ConfigDigest(cfg)
	if err != nil {
		t.Fatal(err)
	}
	older := fedtest.AsOlderVersion(t, part.Dir, CheckpointFile, current, cfg,
		"  missing_sample_rate: 0\n", "ogm:\n  alpha: 0.8\n  start_round: 1\n  end_round: 0\n")

	changed := cfg
	changed.OGM.Alpha = 0.5
	if _, err := Run(context.Background(), changed, Options{Logger: quiet, Resume: true}); err == nil || !strings.Contains(err.Error(), "ogm.alpha: (absent) -> 0.5") {
		t.Errorf("resuming an older run with a new field off its default: %v, want a refusal naming it", err)
	}
	if ok, err := CheckpointMatches(part.Dir, changed, older); ok || err != nil {
		t.Errorf("the older checkpoint's digest matches a new field off its default: %v, %v", ok, err)
	}
	// A resume stopped at once (config.yaml rewritten with every field,
	// no round saved) resumes again.
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := Run(ctx, cfg, Options{Logger: slog.New(cancelOn{msg: "simulation", cancel: cancel}), Resume: true}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a resume stopped at once: %v", err)
	}
	if res, err := Run(context.Background(), cfg, Options{Logger: quiet, Resume: true}); err != nil || len(res.Rounds) != 3 {
		t.Errorf("resuming a run of an older fedcmi a second time: %v", err)
	}
}

// cancelOn is a log handler that calls cancel when msg is logged, and
// drops every record.
type cancelOn struct {
	msg    string
	cancel func()
}

func (h cancelOn) Enabled(context.Context, slog.Level) bool { return true }
func (h cancelOn) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h cancelOn) WithGroup(string) slog.Handler            { return h }
func (h cancelOn) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.cancel()
	}
	return nil
}

// TestResumeOnChangedData: a resume on training data other than the run
// began on (another copy, other preprocessing) is refused, naming the data
// folder; on the same data, or from a checkpoint that records no data
// digest (an older fedcmi's), it resumes.
func TestResumeOnChangedData(t *testing.T) {
	data := t.TempDir()
	writeNPZSet(t, data, 120, []int64{0, 1, 2}, []int64{0, 1, 2})
	cfg := small(t, "fedavg")
	cfg.Data.Source, cfg.Data.Dir, cfg.Data.Modalities = "npz", data, []string{"a", "b"}
	cfg.Rounds = 3
	part := interruptedAfterRound1(t, cfg)
	ckPath := filepath.Join(part.Dir, CheckpointFile)
	saved, err := os.ReadFile(ckPath)
	if err != nil {
		t.Fatal(err)
	}

	other := t.TempDir()
	writeNPZSet(t, other, 121, []int64{0, 1, 2}, []int64{0, 1, 2}) // one row more
	for _, name := range []string{"train.npz", "test.npz"} {
		b, err := os.ReadFile(filepath.Join(other, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(data, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err = Run(context.Background(), cfg, Options{Logger: quiet, Resume: true})
	if !errors.Is(err, ErrDataChanged) {
		t.Fatalf("resume on other data: %v, want ErrDataChanged", err)
	}
	for _, want := range []string{"data.dir " + data, "-overwrite"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if after, _ := os.ReadFile(ckPath); !bytes.Equal(after, saved) {
		t.Error("a refused resume touched the checkpoint")
	}

	// A checkpoint without a data digest (an older fedcmi's) resumes.
	fed, err := Prepare(context.Background(), &cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := LoadCheckpoint(ckPath, &fed.Arch)
	if err != nil {
		t.Fatal(err)
	}
	if ck.DataDigest == "" {
		t.Fatal("the checkpoint records no data digest")
	}
	ck.DataDigest = ""
	var buf bytes.Buffer
	if err := WriteCheckpoint(&buf, ck, part.Schema); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ckPath, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if res, err := Run(context.Background(), cfg, Options{Logger: quiet, Resume: true}); err != nil || len(res.Rounds) != 3 {
		t.Fatalf("resume from a checkpoint without a data digest: %v", err)
	}
}

// TestDataCheck: a finished run's recorded data digest matches its data
// read again (and the digest a run records is RunDataDigest's); another
// seed's synthetic data, or label noise, differ; a summary without a
// digest (an older fedcmi's) is not checked; an unreadable one is an
// error.
func TestDataCheck(t *testing.T) {
	cfg := small(t, "fedavg")
	cfg.Rounds = 1
	res, err := Run(context.Background(), cfg, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	older := t.TempDir()
	if err := os.WriteFile(filepath.Join(older, rundir.SummaryFile), []byte(`{"extra": {"completed": true}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	corrupt := t.TempDir()
	if err := os.WriteFile(filepath.Join(corrupt, rundir.SummaryFile), []byte(`{"extra": `), 0o644); err != nil {
		t.Fatal(err)
	}
	seed := cfg
	seed.Seed = 2
	noisy := cfg
	noisy.Data.LabelNoise = 0.3
	method := cfg
	method.Method = "fedcmi" // the same data
	check := NewDataCheck(context.Background(), quiet)
	for _, tc := range []struct {
		name    string
		dir     string
		cfg     config.Config
		changed bool
		err     bool
	}{
		{"the same data", res.Dir, cfg, false, false},
		{"another method, the same data", res.Dir, method, false, false},
		{"another seed's data", res.Dir, seed, true, false},
		{"label noise", res.Dir, noisy, true, false},
		{"no digest recorded", older, seed, false, false},
		{"unreadable summary", corrupt, cfg, false, true},
	} {
		why, err := check.Changed(tc.dir, tc.cfg)
		if (err != nil) != tc.err || (why != "") != tc.changed {
			t.Errorf("%s: %q, %v; want changed %v, error %v", tc.name, why, err, tc.changed, tc.err)
		}
		if tc.changed && !strings.Contains(why, "data.source synthetic") {
			t.Errorf("%s: %q does not name the data", tc.name, why)
		}
	}
}

// TestResumeRelativePathsAsSaved: a run whose config.yaml and checkpoint
// hold a path relative (a sweep before 2026-12-06 kept the paths of flags
// and grid values as given) is the same experiment as one naming that path
// made absolute: no change is reported, and it resumes to the
// uninterrupted run's results; another folder is still a change.
func TestResumeRelativePathsAsSaved(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "npz"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeNPZSet(t, filepath.Join(root, "npz"), 60, []int64{0, 1, 2}, []int64{0, 1, 2})
	t.Chdir(root)
	cfg := small(t, "fedavg")
	cfg.Data.Source, cfg.Data.Dir, cfg.Data.Modalities = "npz", "npz", []string{"a", "b"}
	cfg.Rounds = 3
	want, err := Run(context.Background(), cfg, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	cfg.OutDir = t.TempDir()
	part := interruptedAfterRound1(t, cfg) // saved with data.dir "npz"

	abs := cfg
	abs.Data.Dir = filepath.Join(root, "npz")
	if changes, err := ConfigChanges(part.Dir, abs); err != nil || len(changes) != 0 {
		t.Errorf("the same folder made absolute: changes %v, %v", changes, err)
	}
	other := abs
	other.Data.Dir = filepath.Join(root, "elsewhere")
	if changes, err := ConfigChanges(part.Dir, other); err != nil || len(changes) != 1 || changes[0].Field != "data.dir" {
		t.Errorf("another folder: changes %v, %v; want data.dir", changes, err)
	}
	got, err := Run(context.Background(), abs, Options{Logger: quiet, Resume: true})
	if err != nil {
		t.Fatalf("resume with the path made absolute: %v", err)
	}
	fedtest.SameRounds(t, got.Rounds, want.Rounds)
}
