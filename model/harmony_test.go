package model

import (
	"math"
	"testing"
)

// TestHarmonyUnimodalStage checks Harmony's first-stage step: its loss is
// the sum of the held modalities' unimodal cross-entropies (against the
// independent refNet), its gradient matches finite differences, and it
// updates exactly the held modalities' encoders, self projectors and
// classifiers.
func TestHarmonyUnimodalStage(t *testing.T) {
	arch := tinyArch()
	e, err := NewEngine(backend(t), arch, 8)
	if err != nil {
		t.Fatal(err)
	}
	b := toyBatch(arch, 6, 9)
	for _, tc := range []struct {
		name string
		has  []bool
	}{{"multimodal", []bool{true, true}}, {"first-only", []bool{true, false}}, {"second-only", []bool{false, true}}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := TrainConfig{Has: tc.has, C1: 2, Terms: []Term{HarmonyStage1()}}
			p := mustInit(t, arch, 5)
			bb := b
			bb.X = append([][]float32(nil), b.X...)
			for m := range 2 {
				if !tc.has[m] {
					bb.X[m] = nil
				}
			}
			ref := newRefNet(arch, p)
			want := 0.0
			for i, y := range bb.Labels {
				for m := range 2 {
					if !tc.has[m] {
						continue
					}
					d := arch.InputDims[m]
					x := make([]float64, d)
					for k := range d {
						x[k] = float64(bb.X[m][i*d+k])
					}
					z, _ := ref.forward(m, x)
					want -= logSoftmax(ref.classify(m, z), 1)[y]
				}
			}
			want /= float64(len(bb.Labels))
			if got := lossAt(t, e, p, p, cfg, bb).Loss; math.Abs(got-want) > 1e-4*math.Max(1, want) {
				t.Fatalf("loss %.6f, reference %.6f", got, want)
			}
			checkGradientAt(t, e, jitter(p, 3), p, cfg, bb)

			changed := changedTensors(t, e, p, cfg, bb)
			for i, info := range arch.Layout() {
				want := info.Side >= 0 && tc.has[info.Side] &&
					(info.Part == PartEncoder || info.Part == PartSelf || info.Part == PartClassifier)
				if changed[i] != want {
					t.Errorf("%s: changed=%v, want %v", info.Name, changed[i], want)
				}
			}
		})
	}
}
