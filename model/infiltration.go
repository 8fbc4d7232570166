package model

import (
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // see network.go
	"github.com/gomlx/gomlx/core/tensors"
)

// Infiltration returns FedCMI's cross-modal infiltration term, alpha *
// L_inf (infiltrationLoss), for multimodal clients (a unimodal client's
// session drops it). The per-row temperatures and teacher choices come
// from Batch.Temp and Batch.Dir. With teacherInputs the frozen teacher's
// self-head logits come from Batch.Teacher: the teacher is fixed for the
// round, so a client whose inputs do not change between epochs (no
// augmentation) computes them once per round (Prediction.Logits of the
// start model); otherwise the step runs the teacher on the start
// parameters.
func Infiltration(alpha float64, teacherInputs bool) Term {
	return &infiltrationTerm{alpha: alpha, teacherIn: teacherInputs}
}

type infiltrationTerm struct {
	alpha     float64
	teacherIn bool
}

func (t *infiltrationTerm) key(s *stepSpec) string {
	switch {
	case !s.held.multi():
		return ""
	case t.teacherIn:
		return "infiltration(teacher inputs)"
	}
	return "infiltration"
}

func (t *infiltrationTerm) check(*stepSpec) error {
	if math.IsNaN(t.alpha) || math.IsInf(t.alpha, 0) {
		return fmt.Errorf("model: infiltration weight %v", t.alpha)
	}
	return nil
}

func (t *infiltrationTerm) readsStart(*stepSpec) bool { return !t.teacherIn }
func (t *infiltrationTerm) readsInfiltration() bool   { return true }

// inputs: temperatures [B, M, M], teacher choices [B], the teacher's
// logits of each held modality [B, K] (teacher inputs only), alpha.
func (t *infiltrationTerm) inputs(s *stepSpec) []shapes.Shape {
	e, nm := s.e, s.e.arch.NumModalities()
	sh := []shapes.Shape{shapes.Make(dtypes.Float32, e.batch, nm, nm), shapes.Make(dtypes.Float32, e.batch)}
	if t.teacherIn {
		for range s.held.list() {
			sh = append(sh, shapes.Make(dtypes.Float32, e.batch, e.arch.NumClasses))
		}
	}
	return append(sh, shapes.Make(dtypes.Float32, 1))
}

func (t *infiltrationTerm) build(b *stepBuild, in []*Node) {
	held := b.spec.held.list()
	temp, dir, in := in[0], in[1], in[2:]
	teach := make([]*Node, len(b.x))
	if t.teacherIn {
		for _, m := range held {
			teach[m], in = in[0], in[1:]
		}
	} else {
		teacher := newNetwork(&b.spec.e.arch, b.spec.e.layout, b.start, false)
		for _, m := range held {
			teach[m] = StopGradient(teacher.classify(m, teacher.embed(m, b.x[m], false).self))
		}
	}
	linf := infiltrationLoss(b.net, held, b.emb, teach, temp, dir, b.sums, b.maskAll)
	b.addLoss(Mul(scalarInput(in[0]), linf))
}

func (t *infiltrationTerm) session(s *stepSpec) (termSession, error) {
	e, nm := s.e, s.e.arch.NumModalities()
	x := &infiltrationSession{t: t, spec: s, temp: make([]float32, e.batch*nm*nm), dir: make([]float32, e.batch), alpha: []float32{float32(t.alpha)}}
	if t.teacherIn {
		x.teach = make([][]float32, nm)
		for _, m := range s.held.list() {
			x.teach[m] = make([]float32, e.batch*e.arch.NumClasses)
		}
	}
	return x, nil
}

// infiltrationSession pads a batch's temperatures, teacher choices and
// teacher logits.
type infiltrationSession struct {
	t         *infiltrationTerm
	spec      *stepSpec
	temp, dir []float32
	teach     [][]float32
	alpha     []float32
}

func (x *infiltrationSession) args(b *Batch, n int) ([]*tensors.Tensor, error) {
	e, nm := x.spec.e, x.spec.e.arch.NumModalities()
	if b.Temp != nil && len(b.Temp) != n*nm*nm {
		return nil, fmt.Errorf("%d temperatures for %d rows of %d modality pairs", len(b.Temp), n, nm*nm)
	}
	if b.Dir != nil && len(b.Dir) != n {
		return nil, fmt.Errorf("%d teacher choices for %d rows", len(b.Dir), n)
	}
	for i, v := range b.Temp {
		if !(v > 0) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("temperature %d (row %d) is %v, want finite and > 0", i, i/(nm*nm), v)
		}
	}
	for i, d := range b.Dir {
		if d != 0 && (d != float32(int(d)) || !x.spec.held.has(int(d)-1)) {
			return nil, fmt.Errorf("row %d's teacher choice %v is not 0 or 1 + a held modality", i, d)
		}
	}
	// Padded rows: temperature 1, the batch's choice.
	copy(x.temp, b.Temp)
	for i := len(b.Temp); i < len(x.temp); i++ {
		x.temp[i] = 1
	}
	clear(x.dir)
	copy(x.dir, b.Dir)
	out := []*tensors.Tensor{tensors.FromFlatDataAndDimensions(x.temp, e.batch, nm, nm), tensors.FromFlatDataAndDimensions(x.dir, e.batch)}
	if x.t.teacherIn {
		k := e.arch.NumClasses
		for _, m := range x.spec.held.list() {
			if m >= len(b.Teacher) || len(b.Teacher[m]) != n*k {
				got := 0
				if m < len(b.Teacher) {
					got = len(b.Teacher[m])
				}
				return out, fmt.Errorf("modality %q: %d teacher logits for %d rows of %d classes", e.arch.Modalities[m], got, n, k)
			}
			copy(x.teach[m], b.Teacher[m])
			clear(x.teach[m][n*k:])
			out = append(out, tensors.FromFlatDataAndDimensions(x.teach[m], e.batch, k))
		}
	}
	return append(out, tensors.FromFlatDataAndDimensions(x.alpha, 1)), nil
}

func (x *infiltrationSession) consume([]*tensors.Tensor, *StepStats) {}

// infiltrationLoss is FedCMI's cross-modal infiltration term L_inf
// (docs/methods.md; the method note), generalised to M modalities: on each
// row one held modality is the teacher, and the frozen start-of-round
// model's self head of that modality (teach[t] = C_t(S_t(E_t(x_t))))
// teaches the infiltration head C_s(I_s(E_s(x_s))) of every other held
// modality s, by soft-target cross-entropy at the row's temperature for
// the pair (temp [B, M, M], teacher-major). The terms of a row are summed
// and averaged over the rows of mask.
//
// The teacher: by default the batch's most confident modality, the held
// modality with the largest sum of true-class probabilities (sums; ties
// go to the later modality). With two modalities that is the method's
// rule: rho = sumPA/sumPV > 1 means A dominates, so V's infiltration head
// C_V(va) learns from the teacher's C_A(aa); otherwise A's C_A(av) learns
// from C_V(vv). A row whose dir input is m+1 has modality m as its teacher
// instead: the dominance variants' per-class or per-round choices.
func infiltrationLoss(net *network, held []int, emb []embeddings, teach []*Node, temp, dir *Node, sums []*Node, mask *Node) *Node {
	one, zero := OnesLike(dir), ZerosLike(dir)
	// sel[t] is 1 on the rows whose teacher is modality t, else 0.
	sel := make([]*Node, len(emb))
	for i, t := range held {
		best := OnesLike(sums[t])
		for j, o := range held {
			switch {
			case j < i:
				best = Mul(best, ConvertDType(GreaterOrEqual(sums[t], sums[o]), best.DType()))
			case j > i:
				best = Mul(best, ConvertDType(GreaterThan(sums[t], sums[o]), best.DType()))
			}
		}
		chosen := Equal(dir, Scalar(dir.Graph(), dir.DType(), float64(t+1)))
		sel[t] = Where(chosen, one, Where(Equal(dir, zero), Mul(one, best), zero))
	}
	// The row's teacher logits: a one-hot sum, exact.
	var tl *Node
	for _, t := range held {
		v := Mul(InsertAxes(sel[t], -1), teach[t])
		if tl == nil {
			tl = v
		} else {
			tl = Add(tl, v)
		}
	}
	var total *Node
	for _, s := range held {
		// The row's temperature for teacher -> s.
		var ts *Node
		for _, t := range held {
			if t == s {
				continue
			}
			v := Mul(sel[t], Reshape(Slice(temp, AxisRange(), AxisElem(t), AxisElem(s)), -1))
			if ts == nil {
				ts = v
			} else {
				ts = Add(ts, v)
			}
		}
		// On rows where s is the teacher ts is 0; any positive value does,
		// as the term is then multiplied by 0.
		ts = Add(ts, sel[s])
		term := Mul(Sub(one, sel[s]), softCrossEntropy(tl, net.classify(s, emb[s].inf), ts))
		if total == nil {
			total = term
		} else {
			total = Add(total, term)
		}
	}
	return maskedMean(total, mask)
}
