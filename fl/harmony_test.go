package fl

import (
	"context"
	"errors"
	"testing"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/model"
)

// TestHarmonyStages: stage 1 samples every kind of client and changes
// exactly the encoders, self projectors and classifiers (the fusion head
// and infiltration projectors stay bit for bit); stage 2 samples only the
// multimodal client, changes only the global fusion head, and the client
// keeps its fine-tuned encoders and self projectors and starts its next
// fusion round from them.
func TestHarmonyStages(t *testing.T) {
	srv, st, locals, global := scaffoldSetup(t) // three clients: a multimodal, b audio, c visual
	h := &Harmony{Base: st.Base, UnimodalRounds: 1}
	h.Base.Method = methods["harmony"]
	h.Base.PerRound = 3
	srv.Strategy = h
	if h.Stage(1) != 1 || h.Stage(2) != 2 {
		t.Fatalf("stages %d %d", h.Stage(1), h.Stage(2))
	}
	for _, tc := range []struct {
		round   int
		clients []string
		uni     bool
	}{{1, []string{"a", "b", "c"}, true}, {2, []string{"a"}, false}} {
		ins, err := h.ConfigureFit(tc.round, global, srv.Clients)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, in := range ins {
			ids = append(ids, in.ClientID)
			if rc, _ := in.Ins.Config.Recipe.(HarmonyFit); rc.Unimodal != tc.uni || rc.Fusion == tc.uni {
				t.Fatalf("round %d: %s recipe %+v", tc.round, in.ClientID, rc)
			}
		}
		if len(ids) != len(tc.clients) {
			t.Fatalf("round %d: sampled %v, want %v", tc.round, ids, tc.clients)
		}
		for k := range ids {
			if ids[k] != tc.clients[k] {
				t.Fatalf("round %d: sampled %v, want %v", tc.round, ids, tc.clients)
			}
		}
	}

	ctx := context.Background()
	changed := func(a, b model.Params, i int) bool {
		for j := range a[i].Data {
			if a[i].Data[j] != b[i].Data[j] {
				return true
			}
		}
		return false
	}
	after1, err := srv.Run(ctx, global, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, info := range h.Base.Layout {
		want := info.Part == model.PartEncoder || info.Part == model.PartSelf || info.Part == model.PartClassifier
		if got := changed(global, after1, i); got != want {
			t.Errorf("stage 1: %s changed=%v, want %v", info.Name, got, want)
		}
	}
	after2, err := srv.Run(ctx, after1, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	a := locals["a"]
	for i, info := range h.Base.Layout {
		if got, want := changed(after1, after2, i), info.Part == model.PartFusion; got != want {
			t.Errorf("stage 2: global %s changed=%v, want %v", info.Name, got, want)
		}
		own, kept := a.personal[i]
		if kept != harmonyOwn(info) {
			t.Errorf("stage 2: client keeps %s: %v", info.Name, kept)
		}
		if kept && info.Part == model.PartEncoder && !changed(model.Params{own}, model.Params{after1[i]}, 0) {
			t.Errorf("stage 2: the client's %s was not fine-tuned", info.Name)
		}
	}
	// The next fusion round starts from the client's own encoders: a
	// client without them, trained on the same rows with the same seed,
	// ends elsewhere.
	fresh, err := NewLocalClient(a.engine, a.set, a.index, a.has)
	if err != nil {
		t.Fatal(err)
	}
	ins, err := h.ConfigureFit(3, after2, srv.Clients)
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Fit(ctx, ins[0].Ins)
	if err != nil {
		t.Fatal(err)
	}
	for i, info := range h.Base.Layout {
		if got, want := changed(res.Params, ins[0].Ins.Params, i), info.Part == model.PartFusion; got != want {
			t.Errorf("round 3: the client sent %s changed=%v, want %v (only the fusion head)", info.Name, got, want)
		}
	}
	resFresh, err := fresh.Fit(ctx, ins[0].Ins)
	if err != nil {
		t.Fatal(err)
	}
	for i, info := range h.Base.Layout {
		if info.Part == model.PartFusion && !changed(res.Params, resFresh.Params, i) {
			t.Errorf("round 3: %s the same with and without the client's own encoders", info.Name)
		}
		if info.Part == model.PartEncoder && !changed(model.Params{a.personal[i]}, model.Params{fresh.personal[i]}, 0) {
			t.Errorf("round 3: the fine-tuned %s the same with and without the client's own encoders", info.Name)
		}
	}

	var uni []ClientInfo
	for _, c := range srv.Clients {
		if !(c.Modalities.Has(0) && c.Modalities.Has(1)) {
			uni = append(uni, c)
		}
	}
	if _, err := h.ConfigureFit(2, global, uni); !errors.Is(err, ErrNoMultimodalClients) {
		t.Fatalf("stage 2 without multimodal clients: %v", err)
	}
}

// TestHarmonyFusionStep: the fusion stage trains on the fused loss alone,
// with the encoders and self projectors at a tenth of the rate, and
// refuses personalised branches.
func TestHarmonyFusionStep(t *testing.T) {
	e, train := testEngine(t)
	c, err := NewLocalClient(e, train, []int{0, 1, 2}, 3)
	if err != nil {
		t.Fatal(err)
	}
	r := &localRound{c: c, tc: model.TrainConfig{C1: 2}}
	if err := (harmonyFusionHook{}).prepare(r); err != nil {
		t.Fatal(err)
	}
	if r.tc.C1 != 0 || r.tc.PartLR[model.PartEncoder] != 0.1 || r.tc.PartLR[model.PartSelf] != 0.1 || len(r.tc.PartLR) != 2 {
		t.Errorf("fusion stage step: C1 %v, part rates %v", r.tc.C1, r.tc.PartLR)
	}
	cfg := config.Default()
	cfg.Method = "harmony"
	cfg.FedCMI.Personalized = true
	var fe *config.FieldError
	if err := methods["harmony"].CheckSettings(&cfg); !errors.As(err, &fe) || fe.Path != "fedcmi.personalized" {
		t.Errorf("harmony with personalised branches: %v", err)
	}
}
