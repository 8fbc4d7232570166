package fl

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/fedcmi/fedcmi/model"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 || (math.IsNaN(a) && math.IsNaN(b)) }

func nearAll(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !near(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestClassStats(t *testing.T) {
	// Class 0: 4 samples, p_A sums 3.2, p_V 0.8; class 1: 2 samples,
	// 0.6 and 1.4; class 2 absent.
	s := ClassStats{SumPA: []float64{3.2, 0.6, 0}, SumPV: []float64{0.8, 1.4, 0}, Count: []float64{4, 2, 0}}
	pa, pv := s.Means()
	if !nearAll(pa, []float64{0.8, 0.3, math.NaN()}) || !nearAll(pv, []float64{0.2, 0.7, math.NaN()}) {
		t.Errorf("means %v %v", pa, pv)
	}
	// (3.2 + 0.6) / (0.8 + 1.4) = 3.8 / 2.2.
	if r := s.Ratio(); !near(r, 3.8/2.2) {
		t.Errorf("ratio %v", r)
	}
	if r := NewClassStats(3).Ratio(); !math.IsNaN(r) {
		t.Errorf("ratio without samples %v", r)
	}
	if err := s.Validate(3); err != nil {
		t.Error(err)
	}
	for name, bad := range map[string]ClassStats{
		"classes":  {SumPA: []float64{1}, SumPV: []float64{1}, Count: []float64{1}},
		"nan":      {SumPA: []float64{math.NaN(), 0, 0}, SumPV: []float64{0, 0, 0}, Count: []float64{1, 0, 0}},
		"negative": {SumPA: []float64{0, 0, 0}, SumPV: []float64{0, 0, 0}, Count: []float64{-1, 0, 0}},
		"above 1":  {SumPA: []float64{2.5, 0, 0}, SumPV: []float64{0, 0, 0}, Count: []float64{2, 0, 0}},
		"inf":      {SumPA: []float64{0, 0, 0}, SumPV: []float64{0, 0, 0}, Count: []float64{math.Inf(1), 0, 0}},
	} {
		if err := bad.Validate(3); err == nil {
			t.Errorf("%s: accepted %+v", name, bad)
		}
	}
}

func TestPoolStats(t *testing.T) {
	// Two clients, three classes. Class 0: (0.9*2 + 0.5*6) / 8 = 0.6 for
	// A, (0.1*2 + 0.3*6) / 8 = 0.25 for V. Class 1 only from client 2:
	// 0.4, 0.8. Class 2: nobody.
	round1 := []ClassStats{
		{SumPA: []float64{1.8, 0, 0}, SumPV: []float64{0.2, 0, 0}, Count: []float64{2, 0, 0}},
		{SumPA: []float64{3.0, 0.8, 0}, SumPV: []float64{1.8, 1.6, 0}, Count: []float64{6, 2, 0}},
	}
	t1 := PoolStats(nil, round1, 3, 0.5)
	if !nearAll(t1.PA, []float64{0.6, 0.4, math.NaN()}) || !nearAll(t1.PV, []float64{0.25, 0.8, math.NaN()}) || t1.Rounds != 1 {
		t.Fatalf("round 1 table %+v", t1)
	}
	// Round 2: class 0 measured at 0.2/0.5 -> 0.5*0.6 + 0.5*0.2 = 0.4 and
	// 0.5*0.25 + 0.5*0.5 = 0.375; class 1 unreported keeps 0.4/0.8;
	// class 2 new at 1.0/0.5 -> taken as is.
	round2 := []ClassStats{{SumPA: []float64{0.4, 0, 3}, SumPV: []float64{1, 0, 1.5}, Count: []float64{2, 0, 3}}}
	t2 := PoolStats(t1, round2, 3, 0.5)
	if !nearAll(t2.PA, []float64{0.4, 0.4, 1}) || !nearAll(t2.PV, []float64{0.375, 0.8, 0.5}) || t2.Rounds != 2 {
		t.Fatalf("round 2 table %+v", t2)
	}
	if !nearAll(t1.PA, []float64{0.6, 0.4, math.NaN()}) {
		t.Errorf("pooling changed the previous table: %v", t1.PA)
	}
	// Smoothing 0: the last round alone.
	if t3 := PoolStats(t1, round2, 3, 0); !near(t3.PA[0], 0.2) || !near(t3.PV[0], 0.5) {
		t.Errorf("smoothing 0: %+v", t3)
	}
	if t4 := PoolStats(t1, []ClassStats{NewClassStats(3)}, 3, 0.5); t4 != t1 {
		t.Errorf("an empty round changed the table: %+v", t4)
	}

	// The state round-trips through JSON, NaN included.
	b, err := marshalTable(t1)
	if err != nil {
		t.Fatal(err)
	}
	back, err := unmarshalTable(b)
	if err != nil || !nearAll(back.PA, t1.PA) || !nearAll(back.PV, t1.PV) || back.Rounds != 1 {
		t.Fatalf("round trip %s: %+v, %v", b, back, err)
	}
	for _, bad := range []string{`{"pa":[0.5],"pv":[0.5,0.1],"rounds":1}`, `{"pa":[1.5],"pv":[0.5],"rounds":1}`, `{"pa":[0.5],"pv":[0.5],"rounds":-1}`, `[`} {
		if _, err := unmarshalTable([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestDirections(t *testing.T) {
	// Overall ratio (0.9*10 + 0.2*5 + 0) / (0.1*10 + 0.6*5 + 0) = 10/4 > 1,
	// so modality 0 dominates; class 1 alone favours modality 1; class 2
	// has no samples and class 3 is a tie: both follow the overall one.
	s := ClassStats{
		SumPA: []float64{9, 1, 0, 2},
		SumPV: []float64{1, 3, 0, 2},
		Count: []float64{10, 5, 0, 4},
	}
	if got := Directions(s, false); !slices.Equal(got, []float32{1, 1, 1, 1}) {
		t.Errorf("per round %v", got)
	}
	if got := Directions(s, true); !slices.Equal(got, []float32{1, -1, 1, 1}) {
		t.Errorf("per class %v", got)
	}
	// Ties and no data go to modality 1, as rho > 1 does.
	if got := Directions(NewClassStats(2), false); !slices.Equal(got, []float32{-1, -1}) {
		t.Errorf("empty %v", got)
	}
}

func TestHoldoutSplit(t *testing.T) {
	// Class 0: 10 samples -> 2 held out at 0.2; class 1: 3 -> round(0.6) = 1;
	// class 2: 1 sample -> none; class 3: 2 -> 1 (at most n - 1).
	var index, labels []int
	for i, n := range []int{10, 3, 1, 2} {
		for range n {
			index = append(index, 100+len(index))
			labels = append(labels, i)
		}
	}
	train, held := HoldoutSplit(index, labels, 0.2, 7)
	perClass := map[int]int{}
	for _, i := range held {
		perClass[labels[i-100]]++
	}
	if want := map[int]int{0: 2, 1: 1, 3: 1}; len(perClass) != len(want) || perClass[0] != 2 || perClass[1] != 1 || perClass[3] != 1 {
		t.Errorf("held out per class %v, want %v", perClass, want)
	}
	all := append(slices.Clone(train), held...)
	slices.Sort(all)
	if !slices.Equal(all, index) || !slices.IsSorted(train) || !slices.IsSorted(held) {
		t.Errorf("train %v + held %v is not the index in order", train, held)
	}
	t2, h2 := HoldoutSplit(index, labels, 0.2, 7)
	if !slices.Equal(train, t2) || !slices.Equal(held, h2) {
		t.Error("same seed, different split")
	}
	if _, h3 := HoldoutSplit(index, labels, 0.2, 8); slices.Equal(held, h3) {
		t.Error("another seed gave the same split")
	}
	if tr, h := HoldoutSplit(index, labels, 0, 7); h != nil || !slices.Equal(tr, index) {
		t.Error("fraction 0 held something out")
	}
}

// TestFitDominanceSources checks what a multimodal client does under each
// dominance source: the direction it uses (all rows one way, from the
// received model's statistics), the held-out slice it does not train on,
// and the statistics it reports.
func TestFitDominanceSources(t *testing.T) {
	e, train := testEngine(t)
	arch := e.Arch()
	global, _ := arch.Init(1)
	idx := make([]int, 30)
	for i := range idx {
		idx[i] = i * 2
	}
	c, err := NewLocalClient(e, train, idx, 3)
	if err != nil {
		t.Fatal(err)
	}
	full, _, err := c.classStats(global, idx)
	if err != nil {
		t.Fatal(err)
	}
	first := 0.0 // the share of A->V rows the received model implies
	if full.Ratio() > 1 {
		first = 1
	}
	heldTrain, _ := HoldoutSplit(idx, c.labels(idx), 0.2, 5)
	// A table that says modality 1 dominates every class.
	table := &DominanceTable{PA: []float64{0.1, 0.1, 0.1, 0.1, 0.1, 0.1}, PV: []float64{0.9, 0.9, 0.9, 0.9, 0.9, 0.9}}
	for _, tc := range []struct {
		name      string
		dom       Dominance
		holdout   float64
		table     *DominanceTable
		first     float64 // expected FirstDominant / RhoBatches; NaN: not fixed
		trainRows int
	}{
		{"batch", DominanceBatch, 0, nil, math.NaN(), 30},
		{"teacher", DominanceTeacher, 0, nil, first, 30},
		{"holdout", DominanceHoldout, 0.2, nil, math.NaN(), len(heldTrain)},
		{"federated, no table yet", DominanceFederated, 0, nil, first, 30},
		{"federated table", DominanceFederated, 0, table, 0, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fitConfig(2)
			cfg.Dominance, cfg.Holdout, cfg.HoldoutSeed, cfg.Table = tc.dom, tc.holdout, 5, tc.table
			res, err := c.Fit(context.Background(), FitIns{Params: global, Config: cfg})
			if err != nil {
				t.Fatal(err)
			}
			m := res.Metrics
			if res.NumSamples != tc.trainRows {
				t.Errorf("trained on %d samples, want %d", res.NumSamples, tc.trainRows)
			}
			if share := m.FirstDominant / float64(m.RhoBatches); !math.IsNaN(tc.first) && share != tc.first {
				t.Errorf("share of A->V rows %v, want %v", share, tc.first)
			}
			if m.ClassStats == nil {
				t.Fatal("no class statistics reported")
			}
			n := 0.0
			for _, v := range m.ClassStats.Count {
				n += v
			}
			if want := float64(30 - tc.trainRows); tc.holdout > 0 && n != want {
				t.Errorf("statistics over %v samples, want the %v held out", n, want)
			} else if tc.holdout == 0 && n != 30 {
				t.Errorf("statistics over %v samples, want 30", n)
			}
			if tc.dom == DominanceTeacher {
				if !nearAll(m.ClassStats.SumPA, full.SumPA) {
					t.Errorf("teacher statistics %v, want %v", m.ClassStats.SumPA, full.SumPA)
				}
			}
		})
	}
}

// TestModalityAwarePoolsDominance runs the server side of
// DominanceFederated: round 1 has no table, the accepted results' statistics
// make one, round 2 broadcasts it, bad statistics are rejected, and the
// table survives MarshalState/UnmarshalState.
func TestModalityAwarePoolsDominance(t *testing.T) {
	layout := []model.ParamInfo{{Name: "w", Shape: []int{1}}}
	method, _ := LookupMethod("fedcmi-fedstats")
	s := &ModalityAware{Method: method, PerRound: 2, Seed: 1, Layout: layout, Options: FedCMIOptions{Smoothing: 0.5}}
	clients := []ClientInfo{{ID: "a", Modalities: 3, NumSamples: 2}, {ID: "b", Modalities: 3, NumSamples: 2}}
	global := model.Params{{Name: "w", Shape: []int{1}, Data: []float32{0}}}
	ins, err := s.ConfigureFit(1, global, clients)
	if err != nil || len(ins) != 2 || ins[0].Ins.Config.Table != nil || ins[0].Ins.Config.Dominance != DominanceFederated {
		t.Fatalf("round 1: %+v, %v", ins, err)
	}
	res := func(id string, w float32, st ClassStats) Result {
		return Result{ClientID: id, Res: FitRes{Params: model.Params{{Name: "w", Shape: []int{1}, Data: []float32{w}}}, NumSamples: 2, Modalities: 3,
			Metrics: FitMetrics{ClassStats: &st}}}
	}
	results := []Result{
		res("a", 1, ClassStats{SumPA: []float64{1.6, 0}, SumPV: []float64{0.4, 0}, Count: []float64{2, 0}}),
		res("b", 3, ClassStats{SumPA: []float64{0, 0.2}, SumPV: []float64{0, 1.8}, Count: []float64{0, 2}}),
		res("evil", 100, ClassStats{SumPA: []float64{50, 0}, SumPV: []float64{0, 0}, Count: []float64{2, 0}}),
	}
	next, err := s.AggregateFit(1, global, results, nil)
	if err != nil {
		t.Fatal(err)
	}
	if next[0].Data[0] != 2 {
		t.Errorf("aggregate %v, want 2 (the client with bad statistics rejected)", next[0].Data[0])
	}
	tab := s.Table()
	if tab == nil || !nearAll(tab.PA, []float64{0.8, 0.1}) || !nearAll(tab.PV, []float64{0.2, 0.9}) {
		t.Fatalf("table %+v", tab)
	}
	ins, _ = s.ConfigureFit(2, next, clients)
	if got := ins[1].Ins.Config.Table; got == nil || !nearAll(got.PA, tab.PA) {
		t.Fatalf("round 2 broadcast %+v", got)
	}
	ins[1].Ins.Config.Table.PA[0] = 0 // a client must not be able to change the server's table
	state, err := s.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	restored := &ModalityAware{Method: method}
	if err := restored.UnmarshalState(state); err != nil {
		t.Fatal(err)
	}
	if got := restored.Table(); !nearAll(got.PA, []float64{0.8, 0.1}) || !nearAll(got.PV, tab.PV) {
		t.Errorf("restored table %+v from %s", got, state)
	}
}
