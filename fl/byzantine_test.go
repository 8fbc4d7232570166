package fl

import (
	"context"
	"math"
	"testing"
)

// stepClient moves every value of the received model by +1.
type stepClient struct{ Client }

func (stepClient) Fit(_ context.Context, ins FitIns) (FitRes, error) {
	return FitRes{Params: shifted(ins.Params, 1), NumSamples: 1, Modalities: 3}, nil
}

func TestByzantine(t *testing.T) {
	global := aggParams(2, 2, 2, 2)
	for _, tc := range []struct {
		attack string
		factor float64
		want   float32 // every value, for the deterministic attacks
	}{
		{AttackSignFlip, 0, 1},  // 2 - 1*1
		{AttackSignFlip, 3, -1}, // 2 - 3*1
		{AttackScale, 0, 102},   // 2 + 100*1
		{AttackScale, 2, 4},
	} {
		b := &Byzantine{Client: stepClient{}, Attack: tc.attack, Factor: tc.factor}
		res, err := b.Fit(context.Background(), FitIns{Params: global})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range res.Params {
			for _, v := range p.Data {
				if v != tc.want {
					t.Errorf("%s x%v: %v, want %v", tc.attack, tc.factor, v, tc.want)
				}
			}
		}
	}
	// Noise replaces the update: global plus N(0, f^2), reproducible by seed.
	big := bigLayout(20000)
	g := bigParams(big, 0, 0, 0)
	b := &Byzantine{Client: stepClient{}, Attack: AttackNoise, Factor: 3}
	res, err := b.Fit(context.Background(), FitIns{Params: g, Config: FitConfig{Seed: 9}})
	if err != nil {
		t.Fatal(err)
	}
	if sd := stdOf(res.Params[2].Data); math.Abs(sd-3) > 0.1 {
		t.Errorf("noise std %v, want 3", sd)
	}
	if g[2].Data[0] != 0 {
		t.Error("global modified")
	}
	bad := &Byzantine{Client: stepClient{}, Attack: "flip"}
	if _, err := bad.Fit(context.Background(), FitIns{Params: g}); err == nil {
		t.Error("unknown attack accepted")
	}
}
