package model

import (
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

func (r refNet) fuse(x, y []float64) []float64 {
	return r.dense("fusion/out", append(append([]float64{}, x...), y...))
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
// FedCMI loss, L = CE(F(aa,vv)) + c1 (CE(C_A aa) + CE(C_V vv)) + alpha L_inf
// with the batch's dominance direction, against refNet.
func TestMultimodalLossMatchesReference(t *testing.T) {
	arch := tinyArch()
	e, err := NewEngine(backend(t), arch, 8)
	if err != nil {
		t.Fatal(err)
	}
	const c1, alpha = 2.0, 1.5
	cfg := TrainConfig{Has: [2]bool{true, true}, C1: c1, Infiltration: true, Alpha: alpha}
	// Per-row directions: nil (the batch's rho decides every row), forced
	// either way, and mixed with some rows left to the batch's choice.
	dirs := [][]float32{nil, {1, 1, 1, 1, 1, 1}, {-1, -1, -1, -1, -1, -1}, {1, -1, 0, 1, 0, -1}}
	for k, seed := range []uint64{1, 2, 3, 4, 5, 6, 7, 8} {
		b := toyBatch(arch, 6, seed)
		b.Temp = []float32{1, 0.5, 2, 1, 0.7, 1.3}
		b.Dir = dirs[k%len(dirs)]
		params, start := mustInit(t, arch, 10+seed), mustInit(t, arch, 20+seed)
		got := lossAt(t, e, params, start, cfg, b)

		local, teacher := newRefNet(arch, params), newRefNet(arch, start)
		var ce, sumPA, sumPV float64
		intoV, intoA := make([]float64, len(b.Labels)), make([]float64, len(b.Labels))
		n := len(b.Labels)
		for i, y := range b.Labels {
			var x [2][]float64
			for m := range 2 {
				d := arch.InputDims[m]
				for _, v := range b.X[m][i*d : (i+1)*d] {
					x[m] = append(x[m], float64(v))
				}
			}
			aa, av := local.forward(0, x[0])
			vv, va := local.forward(1, x[1])
			la, lv := local.classify(0, aa), local.classify(1, vv)
			ce -= logSoftmax(local.fuse(aa, vv), 1)[y] + c1*logSoftmax(la, 1)[y] + c1*logSoftmax(lv, 1)[y]
			sumPA += math.Exp(logSoftmax(la, 1)[y])
			sumPV += math.Exp(logSoftmax(lv, 1)[y])
			taa, _ := teacher.forward(0, x[0])
			tvv, _ := teacher.forward(1, x[1])
			temp := float64(b.Temp[i])
			intoV[i] = softCE(teacher.classify(0, taa), local.classify(1, va), temp)
			intoA[i] = softCE(teacher.classify(1, tvv), local.classify(0, av), temp)
		}
		var linf float64
		for i := range n {
			toV := sumPA > sumPV
			if b.Dir != nil && b.Dir[i] != 0 {
				toV = b.Dir[i] > 0
			}
			if toV {
				linf += intoV[i]
			} else {
				linf += intoA[i]
			}
		}
		want := (ce + alpha*linf) / float64(n)
		if math.Abs(got.Loss-want) > 1e-4*math.Max(1, math.Abs(want)) {
			t.Errorf("seed %d, directions %v: loss %.6f, reference %.6f", seed, b.Dir, got.Loss, want)
		}
		if math.Abs(got.SumPA-sumPA) > 1e-4 || math.Abs(got.SumPV-sumPV) > 1e-4 {
			t.Errorf("seed %d: sums %v %v, reference %v %v", seed, got.SumPA, got.SumPV, sumPA, sumPV)
		}
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
