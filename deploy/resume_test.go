package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/internal/fedtest"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/rundir"
	"github.com/fedcmi/fedcmi/sim"
)

// TestResumeEdges: a coordinator resumed after its run completed says so
// and returns at once, without participants; one killed at its first
// state save (round 1's metrics written, the state only a partial
// temporary file) resumes from round 1 and ends with an uninterrupted
// run's numbers; a directory without state that is not such a run is
// refused with the reason.
func TestResumeEdges(t *testing.T) {
	cfg := smallConfig(t, 4, 3, 2)
	want := simulate(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	federation := func(opt ServeOptions) (*served, error) {
		l := listen(t)
		opt.Listener, opt.Insecure = l, true
		opt.HeartbeatInterval, opt.PollTimeout = 200*time.Millisecond, time.Second
		done := serve(ctx, cfg, opt)
		for i := range cfg.Clients {
			shardParticipant(ctx, t, cfg, i, l.Addr().String(), nil, "", nil)
		}
		s := <-done
		return &s, s.err
	}
	if _, err := federation(ServeOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cfg.OutDir, cfg.RunName())

	// A complete run: nothing to wait for.
	var progress strings.Builder
	l := listen(t)
	t0 := time.Now()
	quick, stop := context.WithTimeout(ctx, 20*time.Second)
	res, err := Serve(quick, cfg, ServeOptions{Listener: l, Insecure: true, Resume: true, Progress: &progress})
	stop()
	if err != nil {
		t.Errorf("resuming a complete run: %v (after %v)", err, time.Since(t0))
	} else if len(res.Rounds) != cfg.Rounds || !rundir.Completed(dir) || !strings.Contains(progress.String(), "nothing to resume") {
		t.Errorf("resuming a complete run: %d rounds, completed %v, progress %q", len(res.Rounds), rundir.Completed(dir), progress.String())
	}
	if _, err := l.Accept(); err == nil {
		t.Error("the listener of a complete run is still open")
	}
	// tensorboard changes no number: a resume may turn it on (for states
	// saved before it left the digest: TestDigestMatches); another
	// learning rate is refused, naming it.
	tb := cfg
	tb.TensorBoard = true
	progress.Reset()
	if _, err := Serve(ctx, tb, ServeOptions{Listener: listen(t), Insecure: true, Resume: true, Progress: &progress}); err != nil || !strings.Contains(progress.String(), "nothing to resume") {
		t.Errorf("resuming a complete run with tensorboard on: %v, progress %q", err, progress.String())
	}
	lr := cfg
	lr.Train.LR *= 2
	if _, err := Serve(ctx, lr, ServeOptions{Listener: listen(t), Insecure: true, Resume: true}); err == nil || !strings.Contains(err.Error(), "train.lr") {
		t.Errorf("resuming with another learning rate: %v, want a refusal naming train.lr", err)
	}

	// What a coordinator killed while saving its first state leaves: the
	// config, round 1's metrics (appended just before the state), a model,
	// and a partial temporary state file.
	state, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	killedAtFirstSave := func(rounds []metrics.Round) {
		t.Helper()
		for _, name := range []string{StateFile, rundir.SummaryFile} {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
		}
		run, err := rundir.Create(dir, want.Schema, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rounds {
			if err := run.AppendRound(r); err != nil {
				t.Fatal(err)
			}
		}
		run.Close()
		if err := os.WriteFile(filepath.Join(dir, "."+StateFile+".tmp4242"), state[:len(state)/3], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	killedAtFirstSave(want.Rounds[:1])
	// Starting anew is refused without -overwrite, as for any results.
	if _, err := Serve(ctx, cfg, ServeOptions{Listener: listen(t), Insecure: true}); !errors.Is(err, rundir.ErrExists) {
		t.Fatalf("a fresh start over round 1's results: %v, want ErrExists", err)
	}
	// Refusals: another configuration, more rounds than a first save leaves.
	other := cfg
	other.Train.LR *= 2
	other.Name = cfg.RunName()
	for _, tc := range []struct {
		name   string
		rounds []metrics.Round
		want   string
	}{
		{"another configuration", want.Rounds[:1], "belongs to another configuration"},
		{"two rounds of metrics", want.Rounds, "metrics hold 2 rounds"},
	} {
		killedAtFirstSave(tc.rounds)
		c := cfg
		if tc.name == "another configuration" {
			c = other
		}
		_, err := Serve(ctx, c, ServeOptions{Listener: listen(t), Insecure: true, Resume: true})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "no coordinator state") {
			t.Errorf("%s: %v, want a refusal saying %q", tc.name, err, tc.want)
		}
	}

	killedAtFirstSave(want.Rounds[:1])
	got, err := federation(ServeOptions{Resume: true})
	if err != nil {
		t.Fatalf("resuming a run killed at its first save: %v", err)
	}
	sameRun(t, got.res, want)
	if _, err := os.Stat(filepath.Join(dir, "."+StateFile+".tmp4242")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the partial state file is still there (%v)", err)
	}
}

// TestInterruptedResumeKeepsRun: a resumed run stopped (Ctrl-C) while it
// waits for participants finishes as a stopped run: its summary is
// rewritten with the rounds saved before, and its metrics and model are
// kept.
func TestInterruptedResumeKeepsRun(t *testing.T) {
	cfg := smallConfig(t, 2, 2, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stoppedAfterRound1(ctx, t, cfg)
	dir := filepath.Join(cfg.OutDir, cfg.RunName())
	model, err := os.ReadFile(filepath.Join(dir, rundir.ModelFile))
	if err != nil {
		t.Fatal(err)
	}

	// Resumed without participants, and stopped while it waits for them.
	quick, stopQuick := context.WithCancel(ctx)
	time.AfterFunc(300*time.Millisecond, stopQuick)
	if _, err := Serve(quick, cfg, ServeOptions{Listener: listen(t), Insecure: true, Resume: true}); !errors.Is(err, context.Canceled) {
		t.Fatalf("the interrupted resume: %v, want context.Canceled", err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, rundir.SummaryFile))
	if err != nil {
		t.Fatalf("no summary after an interrupted resume: %v", err)
	}
	var sum struct {
		Rounds int
		Extra  struct {
			Completed bool
			Stopped   string
		}
	}
	if err := json.Unmarshal(raw, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Rounds != 1 || sum.Extra.Completed || !strings.Contains(sum.Extra.Stopped, "canceled") {
		t.Errorf("summary %s, want round 1, not completed, stopped by the cancellation", raw)
	}
	if _, rounds, err := rundir.ReadMetrics(dir); err != nil || len(rounds) != 1 {
		t.Errorf("metrics after an interrupted resume: %d rounds, %v; want round 1", len(rounds), err)
	}
	if after, err := os.ReadFile(filepath.Join(dir, rundir.ModelFile)); err != nil || !bytes.Equal(after, model) {
		t.Errorf("the saved model changed (%v)", err)
	}
}

// TestDigestMatches: a state's digest matches its configuration with
// tensorboard on or off, also as states saved before 2026-12-06 hold it
// (deploy's own digest then, with tensorboard in it), and does not match
// another learning rate.
func TestDigestMatches(t *testing.T) {
	cfg := config.Default()
	on := cfg
	on.TensorBoard = true
	legacyOn, err := legacyConfigDigest(on, nil)
	if err != nil {
		t.Fatal(err)
	}
	legacyOff, err := legacyConfigDigest(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	current, err := sim.ConfigDigest(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lr := cfg
	lr.Train.LR *= 2

	// A state saved before 2026-12-06 by an older fedcmi that lacked a
	// field: its config.yaml and its digest (of the YAML with name and
	// tensorboard, but with parallel at 0) lack the field's line.
	const cut = "  missing_sample_rate: 0\n"
	older := t.TempDir()
	hashed := on
	hashed.Parallel = 0
	y, err := hashed.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(y, []byte(cut)) {
		t.Fatalf("the config YAML has no %q", cut)
	}
	y = bytes.Replace(y, []byte(cut), nil, 1)
	if err := os.WriteFile(filepath.Join(older, rundir.ConfigFile), y, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(y)
	legacyOlder := hex.EncodeToString(sum[:])
	missing := on
	missing.Data.MissingSampleRate = 0.5

	for _, tc := range []struct {
		name  string
		dir   string
		cfg   config.Config
		saved string
		want  bool
	}{
		{"same", "", cfg, current, true},
		{"tensorboard turned on", "", on, current, true},
		{"saved with tensorboard on, before", "", cfg, legacyOn, true},
		{"saved with tensorboard on, before, still on", "", on, legacyOn, true},
		{"another learning rate", "", lr, current, false},
		{"saved with tensorboard off, before, now on", "", on, legacyOff, true},
		{"another learning rate, saved before", "", lr, legacyOn, false},
		{"saved before by a fedcmi without a field now at its default", older, on, legacyOlder, true},
		{"saved before by a fedcmi without a field now off its default", older, missing, legacyOlder, false},
	} {
		dir := tc.dir
		if dir == "" {
			dir = t.TempDir()
		}
		if got, err := digestMatches(dir, tc.cfg, tc.saved); err != nil || got != tc.want {
			t.Errorf("%s: %v, %v, want %v", tc.name, got, err, tc.want)
		}
	}
}

// TestResumeStateOfOlderVersion: a coordinator's state from an older
// fedcmi, whose config.yaml and digest lack a field added since, resumes
// when the field is at its default, also a second time after a resume
// stopped before any round (which rewrote config.yaml), and is refused,
// naming the field, when it is not at its default.
func TestResumeStateOfOlderVersion(t *testing.T) {
	cfg := smallConfig(t, 2, 2, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stoppedAfterRound1(ctx, t, cfg)

	dir := filepath.Join(cfg.OutDir, cfg.RunName())
	current, err := sim.ConfigDigest(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fedtest.AsOlderVersion(t, dir, StateFile, current, cfg, "  missing_sample_rate: 0\n")

	// A resume that gets as far as waiting for participants ends with the
	// cancellation; a refused one with its reason.
	resume := func(c config.Config) error {
		quick, stop := context.WithTimeout(ctx, time.Second)
		defer stop()
		_, err := Serve(quick, c, ServeOptions{Listener: listen(t), Insecure: true, Resume: true})
		return err
	}
	changed := cfg
	changed.Data.MissingSampleRate = 0.5
	if err := resume(changed); err == nil || !strings.Contains(err.Error(), "data.missing_sample_rate: (absent) -> 0.5") {
		t.Errorf("resuming with the new field off its default: %v, want a refusal naming it", err)
	}
	for i := range 2 {
		if err := resume(cfg); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("resume %d with the new field at its default: %v, want it to wait for participants", i+1, err)
		}
	}
}

// stoppedAfterRound1 serves cfg's first round with its participants and
// stops the coordinator (Ctrl-C) after it.
func stoppedAfterRound1(ctx context.Context, t *testing.T, cfg config.Config) {
	t.Helper()
	first, stop := context.WithCancel(ctx)
	defer stop()
	l := listen(t)
	done := serve(first, cfg, ServeOptions{Listener: l, Insecure: true, HeartbeatInterval: 200 * time.Millisecond, PollTimeout: time.Second,
		AfterRound: func(int) { stop() }})
	for i := range cfg.Clients {
		shardParticipant(first, t, cfg, i, l.Addr().String(), nil, "", nil)
	}
	if s := <-done; !errors.Is(s.err, context.Canceled) || len(s.res.Rounds) != 1 {
		t.Fatalf("the first run: %v, want it stopped after round 1", s.err)
	}
}

// TestResumeOnChangedData: a coordinator resumed on other data than its
// run began on (its test.npz replaced) is refused, naming data.dir, as a
// simulation's resume is; on the same data it resumes.
func TestResumeOnChangedData(t *testing.T) {
	root := t.TempDir()
	writeSite(t, root, 60, true)
	cfg := smallConfig(t, 2, 2, 3)
	cfg.Data.Source, cfg.Data.Dir, cfg.Data.Modalities, cfg.Data.MinSize = "npz", root, []string{"audio", "visual"}, 5
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stoppedAfterRound1(ctx, t, cfg)
	resume := func() error {
		quick, stop := context.WithTimeout(ctx, time.Second)
		defer stop()
		_, err := Serve(quick, cfg, ServeOptions{Listener: listen(t), Insecure: true, Resume: true})
		return err
	}
	if err := resume(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("resume on the same data: %v, want it to wait for participants", err)
	}
	other := t.TempDir()
	writeSite(t, other, 61, true) // one row more
	b, err := os.ReadFile(filepath.Join(other, "test.npz"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "test.npz"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := resume(); !errors.Is(err, sim.ErrDataChanged) || !strings.Contains(err.Error(), "data.dir "+root) {
		t.Errorf("resume on another test set: %v, want ErrDataChanged naming data.dir", err)
	}
}
