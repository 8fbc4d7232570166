package model

import (
	"fmt"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // see network.go
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

// ogmMeasure computes the batch's coefficients from the self embeddings
// aa, vv that feed the fusion head.
func (x *stepExt) ogmMeasure(net *network, aa, vv, onehot, mask *Node) {
	outA, outV := net.ogmParts(aa, vv)
	sA := StopGradient(ReduceAllSum(Mul(trueClassProb(outA, onehot), mask)))
	sV := StopGradient(ReduceAllSum(Mul(trueClassProb(outV, onehot), mask)))
	alpha := Reshape(Slice(x.ogmHyper, AxisRange(ogmAlpha, ogmAlpha+1)))
	x.coef[0], x.coef[1] = ogmCoefficients(sA, sV, alpha)
}

// ogmModulated reports whether OGM-GE modulates the parameter: a weight
// matrix of an encoder.
func ogmModulated(info ParamInfo) bool {
	return info.Part == PartEncoder && strings.HasSuffix(info.Name, "/weights")
}

// ogmModulate scales the encoder weight gradients by their modality's k and
// adds the generalisation-enhancement noise.
func (x *stepExt) ogmModulate(grads []*Node) []*Node {
	noise := Reshape(Slice(x.ogmHyper, AxisRange(ogmNoise, ogmNoise+1)))
	out := make([]*Node, len(grads))
	for j, i := range x.trainable {
		info := x.e.layout[i]
		g := grads[j]
		if !ogmModulated(info) {
			out[j] = g
			continue
		}
		n := max(info.Size()-1, 1)
		dev := Sub(g, ReduceAllMean(g))
		std := AddScalar(Sqrt(DivScalar(ReduceAllSum(Mul(dev, dev)), float64(n))), 1e-8)
		var z *Node
		x.rng, z = RandomNormal(x.rng, shapes.Make(dtypes.Float32, info.Shape...))
		out[j] = Add(Mul(x.coef[info.Side], g), Mul(Mul(noise, std), z))
	}
	return out
}
