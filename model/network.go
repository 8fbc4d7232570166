package model

import (
	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
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
}

func newNetwork(arch *Arch, layout []ParamInfo, nodes []*Node) *network {
	p := make(map[string]*Node, len(layout))
	for i, info := range layout {
		p[info.Name] = nodes[i]
	}
	return &network{arch: arch, p: p}
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
	if n.arch.Encoders[m] == EncoderCNN {
		return n.encodeCNN(m, x)
	}
	return n.stack(n.arch.partLayers(m, PartEncoder), x, true)
}

// encodeCNN runs the residual CNN of modality m on x [B, Frames*C*H*W].
// The batch is encoded in chunks of about cnnChunkPositions input
// positions, each through its own copy of the network (weights shared): a
// chunk's feature maps and patch matrices stay in the CPU's cache, where
// the whole batch's (tens of MB at 64x64 maps) would stream through memory
// in every op.
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
var cnnChunkPositions = 8192

// encodeCNNChunk runs the residual CNN of modality m on x [B, Frames*C*H*W].
// Feature maps are 2-D, [positions, channels] (NHWC flattened), with a few
// unused rows at the end (see grid.rows).
func (n *network) encodeCNNChunk(m int, x *Node) *Node {
	c := &n.arch.CNN[m]
	b := x.Shape().Dimensions[0]
	frames := max(c.Frames, 1)
	g := grid{n: b * frames, h: c.Input[1], w: c.Input[2]}
	// [B*F, C, H, W] -> NHWC, so that im2col patches are contiguous in channels.
	h := Reshape(x, g.n, c.Input[0], g.h, g.w)
	if c.Input[0] > 1 {
		h = TransposeAllAxes(h, 0, 2, 3, 1)
	}
	h = Reshape(h, g.positions(), c.Input[0]) // one channel: the same memory
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
	// Global average pool over each image's positions (the unused rows get
	// weight 0), then over frames: [B, ch].
	h = MatMul(Const(x.Graph(), g.poolMatrix(h.Shape().Dimensions[0])), h)
	h = ReduceMean(Reshape(h, b, frames, h.Shape().Dimensions[1]), 1)
	return n.denseAct(layers[k].prefix, h, activation.TypeRelu)
}

// grid is the geometry of a feature map: n images of h x w positions.
type grid struct{ n, h, w int }

func (g grid) positions() int { return g.n * g.h * g.w }

// rows is the number of rows a convolution producing g writes: its
// positions plus unused rows that make the count 16 more than a multiple
// of 64. A count that is a multiple of 1024 makes the column stride of the
// backend's transposes (in the dense gradient) a multiple of 4 KiB, and
// every column then falls in the same cache set: measured 2-7x slower
// transposes of 16384 x 32 and 65536 x 16 matrices than with 16 more rows.
func (g grid) rows() int {
	p := g.positions()
	return p + (16-p%64+64)%64
}

// poolMatrix is [n, rows] with 1/(h*w) where a row belongs to an image.
func (g grid) poolMatrix(rows int) *tensors.Tensor {
	m := make([]float32, g.n*rows)
	hw := g.h * g.w
	for i := range g.n {
		for j := range hw {
			m[i*rows+i*hw+j] = 1 / float32(hw)
		}
	}
	return tensors.FromFlatDataAndDimensions(m, g.n, rows)
}

// conv is a 3x3 convolution with zero padding 1 and the given stride on
// the feature map x [rows, Cin] of geometry g (rows beyond g's positions
// are ignored), followed by act, as an im2col matrix product with the
// layer's weights [9*Cin, Cout]. It returns [out.rows(), Cout] and the
// output geometry. The patches come from one Gather of input rows (an
// appended zero row stands for the padding) with precomputed indices, so
// the gradient is one scatter-add; the product, bias and activation are the
// backend's fused dense, whose gradient needs no transpose of the patch
// matrix when the weights are laid out [Cout, 9*Cin]. (The Go backend's
// built-in convolution is a direct loop, and its Slice op, which the
// earlier nine strided slices used, costs several ns per element.)
func (n *network) conv(prefix string, x *Node, g grid, stride int, act activation.Type) (*Node, grid) {
	rows, cin := x.Shape().Dimensions[0], x.Shape().Dimensions[1]
	gr := x.Graph()
	src := Concatenate([]*Node{x, Zeros(gr, shapes.Make(x.DType(), 1, cin))}, 0)
	out := grid{n: g.n, h: (g.h-1)/stride + 1, w: (g.w-1)/stride + 1}
	idx := Const(gr, im2colIndices(g, out, stride, rows))
	p := Reshape(Gather(src, idx), out.rows(), 9*cin)
	w := TransposeAllAxes(n.p[prefix+"/weights"], 1, 0)
	return nn.Dense(p, w, n.p[prefix+"/biases"], compute.DenseLayoutOutputsInput, act), out
}

// im2colIndices returns, for every output row of a 3x3 convolution with
// padding 1 and the given stride from grid in to grid out, the nine input
// rows it reads in (kernel row, kernel column) order, as [out.rows()*9, 1];
// taps outside the image, and the unused output rows, read row zero (the
// appended zero row).
func im2colIndices(in, out grid, stride, zero int) *tensors.Tensor {
	idx := make([]int32, out.rows()*9)
	for i := range idx {
		idx[i] = int32(zero)
	}
	k := 0
	for b := range out.n {
		for i := range out.h {
			for j := range out.w {
				for di := range 3 {
					for dj := range 3 {
						y, x := i*stride+di-1, j*stride+dj-1
						if y >= 0 && y < in.h && x >= 0 && x < in.w {
							idx[k] = int32((b*in.h+y)*in.w + x)
						}
						k++
					}
				}
			}
		}
	}
	return tensors.FromFlatDataAndDimensions(idx, len(idx), 1)
}

// project applies the self or infiltration projector of modality m.
func (n *network) project(m int, part string, h *Node) *Node {
	return n.stack(n.arch.partLayers(m, part), h, false)
}

// classify applies C_m, shared by S_m and I_m.
func (n *network) classify(m int, z *Node) *Node {
	return n.dense(n.arch.Modalities[m]+"/"+PartClassifier, z)
}

// fuse applies the fusion head F(x, y): x fills the modality-0 slot and y
// the modality-1 slot.
func (n *network) fuse(x, y *Node) *Node {
	switch n.arch.Fusion {
	case FusionSum:
		return Add(n.dense("fusion/x", x), n.dense("fusion/y", y))
	case FusionFiLM:
		d := n.arch.EmbedDim
		gb := n.dense("fusion/film", x)
		gamma := Slice(gb, AxisRange(), AxisRange(0, d))
		beta := Slice(gb, AxisRange(), AxisRange(d, 2*d))
		return n.dense("fusion/out", Add(Mul(gamma, y), beta))
	case FusionGated:
		gate := Sigmoid(n.dense("fusion/x", x))
		return n.dense("fusion/out", Mul(gate, n.dense("fusion/y", y)))
	default:
		return n.dense("fusion/out", Concatenate([]*Node{x, y}, -1))
	}
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
