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
	s := ClassStats{Sum: [][]float64{[]float64{3.2, 0.6, 0}, []float64{0.8, 1.4, 0}}, Count: []float64{4, 2, 0}}
	means := s.Means()
	if !nearAll(means[0], []float64{0.8, 0.3, math.NaN()}) || !nearAll(means[1], []float64{0.2, 0.7, math.NaN()}) {
		t.Errorf("means %v", means)
	}
	// 3.2 + 0.6 > 0.8 + 1.4: modality 0 teaches; without samples, ties
	// go to the later modality.
	if m := s.Teacher(); m != 0 {
		t.Errorf("teacher %d", m)
	}
	if m := NewClassStats(3, 3).Teacher(); m != 2 {
		t.Errorf("teacher without samples %d", m)
	}
	if err := s.Validate(2, 3); err != nil {
		t.Error(err)
	}
	for name, bad := range map[string]ClassStats{
		"modalities": {Sum: [][]float64{{0, 0, 0}}, Count: []float64{1, 0, 0}},
		"classes":    {Sum: [][]float64{[]float64{1}, []float64{1}}, Count: []float64{1}},
		"nan":        {Sum: [][]float64{[]float64{math.NaN(), 0, 0}, []float64{0, 0, 0}}, Count: []float64{1, 0, 0}},
		"negative":   {Sum: [][]float64{[]float64{0, 0, 0}, []float64{0, 0, 0}}, Count: []float64{-1, 0, 0}},
		"above 1":    {Sum: [][]float64{[]float64{2.5, 0, 0}, []float64{0, 0, 0}}, Count: []float64{2, 0, 0}},
		"inf":        {Sum: [][]float64{[]float64{0, 0, 0}, []float64{0, 0, 0}}, Count: []float64{math.Inf(1), 0, 0}},
	} {
		if err := bad.Validate(2, 3); err == nil {
			t.Errorf("%s: accepted %+v", name, bad)
		}
	}
}

func TestPoolStats(t *testing.T) {
	// Two clients, three classes. Class 0: (0.9*2 + 0.5*6) / 8 = 0.6 for
	// A, (0.1*2 + 0.3*6) / 8 = 0.25 for V. Class 1 only from client 2:
	// 0.4, 0.8. Class 2: nobody.
	round1 := []ClassStats{
		{Sum: [][]float64{[]float64{1.8, 0, 0}, []float64{0.2, 0, 0}}, Count: []float64{2, 0, 0}},
		{Sum: [][]float64{[]float64{3.0, 0.8, 0}, []float64{1.8, 1.6, 0}}, Count: []float64{6, 2, 0}},
	}
	t1 := PoolStats(nil, round1, 2, 3, 0.5)
	if !nearAll(t1.P[0], []float64{0.6, 0.4, math.NaN()}) || !nearAll(t1.P[1], []float64{0.25, 0.8, math.NaN()}) || t1.Rounds != 1 {
		t.Fatalf("round 1 table %+v", t1)
	}
	// Round 2: class 0 measured at 0.2/0.5 -> 0.5*0.6 + 0.5*0.2 = 0.4 and
	// 0.5*0.25 + 0.5*0.5 = 0.375; class 1 unreported keeps 0.4/0.8;
	// class 2 new at 1.0/0.5 -> taken as is.
	round2 := []ClassStats{{Sum: [][]float64{[]float64{0.4, 0, 3}, []float64{1, 0, 1.5}}, Count: []float64{2, 0, 3}}}
	t2 := PoolStats(t1, round2, 2, 3, 0.5)
	if !nearAll(t2.P[0], []float64{0.4, 0.4, 1}) || !nearAll(t2.P[1], []float64{0.375, 0.8, 0.5}) || t2.Rounds != 2 {
		t.Fatalf("round 2 table %+v", t2)
	}
	if !nearAll(t1.P[0], []float64{0.6, 0.4, math.NaN()}) {
		t.Errorf("pooling changed the previous table: %v", t1.P[0])
	}
	// Smoothing 0: the last round alone.
	if t3 := PoolStats(t1, round2, 2, 3, 0); !near(t3.P[0][0], 0.2) || !near(t3.P[1][0], 0.5) {
		t.Errorf("smoothing 0: %+v", t3)
	}
	// Sums a little above their counts (within ClassStats.Validate's
	// rounding tolerance) pool to 1, not above: clients refuse a table
	// with a mean above 1 (DominanceTable.validate).
	over := []ClassStats{{Sum: [][]float64{[]float64{1e12 * (1 + 5e-7), 0, 0}, []float64{0, 0, 0}}, Count: []float64{1e12, 0, 0}}}
	for _, tc := range []struct {
		prev *DominanceTable
		want float64 // modality 0's class 0
	}{
		{nil, 1},
		{t1, 0.3*0.6 + 0.7},
		{&DominanceTable{P: [][]float64{{1, 1, 1}, {0, 0, 0}}, Rounds: 1}, 1},
	} {
		tab := PoolStats(tc.prev, over, 2, 3, 0.3)
		if !near(tab.P[0][0], tc.want) || tab.P[0][0] > 1 {
			t.Errorf("from %+v: mean %v, want %v", tc.prev, tab.P[0][0], tc.want)
		}
		if err := tab.validate(2, 3); err != nil {
			t.Errorf("from %+v: a participant would refuse the table: %v", tc.prev, err)
		}
	}
	if t4 := PoolStats(t1, []ClassStats{NewClassStats(2, 3)}, 2, 3, 0.5); t4 != t1 {
		t.Errorf("an empty round changed the table: %+v", t4)
	}

	// The state round-trips through JSON, NaN included.
	b, err := marshalTable(t1)
	if err != nil {
		t.Fatal(err)
	}
	back, err := unmarshalTable(b)
	if err != nil || !nearAll(back.P[0], t1.P[0]) || !nearAll(back.P[1], t1.P[1]) || back.Rounds != 1 {
		t.Fatalf("round trip %s: %+v, %v", b, back, err)
	}
	for _, bad := range []string{`{"p":[[0.5],[0.5,0.1]],"rounds":1}`, `{"p":[[1.5],[0.5]],"rounds":1}`, `{"p":[[0.5],[0.5]],"rounds":-1}`, `{"p":[[0.5]],"rounds":1}`, `[`} {
		if _, err := unmarshalTable([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestDirections(t *testing.T) {
	// Overall ratio (0.9*10 + 0.2*5 + 0) / (0.1*10 + 0.6*5 + 0) = 10/4 > 1,
	// so modality 0 dominates; class 1 alone favours modality 1; class 2
	// has no samples and class 3 is a tie: both follow the overall one.
	// Directions are teacher codes: 1 for modality 0, 2 for modality 1.
	s := ClassStats{
		Sum:   [][]float64{{9, 1, 0, 2}, {1, 3, 0, 2}},
		Count: []float64{10, 5, 0, 4},
	}
	if got := Directions(s, false); !slices.Equal(got, []float32{1, 1, 1, 1}) {
		t.Errorf("per round %v", got)
	}
	if got := Directions(s, true); !slices.Equal(got, []float32{1, 2, 1, 1}) {
		t.Errorf("per class %v", got)
	}
	// Ties and no data go to modality 1, as rho > 1 does.
	if got := Directions(NewClassStats(2, 2), false); !slices.Equal(got, []float32{2, 2}) {
		t.Errorf("empty %v", got)
	}
	// Three modalities: the overall teacher is modality 2 (sum 7); class 0
	// follows modality 0, class 1 is a tie between 1 and 2 and follows the
	// overall teacher.
	three := ClassStats{Sum: [][]float64{{3, 0}, {1, 2}, {1, 2}}, Count: []float64{4, 3}}
	three.Sum[2][0] = 5
	three.Count[0] = 6
	if got := Directions(three, true); !slices.Equal(got, []float32{3, 3}) {
		t.Errorf("three modalities, class 0 led by modality 2: %v", got)
	}
	three.Sum[2][0] = 1
	if got := Directions(three, true); !slices.Equal(got, []float32{1, 3}) {
		t.Errorf("three modalities: %v", got)
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
	if full.Teacher() == 0 {
		first = 1
	}
	heldTrain, _ := HoldoutSplit(idx, c.labels(idx), 0.2, 5)
	// A table that says modality 1 dominates every class.
	table := &DominanceTable{P: [][]float64{[]float64{0.1, 0.1, 0.1, 0.1, 0.1, 0.1}, []float64{0.9, 0.9, 0.9, 0.9, 0.9, 0.9}}}
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
			cfg.FedCMI.Dominance, cfg.FedCMI.Holdout, cfg.FedCMI.HoldoutSeed, cfg.FedCMI.Table = tc.dom, tc.holdout, 5, tc.table
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
			if m.FedCMI.ClassStats == nil {
				t.Fatal("no class statistics reported")
			}
			n := 0.0
			for _, v := range m.FedCMI.ClassStats.Count {
				n += v
			}
			if want := float64(30 - tc.trainRows); tc.holdout > 0 && n != want {
				t.Errorf("statistics over %v samples, want the %v held out", n, want)
			} else if tc.holdout == 0 && n != 30 {
				t.Errorf("statistics over %v samples, want 30", n)
			}
			if tc.dom == DominanceTeacher {
				if !nearAll(m.FedCMI.ClassStats.Sum[0], full.Sum[0]) {
					t.Errorf("teacher statistics %v, want %v", m.FedCMI.ClassStats.Sum[0], full.Sum[0])
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
	layout := []model.ParamInfo{{Name: "w", Shape: []int{1}, Side: 1}} // a model of two modalities
	method, _ := LookupMethod("fedcmi-fedstats")
	s := &ModalityAware{Method: method, PerRound: 2, Seed: 1, Layout: layout, Options: FedCMIOptions{Smoothing: 0.5}}
	clients := []ClientInfo{{ID: "a", Modalities: 3, NumSamples: 2}, {ID: "b", Modalities: 3, NumSamples: 2}}
	global := model.Params{{Name: "w", Shape: []int{1}, Data: []float32{0}}}
	ins, err := s.ConfigureFit(1, global, clients)
	if err != nil || len(ins) != 2 || ins[0].Ins.Config.FedCMI.Table != nil || ins[0].Ins.Config.FedCMI.Dominance != DominanceFederated {
		t.Fatalf("round 1: %+v, %v", ins, err)
	}
	res := func(id string, w float32, st ClassStats) Result {
		return Result{ClientID: id, Res: FitRes{Params: model.Params{{Name: "w", Shape: []int{1}, Data: []float32{w}}}, NumSamples: 2, Modalities: 3,
			Metrics: FitMetrics{FedCMI: FedCMIReport{ClassStats: &st}}}}
	}
	results := []Result{
		res("a", 1, ClassStats{Sum: [][]float64{[]float64{1.6, 0}, []float64{0.4, 0}}, Count: []float64{2, 0}}),
		res("b", 3, ClassStats{Sum: [][]float64{[]float64{0, 0.2}, []float64{0, 1.8}}, Count: []float64{0, 2}}),
		res("evil", 100, ClassStats{Sum: [][]float64{[]float64{50, 0}, []float64{0, 0}}, Count: []float64{2, 0}}),
	}
	next, err := s.AggregateFit(1, global, results, nil)
	if err != nil {
		t.Fatal(err)
	}
	if next[0].Data[0] != 2 {
		t.Errorf("aggregate %v, want 2 (the client with bad statistics rejected)", next[0].Data[0])
	}
	tab := s.Table()
	if tab == nil || !nearAll(tab.P[0], []float64{0.8, 0.1}) || !nearAll(tab.P[1], []float64{0.2, 0.9}) {
		t.Fatalf("table %+v", tab)
	}
	ins, _ = s.ConfigureFit(2, next, clients)
	if got := ins[1].Ins.Config.FedCMI.Table; got == nil || !nearAll(got.P[0], tab.P[0]) {
		t.Fatalf("round 2 broadcast %+v", got)
	}
	ins[1].Ins.Config.FedCMI.Table.P[0][0] = 0 // a client must not be able to change the server's table
	state, err := s.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	restored := &ModalityAware{Method: method}
	if err := restored.UnmarshalState(state); err != nil {
		t.Fatal(err)
	}
	if got := restored.Table(); !nearAll(got.P[0], []float64{0.8, 0.1}) || !nearAll(got.P[1], tab.P[1]) {
		t.Errorf("restored table %+v from %s", got, state)
	}
}
