package model

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // see network.go
	"github.com/gomlx/gomlx/core/tensors"
)

// Prototype-guided losses shared by PMR (Fan et al., "PMR: Prototypical
// Modal Rebalance for Multimodal Learning", CVPR 2023) and FedMDrop's modal
// enhancement loss (Fan et al., "Overcome Modal Bias in Multi-modal
// Federated Learning via Balanced Modality Selection", ECCV 2024). Both
// classify a modality's embedding z^m = S_m(E_m(x^m)) (the fusion input) by
// its distance to class prototypes c^m_k:
//
//	p^m_k(x) = softmax_k(-d(z^m, c^m_k)),  d(z, c) = sqrt(||z - c||^2 + protoEps)
//
// (Euclidean distance as in the authors' code, EU_dist; the small protoEps
// keeps the gradient finite where an embedding coincides with its
// prototype, e.g. a class of one sample at the start of an epoch). Classes
// without a prototype are left out of the softmax, and rows of such a class
// out of the terms.
//
// On a multimodal client, per batch, the imbalance ratio is
//
//	rho = sum_i p^A_{y_i}(x_i) / sum_i p^V_{y_i}(x_i)      (detached)
//
// and the loss adds
//
//	beta_A * PCE_A + beta_V * PCE_V - gamma_A * H_A - gamma_V * H_V
//
// where PCE_m = mean_i -log p^m_{y_i} is the prototypical cross-entropy,
// H_m = mean_i -sum_k p^m_k log p^m_k the prototypical entropy, and
//
//	ratio form (rho-scaled):      beta_V = alpha * max(rho - 1, 0),   beta_A = alpha * max(1/rho - 1, 0)
//	binary form (authors' code):  beta_V = alpha * [rho > 1],         beta_A = alpha * [rho < 1]
//	entropy (fast modality):      gamma_A = gamma * [rho > 1],        gamma_V = gamma * [rho < 1]
//
// so the slow modality is pulled towards its prototypes and the fast one's
// prototype distribution is kept from collapsing early. The ratio form
// scales the stimulus with the imbalance as the PMR paper describes; its
// exact equation could not be checked here (see docs/methods.md). A unimodal client
// (FedMDrop only) adds alpha * PCE_m of the modality it trains.

// protoEps is added under the square root of the prototype distance.
const protoEps = 1e-8

// protoMaskedLogit is added to the logit of a class without a prototype.
const protoMaskedLogit = -1e9

// Slots of the prototype loss's own hyper-parameter input.
const (
	protoAlpha = iota
	protoGamma
	protoBinary
	numProtoHyper
)

// ProtoLoss configures the prototype-guided loss (see the formulas above;
// PrototypeLoss).
type ProtoLoss struct {
	// Alpha weights the prototypical cross-entropy of the slow modality
	// (multimodal clients) or of the trained modality (unimodal clients).
	Alpha float64
	// Gamma weights the entropy regulariser on the fast modality
	// (multimodal clients; 0 turns it off).
	Gamma float64
	// Binary uses the authors' code's coefficient alpha*[rho > 1] instead
	// of the rho-scaled alpha*max(rho-1, 0).
	Binary bool
}

// Prototypes holds class prototypes of both modalities in the embedding
// space of the self projectors (width D = Arch.EmbedDim).
type Prototypes struct {
	// Centers[m] is row-major [K, D]; nil if modality m has none.
	Centers [2][]float32
	// Present[m][k] tells whether class k of modality m has a prototype.
	Present [2][]bool
}

// ProtoStats are a prototype step's measurements on the real rows.
type ProtoStats struct {
	// SumA and SumV are the sums of the prototype-based true-class
	// probabilities p^A_y and p^V_y (0 for a modality the step does not see);
	// their ratio is the step's imbalance ratio rho.
	SumA, SumV float64
}

// PrototypeLoss returns the prototype-guided loss term of PMR and
// FedMDrop; its sessions need prototypes (Local.SetPrototypes) before
// their first step.
func PrototypeLoss(p ProtoLoss) Term { return &protoTerm{p: p} }

type protoTerm struct{ p ProtoLoss }

func (t *protoTerm) key(*stepSpec) string { return "proto" }

func (t *protoTerm) check(s *stepSpec) error {
	if nm := s.e.arch.NumModalities(); nm != 2 {
		return fmt.Errorf("model: the prototype loss of PMR and FedMDrop is defined for 2 modalities (a prototype score ratio between them), the model has %d", nm)
	}
	if s.partial {
		return fmt.Errorf("model: rows missing a modality (PartialRows) do not work with the prototype loss")
	}
	return nil
}

// inputs: centres of the held modalities, then their class masks, then
// the prototype hyper-parameters.
func (t *protoTerm) inputs(s *stepSpec) []shapes.Shape {
	k, d := s.e.arch.NumClasses, s.e.arch.EmbedDim
	var sh []shapes.Shape
	for range s.held.list() {
		sh = append(sh, shapes.Make(dtypes.Float32, k, d))
	}
	for range s.held.list() {
		sh = append(sh, shapes.Make(dtypes.Float32, k))
	}
	return append(sh, shapes.Make(dtypes.Float32, numProtoHyper))
}

// build adds the prototype loss; outputs: the sums of the true-class
// prototype probabilities of both modalities.
func (t *protoTerm) build(b *stepBuild, in []*Node) {
	var centers, masks [2]*Node
	for _, m := range b.spec.held.list() {
		centers[m], in = in[0], in[1:]
	}
	for _, m := range b.spec.held.list() {
		masks[m], in = in[0], in[1:]
	}
	pl, sa, sv := protoTerms([2]*Node{b.z[0], b.z[1]}, centers, masks, b.onehot, b.mask, in[0])
	b.addLoss(pl)
	b.output()(sa, sv)
}

func (t *protoTerm) session(s *stepSpec) (termSession, error) {
	x := &protoSession{spec: s, hyper: make([]float32, numProtoHyper)}
	x.hyper[protoAlpha] = float32(t.p.Alpha)
	x.hyper[protoGamma] = float32(t.p.Gamma)
	if t.p.Binary {
		x.hyper[protoBinary] = 1
	}
	return x, nil
}

// protoSession holds the prototypes the following steps use.
type protoSession struct {
	spec   *stepSpec
	protos *Prototypes
	hyper  []float32
}

func (x *protoSession) args(*Batch, int) ([]*tensors.Tensor, error) {
	if x.protos == nil {
		return nil, fmt.Errorf("no prototypes set (SetPrototypes)")
	}
	e := x.spec.e
	k, d := e.arch.NumClasses, e.arch.EmbedDim
	var out []*tensors.Tensor
	for _, m := range x.spec.held.list() {
		c := x.protos.Centers[m]
		if len(c) != k*d {
			return out, fmt.Errorf("prototypes of %q: %d values, want %d classes x %d", e.arch.Modalities[m], len(c), k, d)
		}
		out = append(out, tensors.FromFlatDataAndDimensions(c, k, d))
	}
	for _, m := range x.spec.held.list() {
		p := x.protos.Present[m]
		if len(p) != k {
			return out, fmt.Errorf("prototype mask of %q: %d classes, want %d", e.arch.Modalities[m], len(p), k)
		}
		mask := make([]float32, k)
		for c, ok := range p {
			if ok {
				mask[c] = 1
			}
		}
		out = append(out, tensors.FromFlatDataAndDimensions(mask, k))
	}
	return append(out, tensors.FromFlatDataAndDimensions(x.hyper, numProtoHyper)), nil
}

func (x *protoSession) consume(outs []*tensors.Tensor, st *StepStats) {
	st.Proto.SumA = float64(tensors.ToScalar[float32](outs[0]))
	st.Proto.SumV = float64(tensors.ToScalar[float32](outs[1]))
}

// SetPrototypes sets the class prototypes the following steps use (the
// session must have a PrototypeLoss term). Every class a batch's label
// names must have a prototype of each modality the step reads.
func (l *Local) SetPrototypes(p Prototypes) error {
	for _, ts := range l.terms {
		if x, ok := ts.(*protoSession); ok {
			cp := Prototypes{}
			for m := range 2 {
				cp.Centers[m] = append([]float32(nil), p.Centers[m]...)
				cp.Present[m] = append([]bool(nil), p.Present[m]...)
			}
			x.protos = &cp
			return nil
		}
	}
	return fmt.Errorf("model: %s: prototypes set on a session without a prototype loss", l.key)
}

// protoLogits returns -d(z_i, c_k) for z [B, D] and centers [K, D], with
// classes outside mask [K] pushed to protoMaskedLogit; shape [B, K].
func protoLogits(z, centers, mask *Node) *Node {
	diff := Sub(InsertAxes(z, 1), InsertAxes(centers, 0)) // [B, K, D]
	d2 := ReduceSum(Square(diff), -1)
	d := Sqrt(AddScalar(d2, protoEps))
	return Add(Neg(d), InsertAxes(MulScalar(OneMinus(mask), protoMaskedLogit), 0))
}

// protoEntropy returns the per-row entropy -sum_k p_k log p_k of
// softmax(logits), shape [B].
func protoEntropy(logits *Node) *Node {
	logp := LogSoftmax(logits, -1)
	return Neg(ReduceSum(Mul(Exp(logp), logp), -1))
}

// protoTerms returns the prototype-guided loss term of a step (see the
// formulas above) and the sums of the true-class prototype probabilities
// of both modalities (zero for an absent one). z[m] is nil for a modality
// the step does not see; onehot is [B, K], mask [B], hyper [numProtoHyper].
func protoTerms(z, centers, masks [2]*Node, onehot, mask, hyper *Node) (loss, sumA, sumV *Node) {
	g := onehot.Graph()
	hp := func(i int) *Node { return Reshape(Slice(hyper, AxisRange(i, i+1))) }
	zero := ScalarZero(g, dtypes.Float32)
	var pce, ent, sum [2]*Node
	for m := range 2 {
		sum[m] = zero
		if z[m] == nil {
			continue
		}
		logits := protoLogits(z[m], centers[m], masks[m])
		// Rows whose class has no prototype are left out.
		rows := Mul(mask, ReduceSum(Mul(onehot, InsertAxes(masks[m], 0)), -1))
		pce[m] = maskedMean(crossEntropy(logits, onehot), rows)
		ent[m] = maskedMean(protoEntropy(logits), rows)
		sum[m] = StopGradient(ReduceAllSum(Mul(trueClassProb(logits, onehot), rows)))
	}
	alpha := hp(protoAlpha)
	switch {
	case z[0] != nil && z[1] != nil:
		tiny := Scalar(g, dtypes.Float32, 1e-30)
		rho := Div(sum[0], Max(sum[1], tiny)) // A over V
		inv := Div(sum[1], Max(sum[0], tiny)) // V over A
		one := ScalarOne(g, dtypes.Float32)
		aDom := ConvertDType(GreaterThan(rho, one), dtypes.Float32)
		vDom := ConvertDType(GreaterThan(inv, one), dtypes.Float32)
		// ratio form: alpha*max(rho-1, 0); binary form: alpha*[rho > 1].
		binary := hp(protoBinary)
		coef := func(r, dom *Node) *Node {
			ratio := Max(Sub(r, one), zero)
			return Mul(alpha, Add(Mul(binary, dom), Mul(OneMinus(binary), ratio)))
		}
		betaV, betaA := coef(rho, aDom), coef(inv, vDom)
		gamma := hp(protoGamma)
		loss = Add(Mul(betaA, pce[0]), Mul(betaV, pce[1]))
		loss = Sub(loss, Add(Mul(Mul(gamma, aDom), ent[0]), Mul(Mul(gamma, vDom), ent[1])))
	case z[0] != nil:
		loss = Mul(alpha, pce[0])
	default:
		loss = Mul(alpha, pce[1])
	}
	return loss, sum[0], sum[1]
}

// embedExec returns the compiled graph computing the self embeddings
// (aa, vv) of both modalities.
func (e *Engine) embedExec(rows int) (*Exec, error) {
	return e.evalGraph("embed", &e.embed, rows, func(net *network, in []*Node) []*Node {
		out := make([]*Node, len(in))
		for m := range in {
			out[m] = net.embed(m, in[m], false).self
		}
		return out
	})
}

// Embed returns the self embeddings z^m = S_m(E_m(x^m)) of n rows, the
// fusion inputs, row-major [n, EmbedDim], for the modalities whose rows
// x[m] are given (a nil or missing x[m] gives a nil result).
func (e *Engine) Embed(p Params, x [][]float32, n int) ([][]float32, error) {
	out := make([][]float32, e.arch.NumModalities())
	if err := e.checkEvalInput("embed", p, x, n); err != nil {
		return out, err
	}
	d := e.arch.EmbedDim
	for m := range x {
		if x[m] != nil {
			out[m] = make([]float32, 0, n*d)
		}
	}
	err := e.runEval("embed", e.embedExec, p, x, n, func(lo, hi int, outs []*tensors.Tensor) {
		for m := range x {
			if x[m] != nil {
				out[m] = append(out[m], tensors.MustCopyFlatData[float32](outs[m])[:(hi-lo)*d]...)
			}
		}
	})
	if err != nil {
		return out, err
	}
	return out, nil
}

// ClassPrototypes returns the per-class mean of n embeddings emb
// (row-major [n, d]) with the given labels in 0..k-1: centers [k, d] and
// the number of rows of each class (a class without rows has a zero centre
// and count 0).
func ClassPrototypes(emb []float32, labels []int, k, d int) ([]float32, []int, error) {
	if len(emb) != len(labels)*d {
		return nil, nil, fmt.Errorf("model: prototypes: %d values for %d rows of width %d", len(emb), len(labels), d)
	}
	acc := make([]float64, k*d)
	count := make([]int, k)
	for i, y := range labels {
		if y < 0 || y >= k {
			return nil, nil, fmt.Errorf("model: prototypes: label %d of row %d outside 0..%d", y, i, k-1)
		}
		count[y]++
		for j := range d {
			acc[y*d+j] += float64(emb[i*d+j])
		}
	}
	out := make([]float32, k*d)
	for c := range k {
		if count[c] == 0 {
			continue
		}
		for j := range d {
			out[c*d+j] = float32(acc[c*d+j] / float64(count[c]))
		}
	}
	return out, count, nil
}
