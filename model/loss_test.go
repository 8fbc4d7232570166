package model

import (
	"slices"

	"math"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // see network.go
	"github.com/gomlx/gomlx/core/tensors"
)

// refNet is an independent float64 forward pass of the default architecture
// (MLP encoder with ReLU after every layer, linear projectors, concat
// fusion), written with plain loops to check the graph's loss.
type refNet struct {
	arch Arch
	p    map[string]Tensor
}

func newRefNet(arch Arch, p Params) refNet {
	m := map[string]Tensor{}
	for _, t := range p {
		m[t.Name] = t
	}
	return refNet{arch, m}
}

func (r refNet) dense(prefix string, x []float64) []float64 {
	w, b := r.p[prefix+"/weights"], r.p[prefix+"/biases"]
	in, out := w.Shape[0], w.Shape[1]
	y := make([]float64, out)
	for o := range out {
		s := float64(b.Data[o])
		for i := range in {
			s += x[i] * float64(w.Data[i*out+o])
		}
		y[o] = s
	}
	return y
}

func reluVec(x []float64) []float64 {
	for i := range x {
		x[i] = math.Max(x[i], 0)
	}
	return x
}

func (r refNet) forward(m int, x []float64) (self, inf []float64) {
	name := r.arch.Modalities[m]
	h := x
	for i := range len(r.arch.Hidden) + 1 {
		h = reluVec(r.dense(name+"/encoder/"+string(rune('0'+i)), h))
	}
	return r.dense(name+"/self/0", h), r.dense(name+"/infiltration/0", h)
}

func (r refNet) classify(m int, z []float64) []float64 {
	return r.dense(r.arch.Modalities[m]+"/classifier", z)
}

func (r refNet) fuse(slots ...[]float64) []float64 {
	var in []float64
	for _, z := range slots {
		in = append(in, z...)
	}
	return r.dense("fusion/out", in)
}

func logSoftmax(z []float64, temp float64) []float64 {
	mx := math.Inf(-1)
	for _, v := range z {
		mx = math.Max(mx, v/temp)
	}
	s := 0.0
	for _, v := range z {
		s += math.Exp(v/temp - mx)
	}
	out := make([]float64, len(z))
	for i, v := range z {
		out[i] = v/temp - mx - math.Log(s)
	}
	return out
}

func softCE(teacher, student []float64, temp float64) float64 {
	lt, ls := logSoftmax(teacher, temp), logSoftmax(student, temp)
	l := 0.0
	for c := range lt {
		l -= math.Exp(lt[c]) * ls[c]
	}
	return l
}

// TestMultimodalLossMatchesReference checks the value of the multimodal
// FedCMI loss, L = CE(F(self_1..self_M)) + c1 sum_m CE(C_m self_m) +
// alpha L_inf, against refNet, for 2 and 3 modalities and for clients
// holding 2 of 3: on each row the teacher is the batch's most confident
// held modality (largest sum of p_m(y); ties to the later one) or the
// row's forced choice, and it teaches every other held modality at the
// pair's temperature.
func TestMultimodalLossMatchesReference(t *testing.T) {
	const c1, alpha = 2.0, 1.5
	for _, tc := range []struct {
		name string
		arch Arch
		has  []bool
		// Per-row teacher choices: nil (the batch's sums decide every
		// row), forced, and mixed with rows left to the batch's choice.
		dirs [][]float32
	}{
		{"two", tinyArch(), []bool{true, true}, [][]float32{nil, {1, 1, 1, 1, 1, 1}, {2, 2, 2, 2, 2, 2}, {1, 2, 0, 1, 0, 2}}},
		{"three", triArch(), []bool{true, true, true}, [][]float32{nil, {3, 3, 3, 3, 3, 3}, {1, 2, 0, 3, 0, 2}}},
		{"two of three", triArch(), []bool{true, false, true}, [][]float32{nil, {1, 3, 0, 3, 0, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			arch := tc.arch
			nm := arch.NumModalities()
			e, err := NewEngine(backend(t), arch, 8)
			if err != nil {
				t.Fatal(err)
			}
			cfg := TrainConfig{Has: tc.has, C1: c1, Terms: []Term{Infiltration(alpha, false)}}
			var held []int
			for m, ok := range tc.has {
				if ok {
					held = append(held, m)
				}
			}
			for k, seed := range []uint64{1, 2, 3, 4, 5, 6, 7, 8} {
				b := toyBatch(arch, 6, seed)
				n := len(b.Labels)
				for m, ok := range tc.has {
					if !ok {
						b.X[m] = nil
					}
				}
				// A different temperature for every row and pair.
				b.Temp = make([]float32, n*nm*nm)
				for i := range b.Temp {
					b.Temp[i] = 0.5 + float32(i%7)*0.25
				}
				b.Dir = tc.dirs[k%len(tc.dirs)]
				params, start := mustInit(t, arch, 10+seed), mustInit(t, arch, 20+seed)
				got := lossAt(t, e, params, start, cfg, b)

				local, teacher := newRefNet(arch, params), newRefNet(arch, start)
				var ce float64
				sums := make([]float64, nm)
				self, inf, tlog := make([][][]float64, n), make([][][]float64, n), make([][][]float64, n)
				for i, y := range b.Labels {
					self[i], inf[i], tlog[i] = make([][]float64, nm), make([][]float64, nm), make([][]float64, nm)
					slots := make([][]float64, nm)
					for m := range nm {
						slots[m] = make([]float64, arch.EmbedDim)
					}
					for _, m := range held {
						d := arch.InputDims[m]
						var x []float64
						for _, v := range b.X[m][i*d : (i+1)*d] {
							x = append(x, float64(v))
						}
						self[i][m], inf[i][m] = local.forward(m, x)
						slots[m] = self[i][m]
						ts, _ := teacher.forward(m, x)
						tlog[i][m] = teacher.classify(m, ts)
						lm := logSoftmax(local.classify(m, self[i][m]), 1)
						ce -= c1 * lm[y]
						sums[m] += math.Exp(lm[y])
					}
					ce -= logSoftmax(local.fuse(slots...), 1)[y]
				}
				batchTeacher := held[0]
				for _, m := range held {
					if sums[m] >= sums[batchTeacher] {
						batchTeacher = m
					}
				}
				var linf float64
				for i := range n {
					tt := batchTeacher
					if b.Dir != nil && b.Dir[i] != 0 {
						tt = int(b.Dir[i]) - 1
					}
					for _, s := range held {
						if s != tt {
							temp := float64(b.Temp[(i*nm+tt)*nm+s])
							linf += softCE(tlog[i][tt], local.classify(s, inf[i][s]), temp)
						}
					}
				}
				want := (ce + alpha*linf) / float64(n)
				if math.Abs(got.Loss-want) > 1e-4*math.Max(1, math.Abs(want)) {
					t.Errorf("seed %d, teachers %v: loss %.6f, reference %.6f", seed, b.Dir, got.Loss, want)
				}
				for m := range nm {
					if math.Abs(got.SumP[m]-sums[m]) > 1e-4 {
						t.Errorf("seed %d: sums %v, reference %v", seed, got.SumP, sums)
					}
				}
			}
		})
	}
}

// TestSoftCrossEntropy checks the distillation loss on hand-computed
// numbers and its gradient against the closed form
// d/dz_S = (softmax(z_S/T) - softmax(z_T/T)) / T and finite differences.
func TestSoftCrossEntropy(t *testing.T) {
	b := backend(t)
	teacher := []float32{2, 0, 0, 1, 1, 1}
	student := []float32{0, 0, 0, 0, 2, 0}
	temp := []float32{1, 0.5}
	fn := func(zt, zs, tm *Node) (*Node, *Node) {
		l := ReduceAllSum(softCrossEntropy(zt, zs, tm))
		return l, Gradient(l, zs)[0]
	}
	exec := MustNewExec(b, fn)
	run := func(zs []float32) (float64, []float32) {
		out := exec.MustExec(tensors.FromFlatDataAndDimensions(teacher, 2, 3),
			tensors.FromFlatDataAndDimensions(zs, 2, 3), tensors.FromFlatDataAndDimensions(temp, 2))
		return float64(tensors.ToScalar[float32](out[0])), tensors.MustCopyFlatData[float32](out[1])
	}
	loss, grad := run(student)
	// Row 0: student uniform, so the loss is log 3 whatever the target.
	// Row 1: teacher uniform (target 1/3 each); student logits /0.5 = (0,4,0):
	// with L = log(2+e^4), log-softmax = (-L, 4-L, -L), so the loss is
	// -(1/3)(4 - 3L) = L - 4/3.
	want := math.Log(3) + math.Log(2+math.Exp(4)) - 4.0/3
	if math.Abs(loss-want) > 1e-5 {
		t.Fatalf("loss %.7f, hand-computed %.7f", loss, want)
	}
	for i := range 2 {
		pt := logSoftmax([]float64{float64(teacher[3*i]), float64(teacher[3*i+1]), float64(teacher[3*i+2])}, float64(temp[i]))
		ps := logSoftmax([]float64{float64(student[3*i]), float64(student[3*i+1]), float64(student[3*i+2])}, float64(temp[i]))
		for c := range 3 {
			closed := (math.Exp(ps[c]) - math.Exp(pt[c])) / float64(temp[i])
			zp, zm := append([]float32{}, student...), append([]float32{}, student...)
			zp[3*i+c] += 1e-2
			zm[3*i+c] -= 1e-2
			lp, _ := run(zp)
			lm, _ := run(zm)
			fd := (lp - lm) / 2e-2
			if g := float64(grad[3*i+c]); math.Abs(g-closed) > 1e-5 || math.Abs(g-fd) > 1e-3 {
				t.Errorf("row %d class %d: gradient %.6f, closed form %.6f, finite difference %.6f", i, c, g, closed, fd)
			}
		}
	}
}

// TestPredictHeadsMatchReference checks every inference head of a
// three-modality model (fused, each modality alone, each with its
// infiltration embedding, the fused head without each modality) against
// refNet's argmax.
func TestPredictHeadsMatchReference(t *testing.T) {
	arch := triArch()
	e, err := NewEngine(backend(t), arch, 8)
	if err != nil {
		t.Fatal(err)
	}
	nm, n := arch.NumModalities(), 20
	b := toyBatch(arch, n, 9)
	p := jitter(mustInit(t, arch, 3), 4)
	pred, err := e.Predict(p, b.X, n)
	if err != nil {
		t.Fatal(err)
	}
	if len(pred.Preds) != NumHeads(nm) || len(HeadNames(arch.Modalities)) != NumHeads(nm) {
		t.Fatalf("%d heads, %d names, want %d", len(pred.Preds), len(HeadNames(arch.Modalities)), NumHeads(nm))
	}
	ref := newRefNet(arch, p)
	argmax := func(z []float64) int {
		best := 0
		for i := range z {
			if z[i] > z[best] {
				best = i
			}
		}
		return best
	}
	for i := range n {
		self, inf := make([][]float64, nm), make([][]float64, nm)
		for m := range nm {
			d := arch.InputDims[m]
			x := make([]float64, d)
			for j := range d {
				x[j] = float64(b.X[m][i*d+j])
			}
			self[m], inf[m] = ref.forward(m, x)
		}
		zero := make([]float64, arch.EmbedDim)
		with := func(m int, v, fill []float64) []float64 {
			slots := make([][]float64, nm)
			for j := range slots {
				slots[j] = fill
			}
			slots[m] = v
			return ref.fuse(slots...)
		}
		want := map[int]int{HeadFused: argmax(ref.fuse(self...))}
		for m := range nm {
			want[HeadOnly(m)] = argmax(with(m, self[m], zero))
			want[HeadBoth(m, nm)] = argmax(with(m, self[m], inf[m]))
			without := append([][]float64(nil), self...)
			without[m] = zero
			want[HeadWithout(m, nm)] = argmax(ref.fuse(without...))
		}
		for h, c := range want {
			if pred.Preds[h][i] != c {
				t.Errorf("row %d head %s: class %d, reference %d", i, HeadNames(arch.Modalities)[h], pred.Preds[h][i], c)
			}
		}
	}
}

// TestHeadsWith: the heads computable from the modalities present, in
// head order, listed by hand for two and three modalities.
func TestHeadsWith(t *testing.T) {
	for _, tc := range []struct {
		has  []bool
		want []int
	}{
		{[]bool{true, true}, []int{0, 1, 2, 3, 4}},
		{[]bool{true, false}, []int{1, 3}},
		{[]bool{false, true}, []int{2, 4}},
		// Three modalities: fused 0, only 1-3, both 4-6, without 7-9.
		{[]bool{true, true, true}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{[]bool{true, false, true}, []int{1, 3, 4, 6, 8}},
		{[]bool{false, false, true}, []int{3, 6}},
	} {
		if got := HeadsWith(tc.has); !slices.Equal(got, tc.want) {
			t.Errorf("HeadsWith(%v) = %v, want %v", tc.has, got, tc.want)
		}
	}
}
