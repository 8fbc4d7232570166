package fl

import (
	"context"
	"testing"

	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/model"
)

func TestPMRFitSchedule(t *testing.T) {
	o := PMROptions{Alpha: 2, Gamma: 0.3, EntropyRounds: 2, Binary: true, Momentum: 0.2}
	for _, tc := range []struct {
		round int
		want  PMRFit
	}{
		{1, PMRFit{Alpha: 2, Gamma: 0.3, Momentum: 0.2, Binary: true}},
		{2, PMRFit{Alpha: 2, Gamma: 0.3, Momentum: 0.2, Binary: true}},
		{3, PMRFit{Alpha: 2, Gamma: 0, Momentum: 0.2, Binary: true}}, // entropy only early
	} {
		if got := pmrFit(o, tc.round); got != tc.want {
			t.Errorf("round %d: %+v, want %+v", tc.round, got, tc.want)
		}
	}
	// The strategy puts the round's recipe into every instruction; the
	// plain strategy into none.
	base := &ModalityAware{Method: methods["pmr"], PerRound: 2, Seed: 1, Layout: aggLayout}
	clients := []ClientInfo{{ID: "a", Modalities: 3, NumSamples: 2}, {ID: "b", Modalities: 3, NumSamples: 2}}
	global := aggParams(0, 0, 0, 0)
	ins, err := (&PMR{ModalityAware: base, Options: o}).ConfigureFit(3, global, clients)
	if err != nil || len(ins) != 2 || ins[1].Ins.Config.Recipe != Recipe(pmrFit(o, 3)) {
		t.Fatalf("PMR strategy: %+v, %v", ins, err)
	}
	if ins, _ := base.ConfigureFit(3, global, clients); ins[0].Ins.Config.Recipe != nil {
		t.Fatal("the plain strategy sent a PMR recipe")
	}
}

// TestPMRClientFit: a multimodal PMR client adds the prototype loss on
// every batch (so it ends elsewhere than FedAvg from the same start and
// seed); a unimodal PMR client trains exactly as FedAvg.
func TestPMRClientFit(t *testing.T) {
	e, train := testEngine(t)
	arch := e.Arch()
	global, _ := arch.Init(1)
	idx := []int{0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 20, 21, 22, 30, 31, 40, 41, 50, 51}
	plain := FitConfig{Round: 1, Epochs: 2, LR: 0.05, Seed: 3, C1: 2, WeightDecay: 1e-4, Momentum: 0.9}
	pmr := plain
	pmr.Recipe = pmrFit(PMROptions{Alpha: 1, Gamma: 0.1, EntropyRounds: 5, Momentum: 0.2}, 1)
	fit := func(has data.Mask, cfg FitConfig) FitRes {
		c, err := NewLocalClient(e, train, idx, has)
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Fit(context.Background(), FitIns{Params: global, Config: cfg})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	same := func(a, b model.Params) bool {
		for i := range a {
			for j := range a[i].Data {
				if a[i].Data[j] != b[i].Data[j] {
					return false
				}
			}
		}
		return true
	}
	for _, tc := range []struct {
		name  string
		has   data.Mask
		multi bool
	}{{"multimodal", 3, true}, {"audio only", 1, false}, {"visual only", 2, false}} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := fit(tc.has, plain), fit(tc.has, pmr)
			if tc.multi {
				m, _ := b.Metrics.Report.(*ProtoMetrics)
				if m == nil || m.Batches != b.Metrics.Batches || m.Batches == 0 || !(m.RhoSum > 0) {
					t.Fatalf("prototype metrics %+v over %d batches", m, b.Metrics.Batches)
				}
				if same(a.Params, b.Params) {
					t.Fatal("PMR left training unchanged")
				}
				return
			}
			if m, _ := b.Metrics.Report.(*ProtoMetrics); m == nil || m.Batches != 0 || !same(a.Params, b.Params) {
				t.Fatalf("unimodal PMR client differs from FedAvg (prototype metrics %+v)", m)
			}
		})
	}
}

func TestNearestPrototypeAccuracy(t *testing.T) {
	// Two 1-D prototypes at 0 and 4 (a third absent one at 1.5 must be
	// ignored): rows 1 -> class 0 (right), 3 -> class 1 (right), 1.9 ->
	// class 0 (label 1: wrong), -2 -> class 0 (right): 3 of 4.
	emb := []float32{1, 3, 1.9, -2}
	labels := []int{0, 1, 1, 0}
	got := nearestPrototypeAccuracy(emb, labels, []float32{0, 4, 1.5}, []bool{true, true, false}, 1)
	if got != 0.75 {
		t.Fatalf("accuracy %v, want 0.75", got)
	}
}
