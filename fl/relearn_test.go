package fl

import (
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/model"
)

func TestPurity(t *testing.T) {
	rng := func() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }
	for _, tc := range []struct {
		name   string
		feats  []float32 // d = 1
		labels []int
		k      int
		want   float64
	}{
		// Three well-separated groups, one per class: k-means finds them.
		{"separable", []float32{0, 0.1, 0.2, 10, 10.1, 10.2, 20, 20.1, 20.2}, []int{0, 0, 0, 1, 1, 1, 2, 2, 2}, 3, 1},
		// The same points, labels mixed within each group: each group's
		// majority holds 2 of 3 rows.
		{"mixed", []float32{0, 0.1, 0.2, 10, 10.1, 10.2, 20, 20.1, 20.2}, []int{0, 0, 1, 1, 1, 2, 2, 2, 0}, 3, 6.0 / 9},
		// One cluster: purity is the largest class's share.
		{"one cluster", []float32{1, 2, 3, 4, 5}, []int{0, 1, 1, 1, 0}, 1, 3.0 / 5},
		// More clusters than rows: every row its own cluster.
		{"k > n", []float32{1, 2}, []int{0, 1}, 5, 1},
		// Constant features scale to 0: one effective point.
		{"constant", []float32{7, 7, 7, 7}, []int{0, 0, 0, 1}, 2, 3.0 / 4},
	} {
		if got := Purity(tc.feats, tc.labels, 1, tc.k, rng()); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: purity %v, want %v", tc.name, got, tc.want)
		}
	}
	// Two dimensions, min-max scaled: the second dimension's scale does not
	// swamp the first.
	feats := []float32{0, 0, 0, 1000, 1, 0, 1, 1000}
	if got := Purity(feats, []int{0, 0, 1, 1}, 2, 2, rng()); got != 1 {
		t.Errorf("2-d: purity %v, want 1", got)
	}
	if Purity(nil, nil, 1, 2, rng()) != 0 {
		t.Error("no rows: purity not 0")
	}
}

// relearnLayout: a's encoder (2 values), v's encoder and v's classifier
// (1 value each), the fusion head (1 value).
var relearnLayout = []model.ParamInfo{
	{Name: "a/encoder/0/weights", Shape: []int{2}, Side: 0, Part: model.PartEncoder},
	{Name: "v/encoder/0/weights", Shape: []int{1}, Side: 1, Part: model.PartEncoder},
	{Name: "v/classifier/weights", Shape: []int{1}, Side: 1, Part: model.PartClassifier},
	{Name: "fusion/out/weights", Shape: []int{1}, Side: -1, Part: model.PartFusion},
}

func relearnParams(a0, a1, v, vc, f float32) model.Params {
	return model.Params{
		{Name: relearnLayout[0].Name, Shape: []int{2}, Data: []float32{a0, a1}},
		{Name: relearnLayout[1].Name, Shape: []int{1}, Data: []float32{v}},
		{Name: relearnLayout[2].Name, Shape: []int{1}, Data: []float32{vc}},
		{Name: relearnLayout[3].Name, Shape: []int{1}, Data: []float32{f}},
	}
}

func TestRelearnDiagnoses(t *testing.T) {
	r := &Relearn{Every: 5, Rounds: 30}
	var got []int
	for round := 1; round <= 30; round++ {
		if r.Diagnoses(round) {
			got = append(got, round)
		}
	}
	if want := []int{5, 10, 15, 20, 25}; len(got) != len(want) || got[0] != 5 || got[len(got)-1] != 25 {
		t.Errorf("diagnosis rounds %v, want %v", got, want)
	}
	if (&Relearn{Every: 10, Rounds: 10}).Diagnoses(10) {
		t.Error("a re-initialisation in the last round")
	}
}

// TestRelearnAggregate checks the soft re-initialisation against values
// computed by hand: two multimodal clients of 1 and 3 samples, all
// values 0 initially, every client's model at 8 (a's encoder), 4 (v's
// encoder), 2 (v's classifier), 1 (fusion).
func TestRelearnAggregate(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	base := &ModalityAware{Method: relearnMethod, PerRound: 2, Layout: relearnLayout,
		Schedule: Schedule{Rounds: 10, Epochs: 1, LR: 0.1}, Logger: quiet}
	r := &Relearn{Base: base, Lambda: 2, Every: 5, Rounds: 10}
	init := relearnParams(0, 0, 0, 0, 0)
	clients := []ClientInfo{{ID: "c0", Modalities: data.Full(2), NumSamples: 1}, {ID: "c1", Modalities: data.Full(2), NumSamples: 3}}
	ins, err := r.ConfigureFit(1, init, clients)
	if err != nil || len(ins) != 2 || ins[0].Ins.Config.Recipe != nil {
		t.Fatalf("round 1: %v %+v", err, ins)
	}
	ins, _ = r.ConfigureFit(5, init, clients)
	if rc, _ := ins[0].Ins.Config.Recipe.(RelearnFit); !rc.On {
		t.Fatal("round 5 does not ask for purities")
	}
	trained := relearnParams(8, 8, 4, 2, 1)
	res := func(n int, pa, pv RelearnPurity) Result {
		return Result{ClientID: "c", Res: FitRes{Params: trained, NumSamples: n, Modalities: data.Full(2),
			Metrics: FitMetrics{Report: &RelearnReport{Purity: []RelearnPurity{pa, pv}}}}}
	}
	results := []Result{
		// gap a: (1*|0.9-0.5| + 3*|0.6-0.6|)/4 = 0.1; v: (1*0.2 + 3*0.2)/4 = 0.2.
		res(1, RelearnPurity{0.5, 0.9, 1}, RelearnPurity{0.3, 0.1, 1}),
		res(3, RelearnPurity{0.6, 0.6, 3}, RelearnPurity{0.4, 0.6, 3}),
		// Impossible values are ignored.
		res(3, RelearnPurity{-1, 2, 3}, RelearnPurity{0.4, 0.6, 99}),
	}
	got, err := r.AggregateFit(5, init, results, nil)
	if err != nil {
		t.Fatal(err)
	}
	aa, av := math.Tanh(2*0.1), math.Tanh(2*0.2)
	want := []float64{(1 - aa) * 8, (1 - aa) * 8, (1 - av) * 4, 2, 1} // the classifier and fusion untouched
	flat := []float32{got[0].Data[0], got[0].Data[1], got[1].Data[0], got[2].Data[0], got[3].Data[0]}
	for i, w := range want {
		if math.Abs(float64(flat[i])-w) > 1e-5 {
			t.Errorf("value %d = %v, want %v (all %v)", i, flat[i], w, flat)
		}
	}
	if math.Abs(r.Alpha[0]-aa) > 1e-12 || math.Abs(r.Alpha[1]-av) > 1e-12 {
		t.Errorf("alphas %v, want %v %v", r.Alpha, aa, av)
	}
	// Not a diagnosis round: the plain average.
	got, _ = r.AggregateFit(4, init, results[:2], nil)
	if got[0].Data[0] != 8 || got[1].Data[0] != 4 {
		t.Errorf("round 4 re-initialised: %v", got)
	}

	// The state keeps the initial parameters; a resumed strategy
	// re-initialises towards them.
	b, err := r.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	r2 := &Relearn{Base: &ModalityAware{Layout: relearnLayout, PerRound: 2, Schedule: base.Schedule, Logger: quiet}, Lambda: 2, Every: 5, Rounds: 10}
	if err := r2.UnmarshalState(b); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.ConfigureFit(5, relearnParams(5, 5, 5, 5, 5), clients); err != nil {
		t.Fatal(err)
	}
	got2, _ := r2.AggregateFit(5, init, results, nil)
	if got2[0].Data[0] != flat[0] {
		t.Errorf("resumed strategy re-initialised towards %v, want the saved initial model (%v)", got2[0].Data[0], flat[0])
	}
	other := &Relearn{Base: &ModalityAware{Layout: relearnLayout[:2]}}
	if err := other.UnmarshalState(b); err == nil || !strings.Contains(err.Error(), "layout") {
		t.Errorf("state of another layout: %v", err)
	}
}

// TestRelearnPuritySameFeatures: a client whose model did not move
// reports no gap (before and after used to draw different k-means seeds,
// so the same features gave gaps of up to 0.06: docs/methods.md,
// fedrelearn), and classesPresent counts the clusters of a client's
// purity.
func TestRelearnPuritySameFeatures(t *testing.T) {
	e, train := testEngine(t)
	arch := e.Arch()
	global, _ := arch.Init(1)
	var idx []int // the rows of two of the six classes
	for i, y := range train.Labels {
		if y == 1 || y == 4 {
			idx = append(idx, i)
		}
	}
	c, err := NewLocalClient(e, train, idx, 3)
	if err != nil {
		t.Fatal(err)
	}
	for seed := range uint64(8) {
		p, err := c.relearnPurity(global, global, idx, 3, seed)
		if err != nil {
			t.Fatal(err)
		}
		for m, q := range p {
			if q.N != len(idx) || q.Before != q.After {
				t.Errorf("seed %d, modality %d: %+v, want equal purities over %d rows", seed, m, q, len(idx))
			}
		}
	}
	for _, tc := range []struct {
		labels []int
		want   int
	}{{nil, 0}, {[]int{3, 3}, 1}, {[]int{0, 5, 0, 2}, 3}} {
		if got := classesPresent(tc.labels); got != tc.want {
			t.Errorf("classesPresent(%v) = %d, want %d", tc.labels, got, tc.want)
		}
	}
}
