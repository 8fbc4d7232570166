package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/compute"
)

// testBackends holds the tests' backends: [0] for MLPs, [1] for CNNs
// (NewBackend runs a CNN's graph nodes in parallel).
var testBackends [2]compute.Backend

// backend returns the backend for MLP models.
func backend(t testing.TB) compute.Backend { return backendFor(t, Arch{}) }

// backendFor returns the backend NewBackend chooses for arch.
func backendFor(t testing.TB, arch Arch) compute.Backend {
	t.Helper()
	i := 0
	if arch.hasCNN() {
		i = 1
	}
	if testBackends[i] == nil {
		b, err := NewBackend("", arch, 1)
		if err != nil {
			t.Fatal(err)
		}
		testBackends[i] = b
	}
	return testBackends[i]
}

func tinyArch() Arch {
	a := DefaultArch([]string{"audio", "visual"}, []int{5, 4}, 3)
	a.Hidden = []int{6}
	a.EmbedDim = 4
	return a
}

// triArch is tinyArch with a third modality.
func triArch() Arch {
	a := DefaultArch([]string{"audio", "visual", "text"}, []int{5, 4, 3}, 3)
	a.Hidden = []int{6}
	a.EmbedDim = 4
	return a
}

// toyBatch returns n rows where modality 0 carries the label clearly,
// modality 1 weakly and a third modality in between.
func toyBatch(arch Arch, n int, seed uint64) Batch {
	rng := rand.New(rand.NewPCG(seed, 1))
	nm := arch.NumModalities()
	b := Batch{Labels: make([]int, n), X: make([][]float32, nm)}
	for m := range nm {
		b.X[m] = make([]float32, n*arch.InputDims[m])
	}
	for i := range n {
		y := rng.IntN(arch.NumClasses)
		b.Labels[i] = y
		for m := range nm {
			d := arch.InputDims[m]
			for j := range d {
				v := rng.NormFloat64()
				if j == y {
					v += []float64{3, 0.7, 1.5, 1, 1, 1, 1, 1}[m]
				}
				b.X[m][i*d+j] = float32(v)
			}
		}
	}
	return b
}

// hasInfiltration reports whether cfg has FedCMI's infiltration term.
func hasInfiltration(cfg TrainConfig) bool {
	for _, tm := range cfg.Terms {
		if _, ok := tm.(*infiltrationTerm); ok {
			return true
		}
	}
	return false
}

// rowTemps returns Batch.Temp for nm modalities with every pair of row i
// at temps[i].
func rowTemps(temps []float32, nm int) []float32 {
	out := make([]float32, 0, len(temps)*nm*nm)
	for _, t := range temps {
		for range nm * nm {
			out = append(out, t)
		}
	}
	return out
}

func mustInit(t testing.TB, a Arch, seed uint64) Params {
	t.Helper()
	p, err := a.Init(seed)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// stepOnce runs one plain SGD step (no momentum, weight decay or proximal
// term) from params, with start as teacher, and returns the parameters after
// it and the step's statistics (measured before the update).
func stepOnce(t *testing.T, e *Engine, params, start Params, cfg TrainConfig, b Batch, lr float64) (Params, StepStats) {
	t.Helper()
	cfg.Momentum, cfg.WeightDecay = 0, 0
	var terms []Term
	for _, tm := range cfg.Terms {
		if _, prox := tm.(*proximalTerm); !prox {
			terms = append(terms, tm)
		}
	}
	cfg.Terms = terms
	l, err := e.NewLocalFrom(params, start, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	st, err := l.Step(b, lr)
	if err != nil {
		t.Fatal(err)
	}
	after, err := l.Params()
	if err != nil {
		t.Fatal(err)
	}
	return after, st
}

// gradientAt returns the gradient of the step loss at params by one step
// with lr 1: w' = w - g.
func gradientAt(t *testing.T, e *Engine, params, start Params, cfg TrainConfig, b Batch) (Params, StepStats) {
	t.Helper()
	after, st := stepOnce(t, e, params, start, cfg, b, 1)
	g := params.Clone()
	for i := range g {
		for j := range g[i].Data {
			g[i].Data[j] = params[i].Data[j] - after[i].Data[j]
		}
	}
	return g, st
}

// lossAt evaluates the step loss at params without changing them (lr 0).
func lossAt(t *testing.T, e *Engine, params, start Params, cfg TrainConfig, b Batch) StepStats {
	t.Helper()
	_, st := stepOnce(t, e, params, start, cfg, b, 0)
	return st
}

// TestStepGradient checks the in-graph gradient of every client kind's loss
// (including the infiltration term and its direction switch) against
// central finite differences.
func TestStepGradient(t *testing.T) {
	checkStepGradient(t, tinyArch(), toyBatch(tinyArch(), 6, 3))
}

// TestStepGradientThreeModalities is TestStepGradient with three
// modalities, including a client holding two of them.
func TestStepGradientThreeModalities(t *testing.T) {
	checkStepGradient(t, triArch(), toyBatch(triArch(), 6, 3))
}

func checkStepGradient(t *testing.T, arch Arch, b Batch) {
	e, err := NewEngine(backendFor(t, arch), arch, 8)
	if err != nil {
		t.Fatal(err)
	}
	nm := arch.NumModalities()
	b.Temp = make([]float32, 6*nm*nm)
	for i := range b.Temp {
		b.Temp[i] = []float32{1, 0.5, 2, 1, 0.7, 1.3, 0.8}[i%7]
	}
	all := make([]bool, nm)
	for m := range all {
		all[m] = true
	}
	type config struct {
		name string
		cfg  TrainConfig
	}
	cases := []config{
		{"multimodal", TrainConfig{Has: all, C1: 2}},
		{"multimodal+infiltration", TrainConfig{Has: all, C1: 2, Terms: []Term{Infiltration(1.5, false)}}},
	}
	for m := range nm {
		only := make([]bool, nm)
		only[m] = true
		cases = append(cases, config{arch.Modalities[m] + "-only", TrainConfig{Has: only}})
	}
	if nm > 2 {
		some := make([]bool, nm)
		some[0], some[nm-1] = true, true
		cases = append(cases, config{"first-and-last+infiltration", TrainConfig{Has: some, C1: 2, Terms: []Term{Infiltration(1.5, false)}}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := mustInit(t, arch, 8) // a different teacher, as after some local steps
			seeds := []uint64{7}
			if hasInfiltration(tc.cfg) {
				// Check every teacher: find initialisations where the
				// batch is dominated by each held modality.
				seeds = directionSeeds(t, e, start, tc.cfg, b)
			}
			for _, seed := range seeds {
				checkGradientAt(t, e, jitter(mustInit(t, arch, seed), seed), start, tc.cfg, b)
			}
		})
	}
}

// jitter adds small noise to every parameter: zero-initialised residual
// convolutions put ReLUs exactly at their kink, where finite differences
// and the (one-sided) gradient legitimately disagree.
func jitter(p Params, seed uint64) Params {
	rng := rand.New(rand.NewPCG(seed, 99))
	q := p.Clone()
	for i := range q {
		for j := range q[i].Data {
			q[i].Data[j] += float32(0.05 * rng.NormFloat64())
		}
	}
	return q
}

// teacherOf returns the batch's teacher: the modality with the largest
// sum of true-class probabilities (ties to the later one), and whether it
// leads every other held one by 2%.
func teacherOf(sums []float64) (int, bool) {
	best := 0
	for m := range sums {
		if sums[m] >= sums[best] {
			best = m
		}
	}
	clear := true
	for m, v := range sums {
		if m != best && v > 0 && sums[best] <= v*1.02 {
			clear = false
		}
	}
	return best, clear
}

// directionSeeds returns one initialisation seed per held modality whose
// batch has that modality clearly dominant (largest sum of p_m(y)).
func directionSeeds(t *testing.T, e *Engine, start Params, cfg TrainConfig, b Batch) []uint64 {
	t.Helper()
	found := map[int]uint64{}
	want := 0
	for _, h := range cfg.Has {
		if h {
			want++
		}
	}
	for seed := uint64(1); seed < 400 && len(found) < want; seed++ {
		arch := e.Arch()
		st := lossAt(t, e, jitter(mustInit(t, arch, seed), seed), start, cfg, b)
		if m, ok := teacherOf(st.SumP); ok && found[m] == 0 {
			found[m] = seed
		}
	}
	if len(found) < want {
		t.Fatalf("initialisations found for teachers %v only", found)
	}
	var seeds []uint64
	for m := range cfg.Has {
		if found[m] != 0 {
			seeds = append(seeds, found[m])
		}
	}
	return seeds
}

// checkGradientAt compares the step's gradient at params with central
// finite differences on three random entries of every tensor.
func checkGradientAt(t *testing.T, e *Engine, params, start Params, cfg TrainConfig, b Batch) {
	t.Helper()
	layout := e.Layout()
	g, _ := gradientAt(t, e, params, start, cfg, b)
	rng := rand.New(rand.NewPCG(11, 0))
	// fd is the central difference with step h, or ok=false where the
	// infiltration direction flips inside the interval.
	fd := func(i, j int, h float32) (float64, bool) {
		plus, minus := params.Clone(), params.Clone()
		plus[i].Data[j] += h
		minus[i].Data[j] -= h
		sp := lossAt(t, e, plus, start, cfg, b)
		sm := lossAt(t, e, minus, start, cfg, b)
		tp, _ := teacherOf(sp.SumP)
		tm, _ := teacherOf(sm.SumP)
		return (sp.Loss - sm.Loss) / (2 * float64(h)), tp == tm
	}
	// float32 losses of O(10) give differences good to about 1e-3.
	close := func(a, b float64) bool { return math.Abs(a-b) <= 3e-3+0.05*math.Abs(b) }
	checked := 0
	for i, info := range layout {
		for range 3 {
			j := rng.IntN(info.Size())
			f1, ok1 := fd(i, j, 1e-2)
			f2, ok2 := fd(i, j, 1e-3)
			if !ok1 || !ok2 || !close(f1, f2) {
				continue // a ReLU kink or a direction flip nearby: not smooth here
			}
			if got := float64(g[i].Data[j]); !close(got, f1) {
				t.Errorf("%s[%d]: gradient %.6f, finite difference %.6f", info.Name, j, got, f1)
			}
			checked++
		}
	}
	if checked < len(layout) {
		t.Fatalf("only %d entries checked", checked)
	}
}

// TestTrainableSets checks that a step changes exactly the parameters the
// client kind's loss reaches.
func TestTrainableSets(t *testing.T) {
	arch := tinyArch()
	e, err := NewEngine(backend(t), arch, 8)
	if err != nil {
		t.Fatal(err)
	}
	b := toyBatch(arch, 8, 4)
	for _, tc := range []struct {
		name    string
		cfg     TrainConfig
		changes func(ParamInfo) bool
	}{
		{"multimodal", TrainConfig{Has: []bool{true, true}, C1: 2},
			func(p ParamInfo) bool { return true }},
		{"multimodal+infiltration", TrainConfig{Has: []bool{true, true}, C1: 2, Terms: []Term{Infiltration(1, false)}},
			func(p ParamInfo) bool { return true }},
		{"first-only", TrainConfig{Has: []bool{true, false}},
			func(p ParamInfo) bool { return p.Side == -1 || p.Side == 0 && p.Part != PartClassifier }},
		{"second-only", TrainConfig{Has: []bool{false, true}},
			func(p ParamInfo) bool { return p.Side == -1 || p.Side == 1 && p.Part != PartClassifier }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed := changedTensors(t, e, mustInit(t, arch, 1), tc.cfg, b)
			for i, info := range arch.Layout() {
				if changed[i] != tc.changes(info) {
					t.Errorf("%s: changed=%v, want %v", info.Name, changed[i], !changed[i])
				}
			}
		})
	}
	// Three modalities: a client holding two trains those two and the
	// fusion head, never the third.
	tri := triArch()
	e3, err := NewEngine(backend(t), tri, 8)
	if err != nil {
		t.Fatal(err)
	}
	b3 := toyBatch(tri, 8, 4)
	b3.X[1] = nil
	changed := changedTensors(t, e3, mustInit(t, tri, 1), TrainConfig{Has: []bool{true, false, true}, C1: 2, Terms: []Term{Infiltration(1, false)}}, b3)
	for i, info := range tri.Layout() {
		if want := info.Side != 1; changed[i] != want {
			t.Errorf("three modalities, two held: %s: changed=%v, want %v", info.Name, changed[i], want)
		}
	}
}

// changedTensors runs one step of cfg from p with weight decay 0.1, so that
// every trainable tensor moves even with a zero gradient, and reports which
// tensors changed (by layout index).
func changedTensors(t *testing.T, e *Engine, p Params, cfg TrainConfig, b Batch) []bool {
	t.Helper()
	cfg.WeightDecay = 0.1
	l, err := e.NewLocal(p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Step(b, 0.1); err != nil {
		t.Fatal(err)
	}
	q, err := l.Params()
	if err != nil {
		t.Fatal(err)
	}
	changed := make([]bool, len(q))
	for i := range q {
		for j := range q[i].Data {
			changed[i] = changed[i] || q[i].Data[j] != p[i].Data[j]
		}
	}
	return changed
}

// TestOptimizer checks two steps of SGD with momentum, weight decay and the
// proximal term against the update rule written out by hand, with the
// gradients measured separately:
//
//	buf1 = g0 + wd w0;                    w1 = w0 - lr buf1
//	buf2 = m buf1 + g1 + wd w1 + mu (w1 - w0); w2 = w1 - lr buf2
func TestOptimizer(t *testing.T) {
	arch := tinyArch()
	e, err := NewEngine(backend(t), arch, 8)
	if err != nil {
		t.Fatal(err)
	}
	b1, b2 := toyBatch(arch, 8, 5), toyBatch(arch, 7, 6)
	const lr, mom, wd, mu = 0.05, 0.9, 0.01, 0.5
	cfg := TrainConfig{Has: []bool{true, true}, C1: 2, Momentum: mom, WeightDecay: wd, Terms: []Term{Infiltration(1, false), Proximal(mu)}}
	w0 := mustInit(t, arch, 2)
	l, err := e.NewLocal(w0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Step(b1, lr); err != nil {
		t.Fatal(err)
	}
	w1got, _ := l.Params()
	if _, err := l.Step(b2, lr); err != nil {
		t.Fatal(err)
	}
	w2got, _ := l.Params()

	g0, _ := gradientAt(t, e, w0, w0, cfg, b1)
	w1, buf1 := w0.Clone(), w0.Clone()
	for i := range w0 {
		for j := range w0[i].Data {
			buf1[i].Data[j] = g0[i].Data[j] + wd*w0[i].Data[j]
			w1[i].Data[j] = w0[i].Data[j] - lr*buf1[i].Data[j]
		}
	}
	g1, _ := gradientAt(t, e, w1, w0, cfg, b2)
	for i, info := range arch.Layout() {
		for j := range w0[i].Data {
			if d := math.Abs(float64(w1got[i].Data[j] - w1[i].Data[j])); d > 1e-5 {
				t.Fatalf("step 1 %s[%d]: got %v, want %v", info.Name, j, w1got[i].Data[j], w1[i].Data[j])
			}
			buf2 := mom*buf1[i].Data[j] + g1[i].Data[j] + wd*w1[i].Data[j] + mu*(w1[i].Data[j]-w0[i].Data[j])
			want := w1[i].Data[j] - lr*buf2
			if d := math.Abs(float64(w2got[i].Data[j] - want)); d > 1e-5 {
				t.Fatalf("step 2 %s[%d]: got %v, want %v", info.Name, j, w2got[i].Data[j], want)
			}
		}
	}
}

// TestPartialBatch checks that padding and masking make a batch of n rows
// in a graph of size B > n train exactly like a graph of size n.
func TestPartialBatch(t *testing.T) {
	arch := tinyArch()
	small, err := NewEngine(backend(t), arch, 5)
	if err != nil {
		t.Fatal(err)
	}
	big, err := NewEngine(backend(t), arch, 16)
	if err != nil {
		t.Fatal(err)
	}
	b := toyBatch(arch, 5, 9)
	cfg := TrainConfig{Has: []bool{true, true}, C1: 2, Momentum: 0.9, WeightDecay: 1e-4, Terms: []Term{Infiltration(1, false), Proximal(0.1)}}
	p := mustInit(t, arch, 3)
	var got [2]Params
	var stats [2]StepStats
	for k, e := range []*Engine{small, big} {
		l, err := e.NewLocal(p, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if stats[k], err = l.Step(b, 0.1); err != nil {
				t.Fatal(err)
			}
		}
		got[k], _ = l.Params()
		l.Close()
	}
	if math.Abs(stats[0].Loss-stats[1].Loss) > 1e-5 || math.Abs(stats[0].SumP[0]-stats[1].SumP[0]) > 1e-5 {
		t.Fatalf("stats differ: %+v vs %+v", stats[0], stats[1])
	}
	for i := range got[0] {
		for j := range got[0][i].Data {
			if d := math.Abs(float64(got[0][i].Data[j] - got[1][i].Data[j])); d > 1e-5 {
				t.Fatalf("%s[%d]: %v vs %v", got[0][i].Name, j, got[0][i].Data[j], got[1][i].Data[j])
			}
		}
	}
}

// TestArchVariantsTrain checks every fusion and projector kind compiles and
// lowers the loss on an easy problem.
func TestArchVariantsTrain(t *testing.T) {
	for _, fusion := range []string{FusionConcat, FusionSum, FusionFiLM, FusionGated} {
		for _, proj := range []string{ProjectorLinear, ProjectorMLP} {
			t.Run(fusion+"/"+proj, func(t *testing.T) {
				arch := tinyArch()
				arch.Fusion, arch.Projector = fusion, proj
				e, err := NewEngine(backend(t), arch, 16)
				if err != nil {
					t.Fatal(err)
				}
				b := toyBatch(arch, 16, 1)
				l, err := e.NewLocal(mustInit(t, arch, 4), TrainConfig{Has: []bool{true, true}, C1: 2, Momentum: 0.9, Terms: []Term{Infiltration(1, false)}})
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				var first, last StepStats
				for i := range 60 {
					st, err := l.Step(b, 0.05)
					if err != nil {
						t.Fatal(err)
					}
					if i == 0 {
						first = st
					}
					last = st
				}
				if !(last.Loss < 0.7*first.Loss) {
					t.Fatalf("loss %v -> %v: did not learn", first.Loss, last.Loss)
				}
				pred, err := e.Predict(mustInit(t, arch, 4), b.X, 16)
				if err != nil {
					t.Fatal(err)
				}
				for h := range NumHeads(2) {
					if len(pred.Preds[h]) != 16 {
						t.Fatalf("head %d: %d predictions", h, len(pred.Preds[h]))
					}
				}
			})
		}
	}
}

func TestStepRejectsBadBatches(t *testing.T) {
	arch := tinyArch()
	e, err := NewEngine(backend(t), arch, 4)
	if err != nil {
		t.Fatal(err)
	}
	l, err := e.NewLocal(mustInit(t, arch, 1), TrainConfig{Has: []bool{true, true}, C1: 2, Terms: []Term{Infiltration(1, false)}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	good := toyBatch(arch, 4, 1)
	for _, tc := range []struct {
		name string
		b    Batch
	}{
		{"empty", Batch{X: good.X}},
		{"too many rows", toyBatch(arch, 5, 1)},
		{"label out of range", Batch{X: good.X, Labels: []int{0, 1, 3, 0}}},
		{"short modality", Batch{X: [][]float32{good.X[0][:3], good.X[1]}, Labels: good.Labels}},
		{"temperatures", Batch{X: good.X, Labels: good.Labels, Temp: []float32{1}}},
		{"teacher choices", Batch{X: good.X, Labels: good.Labels, Dir: []float32{1, 2}}},
		{"teacher not held", Batch{X: good.X, Labels: good.Labels, Dir: []float32{1, 2, 3, 0}}},
		{"zero temperatures", Batch{X: good.X, Labels: good.Labels, Temp: make([]float32, 4*2*2)}},
	} {
		if _, err := l.Step(tc.b, 0.1); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	for _, lr := range []float64{math.NaN(), math.Inf(1), -0.1} {
		if _, err := l.Step(good, lr); err == nil || !strings.Contains(err.Error(), "learning rate") {
			t.Errorf("learning rate %v: %v", lr, err)
		}
	}
	if _, err := e.NewLocal(mustInit(t, arch, 1), TrainConfig{}); err == nil {
		t.Error("a client without modalities was accepted")
	}
	for _, cfg := range []TrainConfig{{C1: math.NaN()}, {Momentum: math.Inf(1)}, {WeightDecay: math.NaN()}} {
		cfg.Has = []bool{true, true}
		if _, err := e.NewLocal(mustInit(t, arch, 1), cfg); err == nil || !strings.Contains(err.Error(), "want a finite number") {
			t.Errorf("%+v: %v", cfg, err)
		}
	}

	// A batch whose loss is not finite leaves the parameters as they were,
	// and the session goes on.
	before, err := l.Params()
	if err != nil {
		t.Fatal(err)
	}
	inf := Batch{X: [][]float32{append([]float32{float32(math.Inf(1))}, good.X[0][1:]...), good.X[1]}, Labels: good.Labels}
	if _, err := l.Step(inf, 0.1); err == nil || !strings.Contains(err.Error(), "parameters left as they were") {
		t.Fatalf("infinite input: %v", err)
	}
	after, err := l.Params()
	if err != nil {
		t.Fatal(err)
	}
	for i := range before {
		for j, v := range before[i].Data {
			if after[i].Data[j] != v {
				t.Fatalf("%s[%d] changed from %v to %v by a step with a non-finite loss", before[i].Name, j, v, after[i].Data[j])
			}
		}
	}
	if st, err := l.Step(good, 0.1); err != nil || math.IsNaN(st.Loss) {
		t.Fatalf("the step after: loss %v, %v", st.Loss, err)
	}
}

// TestEvalInputRows: row counts that nothing bounds (no modality's
// values given, negative, or overflowing rows x width) are refused by
// Predict and Embed instead of allocating or looping without end.
func TestEvalInputRows(t *testing.T) {
	arch := tinyArch()
	e, err := NewEngine(backend(t), arch, 4)
	if err != nil {
		t.Fatal(err)
	}
	p := mustInit(t, arch, 1)
	for _, tc := range []struct {
		name string
		x    [][]float32
		n    int
		want string
	}{
		{"negative", nil, -1, "-1 rows"},
		{"no values", [][]float32{nil, nil}, 1 << 50, "but no modality's values"},
		{"overflow", [][]float32{make([]float32, 5)}, math.MaxInt/2 + 1, "values for"},
	} {
		if _, err := e.Predict(p, tc.x, tc.n); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("predict %s: %v, want %q", tc.name, err, tc.want)
		}
		if _, err := e.Embed(p, tc.x, tc.n); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("embed %s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if pred, err := e.Predict(p, nil, 0); err != nil || len(pred.Preds[0]) != 0 {
		t.Errorf("no rows: %v", err)
	}
}

func TestPredictManyRows(t *testing.T) {
	arch := tinyArch()
	e, err := NewEngine(backend(t), arch, 4)
	if err != nil {
		t.Fatal(err)
	}
	p := mustInit(t, arch, 1)
	n := DefaultEvalBatch + 37
	b := toyBatch(arch, n, 2)
	all, err := e.Predict(p, b.X, n)
	if err != nil {
		t.Fatal(err)
	}
	// The rows of the second chunk, predicted on their own, agree.
	lo := DefaultEvalBatch
	part, err := e.Predict(p, [][]float32{b.X[0][lo*5:], b.X[1][lo*4:]}, n-lo)
	if err != nil {
		t.Fatal(err)
	}
	for h := range NumHeads(2) {
		for i := range part.Preds[h] {
			if part.Preds[h][i] != all.Preds[h][lo+i] {
				t.Fatalf("head %d row %d: %d vs %d", h, i, part.Preds[h][i], all.Preds[h][lo+i])
			}
		}
	}
	if len(all.Prob[0]) != n*3 {
		t.Fatalf("%d probabilities", len(all.Prob[0]))
	}
	for i := range n {
		s := 0.0
		for c := range 3 {
			s += float64(all.Prob[1][i*3+c])
		}
		if math.Abs(s-1) > 1e-5 {
			t.Fatalf("row %d: probabilities sum to %v", i, s)
		}
	}
}

func BenchmarkStep(b *testing.B) {
	arch := DefaultArch([]string{"audio", "visual"}, []int{32, 32}, 6)
	for _, tc := range []struct {
		name string
		cfg  TrainConfig
	}{
		{"fedavg", TrainConfig{Has: []bool{true, true}, C1: 2, Momentum: 0.9, WeightDecay: 1e-4}},
		{"fedcmi", TrainConfig{Has: []bool{true, true}, C1: 2, Momentum: 0.9, WeightDecay: 1e-4, Terms: []Term{Infiltration(1, false), Proximal(1)}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e, err := NewEngine(backend(b), arch, 16)
			if err != nil {
				b.Fatal(err)
			}
			batch := toyBatch(arch, 16, 1)
			l, err := e.NewLocal(mustInit(b, arch, 1), tc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			benchSteps(b, l, batch)
		})
	}
}

// TestTeacherLogitsInput checks that a step fed the start model's self-head
// logits (from Predict) equals the step that runs the teacher in-graph, and
// that missing logits are refused.
func TestTeacherLogitsInput(t *testing.T) {
	arch := tinyArch()
	e, err := NewEngine(backend(t), arch, 8)
	if err != nil {
		t.Fatal(err)
	}
	start := mustInit(t, arch, 1)
	params := jitter(start, 5) // differs from the teacher, so a wrong teacher shows
	b := toyBatch(arch, 6, 2)
	b.Temp = rowTemps([]float32{1, 2, 3, 1, 2, 3}, 2)
	pred, err := e.Predict(start, b.X, 6)
	if err != nil {
		t.Fatal(err)
	}
	cfg := TrainConfig{Has: []bool{true, true}, C1: 2, Terms: []Term{Infiltration(1, false)}}
	want, wst := stepOnce(t, e, params, start, cfg, b, 0.1)
	cfg.Terms = []Term{Infiltration(1, true)}
	fed := b
	fed.Teacher = [][]float32{pred.Logits[0], pred.Logits[1]}
	got, gst := stepOnce(t, e, params, start, cfg, fed, 0.1)
	if math.Abs(wst.Loss-gst.Loss) > 1e-5 {
		t.Errorf("loss %v with teacher inputs, %v in-graph", gst.Loss, wst.Loss)
	}
	for i := range want {
		for j := range want[i].Data {
			if d := math.Abs(float64(want[i].Data[j] - got[i].Data[j])); d > 1e-5 {
				t.Fatalf("%s[%d] = %v with teacher inputs, %v in-graph", want[i].Name, j, got[i].Data[j], want[i].Data[j])
			}
		}
	}
	// A wrong teacher changes the step: the inputs are really used.
	fed.Teacher = [][]float32{pred.Logits[1], pred.Logits[0]}
	if _, st := stepOnce(t, e, params, start, cfg, fed, 0.1); math.Abs(st.Loss-wst.Loss) < 1e-6 {
		t.Error("swapped teacher logits gave the same loss")
	}
	l, err := e.NewLocalFrom(params, start, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Step(b, 0.1); err == nil || !strings.Contains(err.Error(), "teacher logits") {
		t.Errorf("step without teacher logits: %v", err)
	}
}

// TestCheckNonFinite: Check names the first NaN or infinite value wherever
// it sits (allFinite sums in four lanes plus a tail).
func TestCheckNonFinite(t *testing.T) {
	arch := tinyArch()
	for _, tc := range []struct {
		tensor, index int
		v             float64
	}{
		{0, 0, math.NaN()}, {0, 3, math.Inf(1)}, {1, 0, math.Inf(-1)}, {2, 5, math.NaN()},
		{len(arch.Layout()) - 1, 2, math.Inf(1)}, // the last tensor, a bias of 3 values: the tail loop
	} {
		p := mustInit(t, arch, 1)
		if tc.index >= len(p[tc.tensor].Data) {
			t.Fatalf("tensor %d has %d values", tc.tensor, len(p[tc.tensor].Data))
		}
		p[tc.tensor].Data[tc.index] = float32(tc.v)
		err := arch.Check(p)
		want := fmt.Sprintf("%q value %d is", p[tc.tensor].Name, tc.index)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v at %s[%d]: %v, want %s", tc.v, p[tc.tensor].Name, tc.index, err, want)
		}
	}
	if err := arch.Check(mustInit(t, arch, 1)); err != nil {
		t.Errorf("finite parameters: %v", err)
	}
}

// TestEvalBlocks checks that the block sizes runEval picks (full blocks,
// then evalTail-row blocks for a short rest) do not change what a row
// gets: every row's logits and embeddings equal those of the row run on
// its own, for row counts on both sides of each block boundary.
func TestEvalBlocks(t *testing.T) {
	arch := tinyArch()
	e, err := NewEngine(backend(t), arch, 4)
	if err != nil {
		t.Fatal(err)
	}
	p := mustInit(t, arch, 1)
	const most = 2*DefaultEvalBatch + 1
	b := toyBatch(arch, most, 3)
	alone := make([][]float32, most)
	embAlone := make([][]float32, most)
	for i := range most {
		x := [][]float32{b.X[0][i*5 : (i+1)*5], b.X[1][i*4 : (i+1)*4]}
		pred, err := e.Predict(p, x, 1)
		if err != nil {
			t.Fatal(err)
		}
		alone[i] = append(pred.Logits[0], pred.Logits[1]...)
		emb, err := e.Embed(p, x, 1)
		if err != nil {
			t.Fatal(err)
		}
		embAlone[i] = append(emb[0], emb[1]...)
	}
	k, d := arch.NumClasses, arch.EmbedDim
	for _, n := range []int{1, evalTail, evalTail + 1, DefaultEvalBatch / 2, DefaultEvalBatch/2 + 1, DefaultEvalBatch, DefaultEvalBatch + 5, most} {
		pred, err := e.Predict(p, [][]float32{b.X[0][:n*5], b.X[1][:n*4]}, n)
		if err != nil {
			t.Fatal(err)
		}
		emb, err := e.Embed(p, [][]float32{b.X[0][:n*5], b.X[1][:n*4]}, n)
		if err != nil {
			t.Fatal(err)
		}
		if len(pred.Logits[0]) != n*k || len(emb[1]) != n*d {
			t.Fatalf("n=%d: %d logits, %d embedding values", n, len(pred.Logits[0]), len(emb[1]))
		}
		for i := range n {
			got := append(append([]float32{}, pred.Logits[0][i*k:(i+1)*k]...), pred.Logits[1][i*k:(i+1)*k]...)
			gotEmb := append(append([]float32{}, emb[0][i*d:(i+1)*d]...), emb[1][i*d:(i+1)*d]...)
			for j := range got {
				if math.Abs(float64(got[j]-alone[i][j])) > 1e-5 {
					t.Fatalf("n=%d row %d: logit %d = %v, alone %v", n, i, j, got[j], alone[i][j])
				}
			}
			for j := range gotEmb {
				if math.Abs(float64(gotEmb[j]-embAlone[i][j])) > 1e-5 {
					t.Fatalf("n=%d row %d: embedding %d = %v, alone %v", n, i, j, gotEmb[j], embAlone[i][j])
				}
			}
		}
	}
	if got := e.evalBlock(DefaultEvalBatch/2 + 1); got != DefaultEvalBatch {
		t.Errorf("block for %d rows left: %d, want a full one", DefaultEvalBatch/2+1, got)
	}
	if got := e.evalBlock(DefaultEvalBatch / 2); got != evalTail {
		t.Errorf("block for %d rows left: %d, want %d", DefaultEvalBatch/2, got, evalTail)
	}
}

// TestHeadWeights checks the multimodal loss's head weights on one step's
// loss (measured before the update): the fused term alone (1, 0, 0) plus
// the self heads alone (0, 1, 1) is the whole loss at C1 = 1; nil is
// (1, 1, 1) exactly; a negative weight is refused.
func TestHeadWeights(t *testing.T) {
	arch := tinyArch()
	e, err := NewEngine(backend(t), arch, 8)
	if err != nil {
		t.Fatal(err)
	}
	b := toyBatch(arch, 8, 5)
	loss := func(c1 float64, w []float64) float64 {
		return firstStepLoss(t, e, TrainConfig{Has: []bool{true, true}, C1: c1, HeadWeights: w}, b)
	}
	whole, fused, self := loss(1, nil), loss(1, []float64{1, 0, 0}), loss(1, []float64{0, 1, 1})
	if math.Abs(fused+self-whole) > 1e-5 {
		t.Errorf("fused %v + self heads %v = %v, whole loss %v", fused, self, fused+self, whole)
	}
	if ones := loss(1, []float64{1, 1, 1}); ones != whole {
		t.Errorf("weights (1, 1, 1) give %v, nil %v", ones, whole)
	}
	if two := loss(2, []float64{1, 0.5, 0.5}); math.Abs(two-whole) > 1e-5 {
		t.Errorf("C1 2 with self weights 0.5: %v, want %v", two, whole)
	}
	if _, err := e.NewLocal(mustInit(t, arch, 1), TrainConfig{Has: []bool{true, true}, C1: 1, HeadWeights: []float64{1, -1, 1}}); err == nil {
		t.Error("a negative head weight was accepted")
	}
}

// TestPartialRows checks rows that lack a modality: what a missing side's
// features hold does not change the step's loss (its embedding enters the
// fused head as zeros and its self head skips the row); with every row
// present the loss is the plain session's; the combinations that do not
// support partial rows are refused.
func TestPartialRows(t *testing.T) {
	arch := tinyArch()
	e, err := NewEngine(backend(t), arch, 8)
	if err != nil {
		t.Fatal(err)
	}
	cfg := TrainConfig{Has: []bool{true, true}, C1: 2, Momentum: 0.9, Terms: []Term{Infiltration(1, false)}}
	loss := func(cfg TrainConfig, b Batch) float64 { return firstStepLoss(t, e, cfg, b) }
	b := toyBatch(arch, 6, 7)
	partial := cfg
	partial.PartialRows = true
	if p, plain := loss(partial, b), loss(cfg, b); math.Abs(p-plain) > 1e-6 {
		t.Errorf("every row present: loss %v, plain session %v", p, plain)
	}
	// Rows 1 and 4 lack modality 1 (width 4), row 2 modality 0 (width 5).
	b.Present = [][]float32{{1, 1, 0, 1, 1, 1}, {1, 0, 1, 1, 0, 1}}
	base := loss(partial, b)
	other := toyBatch(arch, 6, 7)
	other.Present = b.Present
	for j := range 4 {
		other.X[1][1*4+j], other.X[1][4*4+j] = 9, -9
	}
	for j := range 5 {
		other.X[0][2*5+j] = 5
	}
	if got := loss(partial, other); math.Abs(got-base) > 1e-6 {
		t.Errorf("missing sides' features changed the loss: %v vs %v", got, base)
	}
	// A present side's features do matter.
	other.X[1][0] += 3
	if got := loss(partial, other); math.Abs(got-base) < 1e-6 {
		t.Error("a present row's features did not change the loss")
	}
	for _, bad := range []TrainConfig{
		{Has: []bool{true, true}, C1: 2, PartialRows: true, Terms: []Term{OGMGE(OGM{Alpha: 0.1})}},
		{Has: []bool{true, true}, C1: 2, PartialRows: true, Terms: []Term{HarmonyStage1()}},
		{Has: []bool{true, true}, C1: 2, PartialRows: true, Terms: []Term{PrototypeLoss(ProtoLoss{Alpha: 1})}},
	} {
		if _, err := e.NewLocal(mustInit(t, arch, 1), bad); err == nil || !strings.Contains(err.Error(), "PartialRows") {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

// firstStepLoss returns the loss of one step of a session with cfg from the
// parameters of seed 1, measured before the update.
func firstStepLoss(t *testing.T, e *Engine, cfg TrainConfig, b Batch) float64 {
	t.Helper()
	arch := e.Arch()
	l, err := e.NewLocal(mustInit(t, arch, 1), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	st, err := l.Step(b, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	return st.Loss
}

// TestPartLR checks TrainConfig.PartLR: with plain SGD, one step moves
// the scaled parts by the scale times what an unscaled step moves them,
// and the other parts as an unscaled step does.
func TestPartLR(t *testing.T) {
	arch := tinyArch()
	e, err := NewEngine(backendFor(t, arch), arch, 8)
	if err != nil {
		t.Fatal(err)
	}
	start := mustInit(t, arch, 1)
	b := toyBatch(arch, 6, 2)
	step := func(partLR map[string]float64) Params {
		l, err := e.NewLocal(start, TrainConfig{Has: []bool{true, true}, C1: 2, PartLR: partLR})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if _, err := l.Step(b, 0.5); err != nil {
			t.Fatal(err)
		}
		p, err := l.Params()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain := step(nil)
	scaled := step(map[string]float64{PartEncoder: 0.1, PartFusion: 0})
	moved := map[string]int{}
	for i, info := range e.Layout() {
		want := 1.0
		switch info.Part {
		case PartEncoder:
			want = 0.1
		case PartFusion:
			want = 0
		}
		for k := range start[i].Data {
			d0 := float64(plain[i].Data[k] - start[i].Data[k])
			d := float64(scaled[i].Data[k] - start[i].Data[k])
			if math.Abs(d-want*d0) > 1e-6+1e-4*math.Abs(d0) {
				t.Fatalf("%s[%d]: moved %g, want %g x %g", info.Name, k, d, want, d0)
			}
			if d0 != 0 {
				moved[info.Part]++
			}
		}
	}
	for _, part := range []string{PartEncoder, PartFusion, PartSelf} {
		if moved[part] == 0 {
			t.Errorf("the unscaled step moved no %s parameter: the check above says nothing about it", part)
		}
	}
	if _, err := e.NewLocal(start, TrainConfig{Has: []bool{true, true}, PartLR: map[string]float64{PartSelf: math.NaN()}}); err == nil {
		t.Error("a NaN scale was accepted")
	}
}
