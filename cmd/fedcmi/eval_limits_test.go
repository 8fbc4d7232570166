package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"codeberg.org/sbinet/npyio/npz"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/internal/fedtest"
	"github.com/fedcmi/fedcmi/model"
	"github.com/fedcmi/fedcmi/rundir"
	"github.com/fedcmi/fedcmi/sim"
)

// fakeRun writes a run directory without simulating: config.yaml (the
// defaults without standardisation, then extra) and model.safetensors
// holding freshly initialised parameters of an audio (4 features) +
// visual (3 features) model with 3 classes.
func fakeRun(t *testing.T, extra string) (runDir string, cfg config.Config, arch model.Arch, params model.Params) {
	t.Helper()
	runDir = t.TempDir()
	cfgFile := filepath.Join(runDir, rundir.ConfigFile)
	if err := os.WriteFile(cfgFile, []byte("data:\n  standardize: false\n"+extra), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg = config.Default()
	if err := cfg.LoadFile(cfgFile); err != nil {
		t.Fatal(err)
	}
	arch = model.Arch{
		Modalities: []string{"audio", "visual"}, InputDims: []int{4, 3},
		Hidden: cfg.Model.Hidden, EmbedDim: cfg.Model.EmbedDim,
		Projector: cfg.Model.Projector, Fusion: cfg.Model.Fusion, NumClasses: 3,
	}
	params, err := arch.Init(1)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := model.WriteParams(&buf, params, map[string]string{"modalities": "audio,visual"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(runDir, rundir.ModelFile), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return runDir, cfg, arch, params
}

// writeZeros writes an npz set of rows samples of class 0 with zero
// features for fakeRun's model.
func writeZeros(t *testing.T, path string, rows int) {
	t.Helper()
	audio, visual := make([][]float32, rows), make([][]float32, rows)
	for i := range rows {
		audio[i], visual[i] = make([]float32, 4), make([]float32, 3)
	}
	arrays := map[string]any{"audio.npy": audio, "visual.npy": visual, "labels.npy": make([]int64, rows)}
	if err := npz.Write(path, arrays); err != nil {
		t.Fatal(err)
	}
}

// TestEvalModelFileTooLarge: a model file beyond the limit ReadParams
// applies is refused, naming it, before it is read (the file is sparse:
// reading it would hold 1 GiB of zeros); a small one is read and parsed.
func TestEvalModelFileTooLarge(t *testing.T) {
	runDir, _, _, _ := fakeRun(t, "")
	data := filepath.Join(runDir, "test.npz")
	writeZeros(t, data, 10)
	for _, tc := range []struct {
		name string
		size int64
		code int
		want string
	}{
		{"small", 10, 1, "not a safetensors file"},
		{"beyond the limit", model.MaxModelFile + 1, 1, "larger than a model file may be"},
	} {
		big := filepath.Join(t.TempDir(), "big.safetensors")
		f, err := os.Create(big)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(tc.size); err != nil {
			t.Fatal(err)
		}
		f.Close()
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"eval", "-run", runDir, "-data", data, "-model", big}, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) || !strings.Contains(stderr.String(), big) {
			t.Errorf("%s: exit %d, want %d with %q and the file's name:\n%s", tc.name, code, tc.code, tc.want, stderr.String())
		}
	}
}

// TestEvalRunNPZLimit: eval bounds the npz set by the run's
// data.npz_max_mb (0 meaning the default), as the simulation does, so
// that the error's advice to raise it works.
func TestEvalRunNPZLimit(t *testing.T) {
	const rows = 30000 // 36 bytes a row: labels 8, audio 16, visual 12
	for _, tc := range []struct {
		name  string
		extra string
		code  int
		want  string
	}{
		{"beyond the run's limit", "  npz_max_mb: 1\n", 1, "beyond the limit of 1048576 bytes per file"},
		{"within the run's limit", "  npz_max_mb: 2\n", 0, "30000 samples"},
		{"0, the default", "  npz_max_mb: 0\n", 0, "30000 samples"},
	} {
		runDir, _, _, _ := fakeRun(t, tc.extra)
		data := filepath.Join(runDir, "test.npz")
		writeZeros(t, data, rows)
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"eval", "-run", runDir, "-data", data}, &stdout, &stderr)
		if out := stdout.String() + stderr.String(); code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%s: exit %d, want %d with %q:\n%s", tc.name, code, tc.code, tc.want, out)
		}
	}
}

// TestEvalCanceled: eval run with a context that has ended (Ctrl-C)
// stops with its error, which fedcmi reports as an interruption.
func TestEvalCanceled(t *testing.T) {
	runDir, _, _, _ := fakeRun(t, "")
	data := filepath.Join(runDir, "test.npz")
	writeZeros(t, data, 10)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"eval", "-run", runDir, "-data", data}, &stdout, &stderr); code != 130 || !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("exit %d, want 130 (interrupted):\n%s%s", code, stdout.String(), stderr.String())
	}
}

// TestPredictHeadsChunks: predictHeads predicts what one Predict call
// does, chunk by chunk, and stops between chunks when its context ends.
func TestPredictHeadsChunks(t *testing.T) {
	_, cfg, arch, params := fakeRun(t, "")
	engine, err := sim.NewEngine(&cfg, arch, 1)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2*evalChunk + 40
	x := [][]float32{make([]float32, n*4), nil} // visual absent
	for i := range x[0] {
		x[0][i] = float32(i%7) - 3
	}
	whole, err := engine.Predict(params, x, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		live int64 // calls of ctx.Err that find it live
		err  error
	}{
		{"not canceled", 1 << 30, nil},
		{"canceled before the first chunk", 0, context.Canceled},
		{"canceled after the first chunk", 1, context.Canceled},
		{"canceled before the last chunk", 2, context.Canceled},
	} {
		ctx := fedtest.ErrAfter(tc.live)
		preds, err := predictHeads(ctx, engine, params, x, n)
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		if len(preds) != len(whole.Preds) {
			t.Fatalf("%s: %d heads, want %d", tc.name, len(preds), len(whole.Preds))
		}
		for h := range preds {
			if !slices.Equal(preds[h], whole.Preds[h]) {
				t.Errorf("%s: head %d differs from one Predict call", tc.name, h)
			}
		}
	}
}
