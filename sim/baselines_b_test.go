package sim

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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

// TestFedMDropRun: FedMDrop runs in the simulation and learns; round 1
// probes every client, later rounds train clients_per_round, and the
// selection drops the dominant modality of strongly imbalanced clients
// (with a low threshold, so that a short run on synthetic data has some).
func TestFedMDropRun(t *testing.T) {
	var logs bytes.Buffer
	cfg := small(t, "fedmdrop")
	cfg.Rounds, cfg.Clients, cfg.ClientsPerRound = 6, 10, 5
	cfg.Data.Synthetic.TrainPerClass = 80
	cfg.Train.LR, cfg.Train.Epochs = 0.05, 2
	cfg.FedMDrop.Threshold = 1.1
	res, err := Run(context.Background(), cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	last := res.Rounds[len(res.Rounds)-1]
	t.Logf("fedmdrop after %d rounds: heads %v", last.Round, last.Heads)
	if last.Heads[0] < 0.35 {
		t.Fatalf("fused accuracy %.3f after %d rounds: not above chance (1/6)", last.Heads[0], last.Round)
	}
	if res.Rounds[0].Clients != cfg.Clients || res.Rounds[1].Clients != cfg.ClientsPerRound {
		t.Fatalf("clients per round %d, %d: want a probe of all %d, then %d", res.Rounds[0].Clients, res.Rounds[1].Clients, cfg.Clients, cfg.ClientsPerRound)
	}
	dropped := 0
	for _, line := range strings.Split(logs.String(), "\n") {
		if !strings.Contains(line, "fedmdrop selection") {
			continue
		}
		var n int
		if i := strings.Index(line, "dropped="); i >= 0 {
			fmt.Sscan(line[i+len("dropped="):], &n)
		}
		dropped += n
	}
	t.Logf("dropped modalities: %d", dropped)
	if dropped == 0 {
		t.Fatalf("no client dropped a modality in %d rounds:\n%s", cfg.Rounds, logs.String())
	}
	// Deterministic: the same seed with clients trained one at a time gives
	// the same model (selection, prototypes and state do not depend on the
	// order in which clients finish).
	first, err := os.ReadFile(filepath.Join(res.Dir, rundir.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Parallel, cfg.OutDir = 1, t.TempDir()
	again, err := Run(context.Background(), cfg, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	second, err := os.ReadFile(filepath.Join(again.Dir, rundir.ModelFile))
	if err != nil || !bytes.Equal(first, second) {
		t.Fatalf("same seed, different final model (parallel %d vs 1): %v", small(t, "fedmdrop").Parallel, err)
	}
}

// TestBaselinesMfeat runs pmr and fedmdrop for a few rounds on the real UCI
// Multiple Features data (configs/mfeat.yaml) when ../shared/data/mfeat is
// present: both learn far above chance (0.1).
func TestPrototypeBaselinesMfeat(t *testing.T) {
	dir := filepath.Join("..", "..", "shared", "data", "mfeat")
	if _, err := os.Stat(filepath.Join(dir, "mfeat-fac")); err != nil {
		t.Skipf("mfeat data not found at %s: %v", dir, err)
	}
	for _, method := range []string{"pmr", "fedmdrop"} {
		t.Run(method, func(t *testing.T) {
			cfg := config.Default()
			if err := cfg.LoadFile(filepath.Join("..", "configs", "mfeat.yaml")); err != nil {
				t.Fatal(err)
			}
			cfg.Data.Dir, cfg.OutDir, cfg.Method, cfg.Rounds = dir, t.TempDir(), method, 8
			res, err := Run(context.Background(), cfg, Options{Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			last := res.Rounds[len(res.Rounds)-1]
			t.Logf("%s on mfeat after %d rounds: heads %v", method, last.Round, last.Heads)
			if last.Heads[0] < 0.6 || last.Heads[1] < 0.5 {
				t.Fatalf("fused %.3f, fac only %.3f after %d rounds", last.Heads[0], last.Heads[1], last.Round)
			}
		})
	}
}
