package model

import (
	"fmt"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // graph code reads like the maths with a dot import, as in GoMLX itself.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/nn"
)

// network builds the FedCMI forward pass of one parameter set inside a graph.
// Shapes: inputs x_m are [B, InputDims[m]], embeddings [B, D], logits [B, K].
type network struct {
	arch *Arch
	p    map[string]*Node // parameter nodes by name
	// grad says that the graph differentiates this network: only then do
	// convolutions carry their own gradient (patchProduct), whose identity
	// nodes in a forward-only graph would just stand between each patch
	// matrix and its product and let more patch matrices live at once.
	grad bool
}

func newNetwork(arch *Arch, layout []ParamInfo, nodes []*Node, grad bool) *network {
	p := make(map[string]*Node, len(layout))
	for i, info := range layout {
		p[info.Name] = nodes[i]
	}
	return &network{arch: arch, p: p, grad: grad}
}

// dense applies x W + b for the layer with the given prefix.
func (n *network) dense(prefix string, x *Node) *Node {
	return n.denseAct(prefix, x, activation.TypeNone)
}

// denseAct applies act(x W + b) for the layer with the given prefix, as
// the backend's fused dense (product, bias and activation in one op, and
// one op for their gradient).
func (n *network) denseAct(prefix string, x *Node, act activation.Type) *Node {
	w, b := n.p[prefix+"/weights"], n.p[prefix+"/biases"]
	return nn.Dense(x, w, b, compute.DenseLayoutInputOutputs, act)
}

func relu(x *Node) *Node { return Max(x, ZerosLike(x)) }

// stack applies the layers of one part; ReLU after every layer when
// reluLast, else between layers only.
func (n *network) stack(layers []linearLayer, x *Node, reluLast bool) *Node {
	for i, l := range layers {
		act := activation.TypeNone
		if reluLast || i < len(layers)-1 {
			act = activation.TypeRelu
		}
		x = n.denseAct(l.prefix, x, act)
	}
	return x
}

// encode returns h_m = E_m(x), [B, D]: every layer is followed by ReLU (a
// CNN's pooled features are non-negative too).
func (n *network) encode(m int, x *Node) *Node {
	if n.arch.Encoder(m) == EncoderCNN {
		return n.encodeCNN(m, x)
	}
	return n.stack(n.arch.partLayers(m, PartEncoder), x, true)
}

// encodeCNN runs the residual CNN of modality m on x [B, Frames*C*H*W].
// The batch is encoded in chunks of about cnnChunkPositions input
// positions, each through its own copy of the network (weights shared),
// which bounds the size of the patch matrices (9*Cin floats a position).
// Smaller chunks were not faster: each op and matrix product has a fixed
// cost (the backend allocates per product).
func (n *network) encodeCNN(m int, x *Node) *Node {
	b := x.Shape().Dimensions[0]
	c := &n.arch.CNN[m]
	per := max(1, cnnChunkPositions/(max(c.Frames, 1)*c.Input[1]*c.Input[2]))
	if per >= b {
		return n.encodeCNNChunk(m, x)
	}
	var parts []*Node
	for i := 0; i < b; i += per {
		parts = append(parts, n.encodeCNNChunk(m, Slice(x, AxisRange(i, min(i+per, b)))))
	}
	return Concatenate(parts, 0)
}

// cnnChunkPositions is how many input positions (samples x frames x H x W)
// one chunk of encodeCNN takes (a variable for tests).
var cnnChunkPositions = 32768

// encodeCNNChunk runs the residual CNN of modality m on x [B, Frames*C*H*W].
// Feature maps are channel-major, [channels, padded positions] (see grid).
func (n *network) encodeCNNChunk(m int, x *Node) *Node {
	c := &n.arch.CNN[m]
	b := x.Shape().Dimensions[0]
	frames := max(c.Frames, 1)
	g := grid{n: b * frames, h: c.Input[1], w: c.Input[2]}
	h := toFeatureMap(Reshape(x, g.n, c.Input[0], g.h, g.w))
	layers := n.arch.cnnLayers(m)
	h, g = n.conv(layers[0].prefix, h, g, max(c.StemStride, 1), activation.TypeRelu)
	k := 1
	for s := range c.Channels {
		if s > 0 {
			h, g = n.conv(layers[k].prefix, h, g, 2, activation.TypeRelu)
			k++
		}
		for range c.Blocks {
			y, _ := n.conv(layers[k].prefix, h, g, 1, activation.TypeRelu)
			y, _ = n.conv(layers[k+1].prefix, y, g, 1, activation.TypeNone)
			h = relu(Add(h, y))
			k += 2
		}
	}
	// Global average pool over each image's positions (the borders are
	// zero), then over frames: [B, ch].
	ch := h.Shape().Dimensions[0]
	h = ReduceSum(Reshape(h, ch, g.n, (g.h+2)*(g.w+2)), -1)
	h = MulScalar(TransposeAllAxes(h, 1, 0), 1/float64(g.h*g.w))
	h = ReduceMean(Reshape(h, b, frames, ch), 1)
	return n.denseAct(layers[k].prefix, h, activation.TypeRelu)
}

// grid is the geometry of a feature map: n images of h x w positions. A
// feature map is stored channel-major as [channels, n*(h+2)*(w+2)]: each
// image with a border of one zero position on every side, which is the
// convolutions' zero padding. A 3x3 tap is then a shift of the flattened
// map by a constant offset, so a patch row (one tap of one channel over all
// positions) is one contiguous slice.
type grid struct{ n, h, w int }

// positions is the number of stored positions, borders included.
func (g grid) positions() int { return g.n * (g.h + 2) * (g.w + 2) }

// margin is the largest tap offset, |(w+2) + 1|.
func (g grid) margin() int { return g.w + 3 }

// mask is [1, positions]: 1 inside the images, 0 on their borders.
func (g grid) mask() *tensors.Tensor {
	m := make([]float32, g.positions())
	for b := range g.n {
		for i := range g.h {
			for j := range g.w {
				m[(b*(g.h+2)+i+1)*(g.w+2)+j+1] = 1
			}
		}
	}
	return tensors.FromFlatDataAndDimensions(m, 1, len(m))
}

// toFeatureMap turns images x [n, C, H, W] into a feature map [C, positions].
func toFeatureMap(x *Node) *Node {
	d := x.Shape().Dimensions
	if d[1] > 1 {
		x = TransposeAllAxes(x, 1, 0, 2, 3)
	} else {
		x = Reshape(x, 1, d[0], d[2], d[3])
	}
	x = Pad(x, ScalarZero(x.Graph(), x.DType()), PadAxis{}, PadAxis{}, PadAxis{Start: 1, End: 1}, PadAxis{Start: 1, End: 1})
	return Reshape(x, d[1], -1)
}

// conv is a 3x3 convolution with zero padding 1 and the given stride on
// the feature map x [Cin, g.positions()], followed by act, as an im2col
// matrix product: the layer's weights [9*Cin, Cout], transposed, times the
// patch matrix [9*Cin, positions]. It returns the output map [Cout,
// out.positions()] (borders zeroed) and its geometry.
//
// The patch matrix is one GatherSlices of 9*Cin contiguous slices, each a
// whole shifted channel (the flattened input gets a margin of ones at both
// ends so that every shift stays in range; what a border position reads is
// discarded by the mask), so the gradient is one scatter-add of whole
// rows. A stride-2 convolution first splits the input into its four
// (row, column) parity planes on the output's grid, with two transposes:
// a tap is then a shift of one plane. (The Go backend's built-in
// convolution is a direct loop; its Slice op costs several ns per element;
// a Gather of single positions, the previous form, one memmove per
// element.)
func (n *network) conv(prefix string, x *Node, g grid, stride int, act activation.Type) (*Node, grid) {
	cin := x.Shape().Dimensions[0]
	gr := x.Graph()
	out := grid{n: g.n, h: (g.h-1)/stride + 1, w: (g.w-1)/stride + 1}
	q := out.positions()
	src := x
	if stride == 2 {
		src = parityPlanes(x, g, out)
	}
	src = Reshape(src, -1)
	mg := out.margin()
	// Margins of ones: what they hold is read by border positions only,
	// and the trailing q of them are the patch matrix's last row, which
	// multiplies the biases.
	n0 := src.Shape().Dimensions[0]
	src = pad(src, ScalarOne(gr, src.DType()), PadAxis{Start: mg, End: q})
	starts := make([]int32, 0, 9*cin+1)
	for di := range 3 {
		for dj := range 3 {
			for c := range cin {
				var start int
				if stride == 1 {
					start = c*q + (di-1)*(out.w+2) + dj - 1
				} else {
					plane := (dj%2)*2 + di%2
					start = (plane*cin+c)*q + (di/2-1)*(out.w+2) + dj/2 - 1
				}
				starts = append(starts, int32(mg+start))
			}
		}
	}
	starts = append(starts, int32(mg+n0))
	// The starts are not ascending (tap-major, and each tap's offset may
	// be negative): indicesAreSorted false, which the Go backend ignores
	// and XLA would rely on (also in the gradient's scatter).
	p := GatherSlices(src, []int{0}, Const(gr, tensors.FromFlatDataAndDimensions(starts, len(starts), 1)), []int{q}, false)
	// [Cout, 9*Cin+1]: the weights transposed, then the biases.
	w := Concatenate([]*Node{TransposeAllAxes(n.p[prefix+"/weights"], 1, 0), InsertAxes(n.p[prefix+"/biases"], -1)}, 1)
	mask := Const(gr, out.mask())
	if n.grad {
		return patchProduct(w, p, mask, act), out
	}
	return Mul(nn.Dense(w, p, nil, compute.DenseLayoutInputOutputs, act), mask), out
}

// dzLeftMaxCout is the largest number of output channels for which a
// convolution's weights' gradient is dz pᵀ, dz the left operand: its Cout
// rows fit one of the backend's 8-row matrix kernels, whereas as the right
// operand of (p dzᵀ)ᵀ they would be padded to its 32-column kernels.
// Measured: with 8 channels a step is about 10% faster this way; with 16
// it is not faster.
const dzLeftMaxCout = 8

// patchProduct returns act(w p) * mask for the weights w [Cout, K], the
// patch matrix p [K, positions] and the 0/1 border mask [1, positions],
// act ReLU or none, with a gradient of its own.
//
// The forward pass is the backend's fused dense, with the small weights as
// its input and the patch matrix as its weights. The fused dense's
// gradient computes the weights' gradient dz pᵀ with the patch matrix as
// the transposed right operand, which the backend packs with a generic,
// non-vectorised loop; it also allocates its ReLU mask afresh every step.
// Here it is (p dzᵀ)ᵀ: the patch matrix is the left operand, packed by
// vectorised code, and only the small dz [Cout, positions] is packed
// transposed (for few output channels it stays dz pᵀ, see dzLeftMaxCout);
// the ReLU's gradient is taken from the masked output (positive only
// inside the images and where the ReLU passes; this needs the mask to be
// 0/1), so one pass of the backend's fused ReLU gradient stands for the
// product with the border mask, a comparison and a select. The patch
// matrix's gradient is wᵀ dz, as before.
//
// GoMLX has custom gradients for identities only, so identities on w, p
// and the output share one: autodiff reaches the output's identity before
// the inputs' (they come before it in the graph), and there it builds both
// input gradients, which the inputs' identities return in place of what
// autodiff built for the fused dense; that is then unused, and the backend
// does not run unused nodes. An input's identity takes its gradient once
// (a second Gradient call builds its own) and panics if the output's has
// not built it, rather than fall back silently to the slow gradient. The
// gradients read the identities' outputs, not their inputs: an identity
// whose input has no other reader hands its buffer on, where it would
// otherwise copy it (the patch matrix is large).
func patchProduct(w, p, mask *Node, act activation.Type) *Node {
	if act != activation.TypeNone && act != activation.TypeRelu {
		panic(fmt.Sprintf("model: patchProduct: no gradient for activation %s", act))
	}
	var dw, dp *Node
	w = IdentityWithCustomGradient(w, func(_, _ *Node) *Node { return takeGrad(&dw, "patchProduct") })
	p = IdentityWithCustomGradient(p, func(_, _ *Node) *Node { return takeGrad(&dp, "patchProduct") })
	y := Mul(nn.Dense(w, p, nil, compute.DenseLayoutInputOutputs, act), mask)
	return IdentityWithCustomGradient(y, func(y, dy *Node) *Node {
		var dz *Node
		if act == activation.TypeRelu {
			dz = reluVJP(y, dy, y.Graph().Backend().Capabilities().Operations[compute.OpTypeFusedActivationVJP])
		} else {
			dz = Mul(dy, mask)
		}
		if w.Shape().Dimensions[0] <= dzLeftMaxCout {
			dw = DotGeneral(dz, []int{1}, nil, p, []int{1}, nil)
		} else {
			dw = TransposeAllAxes(DotGeneral(p, []int{1}, nil, dz, []int{1}, nil), 1, 0)
		}
		dp = DotGeneral(TransposeAllAxes(w, 1, 0), []int{1}, nil, dz, []int{0}, nil)
		return dy
	})
}

// reluVJP is a ReLU's gradient dy * (y > 0) from its output y: one pass of
// the backend's fused ReLU gradient if fused (the backend has one), else a
// comparison and a select.
func reluVJP(y, dy *Node, fused bool) *Node {
	if fused {
		return BackendFusedActivationVJP(y, nil, dy, compute.ActivationConfig{Type: compute.ActivationRelu})
	}
	zero := ScalarZero(y.Graph(), y.DType())
	return Where(GreaterThan(y, zero), dy, zero)
}

// takeGrad returns the gradient that an output's custom gradient left in
// *d for an input's identity, and clears it: see patchProduct.
func takeGrad(d **Node, op string) *Node {
	g := *d
	if g == nil {
		panic("model: " + op + ": an input's gradient was asked for before the output's")
	}
	*d = nil
	return g
}

// pad is Pad with non-negative start and end padding (no interior) given
// for every axis of x, with a gradient of its own: the padded gradient's
// inner part taken by one GatherSlices, which copies whole contiguous
// runs, where Pad's own gradient is the backend's Slice, which copies
// element by element (5.5% of a `large` step's CPU profile). The
// identities share it as in patchProduct. (GoMLX still builds Pad's own
// gradient, unused, and that fails for axes left unconfigured.)
func pad(x, fill *Node, axes ...PadAxis) *Node {
	if len(axes) != x.Rank() {
		panic(fmt.Sprintf("model: pad: %d axes configured for a rank-%d tensor, want every axis", len(axes), x.Rank()))
	}
	for _, a := range axes {
		if a.Start < 0 || a.End < 0 || a.Interior != 0 {
			panic(fmt.Sprintf("model: pad: want Start, End >= 0 and Interior 0, got %+v", a))
		}
	}
	var dx *Node
	xi := IdentityWithCustomGradient(x, func(_, _ *Node) *Node { return takeGrad(&dx, "pad") })
	y := Pad(xi, fill, axes...)
	return IdentityWithCustomGradient(y, func(y, dy *Node) *Node {
		dims := x.Shape().Dimensions
		axesAll := make([]int, len(dims))
		starts := make([]int32, len(dims))
		for i := range dims {
			axesAll[i] = i
			starts[i] = int32(axes[i].Start)
		}
		dx = GatherSlices(dy, axesAll, Const(y.Graph(), starts), dims, true)
		return dy
	})
}

// parityPlanes splits the feature map x [C, g.positions()] into the four
// parity planes of its zero-padded images on grid out (the stride-2
// output's): [2 (column parity), 2 (row parity), C, out.positions()], where
// plane (pc, pr) at (a, b) holds padded position (2a+pr, 2b+pc).
func parityPlanes(x *Node, g, out grid) *Node {
	c := x.Shape().Dimensions[0]
	hp, wp := out.h+2, out.w+2 // 2*hp >= g.h+2: rows past the image are zero
	x = Reshape(x, c*g.n, g.h+2, g.w+2)
	x = pad(x, ScalarZero(x.Graph(), x.DType()), PadAxis{}, PadAxis{End: 2*hp - g.h - 2}, PadAxis{End: 2*wp - g.w - 2})
	x = TransposeAllAxes(Reshape(x, -1, 2), 1, 0) // [pc, c*n*hp*2*wp]
	x = TransposeAllAxes(Reshape(x, 2, c*g.n*hp, 2, wp), 0, 2, 1, 3)
	return Reshape(x, 2, 2, c, out.positions())
}

// project applies the self or infiltration projector of modality m.
func (n *network) project(m int, part string, h *Node) *Node {
	return n.stack(n.arch.partLayers(m, part), h, false)
}

// classify applies C_m, shared by S_m and I_m.
func (n *network) classify(m int, z *Node) *Node {
	return n.dense(n.arch.Modalities[m]+"/"+PartClassifier, z)
}

// fuse applies the fusion head F to its M input slots, slot m for
// modality m's embedding (a zero embedding for an absent modality).
func (n *network) fuse(slots ...*Node) *Node {
	switch n.arch.Fusion {
	case FusionSum:
		out := n.dense(n.arch.fusionSlot(0), slots[0])
		for m := 1; m < len(slots); m++ {
			out = Add(out, n.dense(n.arch.fusionSlot(m), slots[m]))
		}
		return out
	case FusionFiLM: // two slots
		x, y := slots[0], slots[1]
		d := n.arch.EmbedDim
		gb := n.dense("fusion/film", x)
		gamma := Slice(gb, AxisRange(), AxisRange(0, d))
		beta := Slice(gb, AxisRange(), AxisRange(d, 2*d))
		return n.dense("fusion/out", Add(Mul(gamma, y), beta))
	case FusionGated: // two slots
		gate := Sigmoid(n.dense("fusion/x", slots[0]))
		return n.dense("fusion/out", Mul(gate, n.dense("fusion/y", slots[1])))
	default:
		return n.dense("fusion/out", Concatenate(slots, -1))
	}
}

// fuseAlone returns F with self in slot m and fill in every other slot:
// a unimodal client's head F(self, infiltration), or, with a zero fill,
// the fused head with modality m alone.
func (n *network) fuseAlone(m int, self, fill *Node) *Node {
	slots := make([]*Node, n.arch.NumModalities())
	for j := range slots {
		slots[j] = fill
	}
	slots[m] = self
	return n.fuse(slots...)
}

// embeddings of one modality: h, self projection, infiltration projection.
type embeddings struct{ self, inf *Node }

func (n *network) embed(m int, x *Node, withInf bool) embeddings {
	h := n.encode(m, x)
	e := embeddings{self: n.project(m, PartSelf, h)}
	if withInf {
		e.inf = n.project(m, PartInfiltration, h)
	}
	return e
}

// maskedMean returns sum_i mask_i v_i / max(sum_i mask_i, 1) for v, mask [B].
func maskedMean(v, mask *Node) *Node {
	den := Max(ReduceAllSum(mask), ScalarOne(mask.Graph(), mask.DType()))
	return Div(ReduceAllSum(Mul(v, mask)), den)
}

// crossEntropy returns the per-sample CE of logits [B, K] against one-hot
// labels [B, K], shape [B].
func crossEntropy(logits, onehot *Node) *Node {
	return Neg(ReduceSum(Mul(onehot, LogSoftmax(logits, -1)), -1))
}

// softCrossEntropy returns the per-sample soft-target cross-entropy
// -sum_c softmax(zT/T)_c log softmax(zS/T)_c, shape [B]; temp is [B] and
// the teacher is detached.
func softCrossEntropy(teacher, student, temp *Node) *Node {
	t := InsertAxes(temp, -1)
	target := StopGradient(Softmax(Div(teacher, t), -1))
	return Neg(ReduceSum(Mul(target, LogSoftmax(Div(student, t), -1)), -1))
}

// trueClassProb returns p(y_i) = softmax(logits)_i[y_i], shape [B].
func trueClassProb(logits, onehot *Node) *Node {
	return ReduceSum(Mul(Softmax(logits, -1), onehot), -1)
}
