package model

import (
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // see network.go
	"github.com/gomlx/gomlx/core/tensors"
)

// protoCase is one input of protoTerms: embeddings (nil: modality absent),
// centres, class masks, labels, row mask.
type protoCase struct {
	z, centers [2][]float32
	present    [2][]float32
	labels     []int32
	rows       []float32
	k, d       int
	hyper      [numProtoHyper]float32
}

// runProtoTerms evaluates protoTerms on c in a graph.
func runProtoTerms(t *testing.T, c protoCase) (loss, sumA, sumV float64) {
	t.Helper()
	b := len(c.labels)
	var has [2]bool
	var args []any
	for m := range 2 {
		if c.z[m] != nil {
			has[m] = true
			args = append(args, tensors.FromFlatDataAndDimensions(c.z[m], b, c.d),
				tensors.FromFlatDataAndDimensions(c.centers[m], c.k, c.d),
				tensors.FromFlatDataAndDimensions(c.present[m], c.k))
		}
	}
	args = append(args, tensors.FromFlatDataAndDimensions(c.labels, b),
		tensors.FromFlatDataAndDimensions(c.rows, b),
		tensors.FromFlatDataAndDimensions(c.hyper[:], numProtoHyper))
	exec, err := NewExec(backend(t), func(g *Graph, in []*Node) []*Node {
		var z, cs, ms [2]*Node
		for m := range 2 {
			if has[m] {
				z[m], cs[m], ms[m], in = in[0], in[1], in[2], in[3:]
			}
		}
		onehot := OneHot(in[0], c.k, in[1].DType())
		l, sa, sv := protoTerms(z, cs, ms, onehot, in[1], in[2])
		return []*Node{l, sa, sv}
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	v := func(i int) float64 { return float64(tensors.ToScalar[float32](out[i])) }
	return v(0), v(1), v(2)
}

// TestProtoTermsByHand checks the PMR / modal-enhancement loss on a tiny
// example worked by hand. One-dimensional embeddings, two classes with
// prototypes at 0 and 2:
//
//   - A: rows at -1 (class 0) and 3 (class 1) are 1 and 3 away from their
//     own and the other prototype: p^A_y = 1/(1+e^-2) = s = 0.8807971 for
//     both, sum 2s; PCE_A = -log s = 0.1269280; entropy
//     H_A = -(s log s + (1-s) log(1-s)) = 0.3653339.
//   - V: both rows at 1, equidistant: p^V_y = 1/2, sum 1, PCE_V = log 2.
//   - rho = 2s/1 = 1.7615942 > 1: A is fast, V slow.
//
// Ratio form, alpha 1, gamma 0.5: (rho-1) log 2 - 0.5 H_A = 0.3452299.
// Binary form: log 2 - 0.5 H_A = 0.5104803. FedMDrop's modal enhancement
// loss (binary, no entropy, alpha 2): 2 log 2 = 1.3862944.
func TestProtoTermsByHand(t *testing.T) {
	const s = 0.8807970779778823
	const hA = 0.36533385508720784
	const ln2 = math.Ln2
	base := protoCase{
		z:       [2][]float32{{-1, 3}, {1, 1}},
		centers: [2][]float32{{0, 2}, {0, 2}},
		present: [2][]float32{{1, 1}, {1, 1}},
		labels:  []int32{0, 1},
		rows:    []float32{1, 1},
		k:       2, d: 1,
	}
	swap := base
	swap.z = [2][]float32{base.z[1], base.z[0]}
	// A third, padded row (mask 0) far from everything must not count.
	padded := base
	padded.z = [2][]float32{{-1, 3, 40}, {1, 1, -40}}
	padded.labels, padded.rows = []int32{0, 1, 1}, []float32{1, 1, 0}
	// Unimodal A with a third class whose prototype is absent (mask 0): it
	// sits on row 0 and would dominate if it were not masked.
	uni := protoCase{
		z:       [2][]float32{{-1, 3}, nil},
		centers: [2][]float32{{0, 2, -1}, nil},
		present: [2][]float32{{1, 1, 0}, nil},
		labels:  []int32{0, 1}, rows: []float32{1, 1}, k: 3, d: 1,
	}
	// A row whose own class has no prototype is left out: only row 1 counts.
	noOwn := uni
	noOwn.present = [2][]float32{{0, 1, 1}, nil}
	noOwn.centers = [2][]float32{{0, 2, 50}, nil}
	for _, tc := range []struct {
		name               string
		c                  protoCase
		hyper              [numProtoHyper]float32
		want, wantA, wantV float64
	}{
		{"ratio, A fast", base, [numProtoHyper]float32{1, 0.5, 0}, (2*s-1)*ln2 - 0.5*hA, 2 * s, 1},
		{"binary, A fast", base, [numProtoHyper]float32{1, 0.5, 1}, ln2 - 0.5*hA, 2 * s, 1},
		{"ratio, no entropy, alpha 2", base, [numProtoHyper]float32{2, 0, 0}, 2 * (2*s - 1) * ln2, 2 * s, 1},
		// FedMDrop's modal enhancement loss: binary form without entropy,
		// alpha 2 on the slow modality V: 2 PCE_V = 2 log 2.
		{"modal enhancement, alpha 2", base, [numProtoHyper]float32{2, 0, 1}, 2 * ln2, 2 * s, 1},
		// Swapped modalities: V fast, A slow, 1/rho = 2s: same value.
		{"ratio, V fast", swap, [numProtoHyper]float32{1, 0.5, 0}, (2*s-1)*ln2 - 0.5*hA, 1, 2 * s},
		{"padded row ignored", padded, [numProtoHyper]float32{1, 0.5, 0}, (2*s-1)*ln2 - 0.5*hA, 2 * s, 1},
		{"unimodal, masked class", uni, [numProtoHyper]float32{2, 0.5, 0}, -2 * math.Log(s), 2 * s, 0},
		// Row 1 at 3: distances 1 (class 1) and 47 (class 2): p = 1/(1+e^-46).
		{"unimodal, row without prototype", noOwn, [numProtoHyper]float32{1, 0, 0}, math.Log1p(math.Exp(-46)), 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.hyper = tc.hyper
			loss, sa, sv := runProtoTerms(t, tc.c)
			if math.Abs(loss-tc.want) > 1e-5 || math.Abs(sa-tc.wantA) > 1e-5 || math.Abs(sv-tc.wantV) > 1e-5 {
				t.Fatalf("loss %.7f sums %.7f %.7f, hand-computed %.7f %.7f %.7f", loss, sa, sv, tc.want, tc.wantA, tc.wantV)
			}
		})
	}
}

// refProtoTerm is an independent float64 evaluation of the prototype loss
// of a multimodal batch (ratio or binary form), for the step test.
func refProtoTerm(z [2][][]float64, centers [2][][]float64, labels []int, alpha, gamma float64, binary bool) float64 {
	var pce, ent, sum [2]float64
	for m := range 2 {
		for i, zi := range z[m] {
			logits := make([]float64, len(centers[m]))
			for k, c := range centers[m] {
				d2 := 0.0
				for j := range c {
					d2 += (zi[j] - c[j]) * (zi[j] - c[j])
				}
				logits[k] = -math.Sqrt(d2 + protoEps)
			}
			lp := logSoftmax(logits, 1)
			pce[m] -= lp[labels[i]]
			sum[m] += math.Exp(lp[labels[i]])
			for _, l := range lp {
				ent[m] -= math.Exp(l) * l
			}
		}
		pce[m] /= float64(len(labels))
		ent[m] /= float64(len(labels))
	}
	rho := sum[0] / sum[1]
	var bA, bV, gA, gV float64
	switch {
	case rho > 1:
		bV, gA = alpha*(rho-1), gamma
		if binary {
			bV = alpha
		}
	case rho < 1:
		bA, gV = alpha*(1/rho-1), gamma
		if binary {
			bA = alpha
		}
	}
	return bA*pce[0] + bV*pce[1] - gA*ent[0] - gV*ent[1]
}

// TestPrototypesAndStepLoss checks that Embed and ClassPrototypes give the
// per-class means of embeddings computed independently (refNet), and that
// a training step with the prototype loss adds exactly refProtoTerm to the
// plain loss.
func TestPrototypesAndStepLoss(t *testing.T) {
	arch := tinyArch()
	e, err := NewEngine(backend(t), arch, 8)
	if err != nil {
		t.Fatal(err)
	}
	p := mustInit(t, arch, 5)
	b := toyBatch(arch, 7, 4)
	b.Labels = []int{0, 1, 2, 0, 1, 1, 2} // every class present
	emb, err := e.Embed(p, b.X, len(b.Labels))
	if err != nil {
		t.Fatal(err)
	}
	ref := newRefNet(arch, p)
	k, d := arch.NumClasses, arch.EmbedDim
	var z [2][][]float64
	var centers [2][][]float64
	var protos Prototypes
	for m := range 2 {
		centers[m] = make([][]float64, k)
		for c := range k {
			centers[m][c] = make([]float64, d)
		}
		count := make([]float64, k)
		for i, y := range b.Labels {
			x := make([]float64, arch.InputDims[m])
			for j := range x {
				x[j] = float64(b.X[m][i*len(x)+j])
			}
			self, _ := ref.forward(m, x)
			z[m] = append(z[m], self)
			for j := range d {
				centers[m][y][j] += self[j]
			}
			count[y]++
		}
		got, n, err := ClassPrototypes(emb[m], b.Labels, k, d)
		if err != nil {
			t.Fatal(err)
		}
		protos.Centers[m] = got
		protos.Present[m] = make([]bool, k)
		for c := range k {
			protos.Present[m][c] = n[c] > 0
			if float64(n[c]) != count[c] {
				t.Fatalf("modality %d class %d: count %d, want %v", m, c, n[c], count[c])
			}
			for j := range d {
				centers[m][c][j] /= count[c]
				if math.Abs(float64(got[c*d+j])-centers[m][c][j]) > 1e-5 {
					t.Fatalf("modality %d prototype %d[%d] = %v, mean of embeddings %v", m, c, j, got[c*d+j], centers[m][c][j])
				}
			}
		}
	}
	for _, binary := range []bool{false, true} {
		cfg := TrainConfig{Has: []bool{true, true}, C1: 2}
		plain := lossAt(t, e, p, p, cfg, b).Loss
		cfg.Terms = []Term{PrototypeLoss(ProtoLoss{Alpha: 1.5, Gamma: 0.3, Binary: binary})}
		l, err := e.NewLocalFrom(p, p, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Step(b, 0); err == nil {
			t.Fatal("step without prototypes: no error")
		}
		if err := l.SetPrototypes(protos); err != nil {
			t.Fatal(err)
		}
		st, err := l.Step(b, 0)
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
		want := refProtoTerm(z, centers, b.Labels, 1.5, 0.3, binary)
		if got := st.Loss - plain; math.Abs(got-want) > 1e-4+1e-4*math.Abs(want) || want == 0 {
			t.Fatalf("binary=%v: prototype term %.6f, reference %.6f", binary, got, want)
		}
		if st.Proto.SumA <= 0 || st.Proto.SumV <= 0 {
			t.Fatalf("prototype sums %+v", st.Proto)
		}
	}
}

// TestProtoStepGradient checks the in-graph gradient of the step loss with
// the prototype loss (binary form, with the entropy term, so that the
// coefficients are constant between direction flips) against central
// finite differences, for a multimodal and a unimodal step.
func TestProtoStepGradient(t *testing.T) {
	arch := tinyArch()
	e, err := NewEngine(backend(t), arch, 8)
	if err != nil {
		t.Fatal(err)
	}
	b := toyBatch(arch, 6, 3)
	b.Labels = []int{0, 1, 2, 0, 1, 2}
	protoSrc := mustInit(t, arch, 3) // prototypes from another model, as FedMDrop's global ones
	emb, err := e.Embed(protoSrc, b.X, len(b.Labels))
	if err != nil {
		t.Fatal(err)
	}
	var protos Prototypes
	for m := range 2 {
		c, n, err := ClassPrototypes(emb[m], b.Labels, arch.NumClasses, arch.EmbedDim)
		if err != nil {
			t.Fatal(err)
		}
		protos.Centers[m] = c
		protos.Present[m] = []bool{n[0] > 0, n[1] > 0, n[2] > 0}
	}
	for _, has := range [][]bool{{true, true}, {false, true}} {
		cfg := TrainConfig{Has: has, C1: 2, Terms: []Term{PrototypeLoss(ProtoLoss{Alpha: 1.5, Gamma: 0.4, Binary: true})}}
		// step returns the loss and the proto sums at params after one
		// step of lr (lr 1 gives the gradient as params - after).
		step := func(params Params, lr float64) (Params, StepStats) {
			l, err := e.NewLocalFrom(params, params, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if err := l.SetPrototypes(protos); err != nil {
				t.Fatal(err)
			}
			st, err := l.Step(b, lr)
			if err != nil {
				t.Fatal(err)
			}
			after, err := l.Params()
			if err != nil {
				t.Fatal(err)
			}
			return after, st
		}
		params := jitter(mustInit(t, arch, 7), 7)
		after, _ := step(params, 1)
		rng := rand.New(rand.NewPCG(13, 0))
		checked := 0
		for i, info := range e.Layout() {
			j := rng.IntN(info.Size())
			g := float64(params[i].Data[j] - after[i].Data[j])
			fd := func(h float32) (float64, bool) {
				plus, minus := params.Clone(), params.Clone()
				plus[i].Data[j] += h
				minus[i].Data[j] -= h
				_, sp := step(plus, 0)
				_, sm := step(minus, 0)
				flip := (sp.Proto.SumA > sp.Proto.SumV) != (sm.Proto.SumA > sm.Proto.SumV)
				return (sp.Loss - sm.Loss) / (2 * float64(h)), !flip
			}
			f1, ok1 := fd(1e-2)
			f2, ok2 := fd(1e-3)
			near := func(a, b float64) bool { return math.Abs(a-b) <= 3e-3+0.05*math.Abs(b) }
			if !ok1 || !ok2 || !near(f1, f2) {
				continue // a ReLU kink or a direction flip nearby
			}
			if !near(g, f1) {
				t.Errorf("has %v: %s[%d]: gradient %.6f, finite difference %.6f", has, info.Name, j, g, f1)
			}
			checked++
		}
		if checked < len(e.Layout())/2 {
			t.Fatalf("has %v: only %d entries checked", has, checked)
		}
	}
}
