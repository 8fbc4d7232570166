package sim

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/rundir"
)

func TestPlainServerBuildsNoServerSide(t *testing.T) {
	// The default (sgd, lr 1, mean, no privacy) runs the strategy exactly
	// as before server options existed.
	cfg := small(t, "fedavg")
	s, err := NewStrategy(&cfg, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ma, ok := s.(*fl.ModalityAware)
	if !ok || ma.Server != nil {
		t.Fatalf("default strategy %T, server %v", s, ok && ma.Server != nil)
	}
	cfg.Server.Optimizer = "adam"
	if s, err = NewStrategy(&cfg, nil, quiet); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(fl.Stateful); !ok {
		t.Fatalf("adam strategy %T keeps no state", s)
	}
}

// finalFused returns the fused accuracy of the last round of cfg.
func finalFused(t *testing.T, cfg config.Config) float64 {
	t.Helper()
	res, err := Run(context.Background(), cfg, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return res.Rounds[len(res.Rounds)-1].Heads[0]
}

// TestByzantineClients: two of ten clients send their update scaled by
// 100; the mean collapses while the robust aggregators stay near the
// clean run's accuracy.
func TestByzantineClients(t *testing.T) {
	if testing.Short() {
		t.Skip("several simulations")
	}
	base := func(agg string) config.Config {
		c := small(t, "fedavg")
		c.Clients, c.ClientsPerRound, c.Rounds = 10, 10, 8
		c.Train.Epochs, c.Train.LR = 2, 0.05
		c.Data.Synthetic.TrainPerClass, c.Data.Synthetic.TestPerClass = 100, 40
		c.Server.Aggregator, c.Server.Trim, c.Server.KrumF = agg, 0.2, 2
		c.Attack.Clients, c.Attack.Kind = 2, "scale"
		return c
	}
	clean := base("mean")
	clean.Attack.Clients = 0
	ref := finalFused(t, clean)
	if ref < 0.6 {
		t.Fatalf("clean run reached only %v", ref)
	}
	if acc := finalFused(t, base("mean")); acc > ref-0.3 {
		t.Errorf("mean under attack %v, clean %v: the attack did not bite", acc, ref)
	}
	for _, agg := range []string{"median", "trimmed_mean", "multikrum"} {
		if acc := finalFused(t, base(agg)); acc < ref-0.1 {
			t.Errorf("%s under attack %v, clean %v", agg, acc, ref)
		}
	}
	// Krum keeps a single client's update: slower on non-IID clients,
	// but far from the mean's collapse.
	if acc := finalFused(t, base("krum")); acc < ref-0.3 {
		t.Errorf("krum under attack %v, clean %v", acc, ref)
	}
}

// TestServerOptionsEveryMethod: a server optimizer and a robust
// aggregator compose with every method's strategy.
func TestServerOptionsEveryMethod(t *testing.T) {
	if testing.Short() {
		t.Skip("one simulation per method")
	}
	for _, method := range []string{"fedcmi", "scaffold", "harmony", "pmr", "ogm-ge", "fedmdrop", "fedcmi-fedstats"} {
		t.Run(method, func(t *testing.T) {
			cfg := small(t, method)
			cfg.Rounds = 2
			cfg.Server.Optimizer, cfg.Server.Aggregator = "yogi", "median"
			res, err := Run(context.Background(), cfg, Options{Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res.Rounds {
				if !(r.Heads[0] >= 0 && r.Heads[0] <= 1) || r.Clients == 0 {
					t.Fatalf("round %+v", r)
				}
			}
		})
	}
}

// TestPrivacyRecorded: with DP the metrics files carry epsilon per round,
// growing, equal to the accountant's; the progress line prints it.
func TestPrivacyRecorded(t *testing.T) {
	for _, noise := range []string{"server", "client"} {
		t.Run(noise, func(t *testing.T) {
			cfg := small(t, "fedavg")
			cfg.DP.Clip, cfg.DP.NoiseMultiplier, cfg.DP.Noise = 0.5, 0.8, noise
			cfg.DP.Adaptive, cfg.DP.CountStd = true, 1
			res, err := Run(context.Background(), cfg, Options{Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			acct := fl.Accountant{Q: 4.0 / 6, Sigma: 0.8, Delta: 1e-5}
			f, err := os.Open(filepath.Join(res.Dir, rundir.MetricsJSONL))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			schema, rounds, err := metrics.ReadJSONL(f)
			if err != nil || !schema.Privacy || len(rounds) != cfg.Rounds {
				t.Fatalf("metrics: privacy %v, %d rounds, %v", schema.Privacy, len(rounds), err)
			}
			for _, r := range rounds {
				want, _ := acct.Epsilon(r.Round)
				if math.Abs(r.Epsilon-want) > 1e-9 || !(r.Heads[0] >= 0) {
					t.Errorf("round %d: epsilon %v, want %v (fused %v)", r.Round, r.Epsilon, want, r.Heads[0])
				}
			}
			sum, err := os.ReadFile(filepath.Join(res.Dir, rundir.SummaryFile))
			if err != nil || !strings.Contains(string(sum), `"epsilon":`) {
				t.Errorf("summary without epsilon: %s %v", sum, err)
			}
		})
	}
}
