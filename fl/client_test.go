package fl

import (
	"context"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/model"
)

func testEngine(t *testing.T) (*model.Engine, *data.Set) {
	t.Helper()
	cfg := data.DefaultSynthetic()
	cfg.TrainPerClass, cfg.TestPerClass = 10, 2
	train, _, err := data.Synthetic(cfg)
	if err != nil {
		t.Fatal(err)
	}
	arch := model.DefaultArch([]string{"audio", "visual"}, []int{32, 32}, 6)
	b, err := model.NewBackend("", arch, 1)
	if err != nil {
		t.Fatal(err)
	}
	arch.Hidden, arch.EmbedDim = []int{16}, 8
	e, err := model.NewEngine(b, arch, 8)
	if err != nil {
		t.Fatal(err)
	}
	return e, train
}

func fitConfig(round int) FitConfig {
	return FitConfig{
		Round: round, Epochs: 2, LR: 0.05, Seed: 3, C1: 2, Mu: 0.1, WeightDecay: 1e-4, Momentum: 0.9,
		FedCMI: FedCMIFit{Infiltration: true, ClassTemperature: true, Alpha: 1, C3: 2, Temperature: 1},
	}
}

func TestLocalClientFit(t *testing.T) {
	e, train := testEngine(t)
	arch := e.Arch()
	global, _ := arch.Init(1)
	idx := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20} // 21 rows: 3 batches of 8, the last partial
	for _, tc := range []struct {
		name  string
		has   data.Mask
		temps bool
	}{{"multimodal", 3, true}, {"audio only", 1, false}, {"visual only", 2, false}} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewLocalClient(e, train, idx, tc.has)
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Fit(context.Background(), FitIns{Params: global, Config: fitConfig(2)})
			if err != nil {
				t.Fatal(err)
			}
			if res.NumSamples != 21 || res.Modalities != tc.has || res.Metrics.Batches != 6 {
				t.Fatalf("result %+v", res.Metrics)
			}
			if err := CheckUpdate(e.Layout(), res); err != nil {
				t.Fatal(err)
			}
			if (res.Metrics.FedCMI.Temperatures != nil) != tc.temps {
				t.Fatalf("temperatures %v", res.Metrics.FedCMI.Temperatures)
			}
			for _, T := range res.Metrics.FedCMI.Temperatures {
				if !(T >= MinTemperature && T <= 1) {
					t.Fatalf("temperature %v outside [%v, 1]", T, MinTemperature)
				}
			}
			if tc.has == 3 && (res.Metrics.RhoBatches != 6 || res.Metrics.RhoSum <= 0) {
				t.Fatalf("dominance not measured: %+v", res.Metrics)
			}
			// Same instructions, same result.
			again, err := c.Fit(context.Background(), FitIns{Params: global, Config: fitConfig(2)})
			if err != nil {
				t.Fatal(err)
			}
			if again.Params[0].Data[3] != res.Params[0].Data[3] || again.Metrics.LossSum != res.Metrics.LossSum {
				t.Fatal("local training is not deterministic")
			}
			ev, err := c.Evaluate(context.Background(), res.Params)
			if err != nil {
				t.Fatal(err)
			}
			// A head is measured exactly when the client holds what it
			// reads: the fused head every modality, the others theirs.
			for h := range model.NumHeads(2) {
				can := c.Modalities() == 3
				for m := range 2 {
					if h == model.HeadOnly(m) || h == model.HeadBoth(m, 2) {
						can = c.Modalities().Has(m)
					}
				}
				if math.IsNaN(ev.Heads[h]) == can {
					t.Errorf("head %d: accuracy %v, computable %v", h, ev.Heads[h], can)
				}
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c, _ := NewLocalClient(e, train, idx, 3)
	if _, err := c.Fit(ctx, FitIns{Params: global, Config: fitConfig(2)}); err == nil {
		t.Error("a cancelled context did not stop local training")
	}
}

// personalClient returns a multimodal client that trained round 2 with
// personalised branches (so it keeps personal parts), its engine and that
// round's result.
func personalClient(t *testing.T) (*model.Engine, *LocalClient, FitRes) {
	t.Helper()
	e, train := testEngine(t)
	arch := e.Arch()
	global, _ := arch.Init(1)
	c, err := NewLocalClient(e, train, []int{0, 1, 2, 3, 4, 5, 6, 7}, 3)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fitConfig(2)
	cfg.FedCMI.Personalized = true
	res, err := c.Fit(context.Background(), FitIns{Params: global, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	return e, c, res
}

// TestPersonalizedBranches: with personalised branches a client starts
// round 2 from its own infiltration projectors and classifiers, not the
// server's, and keeps the shared parts of the new global model.
func TestPersonalizedBranches(t *testing.T) {
	e, c, res := personalClient(t)
	arch := e.Arch()
	next, _ := arch.Init(2) // a different global model for round 3
	start, own := c.startParams(next, true)
	if !own {
		t.Error("startParams put no personal parts in")
	}
	for i, info := range e.Layout() {
		want := next[i].Data
		if info.Personal() {
			want = res.Params[i].Data
		}
		if start[i].Data[0] != want[0] {
			t.Errorf("%s: starts from the wrong copy", info.Name)
		}
	}
	if start, _ := c.startParams(next, false); start[len(start)-1].Data[0] != next[len(next)-1].Data[0] {
		t.Error("non-personalised start is not the global model")
	}
}

// TestPersonalTeacherAndAnchor: a client with personal parts trains them
// from its own copy, but is taught and anchored by the model it received
// (the method's "frozen global model" and w_global): with lr·mu = 1, each
// step puts a personal tensor at the received one, less lr times its
// gradient; and the precomputed teacher's logits are the received
// model's.
func TestPersonalTeacherAndAnchor(t *testing.T) {
	e, c, _ := personalClient(t)
	own := maps.Clone(c.personal)
	arch := e.Arch()
	next, _ := arch.Init(2)

	prox := FitConfig{Round: 3, Epochs: 1, LR: 0.01, Seed: 3, C1: 2, Mu: 100, FedCMI: FedCMIFit{Personalized: true}}
	res, err := c.Fit(context.Background(), FitIns{Params: next, Config: prox})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range own {
		var toGlobal, toOwn float64
		for j, v := range res.Params[i].Data {
			toGlobal = max(toGlobal, math.Abs(float64(v-next[i].Data[j])))
			toOwn = max(toOwn, math.Abs(float64(v-p.Data[j])))
		}
		if toGlobal > toOwn/2 {
			t.Errorf("%s: %.3g from the received tensor, %.3g from the client's own: anchored to its own copy", p.Name, toGlobal, toOwn)
		}
	}

	cfg := fitConfig(4)
	cfg.FedCMI.Personalized = true
	r := &localRound{c: c, ins: FitIns{Params: next, Config: cfg}, cfg: cfg, train: c.index}
	r.start, r.personal = c.startParams(next, true)
	r.has = c.trainedModalities(cfg)
	var h fedcmiHook
	if err := h.prepare(r); err != nil {
		t.Fatal(err)
	}
	want, err := e.Predict(next, c.gather(c.index).X, len(c.index))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(h.teacher, want.Logits, slices.Equal) {
		t.Error("the precomputed teacher's logits are not the received model's")
	}
}

// TestTeacherOncePerRound: a client without augmentation feeds the
// teacher's logits from one prediction pass per round; the run equals the
// same client with a no-op augmenter, which runs the teacher in every step
// (float reordering aside), with the class statistics measured on the
// train rows and on a holdout.
func TestTeacherOncePerRound(t *testing.T) {
	e, train := testEngine(t)
	arch := e.Arch()
	global, _ := arch.Init(1)
	idx := make([]int, 29) // 29 rows, shuffled in batches of 8: a row-to-logits mix-up shows
	for i := range idx {
		idx[i] = 2*i + 1
	}
	for _, holdout := range []float64{0, 0.2} {
		cfg := fitConfig(2)
		if holdout > 0 {
			cfg.FedCMI.Holdout, cfg.FedCMI.Dominance, cfg.FedCMI.HoldoutSeed = holdout, DominanceHoldout, 4
		}
		fit := func(augment bool) model.Params {
			c, err := NewLocalClient(e, train, idx, 3)
			if err != nil {
				t.Fatal(err)
			}
			if augment {
				c.SetAugmenter(func(int, []float32, int, *rand.Rand) error { return nil })
			}
			res, err := c.Fit(context.Background(), FitIns{Params: global, Config: cfg})
			if err != nil {
				t.Fatal(err)
			}
			return res.Params
		}
		once, every := fit(false), fit(true)
		for i := range once {
			for j := range once[i].Data {
				if d := math.Abs(float64(once[i].Data[j] - every[i].Data[j])); d > 1e-4 {
					t.Fatalf("holdout %v: %s[%d] = %v with the teacher once per round, %v in every step", holdout, once[i].Name, j, once[i].Data[j], every[i].Data[j])
				}
			}
		}
	}
}

// TestRowModalities checks a client whose rows miss modalities: the
// missing side's features are zeros in its batches with Present 0, it
// trains (FedCMI, partial rows), and impossible row masks are refused.
func TestRowModalities(t *testing.T) {
	e, train := testEngine(t)
	idx := []int{0, 1, 2, 3, 4, 5}
	c, err := NewLocalClient(e, train, idx, data.Full(2))
	if err != nil {
		t.Fatal(err)
	}
	rows := make([]data.Mask, train.Len())
	for i := range rows {
		rows[i] = data.Full(2)
	}
	rows[1], rows[4] = 1, 2 // row 1 lacks modality 1, row 4 modality 0
	if err := c.SetRowModalities(rows); err != nil {
		t.Fatal(err)
	}
	b := c.gather(idx)
	d := train.Dims[1]
	for j := range d {
		if b.X[1][1*d+j] != 0 {
			t.Fatal("row 1's missing modality 1 is not zeros")
		}
	}
	if b.Present[1][1] != 0 || b.Present[0][4] != 0 || b.Present[0][1] != 1 || b.X[0][1*train.Dims[0]] == 0 {
		t.Errorf("presence %v", b.Present)
	}
	arch := e.Arch()
	global, _ := arch.Init(1)
	if _, err := c.Fit(context.Background(), FitIns{Params: global, Config: fitConfig(1)}); err != nil {
		t.Fatal(err)
	}
	bad := append([]data.Mask(nil), rows...)
	bad[2] = 0
	if err := c.SetRowModalities(bad); err == nil {
		t.Error("a row without modalities was accepted")
	}
	if err := c.SetRowModalities(rows[:3]); err == nil {
		t.Error("row modalities of the wrong length were accepted")
	}
}

// TestMeasuresSkipMissingInputs: with modality 1 missing from half of a
// client's rows (fed as zeros), the class statistics and fedgb's losses are
// those of the rows that hold both modalities, measured alone, and
// fedrelearn's purity of modality 1 is that of the rows holding it, while
// modality 0's covers every row: no measurement reads a missing input.
func TestMeasuresSkipMissingInputs(t *testing.T) {
	e, train := testEngine(t)
	arch := e.Arch()
	global, _ := arch.Init(1)
	idx := make([]int, 40)
	for i := range idx {
		idx[i] = i
	}
	rowHas := make([]data.Mask, train.Len())
	var whole []int
	for i := range rowHas {
		rowHas[i] = 3
		if i < len(idx) && i%2 == 1 {
			rowHas[i] = 1 // modality 1 missing
		} else if i < len(idx) {
			whole = append(whole, i)
		}
	}
	partial, err := NewLocalClient(e, train, idx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := partial.SetRowModalities(rowHas); err != nil {
		t.Fatal(err)
	}
	alone, err := NewLocalClient(e, train, whole, 3)
	if err != nil {
		t.Fatal(err)
	}

	got, _, err := partial.classStats(global, idx)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := alone.classStats(global, whole)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Count, want.Count) || !slices.Equal(got.Sum[0], want.Sum[0]) || !slices.Equal(got.Sum[1], want.Sum[1]) {
		t.Errorf("class statistics %+v, want the whole rows' %+v", got, want)
	}

	h := &gbHook{}
	r := &localRound{c: partial, has: 3, train: idx}
	if !h.measures(r) || !slices.Equal(h.rows, whole) {
		t.Errorf("fedgb measures rows %v, want %v", h.rows, whole)
	}

	p, err := partial.relearnPurity(global, global, idx, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	if p[0].N != len(idx) || p[1].N != len(whole) {
		t.Errorf("purities over %d and %d rows, want %d and %d", p[0].N, p[1].N, len(idx), len(whole))
	}
	q, err := alone.relearnPurity(global, global, whole, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	if p[1] != q[1] {
		t.Errorf("modality 1's purity %+v, want the whole rows' %+v", p[1], q[1])
	}
}
