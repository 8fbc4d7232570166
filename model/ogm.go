package model

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // see network.go
	"github.com/gomlx/gomlx/core/tensors"
)

// OGM configures OGM-GE, on-the-fly gradient modulation with generalisation
// enhancement (Peng, Wei, Deng, Wang, Hu, "Balanced Multimodal Learning via
// On-the-fly Gradient Modulation", CVPR 2022; authors' code
// GeWu-Lab/OGM-GE_CVPR2022), in the local training of multimodal clients.
//
// Per batch, each modality's part of the fusion head scores the batch:
// with concat fusion F(a, v) = W [a; v] + b, modality A's part is
// out_A = W_A a + b/2 and V's is out_V = W_V v + b/2 (W_A, W_V the blocks of
// W that multiply each embedding, half the bias each, as the authors' code
// does); with sum fusion F = (W_x a + b_x) + (W_y v + b_y) they are
// W_x a + b_x/2 and W_y v + b_y/2 (the authors' code halves these biases
// too). Other fusion heads have no additive per-modality part and are
// refused.
// With s_m = sum_i softmax(out_m)_i[y_i] over the batch and rho = s_A / s_V:
//
//	rho > 1:  k_A = 1 - tanh(alpha * rho),   k_V = 1
//	else:     k_V = 1 - tanh(alpha / rho),   k_A = 1
//
// (the authors' code applies relu(rho), the same for rho >= 0). The
// gradient of every weight matrix of modality m's encoder (MLP layers; the
// CNN's convolution kernels and output layer; biases are left alone, as
// the authors' code touches only the 4-D convolution kernels of its
// bias-free ResNet encoders) becomes
//
//	g' = k_m * g + N(0, std(g)^2)      (std over the tensor, unbiased, + 1e-8)
//
// for both encoders (k = 1 for the weaker one): the Gaussian noise is the
// generalisation enhancement. The std is that of the unscaled gradient, as
// in the authors' code. Weight decay and momentum apply afterwards. The
// noise comes from an in-graph Philox generator whose state is seeded by
// Seed and carried from step to step, so a run is deterministic.
type OGM struct {
	// Alpha is the modulation strength (paper default 0.8 here, see config).
	Alpha float64
	// Seed seeds the noise generator (the client's per-round seed).
	Seed uint64
	// NoNoise turns the generalisation enhancement off (plain OGM).
	NoNoise bool
}

// OGM-GE hyper-parameter slots.
const (
	ogmAlpha = iota
	ogmNoise // 1: add the noise, 0: plain OGM
	numOGMHyper
)

// ogmSupported reports whether the fusion head has per-modality parts.
func (a *Arch) ogmSupported() error {
	if len(a.Modalities) != 2 {
		return fmt.Errorf("model: OGM-GE is defined for 2 modalities (it modulates each by the ratio of their two scores), the model has %d", len(a.Modalities))
	}
	if a.Fusion != FusionConcat && a.Fusion != FusionSum {
		return fmt.Errorf("model: OGM-GE needs a fusion head with a per-modality part (concat or sum), not %q", a.Fusion)
	}
	return nil
}

// ogmParts returns out_A and out_V, each modality's part of the fusion
// head's logits, [B, K].
func (n *network) ogmParts(aa, vv *Node) (outA, outV *Node) {
	halfBias := func(prefix string) *Node { return InsertAxes(MulScalar(n.p[prefix+"/biases"], 0.5), 0) }
	if n.arch.Fusion == FusionSum {
		outA = Add(MatMul(aa, n.p["fusion/x/weights"]), halfBias("fusion/x"))
		outV = Add(MatMul(vv, n.p["fusion/y/weights"]), halfBias("fusion/y"))
		return outA, outV
	}
	d := n.arch.EmbedDim
	w := n.p["fusion/out/weights"]
	outA = Add(MatMul(aa, Slice(w, AxisRange(0, d), AxisRange())), halfBias("fusion/out"))
	outV = Add(MatMul(vv, Slice(w, AxisRange(d, 2*d), AxisRange())), halfBias("fusion/out"))
	return outA, outV
}

// ogmCoefficients returns (k_A, k_V) for the batch scores sA, sV (scalars):
// see OGM. A batch where both scores are zero is not modulated.
func ogmCoefficients(sA, sV, alpha *Node) (kA, kV *Node) {
	g := sA.Graph()
	one := ScalarOne(g, dtypes.Float32)
	tiny := Scalar(g, dtypes.Float32, 1e-30)
	aDominant := GreaterThan(sA, sV)
	kA = Where(aDominant, Sub(one, Tanh(Mul(alpha, Div(sA, Max(sV, tiny))))), one)
	kV = Where(aDominant, one, Sub(one, Tanh(Mul(alpha, Div(sV, Max(sA, tiny))))))
	return kA, kV
}

// OGMGE returns OGM-GE's gradient modulation term for multimodal clients
// (a unimodal client's session drops it).
func OGMGE(o OGM) Term { return &ogmTerm{o: o} }

type ogmTerm struct{ o OGM }

func (t *ogmTerm) key(s *stepSpec) string {
	if !s.held.multi() {
		return ""
	}
	return "ogm-ge"
}

func (t *ogmTerm) check(s *stepSpec) error {
	if s.partial {
		return fmt.Errorf("model: rows missing a modality (PartialRows) do not work with OGM-GE")
	}
	return s.e.arch.ogmSupported()
}

// inputs: the noise generator's state and [alpha, noise on].
func (t *ogmTerm) inputs(*stepSpec) []shapes.Shape {
	return []shapes.Shape{RNGStateShape, shapes.Make(dtypes.Float32, numOGMHyper)}
}

// build measures the batch's coefficients from the self embeddings that
// feed the fusion head and modulates the encoders' gradients; outputs: the
// generator's next state, k_A, k_V.
func (t *ogmTerm) build(b *stepBuild, in []*Node) {
	rng, hyper := in[0], in[1]
	outA, outV := b.net.ogmParts(b.emb[0].self, b.emb[1].self)
	sA := StopGradient(ReduceAllSum(Mul(trueClassProb(outA, b.onehot), b.mask)))
	sV := StopGradient(ReduceAllSum(Mul(trueClassProb(outV, b.onehot), b.mask)))
	alpha := Reshape(Slice(hyper, AxisRange(ogmAlpha, ogmAlpha+1)))
	kA, kV := ogmCoefficients(sA, sV, alpha)
	coef := [2]*Node{kA, kV}
	noise := Reshape(Slice(hyper, AxisRange(ogmNoise, ogmNoise+1)))
	e := b.spec.e
	output := b.output()
	b.gradMods = append(b.gradMods, func(grads []*Node) []*Node {
		out := make([]*Node, len(grads))
		for j, i := range b.spec.trainable {
			info := e.layout[i]
			g := grads[j]
			if !ogmModulated(info) {
				out[j] = g
				continue
			}
			n := max(info.Size()-1, 1)
			dev := Sub(g, ReduceAllMean(g))
			std := AddScalar(Sqrt(DivScalar(ReduceAllSum(Mul(dev, dev)), float64(n))), 1e-8)
			var z *Node
			rng, z = RandomNormal(rng, shapes.Make(dtypes.Float32, info.Shape...))
			out[j] = Add(Mul(coef[info.Side], g), Mul(Mul(noise, std), z))
		}
		output(rng, kA, kV)
		return out
	})
}

func (t *ogmTerm) session(*stepSpec) (termSession, error) {
	x := &ogmSession{rng: make([]uint64, RNGStateShape.Size()), hyper: make([]float32, numOGMHyper)}
	r := rand.New(rand.NewPCG(t.o.Seed, 0x6f676d))
	for i := range x.rng {
		x.rng[i] = r.Uint64()
	}
	x.hyper[ogmAlpha] = float32(t.o.Alpha)
	if !t.o.NoNoise {
		x.hyper[ogmNoise] = 1
	}
	return x, nil
}

// ogmSession carries the noise generator's state from step to step.
type ogmSession struct {
	rng   []uint64
	hyper []float32
}

func (x *ogmSession) args(*Batch, int) ([]*tensors.Tensor, error) {
	return []*tensors.Tensor{tensors.FromFlatDataAndDimensions(x.rng, RNGStateShape.Dimensions...),
		tensors.FromFlatDataAndDimensions(x.hyper, numOGMHyper)}, nil
}

func (x *ogmSession) consume(outs []*tensors.Tensor, st *StepStats) {
	tensors.MustConstFlatData(outs[0], func(flat []uint64) { copy(x.rng, flat) })
	st.OGMCoef = [2]float64{
		float64(tensors.ToScalar[float32](outs[1])),
		float64(tensors.ToScalar[float32](outs[2])),
	}
}

// ogmModulated reports whether OGM-GE modulates the parameter: a weight
// matrix of an encoder.
func ogmModulated(info ParamInfo) bool {
	return info.Part == PartEncoder && strings.HasSuffix(info.Name, "/weights")
}
