package sim

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/rundir"
)

// runSmall runs a small synthetic experiment of method and returns its
// result and final model file.
func runSmall(t *testing.T, method string, rounds int, edit func(*config.Config)) (*Result, []byte) {
	t.Helper()
	cfg := small(t, method)
	cfg.Rounds = rounds
	cfg.Train.LR, cfg.Train.Epochs = 0.05, 2 // enough to learn in a few rounds
	if edit != nil {
		edit(&cfg)
	}
	res, err := Run(context.Background(), cfg, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rounds) != rounds {
		t.Fatalf("%d rounds", len(res.Rounds))
	}
	m, err := os.ReadFile(filepath.Join(res.Dir, rundir.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	return res, m
}

// TestPMRRun: PMR runs in the simulation, learns (fused accuracy well
// above chance, 1/6) and its prototype loss changes training: the final
// model differs from FedAvg's with the same seed, partitions and sampling.
func TestPMRRun(t *testing.T) {
	res, model := runSmall(t, "pmr", 6, nil)
	resAvg, avg := runSmall(t, "fedavg", 6, nil)
	t.Logf("fedavg: %v", resAvg.Rounds[5].Heads)
	last := res.Rounds[len(res.Rounds)-1]
	t.Logf("pmr after %d rounds: heads %v", last.Round, last.Heads)
	for h, acc := range last.Heads {
		if !(acc >= 0 && acc <= 1) {
			t.Fatalf("head %s accuracy %v", res.Schema.Heads[h], acc)
		}
	}
	if last.Heads[0] < 0.35 {
		t.Fatalf("fused accuracy %.3f after %d rounds: not above chance (1/6)", last.Heads[0], last.Round)
	}
	if bytes.Equal(model, avg) {
		t.Fatal("PMR's final model equals FedAvg's: the prototype loss had no effect")
	}
}
