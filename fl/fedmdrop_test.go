package fl

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/model"
)

// TestAggregatePrototypes checks the class-count weighting on hand-computed
// numbers (K = 2 classes, D = 1).
func TestAggregatePrototypes(t *testing.T) {
	multi := PrototypeSet{Centers: [2][]float32{{1, 10}, {2, 0}}, Counts: [2][]int{{1, 3}, {1, 3}}}
	onlyA := PrototypeSet{Centers: [2][]float32{{3, 20}, nil}, Counts: [2][]int{{3, 1}, nil}}
	onlyV := PrototypeSet{Centers: [2][]float32{nil, {6, 4}}, Counts: [2][]int{nil, {0, 1}}}
	prev := &PrototypeSet{Centers: [2][]float32{{0, 0}, {7, 8}}, Counts: [2][]int{{9, 9}, {2, 5}}}
	for _, tc := range []struct {
		name string
		sets []PrototypeSet
		prev *PrototypeSet
		want PrototypeSet
	}{
		{
			// A, class 0: (1*1 + 3*3)/4 = 2.5; class 1: (3*10 + 1*20)/4 = 12.5.
			// V, class 0: (1*2 + 0*6)/1 = 2 (the V-only client has no class 0);
			// class 1: (3*0 + 1*4)/4 = 1.
			name: "weighted by class counts",
			sets: []PrototypeSet{multi, onlyA, onlyV},
			want: PrototypeSet{Centers: [2][]float32{{2.5, 12.5}, {2, 1}}, Counts: [2][]int{{4, 4}, {1, 4}}},
		},
		{
			// Nobody reports V: the previous global V prototypes stay.
			name: "absent modality keeps the previous prototypes",
			sets: []PrototypeSet{onlyA}, prev: prev,
			want: PrototypeSet{Centers: [2][]float32{{3, 20}, {7, 8}}, Counts: [2][]int{{3, 1}, {2, 5}}},
		},
		{
			name: "no previous prototypes: none",
			sets: []PrototypeSet{onlyA},
			want: PrototypeSet{Centers: [2][]float32{{3, 20}, nil}, Counts: [2][]int{{3, 1}, nil}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AggregatePrototypes(tc.sets, tc.prev, 2, 1)
			if err != nil {
				t.Fatal(err)
			}
			for m := range 2 {
				if !slices.Equal(got.Counts[m], tc.want.Counts[m]) || len(got.Centers[m]) != len(tc.want.Centers[m]) {
					t.Fatalf("modality %d: %v %v, want %v %v", m, got.Centers[m], got.Counts[m], tc.want.Centers[m], tc.want.Counts[m])
				}
				for i, v := range tc.want.Centers[m] {
					if math.Abs(float64(got.Centers[m][i]-v)) > 1e-6 {
						t.Fatalf("modality %d: centres %v, want %v", m, got.Centers[m], tc.want.Centers[m])
					}
				}
			}
		})
	}
	bad := PrototypeSet{Centers: [2][]float32{{1}, nil}, Counts: [2][]int{{1, 1}, nil}}
	if _, err := AggregatePrototypes([]PrototypeSet{bad}, nil, 2, 1); err == nil {
		t.Fatal("mis-sized prototypes accepted")
	}
}

// Hand-worked selection example: 4 clients, K = 2, tau = 2.
var (
	selMulti = [][]float64{{0, 2, 4, 3}, {2, 0, 7, 8}, {4, 7, 0, 8}, {3, 8, 8, 0}}
	selWeak  = [][]float64{{0, 2, 9, 7}, {2, 0, 4, 8}, {9, 4, 0, 5}, {7, 8, 5, 0}}
)

// TestSelectModalities checks the greedy on a tiny example worked by hand.
//
// A dominant (ratios 1, 3, unimodal, 0.9; rbar = 4.9/3 > 1, so the weak
// modality is V and its objective uses DistV = selWeak):
//   - step 1: F column sums of selMulti (all nearest distances +Inf):
//     9, 17, 19, 19, so i* = 0; G column sums of selWeak: 18, 14, 18, 20,
//     so u* = 1, whose ratio 3 > tau: client 1 is selected without A.
//     m_U = selWeak[.][1] = (2, 0, 4, 8).
//   - step 2 (clients 0, 2, 3 left): F: 9, 19, 19, so i* = 0; G:
//     client 0: min(2,0)+min(0,2)+min(4,9)+min(8,7) = 11, client 2:
//     2+0+0+5 = 7, client 3: 2+0+4+0 = 6, so u* = 3, whose ratio 0.9 is
//     below tau: client 0 is selected with both modalities.
//
// V dominant (ratios 1, 0.2, unimodal, 1.1; rbar = 2.3/3 < 1): the same
// with DistA = selWeak, and client 1 (ratio 0.2 < 1/tau) drops V.
//
// No known ratio: plain facility location on selMulti: client 0, then with
// m_S = (0, 2, 4, 3): client 1 scores 0+0+4+3 = 7, client 2 0+2+0+3 = 5,
// client 3 0+2+4+0 = 6, so client 2.
func TestSelectModalities(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name         string
		distA, distV [][]float64
		ratio        []float64
		want         []Selection
	}{
		{"A dominant: client 1 drops A", selMulti, selWeak, []float64{1, 3, nan, 0.9}, []Selection{{1, 1}, {0, 0}}},
		{"V dominant: client 1 drops V", selWeak, selMulti, []float64{1, 0.2, nan, 1.1}, []Selection{{1, 2}, {0, 0}}},
		{"no ratios: facility location", selWeak, selWeak, []float64{nan, nan, nan, nan}, []Selection{{0, 0}, {2, 0}}},
		// The weak objective's pick (client 1) is not imbalanced enough.
		{"below threshold: no drop", selMulti, selWeak, []float64{1, 1.9, nan, 1.5}, []Selection{{0, 0}, {2, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SelectModalities(SelectionInput{
				DistMulti: selMulti, DistA: tc.distA, DistV: tc.distV,
				Ratio: tc.ratio, Samples: []int{1, 1, 1, 1}, K: 2, Threshold: 2,
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("selected %v, want %v", got, tc.want)
			}
		})
	}
	// Unimodal clients are neither candidates nor (lacking W) ground of the
	// weak objective. Clients 0-2 are multimodal with V updates 0, 1, 5 and
	// ratios 1.1, 3, 1.2 (rbar = 1.77: W = V); client 3 holds only A (V
	// update zero). Over the V holders 0-2, G scores 0+1+5 = 6, 1+0+4 = 5,
	// 5+4+0 = 9: client 1 (ratio 3 > 2) trains V only. (Over all clients,
	// as in the authors' code, clients 0, 1 and 3 tie at 6.)
	distV := [][]float64{{0, 1, 5, 0}, {1, 0, 4, 1}, {5, 4, 0, 5}, {0, 1, 5, 0}}
	got, err := SelectModalities(SelectionInput{
		DistMulti: selMulti, DistA: selMulti, DistV: distV, K: 1, Threshold: 2,
		Ratio: []float64{1.1, 3, 1.2, nan}, Samples: []int{1, 1, 1, 1}, Has: []data.Mask{3, 3, 3, 1},
	})
	if err != nil || !slices.Equal(got, []Selection{{1, 1}}) {
		t.Fatalf("with a unimodal client: %v, %v", got, err)
	}
	all, err := SelectModalities(SelectionInput{DistMulti: selMulti, DistA: selMulti, DistV: selMulti,
		Ratio: []float64{nan, nan, nan, nan}, Samples: []int{1, 1, 1, 1}, K: 9, Threshold: 2})
	if err != nil || len(all) != 4 {
		t.Fatalf("K > N: %v, %v", all, err)
	}
	if _, err := SelectModalities(SelectionInput{DistMulti: selMulti, DistA: selMulti[:2], DistV: selMulti, Ratio: make([]float64, 4), Samples: make([]int, 4)}); err == nil {
		t.Fatal("mis-sized input accepted")
	}
}

// mdropStrategy returns a FedMDrop strategy over the test engine's layout.
func mdropStrategy(e *model.Engine, perRound int) *FedMDrop {
	return &FedMDrop{
		ModalityAware: ModalityAware{
			Method: methods["fedmdrop"], PerRound: perRound, Seed: 5, Layout: e.Layout(),
			Schedule: Schedule{Rounds: 3, Epochs: 1, LR: 0.05, Momentum: 0.9},
			Options:  FedCMIOptions{C1: 2},
		},
		Options: FedMDropOptions{Alpha: 2, Threshold: 1.5, Subsample: 1},
	}
}

// TestFedMDropConfigure: a round with an unseen client probes every
// client; otherwise the selection's choice is sent, with the dropped
// modality. Clients: c0 A-only, c1 multimodal strongly A-dominant (ratio 3),
// c2 and c3 multimodal (1.2, 1.1); rbar = 1.77 > 1, so W = V. Encoder
// updates of V (first entry): c0 none (0), c1 1, c2 5, c3 0.5; A all zero.
// The weak objective over the V holders c1-c3 scores 0+4+0.5 = 4.5,
// 4+0+4.5 = 8.5, 0.5+4.5+0 = 5: it picks c1, whose ratio 3 > 1.5: c1 trains
// V only.
func TestFedMDropConfigure(t *testing.T) {
	e, _ := testEngine(t)
	s := mdropStrategy(e, 1)
	clients := []ClientInfo{{ID: "c0", Modalities: 1}, {ID: "c1", Modalities: 3}, {ID: "c2", Modalities: 3}, {ID: "c3", Modalities: 3}}
	global, _ := func() (model.Params, error) { a := e.Arch(); return a.Init(1) }()
	ins, err := s.ConfigureFit(1, global, clients)
	if err != nil || len(ins) != 4 {
		t.Fatalf("probe round: %d instructions, %v", len(ins), err)
	}
	for _, in := range ins {
		if rc, ok := in.Ins.Config.Recipe.(MDropFit); !ok || rc.Drop != 0 || rc.Global != nil {
			t.Fatalf("probe instruction %+v", in.Ins.Config.Recipe)
		}
	}
	vec := func(m int, v float32) []float32 {
		u := make([]float32, s.encoderSize(m))
		u[0] = v
		return u
	}
	s.state.Clients = map[string]*mdropClient{
		"c0": {Update: [2][]float32{vec(0, 0), nil}, Samples: 10},
		"c1": {Update: [2][]float32{vec(0, 0), vec(1, 1)}, Ratio: 3, Known: true, Samples: 10},
		"c2": {Update: [2][]float32{vec(0, 0), vec(1, 5)}, Ratio: 1.2, Known: true, Samples: 10},
		"c3": {Update: [2][]float32{vec(0, 0), vec(1, 0.5)}, Ratio: 1.1, Known: true, Samples: 10},
	}
	check := func(s *FedMDrop) {
		t.Helper()
		ins, err := s.ConfigureFit(2, global, clients)
		if err != nil {
			t.Fatal(err)
		}
		if rc, ok := ins[0].Ins.Config.Recipe.(MDropFit); len(ins) != 1 || ins[0].ClientID != "c1" || !ok || rc.Drop != 1 || rc.Alpha != 2 {
			t.Fatalf("instructions %+v", ins)
		}
	}
	check(s)
	// The state survives a save and restore.
	b, err := s.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	restored := mdropStrategy(e, 1)
	if err := restored.UnmarshalState(b); err != nil {
		t.Fatal(err)
	}
	check(restored)
	s.state.Clients["c1"].Update[1] = []float32{1, 2}
	if b, _ := s.MarshalState(); restored.UnmarshalState(b) == nil {
		t.Fatal("state with a mis-sized update accepted")
	}
}

// TestFedMDropClientDrop: a multimodal client told to drop A trains V only
// (A's parameters come back unchanged, its update counts for V), applies
// the modal enhancement loss with the global prototypes, and reports
// prototypes and accuracies of both modalities it holds.
func TestFedMDropClientDrop(t *testing.T) {
	e, train := testEngine(t)
	arch := e.Arch()
	global, _ := arch.Init(1)
	idx := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	c, err := NewLocalClient(e, train, idx, 3)
	if err != nil {
		t.Fatal(err)
	}
	recipe := MDropFit{Alpha: 2}
	cfg := FitConfig{Round: 1, Epochs: 1, LR: 0.05, Seed: 3, C1: 2, Momentum: 0.9, Recipe: recipe}
	probe, err := c.Fit(context.Background(), FitIns{Params: global, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	r := selection(Result{Res: probe})
	if r == nil || math.IsNaN(r.Accuracy[0]) || math.IsNaN(r.Accuracy[1]) || r.Prototypes.Centers[1] == nil {
		t.Fatalf("report %+v", r)
	}
	n := 0
	for _, k := range r.Prototypes.Counts[0] {
		n += k
	}
	if n != len(idx) || !(r.Ratio() > 0) {
		t.Fatalf("report counts %v, ratio %v", r.Prototypes.Counts[0], r.Ratio())
	}
	g, err := AggregatePrototypes([]PrototypeSet{r.Prototypes}, nil, arch.NumClasses, arch.EmbedDim)
	if err != nil {
		t.Fatal(err)
	}
	recipe.Drop = 1
	cfg.Recipe = recipe
	plain, err := c.Fit(context.Background(), FitIns{Params: global, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	recipe.Global = g
	cfg.Recipe = recipe
	enhanced, err := c.Fit(context.Background(), FitIns{Params: global, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if sel := selection(Result{Res: enhanced}); enhanced.Modalities != 2 || sel == nil || math.IsNaN(sel.Accuracy[0]) {
		t.Fatalf("trained %v, report %+v", enhanced.Modalities, sel)
	}
	changedV := false
	for i, info := range e.Layout() {
		same := slices.Equal(enhanced.Params[i].Data, global[i].Data)
		if info.Side == 0 && !same {
			t.Fatalf("%s changed although A was dropped", info.Name)
		}
		if info.Side == 1 && info.Part == model.PartEncoder && !same {
			changedV = true
		}
	}
	if !changedV {
		t.Fatal("V encoder did not train")
	}
	if enhanced.Metrics.LossSum <= plain.Metrics.LossSum {
		t.Fatalf("modal enhancement loss not added: loss %v with, %v without", enhanced.Metrics.LossSum, plain.Metrics.LossSum)
	}
}

// TestFedMDropRounds runs the strategy with the server over in-memory
// clients: round 1 probes all, later rounds train K, and global prototypes
// of both modalities exist after the first aggregation.
func TestFedMDropRounds(t *testing.T) {
	e, train := testEngine(t)
	arch := e.Arch()
	global, _ := arch.Init(2)
	clients := map[string]Client{}
	var infos []ClientInfo
	for i, has := range []data.Mask{3, 3, 1, 2} {
		idx := make([]int, 0, 12)
		for j := range 12 {
			idx = append(idx, i*12+j)
		}
		c, err := NewLocalClient(e, train, idx, has)
		if err != nil {
			t.Fatal(err)
		}
		id := []string{"a", "b", "c", "d"}[i]
		clients[id] = c
		infos = append(infos, ClientInfo{ID: id, Modalities: has, NumSamples: len(idx)})
	}
	s := mdropStrategy(e, 2)
	var per []int
	srv := &Server{Strategy: s, Transport: NewInmemTransport(clients), Clients: infos,
		OnRound: func(r metrics.Round, p model.Params) error { per = append(per, r.Clients); return nil }}
	if _, err := srv.Run(context.Background(), global, 1, 3); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(per, []int{4, 2, 2}) {
		t.Fatalf("clients per round %v, want [4 2 2]", per)
	}
	g := s.state.Global
	if g == nil || g.Centers[0] == nil || g.Centers[1] == nil || len(s.state.Clients) != 4 {
		t.Fatalf("state after 3 rounds: global %v, %d clients", g, len(s.state.Clients))
	}
	if !s.state.Clients["a"].Known || s.state.Clients["c"].Known {
		t.Fatal("ratios: a multimodal client's must be known, a unimodal one's not")
	}
}
