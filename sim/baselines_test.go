package sim

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/rundir"
)

// runModel runs cfg and returns its result and final model file.
func runModel(t *testing.T, cfg config.Config) (*Result, []byte) {
	t.Helper()
	res, err := Run(context.Background(), cfg, Options{Logger: quiet})
	if err != nil {
		t.Fatalf("%s: %v", cfg.Method, err)
	}
	m, err := os.ReadFile(filepath.Join(res.Dir, rundir.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	return res, m
}

// TestBaselineSmoke runs every baseline for a few rounds on small synthetic
// data, on the same partition and evaluation as FedAvg: each ends well
// above chance (1/6) on the fused head and on the strong modality, and its
// mechanism shows: SCAFFOLD's and OGM-GE's models differ from FedAvg's
// with the same seed, Harmony trains on all sampled clients in its first
// stage and only on multimodal ones (3 of the 6 clients) in its second.
func TestBaselineSmoke(t *testing.T) {
	base := func(method string) config.Config {
		c := small(t, method)
		c.Rounds = 6
		c.Train.Epochs, c.Train.LR = 2, 0.05
		c.Data.Synthetic.TrainPerClass = 60
		return c
	}
	_, fedavg := runModel(t, base("fedavg"))
	for _, method := range []string{"scaffold", "ogm-ge", "harmony"} {
		t.Run(method, func(t *testing.T) {
			cfg := base(method)
			res, m := runModel(t, cfg)
			last := res.Rounds[len(res.Rounds)-1]
			t.Logf("%s: fused %.3f, %s %.3f, %s %.3f", method, last.Heads[0], res.Schema.Heads[1], last.Heads[1], res.Schema.Heads[2], last.Heads[2])
			if last.Heads[0] < 0.5 || last.Heads[1] < 0.5 {
				t.Fatalf("fused %.3f, %s %.3f after %d rounds (chance 0.167)", last.Heads[0], res.Schema.Heads[1], last.Heads[1], cfg.Rounds)
			}
			switch method {
			case "scaffold", "ogm-ge":
				if bytes.Equal(m, fedavg) {
					t.Fatal("same model as FedAvg: the method changed nothing")
				}
			case "harmony":
				stage1 := cfg.HarmonyUnimodalRounds()
				for _, r := range res.Rounds {
					want := cfg.ClientsPerRound
					if r.Round > stage1 {
						want = 3 // the multimodal clients (multi_ratio 0.5 of 6)
					}
					if r.Clients != want {
						t.Fatalf("round %d (stage 1 ends at %d): %d clients trained, want %d", r.Round, stage1, r.Clients, want)
					}
				}
			}
		})
	}
}

// TestBaselinesMfeat runs each baseline briefly on the real UCI Multiple
// Features data (configs/mfeat.yaml) when ../shared/data/mfeat is present.
func TestBaselinesMfeat(t *testing.T) {
	dir := filepath.Join("..", "..", "shared", "data", "mfeat")
	if _, err := os.Stat(filepath.Join(dir, "mfeat-fac")); err != nil {
		t.Skipf("mfeat data not found at %s: %v", dir, err)
	}
	for _, method := range []string{"scaffold", "ogm-ge", "harmony"} {
		t.Run(method, func(t *testing.T) {
			cfg := config.Default()
			if err := cfg.LoadFile(filepath.Join("..", "configs", "mfeat.yaml")); err != nil {
				t.Fatal(err)
			}
			cfg.Method, cfg.Name = method, ""
			cfg.Data.Dir = dir
			cfg.OutDir = t.TempDir()
			cfg.Rounds = 6
			if method == "harmony" {
				// Its fusion stage starts from an untrained fusion head
				// and fine-tunes the encoders at a tenth of the rate:
				// after 3 + 3 rounds it is at 0.23.
				cfg.Rounds = 12
			}
			res, _ := runModel(t, cfg)
			last := res.Rounds[len(res.Rounds)-1]
			t.Logf("%s: fused %.3f, fac %.3f, zer %.3f", method, last.Heads[0], last.Heads[1], last.Heads[2])
			// Chance is 0.1.
			if last.Heads[0] < 0.5 {
				t.Fatalf("fused %.3f after %d rounds", last.Heads[0], cfg.Rounds)
			}
		})
	}
}

// TestEveryMethodSelectable: every method of package fl, the FedCMI
// ablations and baselines included, is accepted by the configuration.
func TestEveryMethodSelectable(t *testing.T) {
	names := fl.MethodNames()
	for _, want := range []string{"fedavg", "fedprox", "fedcmi", "fedcmi-noinf", "fedcmi-notemp", "fedcmi-noprox", "scaffold", "ogm-ge", "harmony"} {
		if !slices.Contains(names, want) {
			t.Errorf("fl has no method %q", want)
		}
	}
	for _, name := range names {
		c := config.Default()
		c.Method = name
		if err := c.Validate(); err != nil {
			t.Errorf("method %s: %v", name, err)
		}
	}
}

// TestBaselineDeterminism: SCAFFOLD's client state, OGM-GE's in-graph
// noise and Harmony's kept encoders give the same model for the same
// seed, whatever the number of clients trained at once.
func TestBaselineDeterminism(t *testing.T) {
	for _, method := range []string{"scaffold", "ogm-ge", "harmony"} { // harmony: clients keep their fine-tuned encoders
		t.Run(method, func(t *testing.T) {
			var models [2][]byte
			for k, par := range []int{1, 2} {
				cfg := small(t, method)
				cfg.Parallel = par
				_, models[k] = runModel(t, cfg)
			}
			if !bytes.Equal(models[0], models[1]) {
				t.Fatal("same seed, different models with parallel 1 and 2")
			}
		})
	}
}
