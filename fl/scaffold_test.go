package fl

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"slices"
	"testing"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/model"
)

func closeTo(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b)) }

func TestEffectiveSteps(t *testing.T) {
	for _, tc := range []struct {
		k    int
		beta float64
		want float64
	}{
		{3, 0, 3},
		{1, 0.9, 1},
		{3, 0.5, 4.25},       // (0.5 + 0.75 + 0.875) / 0.5
		{2, 0.9, 2.9},        // (0.1 + 0.19) / 0.1
		{8, 0.9, 28.7420489}, // (8 - 0.9 (1 - 0.9^8) / 0.1) / 0.1
	} {
		if got := EffectiveSteps(tc.k, tc.beta); !closeTo(got, tc.want) {
			t.Errorf("EffectiveSteps(%d, %v) = %v, want %v", tc.k, tc.beta, got, tc.want)
		}
	}
}

// TestScaffoldClientControl checks c_i+ = c_i - c + (x - y)/(K_eff lr) and
// Δc_i on hand-computed numbers; an untrained tensor keeps c_i and has
// Δc_i = 0.
func TestScaffoldClientControl(t *testing.T) {
	x := aggParams(1, 2, 4, 0)
	y := aggParams(0.5, 2.5, 3, 9)
	c := aggParams(0.1, -0.2, 1, 1)
	ci := aggParams(0.3, 0, 5, 5)
	trained := []int{0, 2} // tensor 1 (modality 1) not trained
	for _, tc := range []struct {
		name      string
		ci        model.Params
		steps     int
		lr, beta  float64
		next, dci []float64 // tensor 0's two values
		fusion    [2]float64
	}{
		// K lr = 1: next = ci - c + (x - y) = [0.3-0.1+0.5, 0+0.2-0.5]; fusion 5 - 1 + (0 - 9) = -5.
		{"sgd", ci, 2, 0.5, 0, []float64{0.7, -0.3}, []float64{0.4, -0.3}, [2]float64{-5, -10}},
		// c_i = 0: next = -c + (x - y) / 1.
		{"first round", nil, 4, 0.25, 0, []float64{0.4, -0.3}, []float64{0.4, -0.3}, [2]float64{-10, -10}},
		// momentum 0.5, 3 steps: K_eff = 4.25, lr 0.2: (x - y) / 0.85.
		{"momentum", ci, 3, 0.2, 0.5, []float64{0.3 - 0.1 + 0.5/0.85, 0.2 - 0.5/0.85}, []float64{-0.1 + 0.5/0.85, 0.2 - 0.5/0.85}, [2]float64{5 - 1 - 9/0.85, -1 - 9/0.85}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, delta, err := ScaffoldClientControl(trained, x, y, c, tc.ci, tc.steps, tc.lr, tc.beta)
			if err != nil {
				t.Fatal(err)
			}
			for j := range 2 {
				if !closeTo(float64(next[0].Data[j]), tc.next[j]) || !closeTo(float64(delta[0].Data[j]), tc.dci[j]) {
					t.Fatalf("tensor 0[%d]: c_i+ %v Δ %v, want %v %v", j, next[0].Data[j], delta[0].Data[j], tc.next[j], tc.dci[j])
				}
			}
			if !closeTo(float64(next[2].Data[0]), tc.fusion[0]) || !closeTo(float64(delta[2].Data[0]), tc.fusion[1]) {
				t.Fatalf("fusion: c_i+ %v Δ %v, want %v", next[2].Data, delta[2].Data, tc.fusion)
			}
			wantKept := float32(0)
			if tc.ci != nil {
				wantKept = tc.ci[1].Data[0]
			}
			if next[1].Data[0] != wantKept || delta[1].Data[0] != 0 {
				t.Fatalf("untrained tensor: c_i+ %v Δ %v, want %v and 0", next[1].Data, delta[1].Data, wantKept)
			}
		})
	}
	if _, _, err := ScaffoldClientControl(trained, x, y, c, ci, 0, 0.1, 0); err == nil {
		t.Fatal("zero steps accepted")
	}
}

// TestScaffoldServerControl checks c += (|S_s|/N_s) sum_k w_k Δc_k per side
// on hand-computed numbers.
func TestScaffoldServerControl(t *testing.T) {
	const av, a = data.Mask(3), data.Mask(1)
	c := aggParams(0.5, 0.5, 0.5, 0.5)
	updates := []ControlUpdate{
		{Delta: aggParams(1, -1, 2, 3), NumSamples: 10, Modalities: av},
		{Delta: aggParams(5, 3, 100, 7), NumSamples: 30, Modalities: a}, // its modality-1 Δ is ignored
	}
	got, err := ScaffoldServerControl(aggLayout, c, updates, [numGroups]int{0: 4, 1: 3, fusionGroup: 6})
	if err != nil {
		t.Fatal(err)
	}
	// modality 0: 2 of 4 hold it, mean (10*1 + 30*5)/40 = 4 -> 0.5 + 0.5*4;
	// second entry (10*-1 + 30*3)/40 = 2 -> 0.5 + 0.5*2.
	// modality 1: 1 of 3, mean 2 -> 0.5 + 2/3. fusion: 2 of 6, mean (30 + 210)/40 = 6 -> 0.5 + 2.
	want := []float64{2.5, 1.5, 0.5 + 2.0/3, 2.5}
	flat := []float32{got[0].Data[0], got[0].Data[1], got[1].Data[0], got[2].Data[0]}
	for k := range want {
		if !closeTo(float64(flat[k]), want[k]) {
			t.Fatalf("c = %v, want %v", flat, want)
		}
	}
	if c[0].Data[0] != 0.5 {
		t.Fatal("input control variate modified")
	}
	// No sampled client holds modality 1: its control stays.
	got, err = ScaffoldServerControl(aggLayout, c, updates[1:], [numGroups]int{0: 4, 1: 3, fusionGroup: 6})
	if err != nil || got[1].Data[0] != 0.5 {
		t.Fatalf("modality 1 control %v, err %v", got[1].Data, err)
	}
	if _, err := ScaffoldServerControl(aggLayout, c, updates, [numGroups]int{0: 1, 1: 3, fusionGroup: 6}); err == nil {
		t.Fatal("more sampled clients than registered accepted")
	}
}

// scaffoldSetup returns a SCAFFOLD server over three local clients
// (multimodal, audio only, visual only) of the small synthetic set.
func scaffoldSetup(t *testing.T) (*Server, *Scaffold, map[string]*LocalClient, model.Params) {
	t.Helper()
	e, train := testEngine(t)
	masks := []data.Mask{3, 1, 2}
	clients := map[string]Client{}
	locals := map[string]*LocalClient{}
	var infos []ClientInfo
	for k, m := range masks {
		idx := make([]int, 20)
		for i := range idx {
			idx[i] = 20*k + i
		}
		c, err := NewLocalClient(e, train, idx, m)
		if err != nil {
			t.Fatal(err)
		}
		id := string(rune('a' + k))
		clients[id], locals[id] = c, c
		infos = append(infos, ClientInfo{ID: id, Modalities: m, NumSamples: 20})
	}
	arch := e.Arch()
	global, err := arch.Init(1)
	if err != nil {
		t.Fatal(err)
	}
	st := &Scaffold{Base: &ModalityAware{
		Method:   methods["scaffold"],
		Schedule: Schedule{Rounds: 3, Epochs: 1, LR: 0.05, Momentum: 0.9, WeightDecay: 1e-4, LRDecayStart: 80},
		Options:  FedCMIOptions{C1: 2},
		PerRound: 2, Seed: 5, Layout: e.Layout(), Logger: quietLog,
	}}
	return &Server{Strategy: st, Transport: NewInmemTransport(clients), Clients: infos, Logger: quietLog}, st, locals, global
}

// TestScaffoldRounds runs SCAFFOLD over local clients: the server control
// variate becomes non-zero, sampled clients keep their control variates,
// and a run resumed from the saved strategy and client states (Stateful,
// ClientStateful) ends with exactly the model of an uninterrupted run.
func TestScaffoldRounds(t *testing.T) {
	ctx := context.Background()
	srv, st, locals, global := scaffoldSetup(t)
	want, err := srv.Run(ctx, global, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	nonzero := 0
	for _, tns := range st.Control() {
		for _, v := range tns.Data {
			if v != 0 {
				nonzero++
			}
		}
	}
	if nonzero == 0 {
		t.Fatal("server control variate still zero after 3 rounds")
	}
	withControl := 0
	for _, c := range locals {
		if c.control != nil {
			withControl++
		}
	}
	if withControl < 2 {
		t.Fatalf("%d clients kept a control variate", withControl)
	}

	// Resume: rounds 1-2, save, fresh strategy and clients, restore, round 3.
	srv1, st1, locals1, _ := scaffoldSetup(t)
	mid, err := srv1.Run(ctx, global, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	sstate, err := st1.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	cstate := map[string][]byte{}
	for id, c := range locals1 {
		if cstate[id], err = c.MarshalState(); err != nil {
			t.Fatal(err)
		}
	}
	// A coordinator that crashes after training round 3 but before saving
	// it resumes from round 2's state and runs round 3 again with the same
	// (still running) clients: they must train it from the state they had
	// the first time, or the model drifts from the uninterrupted run's.
	if _, err := srv1.Run(ctx, mid, 3, 3); err != nil {
		t.Fatal(err)
	}
	if err := st1.UnmarshalState(sstate); err != nil {
		t.Fatal(err)
	}
	rerun, err := srv1.Run(ctx, mid, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		for j := range want[i].Data {
			if rerun[i].Data[j] != want[i].Data[j] {
				t.Fatalf("round 3 run again differs at %s[%d]: %v vs %v", want[i].Name, j, rerun[i].Data[j], want[i].Data[j])
			}
		}
	}

	srv2, st2, locals2, _ := scaffoldSetup(t)
	if err := st2.UnmarshalState(sstate); err != nil {
		t.Fatal(err)
	}
	for id, c := range locals2 {
		if err := c.UnmarshalState(cstate[id]); err != nil {
			t.Fatal(err)
		}
	}
	got, err := srv2.Run(ctx, mid, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		for j := range want[i].Data {
			if got[i].Data[j] != want[i].Data[j] {
				t.Fatalf("resumed run differs at %s[%d]: %v vs %v", want[i].Name, j, got[i].Data[j], want[i].Data[j])
			}
		}
	}
	// Without the client states the resumed run differs (the state matters).
	srv3, st3, _, _ := scaffoldSetup(t)
	if err := st3.UnmarshalState(sstate); err != nil {
		t.Fatal(err)
	}
	other, err := srv3.Run(ctx, mid, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	same := true
	for i := range want {
		for j := range want[i].Data {
			same = same && other[i].Data[j] == want[i].Data[j]
		}
	}
	if same {
		t.Fatal("resuming without the clients' control variates gave the same model")
	}
	if err := st3.UnmarshalState([]byte("garbage")); err == nil {
		t.Fatal("garbage state accepted")
	}
}

var quietLog = slog.New(slog.DiscardHandler)

// TestScaffoldDiscard: a client whose round-3 result never reached the
// aggregate (late, rejected) discards what that round did to its control
// variate, and only for the latest round.
func TestScaffoldDiscard(t *testing.T) {
	ctx := context.Background()
	srv, _, locals, global := scaffoldSetup(t)
	mid, err := srv.Run(ctx, global, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	before := map[string]model.Params{}
	for id, c := range locals {
		before[id] = c.control.Clone()
	}
	if _, err := srv.Run(ctx, mid, 3, 3); err != nil {
		t.Fatal(err)
	}
	trained := 0
	for id, c := range locals {
		if c.lastRound != 3 {
			if c.Discard(3) {
				t.Errorf("client %s not trained in round 3 discarded it", id)
			}
			continue
		}
		trained++
		if sameParams(c.control, before[id]) {
			t.Fatalf("client %s: round 3 left its control variate as it was; the test shows nothing", id)
		}
		if c.Discard(2) {
			t.Errorf("client %s discarded round 2, not its latest", id)
		}
		if !c.Discard(3) || !sameParams(c.control, before[id]) {
			t.Errorf("client %s: control variate not back to round 2's after discarding round 3", id)
		}
		if c.Discard(3) {
			t.Errorf("client %s discarded round 3 twice", id)
		}
	}
	if trained == 0 {
		t.Fatal("no client trained in round 3")
	}
}

// sameParams reports whether a and b hold the same values (nil: none).
func sameParams(a, b model.Params) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !slices.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}

// TestScaffoldRefusesPersonalized: SCAFFOLD's control variates measure the
// drift from the global model each client starts from, which personal
// parts do not; through CheckConfig, naming the field.
func TestScaffoldRefusesPersonalized(t *testing.T) {
	cfg := config.Default()
	cfg.Method = "scaffold"
	if err := CheckConfig(&cfg); err != nil {
		t.Fatalf("scaffold: %v", err)
	}
	cfg.FedCMI.Personalized = true
	var fe *config.FieldError
	if err := CheckConfig(&cfg); !errors.As(err, &fe) || fe.Path != "fedcmi.personalized" {
		t.Errorf("scaffold with personalised branches: %v, want refused naming fedcmi.personalized", err)
	}
}

// TestScaffoldAnotherRun: a client whose state comes from a longer run (a
// coordinator started anew, a participant's -state file kept from an
// earlier run) and is asked for a round before its last starts afresh: the
// new run's results are those of fresh clients.
func TestScaffoldAnotherRun(t *testing.T) {
	ctx := context.Background()
	srv, _, _, global := scaffoldSetup(t)
	if _, err := srv.Run(ctx, global, 1, 3); err != nil {
		t.Fatal(err)
	}
	// A new run (a new strategy, the same clients) from round 1.
	fresh, _, _, _ := scaffoldSetup(t)
	again, _, _, _ := scaffoldSetup(t)
	again.Transport = srv.Transport // the clients of the first run
	want, err := fresh.Run(ctx, global, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	got, err := again.Run(ctx, global, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !sameParams(got, want) {
		t.Error("a new run with clients of an earlier one differs from one with fresh clients")
	}
}
