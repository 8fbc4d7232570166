package model

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // see network.go
	"github.com/gomlx/gomlx/core/tensors"
)

// TestOGMCoefficients checks k_A, k_V of the graph against hand-computed
// values: rho > 1 modulates A by 1 - tanh(alpha rho), rho <= 1 modulates V
// by 1 - tanh(alpha / rho).
func TestOGMCoefficients(t *testing.T) {
	exec, err := NewExec(backend(t), func(g *Graph, in []*Node) []*Node {
		kA, kV := ogmCoefficients(in[0], in[1], in[2])
		return []*Node{kA, kV}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sA, sV, alpha float32
		kA, kV        float64
	}{
		{4, 2, 0.8, 1 - math.Tanh(1.6), 1}, // rho 2: 1 - tanh(1.6) = 0.0783314
		{5, 4, 0.8, 0.2384058440442351, 1}, // rho 1.25: 1 - tanh(1)
		{2, 4, 0.8, 1, 1 - math.Tanh(1.6)}, // rho 0.5: 1 - tanh(0.8 / 0.5)
		{4, 5, 0.8, 1, 0.2384058440442351}, // rho 0.8
		{3, 3, 0.8, 1, 0.3359632265838699}, // rho 1 (not > 1): V, 1 - tanh(0.8)
		{6, 3, 0.1, 1 - math.Tanh(0.2), 1}, // rho 2, alpha 0.1: 0.8026240
		{1, 0, 0.8, 0, 1},                  // V never right: A fully held back
		{0, 0, 0.8, 1, 1},                  // nothing to compare: no modulation
	} {
		outs, err := exec.Exec(tc.sA, tc.sV, tc.alpha)
		if err != nil {
			t.Fatal(err)
		}
		kA, kV := float64(tensors.ToScalar[float32](outs[0])), float64(tensors.ToScalar[float32](outs[1]))
		if math.Abs(kA-tc.kA) > 1e-6 || math.Abs(kV-tc.kV) > 1e-6 {
			t.Errorf("sA %v sV %v alpha %v: k = (%.7f, %.7f), want (%.7f, %.7f)", tc.sA, tc.sV, tc.alpha, kA, kV, tc.kA, tc.kV)
		}
	}
}

// hostOGM returns the batch's (k_A, k_V) computed on the host from refNet:
// each modality's part of the fusion head (concat: its block of the weight
// matrix plus half the bias; sum: its own layer with half its bias).
func hostOGM(arch Arch, p Params, b Batch, alpha float64) (kA, kV float64) {
	r := newRefNet(arch, p)
	k, d := arch.NumClasses, arch.EmbedDim
	part := func(z []float64, prefix string, off int) []float64 {
		w, bias := r.p[prefix+"/weights"], r.p[prefix+"/biases"]
		out := make([]float64, k)
		for c := range k {
			out[c] = float64(bias.Data[c]) / 2
			for i := range d {
				out[c] += z[i] * float64(w.Data[(off+i)*k+c])
			}
		}
		return out
	}
	var sA, sV float64
	for i, y := range b.Labels {
		var z [2][]float64
		for m := range 2 {
			dm := arch.InputDims[m]
			x := make([]float64, dm)
			for j := range dm {
				x[j] = float64(b.X[m][i*dm+j])
			}
			z[m], _ = r.forward(m, x)
		}
		var outA, outV []float64
		if arch.Fusion == FusionSum {
			outA, outV = part(z[0], "fusion/x", 0), part(z[1], "fusion/y", 0)
		} else {
			outA, outV = part(z[0], "fusion/out", 0), part(z[1], "fusion/out", d)
		}
		sA += math.Exp(logSoftmax(outA, 1)[y])
		sV += math.Exp(logSoftmax(outV, 1)[y])
	}
	if rho := sA / sV; rho > 1 {
		return 1 - math.Tanh(alpha*rho), 1
	} else {
		return 1, 1 - math.Tanh(alpha/rho)
	}
}

// TestOGMModulatesDominantEncoder: without noise, one OGM step changes
// the encoders' weight matrices by k_m times FedAvg's gradient and every
// other parameter by exactly FedAvg's gradient; k matches the host
// computation from the fusion head's parts (concat and sum fusion). Both
// directions are checked.
func TestOGMModulatesDominantEncoder(t *testing.T) {
	for _, fusion := range []string{FusionConcat, FusionSum} {
		t.Run(fusion, func(t *testing.T) { checkOGMModulation(t, fusion) })
	}
}

func checkOGMModulation(t *testing.T, fusion string) {
	arch := tinyArch()
	arch.Fusion = fusion
	e, err := NewEngine(backend(t), arch, 8)
	if err != nil {
		t.Fatal(err)
	}
	const alpha = 0.8
	seen := map[bool]bool{}
	for seed := uint64(1); seed < 40 && len(seen) < 2; seed++ {
		b := toyBatch(arch, 8, seed)
		p := jitter(mustInit(t, arch, seed), seed)
		cfg := TrainConfig{Has: []bool{true, true}, C1: 2}
		g, _ := gradientAt(t, e, p, p, cfg, b)
		cfg.Terms = []Term{OGMGE(OGM{Alpha: alpha, Seed: 1, NoNoise: true})}
		gm, st := gradientAt(t, e, p, p, cfg, b)
		kA, kV := hostOGM(arch, p, b, alpha)
		if math.Abs(st.OGMCoef[0]-kA) > 1e-4 || math.Abs(st.OGMCoef[1]-kV) > 1e-4 {
			t.Fatalf("seed %d: graph k = %v, host (%v, %v)", seed, st.OGMCoef, kA, kV)
		}
		aDominant := kA < 1
		if seen[aDominant] {
			continue
		}
		seen[aDominant] = true
		k := [2]float64{kA, kV}
		for i, info := range arch.Layout() {
			scale := 1.0
			if ogmModulated(info) {
				scale = k[info.Side]
			}
			for j := range g[i].Data {
				want := scale * float64(g[i].Data[j])
				if d := math.Abs(float64(gm[i].Data[j]) - want); d > 1e-5+1e-4*math.Abs(want) {
					t.Fatalf("seed %d %s[%d]: OGM gradient %v, want %v x %v", seed, info.Name, j, gm[i].Data[j], scale, g[i].Data[j])
				}
			}
		}
	}
	if len(seen) < 2 {
		t.Fatalf("found batches dominated by only one modality: %v", seen)
	}
}

// TestOGMNoise: the generalisation enhancement adds zero-mean Gaussian
// noise whose standard deviation equals that of the gradient itself, to
// the encoders' weight matrices only; the same seed gives the same noise
// and another seed other noise.
func TestOGMNoise(t *testing.T) {
	arch := DefaultArch([]string{"audio", "visual"}, []int{40, 30}, 4)
	arch.Hidden, arch.EmbedDim = []int{50}, 20
	e, err := NewEngine(backend(t), arch, 16)
	if err != nil {
		t.Fatal(err)
	}
	b := toyBatch(arch, 16, 3)
	p := mustInit(t, arch, 3)
	cfg := TrainConfig{Has: []bool{true, true}, C1: 2, Terms: []Term{OGMGE(OGM{Alpha: 0.8, Seed: 7, NoNoise: true})}}
	clean, st := gradientAt(t, e, p, p, cfg, b)
	plain, _ := gradientAt(t, e, p, p, TrainConfig{Has: []bool{true, true}, C1: 2}, b)
	cfg.Terms = []Term{OGMGE(OGM{Alpha: 0.8, Seed: 7})}
	noisy, _ := gradientAt(t, e, p, p, cfg, b)
	again, _ := gradientAt(t, e, p, p, cfg, b)
	cfg.Terms = []Term{OGMGE(OGM{Alpha: 0.8, Seed: 8})}
	other, _ := gradientAt(t, e, p, p, cfg, b)
	t.Logf("k = %v", st.OGMCoef)
	checked := 0
	for i, info := range arch.Layout() {
		n := float64(info.Size())
		var sum, sum2, gsum, gsum2 float64
		differs := false
		for j := range noisy[i].Data {
			z := float64(noisy[i].Data[j] - clean[i].Data[j])
			sum += z
			sum2 += z * z
			g := float64(plain[i].Data[j])
			gsum += g
			gsum2 += g * g
			if noisy[i].Data[j] != again[i].Data[j] {
				t.Fatalf("%s: same seed, different noise", info.Name)
			}
			differs = differs || noisy[i].Data[j] != other[i].Data[j]
		}
		if !ogmModulated(info) {
			if sum2 != 0 {
				t.Errorf("%s: not an encoder weight matrix, but noise was added", info.Name)
			}
			continue
		}
		if !differs {
			t.Errorf("%s: another seed gave the same noise", info.Name)
		}
		mean, std := sum/n, math.Sqrt((sum2-sum*sum/n)/(n-1))
		gstd := math.Sqrt((gsum2-gsum*gsum/n)/(n-1)) + 1e-8
		// n >= 1000 here: the sample std is within 3 standard errors
		// (~7%) of the true one, the mean within 3 std/sqrt(n).
		if math.Abs(std/gstd-1) > 0.1 || math.Abs(mean) > 3*gstd/math.Sqrt(n)+1e-9 {
			t.Errorf("%s (%v values): noise mean %.3g std %.4g, gradient std %.4g", info.Name, n, mean, std, gstd)
		}
		checked++
	}
	if checked != 4 {
		t.Fatalf("%d encoder weight matrices checked, want 4", checked)
	}
}

func TestOGMRefusesFusionWithoutParts(t *testing.T) {
	arch := tinyArch()
	arch.Fusion = FusionFiLM
	e, err := NewEngine(backend(t), arch, 8)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.NewLocal(mustInit(t, arch, 1), TrainConfig{Has: []bool{true, true}, Terms: []Term{OGMGE(OGM{Alpha: 0.8})}}); err == nil {
		t.Fatal("OGM-GE with FiLM fusion accepted")
	}
	// Unimodal clients train as in FedAvg: no modulation, no error.
	if _, err := e.NewLocal(mustInit(t, arch, 1), TrainConfig{Has: []bool{true, false}, Terms: []Term{OGMGE(OGM{Alpha: 0.8})}}); err != nil {
		t.Fatal(err)
	}
}

// TestOGMCNNEncoder: with a CNN encoder, OGM-GE modulates every
// convolution kernel and the output layer's weights (the encoder's weight
// matrices) and leaves the biases alone: without noise, each such tensor
// moves by k times FedAvg's gradient.
func TestOGMCNNEncoder(t *testing.T) {
	arch := cnnArch()
	e, err := NewEngine(backendFor(t, arch), arch, 8)
	if err != nil {
		t.Fatal(err)
	}
	b := toyBatch(arch, 8, 4)
	p := jitter(mustInit(t, arch, 2), 2)
	cfg := TrainConfig{Has: []bool{true, true}, C1: 2}
	g, _ := gradientAt(t, e, p, p, cfg, b)
	cfg.Terms = []Term{OGMGE(OGM{Alpha: 0.8, Seed: 3, NoNoise: true})}
	gm, st := gradientAt(t, e, p, p, cfg, b)
	modulated := 0
	for i, info := range arch.Layout() {
		scale := 1.0
		if ogmModulated(info) {
			scale = st.OGMCoef[info.Side]
			if info.Side == 0 {
				modulated++
			}
		}
		for j := range g[i].Data {
			want := scale * float64(g[i].Data[j])
			if d := math.Abs(float64(gm[i].Data[j]) - want); d > 1e-5+1e-4*math.Abs(want) {
				t.Fatalf("%s[%d]: OGM gradient %v, want %v x %v", info.Name, j, gm[i].Data[j], scale, g[i].Data[j])
			}
		}
	}
	// stem, s0 conv1+conv2, s1 down, s1 conv1+conv2, out
	if modulated != 7 || st.OGMCoef == [2]float64{1, 1} {
		t.Fatalf("%d CNN weight tensors modulated, k = %v", modulated, st.OGMCoef)
	}
}
