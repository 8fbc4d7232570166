package fl

import (
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"

	"github.com/fedcmi/fedcmi/data"
)

func near3(a, b []float64) bool {
	for k := range a {
		if math.Abs(a[k]-b[k]) > 1e-9 {
			return false
		}
	}
	return true
}

func TestBlendWeights(t *testing.T) {
	for _, tc := range []struct {
		name  string
		g, do []float64
		floor float64
		want  []float64
	}{
		// raw = 1/0.01, 0.5/0.25, 0 = 100, 2, 0: shares 100/102, 2/102, 0;
		// the two below 0.05 are raised to it, the first gives 0.0804 of its
		// 0.93 above the floor: 0.9.
		{"floor", []float64{1, 0.5, -1}, []float64{0.1, 0.5, 0.2}, 0.05, []float64{0.9, 0.05, 0.05}},
		{"no floor", []float64{1, 0.5, -1}, []float64{0.1, 0.5, 0.2}, 0, []float64{100.0 / 102, 2.0 / 102, 0}},
		// No head generalises: equal shares.
		{"none generalises", []float64{-1, 0, -0.5}, []float64{0.1, 0.1, 0.1}, 0.05, []float64{1.0 / 3, 1.0 / 3, 1.0 / 3}},
		// ΔO = 0 is bounded by gbMinDO2: equal G, equal shares.
		{"no overfitting change", []float64{1, 1, 1}, []float64{0, 0, 0}, 0, []float64{1.0 / 3, 1.0 / 3, 1.0 / 3}},
	} {
		if got := blendWeights(tc.g, tc.do, tc.floor); !near3(got, tc.want) {
			t.Errorf("%s: weights %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestGBState follows the estimate over three rounds of pooled losses,
// against values computed by hand (see the comments).
func TestGBState(t *testing.T) {
	var s gbState
	s.update([]float64{2, 2, 2}, []float64{1, 1, 1}, 0.5, 0.05)
	s.update([]float64{1.5, 1.8, 1.9}, []float64{0.8, 0.9, 1.0}, 0.5, 0.05)
	// O_2 = V_2 - T_1 = (0.5, 0.8, 0.9); no ΔO yet.
	if s.HaveGB || !s.HaveO || !near3(s.O, []float64{0.5, 0.8, 0.9}) {
		t.Fatalf("after two rounds: %+v", s)
	}
	s.update([]float64{1.2, 1.7, 1.9}, []float64{0.6, 0.8, 0.9}, 0.5, 0.05)
	// G = V_2 - V_3 = (0.3, 0.1, 0); O_3 = V_3 - T_2 = (0.4, 0.8, 0.9);
	// ΔO = (-0.1, 0, 0): raw 0.3/0.01 = 30, 0.1/1e-4 = 1000, 0; shares
	// 30/1030, 1000/1030, 0, floored: (0.05, 0.9, 0.05).
	if !s.HaveGB || !near3(s.G, []float64{0.3, 0.1, 0}) || !near3(s.DO, []float64{-0.1, 0, 0}) {
		t.Fatalf("after three rounds: %+v", s)
	}
	if !near3(s.Weights, []float64{0.05, 0.9, 0.05}) {
		t.Errorf("weights %v, want 0.05 0.9 0.05", s.Weights)
	}
	// Round 4 smooths: G = 0.5 G_old + 0.5 (V_3 - V_4).
	s.update([]float64{1.0, 1.7, 2.0}, []float64{0.5, 0.8, 0.9}, 0.5, 0.05)
	if want := []float64{0.5*0.3 + 0.5*0.2, 0.5 * 0.1, 0.5*0 + 0.5*(-0.1)}; !near3(s.G, want) {
		t.Errorf("smoothed G %v, want %v", s.G, want)
	}
}

func TestGradBlendStrategy(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	base := &ModalityAware{Method: gbMethod, PerRound: 2, Layout: aggLayout,
		Schedule: Schedule{Rounds: 10, Epochs: 1, LR: 0.1}, Options: FedCMIOptions{C1: 2}, Logger: quiet}
	g := &GradBlend{Base: base, Smoothing: 0.5, Floor: 0.05}
	global := aggParams(0, 0, 0, 0)
	clients := []ClientInfo{{ID: "c0", Modalities: data.Full(2), NumSamples: 1}, {ID: "c1", Modalities: data.Full(2), NumSamples: 3}}
	ins, err := g.ConfigureFit(1, global, clients)
	if err != nil {
		t.Fatal(err)
	}
	if rc, ok := ins[0].Ins.Config.Recipe.(GBFit); !ok || rc.HeadWeights != nil {
		t.Fatalf("round 1 recipe %+v; want fedgb's with the shared loss", ins[0].Ins.Config.Recipe)
	}
	// Two clients per round, rows 1 and 3, and a bad report that is left
	// out; pooled losses as in TestGBState.
	res := func(before, after []float64, n int) Result {
		return Result{ClientID: "c", Res: FitRes{Params: global, NumSamples: max(n, 1), Modalities: data.Full(2),
			Metrics: FitMetrics{Report: &GBLosses{Before: before, After: after, N: n}}}}
	}
	rounds := [][2][]float64{
		{{2, 2, 2}, {1, 1, 1}},
		{{1.5, 1.8, 1.9}, {0.8, 0.9, 1.0}},
		{{1.2, 1.7, 1.9}, {0.6, 0.8, 0.9}},
	}
	for r, vt := range rounds {
		results := []Result{res(vt[0], vt[1], 1), res(vt[0], vt[1], 3), res([]float64{-1, 0, 0}, vt[1], 3), res([]float64{9, 9, 9}, vt[1], 7)}
		results[3].Res.NumSamples = 2 // reports more rows than it has
		if _, err := g.AggregateFit(r+1, global, results, nil); err != nil {
			t.Fatal(err)
		}
	}
	ins, _ = g.ConfigureFit(4, global, clients)
	c := ins[0].Ins.Config
	rc, _ := c.Recipe.(GBFit)
	// Shares (0.05, 0.9, 0.05) over the largest: the first self head keeps
	// its shared-loss weight c1, the others get 1/18 of theirs.
	if c.C1 != 2 || rc.HeadWeights == nil || !near3(rc.HeadWeights, []float64{1.0 / 18, 1, 1.0 / 18}) {
		t.Fatalf("round 4: c1 %v, weights %v; want 2 and (1/18, 1, 1/18)", c.C1, rc.HeadWeights)
	}

	b, err := g.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	g2 := &GradBlend{Base: &ModalityAware{Layout: aggLayout, Options: FedCMIOptions{C1: 2}}}
	if err := g2.UnmarshalState(b); err != nil {
		t.Fatal(err)
	}
	if w := g2.headWeights(); w == nil || !near3(w, rc.HeadWeights) {
		t.Errorf("restored weights %v", w)
	}
	bad := strings.Replace(string(b), `"Weights":[0.05`, `"Weights":[2`, 1)
	if err := g2.UnmarshalState([]byte(bad)); err == nil || !strings.Contains(err.Error(), "outside [0, 1]") {
		t.Errorf("state with weight 2: %v", err)
	}
}

// TestPooledLossesBounds: reports with a loss outside [0, gbMaxLoss]
// are left out of the pool, so the sums stay finite and the state, with
// them, can be saved (JSON has no infinity).
func TestPooledLossesBounds(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	res := func(before, after []float64, n int) Result {
		return Result{ClientID: "c", Res: FitRes{NumSamples: n, Metrics: FitMetrics{Report: &GBLosses{Before: before, After: after, N: n}}}}
	}
	one := []float64{1, 1, 1}
	for _, tc := range []struct {
		name string
		bad  Result
	}{
		{"huge before", res([]float64{1e308, 1, 1}, one, 10)},
		{"huge after", res(one, []float64{1, 1, 2e6}, 10)},
		{"infinite", res([]float64{1, math.Inf(1), 1}, one, 10)},
		{"NaN", res(one, []float64{math.NaN(), 1, 1}, 10)},
		{"negative", res([]float64{1, 1, -1}, one, 10)},
		{"rows beyond samples", func() Result { r := res([]float64{5, 5, 5}, one, 10); r.Res.NumSamples = 9; return r }()},
		{"other heads", res([]float64{1, 1}, []float64{1, 1}, 10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The huge report twice: 2 * 10 * 1e308 overflows.
			v, tr, rows := pooledLosses([]Result{res([]float64{2, 2, 2}, one, 5), tc.bad, tc.bad}, 3, quiet, 1)
			if rows != 5 || !near3(v, []float64{2, 2, 2}) || !near3(tr, one) {
				t.Errorf("pooled %v, %v over %d rows; want the honest report alone", v, tr, rows)
			}
		})
	}
	// At the bound, a report is pooled.
	if v, _, rows := pooledLosses([]Result{res([]float64{gbMaxLoss, 0, 1}, one, 4)}, 3, quiet, 1); rows != 4 || v[0] != gbMaxLoss {
		t.Errorf("a report at the bound: %v over %d rows", v, rows)
	}

	// Through the strategy: the run's state can still be saved.
	base := &ModalityAware{Method: gbMethod, PerRound: 2, Layout: aggLayout,
		Schedule: Schedule{Rounds: 10, Epochs: 1, LR: 0.1}, Options: FedCMIOptions{C1: 2}, Logger: quiet}
	g := &GradBlend{Base: base, Smoothing: 0.5, Floor: 0.05}
	global := aggParams(0, 0, 0, 0)
	for r := range 3 {
		huge := Result{ClientID: "evil", Res: FitRes{Params: global, NumSamples: 10, Modalities: data.Full(2),
			Metrics: FitMetrics{Report: &GBLosses{Before: []float64{1e308, 1e308, 1e308}, After: one, N: 10}}}}
		honest := Result{ClientID: "c", Res: FitRes{Params: global, NumSamples: 10, Modalities: data.Full(2),
			Metrics: FitMetrics{Report: &GBLosses{Before: []float64{2 - 0.1*float64(r), 2, 2}, After: one, N: 10}}}}
		if _, err := g.AggregateFit(r+1, global, []Result{honest, huge}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := g.MarshalState(); err != nil {
		t.Fatalf("state: %v", err)
	}
}

func TestCrossEntropyRow(t *testing.T) {
	// softmax(0, ln 3) = (1/4, 3/4).
	if got := crossEntropyRow([]float32{0, float32(math.Log(3))}, 1); math.Abs(got-math.Log(4.0/3)) > 1e-6 {
		t.Errorf("CE %v, want %v", got, math.Log(4.0/3))
	}
	// Large logits stay finite.
	if got := crossEntropyRow([]float32{1000, 0}, 1); math.Abs(got-1000) > 1e-3 {
		t.Errorf("CE %v, want 1000", got)
	}
}
