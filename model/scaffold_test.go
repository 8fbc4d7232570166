package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// randomParams returns tensors shaped like the layout with N(0, scale^2) values.
func randomParams(arch Arch, seed uint64, scale float64) Params {
	rng := rand.New(rand.NewPCG(seed, 5))
	var p Params
	for _, info := range arch.Layout() {
		d := make([]float32, info.Size())
		for j := range d {
			d[j] = float32(scale * rng.NormFloat64())
		}
		p = append(p, Tensor{Name: info.Name, Shape: slices.Clone(info.Shape), Data: d})
	}
	return p
}

// TestScaffoldCorrectedGradient: with SCAFFOLD's correction c - c_i the
// in-graph gradient of every trained parameter is exactly g + c - c_i,
// and parameters the client does not train stay put whatever the
// correction says.
func TestScaffoldCorrectedGradient(t *testing.T) {
	arch := tinyArch()
	e, err := NewEngine(backend(t), arch, 8)
	if err != nil {
		t.Fatal(err)
	}
	b := toyBatch(arch, 7, 2)
	corr := randomParams(arch, 3, 0.3)
	for _, tc := range []struct {
		name string
		has  []bool
	}{{"multimodal", []bool{true, true}}, {"first-only", []bool{true, false}}, {"second-only", []bool{false, true}}} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustInit(t, arch, 4)
			cfg := TrainConfig{Has: tc.has, C1: 2}
			g, _ := gradientAt(t, e, p, p, cfg, b)
			cfg.Terms = append(cfg.Terms, ScaffoldCorrection(corr))
			gc, _ := gradientAt(t, e, p, p, cfg, b)
			l, err := e.NewLocal(p, TrainConfig{Has: tc.has})
			if err != nil {
				t.Fatal(err)
			}
			trained := l.Trainable()
			l.Close()
			for i, info := range arch.Layout() {
				isTrained := slices.Contains(trained, i)
				for j := range g[i].Data {
					want := float64(g[i].Data[j])
					if isTrained {
						want += float64(corr[i].Data[j])
					}
					if d := math.Abs(float64(gc[i].Data[j]) - want); d > 1e-5 {
						t.Fatalf("%s[%d] (trained %v): corrected gradient %v, want %v", info.Name, j, isTrained, gc[i].Data[j], want)
					}
				}
			}
		})
	}
}

// TestScaffoldCorrectionChecked: a correction with a missing tensor, or
// with a NaN or infinite value (added on the host after the loss's NaN
// check, it would spoil the parameters unnoticed), is refused.
func TestScaffoldCorrectionChecked(t *testing.T) {
	arch := tinyArch()
	e, err := NewEngine(backend(t), arch, 8)
	if err != nil {
		t.Fatal(err)
	}
	nan := randomParams(arch, 1, 1)
	nan[2].Data[1] = float32(math.NaN())
	inf := randomParams(arch, 1, 1)
	inf[0].Data[0] = float32(math.Inf(-1))
	for name, bad := range map[string]Params{"missing tensor": randomParams(arch, 1, 1)[1:], "NaN": nan, "infinity": inf} {
		if _, err := e.NewLocal(mustInit(t, arch, 1), TrainConfig{Has: []bool{true, true}, Terms: []Term{ScaffoldCorrection(bad)}}); err == nil {
			t.Errorf("a correction with a %s was accepted", name)
		}
	}
}
