package fl

import (
	"context"
	"errors"
	"testing"

	"github.com/fedcmi/fedcmi/model"
)

// TestHarmonyStages: stage 1 samples every kind of client and changes
// exactly the encoders, self projectors and classifiers (the fusion head
// and infiltration projectors stay bit for bit); stage 2 samples only the
// multimodal client and trains the fusion head too.
func TestHarmonyStages(t *testing.T) {
	srv, st, _, global := scaffoldSetup(t) // three clients: a multimodal, b audio, c visual
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
			if rc, _ := in.Ins.Config.Recipe.(HarmonyFit); rc.Unimodal != tc.uni {
				t.Fatalf("round %d: %s unimodal stage %v", tc.round, in.ClientID, rc.Unimodal)
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
	for i, info := range h.Base.Layout {
		if info.Part == model.PartFusion || info.Part == model.PartEncoder {
			if !changed(after1, after2, i) {
				t.Errorf("stage 2: %s unchanged", info.Name)
			}
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
