package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/sim"
)

// TestConfigPathsFromElsewhere: an experiment file's data paths are
// relative to the file, whatever the working directory; the run directory
// goes under out_dir relative to the working directory, named after the
// method, the data set and the seed; config.yaml records absolute paths.
func TestConfigPathsFromElsewhere(t *testing.T) {
	syn := config.Default()
	syn.Data.Synthetic.TrainPerClass, syn.Data.Synthetic.TestPerClass = 20, 10
	train, test, _, err := sim.LoadData(context.Background(), &syn, nil)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	feats := filepath.Join(root, "data", "feats")
	for _, dir := range []string{feats, filepath.Join(root, "exps"), filepath.Join(root, "work")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeSet(t, filepath.Join(feats, "train.npz"), train, span(0, train.Len()))
	writeSet(t, filepath.Join(feats, "test.npz"), test, span(0, test.Len()))
	yml := "rounds: 1\nclients: 4\nclients_per_round: 2\ndata:\n  source: npz\n  dir: ../data/feats\n  modalities: [audio, visual]\n  min_size: 5\n"
	if err := os.WriteFile(filepath.Join(root, "exps", "exp.yaml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(filepath.Join(root, "work"))
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"simulate", "-c", filepath.Join("..", "exps", "exp.yaml")}, &stdout, &stderr); code != 0 {
		t.Fatalf("simulate: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	dir := filepath.Join(root, "work", "runs", "fedcmi-feats-seed1")
	var rec config.Config
	f, err := os.Open(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatalf("run directory: %v\n%s", err, stdout.String())
	}
	defer f.Close()
	if err := rec.Load(f, "config.yaml"); err != nil {
		t.Fatal(err)
	}
	if rec.Data.Dir != feats || rec.OutDir != "runs" {
		t.Errorf("recorded data.dir %q, out_dir %q; want %q, runs", rec.Data.Dir, rec.OutDir, feats)
	}
	if !strings.Contains(stdout.String(), filepath.Join("runs", "fedcmi-feats-seed1")) {
		t.Errorf("output does not name the run directory:\n%s", stdout.String())
	}
}

// TestShippedConfigFromElsewhere: `cd /tmp && fedcmi simulate -c
// <repo>/configs/mfeat.yaml` finds the data (when ../shared/data/mfeat is
// present).
func TestShippedConfigFromElsewhere(t *testing.T) {
	file, err := filepath.Abs(filepath.Join("..", "..", "configs", "mfeat.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(file), "..", "..", "shared", "data", "mfeat", "mfeat-fac")); err != nil {
		t.Skipf("mfeat data not found: %v", err)
	}
	t.Chdir(t.TempDir())
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"simulate", "-c", file, "-rounds", "1", "-method", "fedavg"}, &stdout, &stderr); code != 0 {
		t.Fatalf("simulate: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	if _, err := os.Stat(filepath.Join("runs", "fedavg-mfeat-seed1", "metrics.jsonl")); err != nil {
		t.Error(err)
	}
}
