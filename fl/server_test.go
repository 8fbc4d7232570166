package fl

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/model"
)

// constClient returns fixed parameters (every value v) as its update.
type constClient struct {
	v   float32
	has data.Mask
	n   int
}

func (c constClient) Fit(ctx context.Context, ins FitIns) (FitRes, error) {
	p := ins.Params.Clone()
	for i := range p {
		for j := range p[i].Data {
			p[i].Data[j] = c.v
		}
	}
	res := FitRes{Params: p, NumSamples: c.n, Modalities: c.has, Metrics: FitMetrics{LossSum: 1, Batches: 1}}
	if ins.Control != nil { // SCAFFOLD: no change of the control variate
		res.ControlDelta = ins.Control.Clone()
		for i := range res.ControlDelta {
			clear(res.ControlDelta[i].Data)
		}
	}
	return res, nil
}

func (c constClient) Evaluate(ctx context.Context, p model.Params) (Evaluation, error) {
	return Evaluation{}, nil
}

func TestServerRoundsWithDropouts(t *testing.T) {
	clients := map[string]Client{
		"a": constClient{v: 1, has: 3, n: 1},
		"b": constClient{v: 3, has: 3, n: 1},
		"c": constClient{v: 5, has: 1, n: 2}, // modality 0 only
	}
	infos := []ClientInfo{{ID: "a", Modalities: 3}, {ID: "b", Modalities: 3}, {ID: "c", Modalities: 1}}
	tr := NewInmemTransport(clients)
	tr.Disconnect("b")
	var rounds []metrics.Round
	srv := &Server{
		Strategy:  &ModalityAware{Method: methods["fedavg"], Schedule: Schedule{Rounds: 2, Epochs: 1, LR: 1}, PerRound: 3, Layout: aggLayout},
		Transport: tr,
		Clients:   infos,
		OnRound:   func(r metrics.Round, p model.Params) error { rounds = append(rounds, r); return nil },
	}
	got, err := srv.Run(context.Background(), aggParams(0, 0, 0, 0), 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	// b is cut off: a-side over a (n=1) and c (n=2): (1 + 10)/3; v-side only a: 1;
	// fusion over a and c: 11/3.
	want := aggParams(11.0/3, 11.0/3, 1, 11.0/3)
	for i := range want {
		for j := range want[i].Data {
			if d := got[i].Data[j] - want[i].Data[j]; d > 1e-6 || d < -1e-6 {
				t.Fatalf("%s = %v, want %v", got[i].Name, got[i].Data, want[i].Data)
			}
		}
	}
	if len(rounds) != 2 || rounds[0].Failures != 1 || rounds[0].Clients != 2 {
		t.Fatalf("rounds %+v", rounds)
	}

	// Nobody answers: an error by default, the previous model if allowed.
	tr.Disconnect("a")
	tr.Disconnect("c")
	if _, err := srv.Run(context.Background(), want, 3, 3); err == nil || !errors.Is(err, ErrDisconnected) {
		t.Fatalf("empty round: %v", err)
	}
	srv.AllowEmptyRounds = true
	kept, err := srv.Run(context.Background(), want, 3, 3)
	if err != nil || kept[0].Data[0] != want[0].Data[0] {
		t.Fatalf("kept %v, err %v", kept[0].Data, err)
	}
}

// TestServerRefusesBeyondDeclared: a result that trains modalities or
// claims samples beyond its client's declaration when sampled (a deployed
// participant that registered again mid-round) counts as a failure, so
// that SCAFFOLD's per-modality counts, taken from the declarations, hold.
func TestServerRefusesBeyondDeclared(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    constClient
		ok   bool
	}{
		{"as declared", constClient{v: 3, has: 1, n: 2}, true},
		{"fewer samples", constClient{v: 3, has: 1, n: 1}, true},
		{"another modality", constClient{v: 3, has: 3, n: 2}, false},
		{"more samples", constClient{v: 3, has: 1, n: 3}, false},
	} {
		clients := map[string]Client{"a": constClient{v: 1, has: 3, n: 1}, "c": tc.c}
		infos := []ClientInfo{{ID: "a", Modalities: 3, NumSamples: 1}, {ID: "c", Modalities: 1, NumSamples: 2}}
		var rounds []metrics.Round
		srv := &Server{
			Strategy:  &Scaffold{Base: &ModalityAware{Method: methods["scaffold"], Schedule: Schedule{Rounds: 1, Epochs: 1, LR: 1}, PerRound: 2, Layout: aggLayout}},
			Transport: NewInmemTransport(clients),
			Clients:   infos,
			OnRound:   func(r metrics.Round, p model.Params) error { rounds = append(rounds, r); return nil },
		}
		if _, err := srv.Run(context.Background(), aggParams(0, 0, 0, 0), 1, 1); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if want := map[bool]int{true: 0, false: 1}[tc.ok]; len(rounds) != 1 || rounds[0].Failures != want {
			t.Errorf("%s: rounds %+v, want %d failures", tc.name, rounds, want)
		}
	}
}

func TestAggregateRejectsBadUpdates(t *testing.T) {
	s := &ModalityAware{Method: methods["fedavg"], Layout: aggLayout}
	good := FitRes{Params: aggParams(2, 2, 2, 2), NumSamples: 1, Modalities: 3}
	nan := FitRes{Params: aggParams(2, 2, 2, 2), NumSamples: 1, Modalities: 3}
	nan.Params[0].Data[1] = float32(nanValue())
	shape := FitRes{Params: aggParams(2, 2, 2, 2), NumSamples: 1, Modalities: 3}
	shape.Params[1].Shape = []int{2}
	shape.Params[1].Data = []float32{1, 2}
	zero := FitRes{Params: aggParams(9, 9, 9, 9), NumSamples: 0, Modalities: 3}
	got, err := s.AggregateFit(1, aggParams(0, 0, 0, 0), []Result{{"good", good}, {"nan", nan}, {"shape", shape}, {"zero", zero}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Data[0] != 2 || got[2].Data[0] != 2 {
		t.Fatalf("bad updates were averaged in: %v", got)
	}
	for _, r := range []FitRes{nan, shape, zero} {
		if CheckUpdate(aggLayout, r) == nil {
			t.Errorf("accepted %+v", r)
		}
	}
	none, err := s.AggregateFit(1, aggParams(0, 0, 0, 0), []Result{{"nan", nan}}, nil)
	if err != nil || none != nil {
		t.Fatalf("all rejected: %v, %v", none, err)
	}
}

func nanValue() float64 { var z float64; return z / z }

func TestSample(t *testing.T) {
	a := Sample(100, 10, 1, 3)
	b := Sample(100, 10, 1, 3)
	c := Sample(100, 10, 1, 4)
	if fmt.Sprint(a) != fmt.Sprint(b) || fmt.Sprint(a) == fmt.Sprint(c) || len(a) != 10 {
		t.Fatalf("%v %v %v", a, b, c)
	}
	seen := map[int]bool{}
	for _, i := range a {
		if seen[i] || i < 0 || i >= 100 {
			t.Fatalf("bad sample %v", a)
		}
		seen[i] = true
	}
	if len(Sample(3, 10, 1, 1)) != 3 {
		t.Fatal("K > N")
	}
	// Uniform: over many rounds every client is picked about K/N of the time.
	count := make([]int, 20)
	for r := range 2000 {
		for _, i := range Sample(20, 5, 9, r) {
			count[i]++
		}
	}
	for i, n := range count {
		if n < 400 || n > 600 { // expected 500
			t.Fatalf("client %d sampled %d times of 2000 rounds", i, n)
		}
	}
}

func TestLearningRate(t *testing.T) {
	s := Schedule{Rounds: 100, LR: 0.1, LRMin: 0.01, LRDecayStart: 80}
	for _, tc := range []struct {
		round int
		want  float64
	}{{1, 0.1}, {80, 0.1}, {90, 0.055}, {100, 0.01}} {
		if got := s.LearningRate(tc.round); got-tc.want > 1e-12 || tc.want-got > 1e-12 {
			t.Errorf("round %d: %v, want %v", tc.round, got, tc.want)
		}
	}
}
