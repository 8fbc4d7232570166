package sim

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/model"
	"github.com/fedcmi/fedcmi/rundir"
)

var updatePins = flag.Bool("update_pins", false, "rewrite testdata/pinned.json from this build (after a change that is meant to change results)")

// pinFile holds, per method, what a small run produced when it was last
// pinned.
const pinFile = "testdata/pinned.json"

// pinned is one method's small run: per round the training loss and the
// accuracy of every head (nil for NaN), and per model tensor the sum and
// the sum of squares of its values.
type pinned struct {
	TrainLoss []float64    `json:"train_loss"`
	Heads     [][]*float64 `json:"heads"`
	Tensors   [][2]float64 `json:"tensors"`
}

// pinRel is how far a pinned number may move: float reordering (a
// different summation order in the engine, a fused kernel) moves a 3-round
// run's losses and tensor sums by 1e-7 to 1e-6 relative; any change to
// what a method computes moves them by far more.
const pinRel = 1e-4

// pinAccuracy is how far a pinned accuracy may move: one test sample of
// the small run's 120.
const pinAccuracy = 1.0 / 100

// TestPinnedResults keeps every method's results on a small run equal to
// the pinned ones, up to float reordering (pinRel): refactoring the client,
// the engine or the strategies must not change what a method computes.
// After a change that is meant to change results, run
// `go test ./sim -run TestPinnedResults -update_pins` and say why in the
// commit.
func TestPinnedResults(t *testing.T) {
	got := map[string]pinned{}
	for _, method := range fl.MethodNames() {
		cfg := small(t, method)
		// Five rounds, so that every method's own machinery acts: fedgb's
		// weights from round 4, fedrelearn's re-initialisation at round 2.
		cfg.Rounds = 5
		cfg.FedRelearn.Every = 2
		res, err := Run(context.Background(), cfg, Options{Logger: quiet})
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		var p pinned
		for _, r := range res.Rounds {
			p.TrainLoss = append(p.TrainLoss, r.TrainLoss)
			var hs []*float64
			for _, h := range r.Heads {
				if math.IsNaN(h) {
					hs = append(hs, nil)
				} else {
					hs = append(hs, &h)
				}
			}
			p.Heads = append(p.Heads, hs)
		}
		fed, err := Prepare(context.Background(), &cfg, quiet)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(filepath.Join(res.Dir, rundir.ModelFile))
		if err != nil {
			t.Fatal(err)
		}
		params, _, err := model.ReadParams(f, &fed.Arch)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		for _, ten := range params {
			var s, sq float64
			for _, v := range ten.Data {
				s += float64(v)
				sq += float64(v) * float64(v)
			}
			p.Tensors = append(p.Tensors, [2]float64{s, sq})
		}
		got[method] = p
	}
	if *updatePins {
		data, err := json.MarshalIndent(got, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(pinFile, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", pinFile)
		return
	}
	data, err := os.ReadFile(pinFile)
	if err != nil {
		t.Fatalf("%v (create it with -update_pins)", err)
	}
	var want map[string]pinned
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatalf("%s: %v", pinFile, err)
	}
	for method, g := range got {
		w, ok := want[method]
		if !ok {
			t.Errorf("%s: no pinned results in %s; a new method is pinned with -update_pins", method, pinFile)
			continue
		}
		if err := comparePins(g, w); err != nil {
			t.Errorf("%s: %v", method, err)
		}
	}
}

// comparePins returns the first difference between got and want beyond
// pinRel.
func comparePins(got, want pinned) error {
	near := func(a, b float64) bool {
		return math.Abs(a-b) <= pinRel*math.Max(1e-3, math.Max(math.Abs(a), math.Abs(b)))
	}
	if len(got.TrainLoss) != len(want.TrainLoss) || len(got.Tensors) != len(want.Tensors) {
		return fmt.Errorf("%d rounds and %d tensors, pinned %d and %d", len(got.TrainLoss), len(got.Tensors), len(want.TrainLoss), len(want.Tensors))
	}
	for r := range got.TrainLoss {
		if !near(got.TrainLoss[r], want.TrainLoss[r]) {
			return fmt.Errorf("round %d: train loss %v, pinned %v", r+1, got.TrainLoss[r], want.TrainLoss[r])
		}
		for h := range got.Heads[r] {
			g, w := got.Heads[r][h], want.Heads[r][h]
			// A reordered sum may move one borderline test sample.
			if (g == nil) != (w == nil) || g != nil && math.Abs(*g-*w) > pinAccuracy {
				return fmt.Errorf("round %d head %d: accuracy %v, pinned %v", r+1, h, deref(g), deref(w))
			}
		}
	}
	for i := range got.Tensors {
		for k, what := range []string{"sum", "sum of squares"} {
			if !near(got.Tensors[i][k], want.Tensors[i][k]) {
				return fmt.Errorf("model tensor %d: %s %v, pinned %v", i, what, got.Tensors[i][k], want.Tensors[i][k])
			}
		}
	}
	return nil
}

func deref(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}
