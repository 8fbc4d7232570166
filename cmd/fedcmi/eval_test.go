package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/rundir"
	"github.com/fedcmi/fedcmi/sim"
	"github.com/fedcmi/fedcmi/tensorboard"
)

// simulatedRun runs `fedcmi simulate` on the experiment yml in a temporary
// directory and returns the directory, the run's directory, its metrics
// and the experiment's raw (unstandardised) test set.
func simulatedRun(t *testing.T, yml string) (dir, runDir string, schema metrics.Schema, rounds []metrics.Round, test *data.Set) {
	t.Helper()
	dir = t.TempDir()
	exp := filepath.Join(dir, "exp.yaml")
	if err := os.WriteFile(exp, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"simulate", "-c", exp, "-out_dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("simulate: exit %d\n%s", code, stderr.String())
	}
	runDir = filepath.Join(dir, "fedcmi-synthetic-seed1")
	schema, rounds, err := rundir.ReadMetrics(runDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	if err := cfg.LoadFile(exp); err != nil {
		t.Fatal(err)
	}
	cfg.Data.Standardize = false
	_, test, _, err = sim.LoadData(context.Background(), &cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return dir, runDir, schema, rounds, test
}

// TestEvalAndTensorBoard runs a small simulation with tensorboard: true,
// then scores its saved model with eval on the simulation's own test set,
// written as npz files: with both modalities eval must reproduce the last
// round's five accuracies, without one (missing from the file, or
// dropped) the two heads that read only the other. The event file must
// hold every round's fused accuracy.
func TestEvalAndTensorBoard(t *testing.T) {
	dir, runDir, schema, rounds, test := simulatedRun(t, "rounds: 2\nclients: 4\nclients_per_round: 2\ntensorboard: true\ndata:\n  min_size: 5\n  synthetic:\n    train_per_class: 30\n    test_per_class: 10\n")
	last := rounds[len(rounds)-1]
	var stdout, stderr bytes.Buffer
	all := span(0, test.Len())
	both := filepath.Join(dir, "test.npz")
	writeSet(t, both, test, all)
	audio, err := test.Select("audio")
	if err != nil {
		t.Fatal(err)
	}
	audioOnly := filepath.Join(dir, "test-audio.npz")
	writeSet(t, audioOnly, audio, all)

	want := map[string]float64{}
	for i, h := range schema.Heads {
		want[h] = last.Heads[i]
	}
	for _, tc := range []struct {
		name  string
		args  []string
		heads []string
	}{
		{"both", []string{"-data", both}, []string{"fused", "audio_only", "visual_only", "audio_both", "visual_both"}},
		{"file without visual", []string{"-data", audioOnly}, []string{"audio_only", "audio_both"}},
		{"visual dropped", []string{"-data", both, "-drop", "visual"}, []string{"audio_only", "audio_both"}},
	} {
		stdout.Reset()
		stderr.Reset()
		args := append([]string{"eval", "-run", runDir, "-json"}, tc.args...)
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("%s: exit %d\n%s", tc.name, code, stderr.String())
		}
		var res evalResult
		if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
			t.Fatalf("%s: %v\n%s", tc.name, err, stdout.String())
		}
		if strings.Join(res.Heads, ",") != strings.Join(tc.heads, ",") || res.Samples != test.Len() {
			t.Errorf("%s: heads %v on %d samples, want %v on %d", tc.name, res.Heads, res.Samples, tc.heads, test.Len())
		}
		for _, h := range tc.heads {
			if math.Abs(res.Accuracy[h]-want[h]) > 1e-12 {
				t.Errorf("%s: %s accuracy %v, the run's last round measured %v", tc.name, h, res.Accuracy[h], want[h])
			}
		}
	}

	// The plain output names the heads and the missing modality.
	stdout.Reset()
	if code := run(context.Background(), []string{"eval", "-run", runDir, "-data", audioOnly}, &stdout, &stderr); code != 0 ||
		!strings.Contains(stdout.String(), "missing: visual") || !strings.Contains(stdout.String(), "audio_both") {
		t.Errorf("eval: exit %d\n%s", code, stdout.String())
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"eval", "-data", both}, 2, "-run DIR is required"},
		{[]string{"eval", "-run", runDir, "-data", both, "-drop", "video"}, 2, "-drop video: the model's modalities are audio, visual"},
		{[]string{"eval", "-run", runDir, "-data", audioOnly, "-drop", "audio"}, 2, "leaves no modality"},
		{[]string{"eval", "-run", runDir, "-data", filepath.Join(dir, "missing.npz")}, 1, "missing.npz"},
	} {
		stdout.Reset()
		stderr.Reset()
		if code := run(context.Background(), tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("fedcmi %v: exit %d, want %d with %q:\n%s", tc.args, code, tc.code, tc.want, stderr.String())
		}
	}

	f, err := os.Open(filepath.Join(runDir, rundir.TensorBoardFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	events, err := tensorboard.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1+len(rounds) || events[0].FileVersion != tensorboard.FileVersion {
		t.Fatalf("%d events (first %+v), want the file version and %d rounds", len(events), events[0], len(rounds))
	}
	for i, r := range rounds {
		e := events[i+1]
		found := false
		for _, s := range e.Scalars {
			if s.Tag == "accuracy/fused" {
				found = s.Value == float64(float32(r.Heads[0]))
			}
		}
		if e.Step != int64(r.Round) || !found {
			t.Errorf("event %d = %+v, want step %d with accuracy/fused %v", i+1, e, r.Round, r.Heads[0])
		}
	}
}

// TestEvalThreeModalities scores a three-modality run's model: with every
// modality eval reproduces the last round's ten accuracies; with one
// dropped, the heads that read only the others, the fused head without
// the dropped one included.
func TestEvalThreeModalities(t *testing.T) {
	dir, runDir, schema, rounds, test := simulatedRun(t, "rounds: 2\nclients: 4\nclients_per_round: 2\ndata:\n  min_size: 5\n  synthetic:\n    modalities: [audio, visual, text]\n    dims: [8, 8, 6]\n    signal: [1, 0.35, 0.6]\n    train_per_class: 30\n    test_per_class: 10\n")
	want := map[string]float64{}
	for i, h := range schema.Heads {
		want[h] = rounds[len(rounds)-1].Heads[i]
	}
	var stdout, stderr bytes.Buffer
	all := filepath.Join(dir, "test.npz")
	writeSet(t, all, test, span(0, test.Len()))
	for _, tc := range []struct {
		name  string
		args  []string
		heads []string
	}{
		{"all", nil, schema.Heads},
		{"visual dropped", []string{"-drop", "visual"}, []string{"audio_only", "text_only", "audio_both", "text_both", "no_visual"}},
	} {
		stdout.Reset()
		stderr.Reset()
		args := append([]string{"eval", "-run", runDir, "-json", "-data", all}, tc.args...)
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("%s: exit %d\n%s", tc.name, code, stderr.String())
		}
		var res evalResult
		if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
			t.Fatalf("%s: %v\n%s", tc.name, err, stdout.String())
		}
		if strings.Join(res.Heads, ",") != strings.Join(tc.heads, ",") {
			t.Errorf("%s: heads %v, want %v", tc.name, res.Heads, tc.heads)
		}
		for _, h := range tc.heads {
			if math.Abs(res.Accuracy[h]-want[h]) > 1e-12 {
				t.Errorf("%s: %s accuracy %v, the run's last round measured %v", tc.name, h, res.Accuracy[h], want[h])
			}
		}
	}
}
