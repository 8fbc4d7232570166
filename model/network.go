package model

import (
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // graph code reads like the maths with a dot import, as in GoMLX itself.
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
	w, b := n.p[prefix+"/weights"], n.p[prefix+"/biases"]
	return Add(MatMul(x, w), InsertAxes(b, 0))
}

func relu(x *Node) *Node { return Max(x, ZerosLike(x)) }

// stack applies the layers of one part; ReLU after every layer when
// reluLast, else between layers only.
func (n *network) stack(layers []linearLayer, x *Node, reluLast bool) *Node {
	for i, l := range layers {
		x = n.dense(l.prefix, x)
		if reluLast || i < len(layers)-1 {
			x = relu(x)
		}
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
func (n *network) encodeCNN(m int, x *Node) *Node {
	c := &n.arch.CNN[m]
	b := x.Shape().Dimensions[0]
	frames := max(c.Frames, 1)
	// [B*F, C, H, W] -> NHWC, so that im2col patches are contiguous in channels.
	h := Reshape(x, b*frames, c.Input[0], c.Input[1], c.Input[2])
	h = TransposeAllAxes(h, 0, 2, 3, 1)
	layers := n.arch.cnnLayers(m)
	h = relu(n.conv(layers[0].prefix, h, max(c.StemStride, 1)))
	k := 1
	for s := range c.Channels {
		if s > 0 {
			h = relu(n.conv(layers[k].prefix, h, 2))
			k++
		}
		for range c.Blocks {
			y := relu(n.conv(layers[k].prefix, h, 1))
			y = n.conv(layers[k+1].prefix, y, 1)
			h = relu(Add(h, y))
			k += 2
		}
	}
	h = ReduceMean(h, 1, 2) // global average pool: [B*F, ch]
	h = ReduceMean(Reshape(h, b, frames, h.Shape().Dimensions[1]), 1)
	return relu(n.dense(layers[k].prefix, h))
}

// conv is a 3x3 convolution with zero padding 1 and the given stride on
// x [N, H, W, Cin], as an im2col matrix product with the layer's weights
// [9*Cin, Cout]. Zero padding is built by concatenation and patches by
// strided slices, both of which the Go backend differentiates (its Pad has
// no gradient, and its built-in convolution is a slow direct loop).
func (n *network) conv(prefix string, x *Node, stride int) *Node {
	dims := x.Shape().Dimensions
	nb, hh, ww, cin := dims[0], dims[1], dims[2], dims[3]
	g := x.Graph()
	zw := Zeros(g, shapes.Make(x.DType(), nb, hh, 1, cin))
	x = Concatenate([]*Node{zw, x, zw}, 2)
	zh := Zeros(g, shapes.Make(x.DType(), nb, 1, ww+2, cin))
	x = Concatenate([]*Node{zh, x, zh}, 1)
	ho, wo := (hh-1)/stride+1, (ww-1)/stride+1
	patches := make([]*Node, 0, 9)
	for di := range 3 {
		for dj := range 3 {
			patches = append(patches, Slice(x, AxisRange(),
				AxisRange(di, di+stride*(ho-1)+1).Stride(stride),
				AxisRange(dj, dj+stride*(wo-1)+1).Stride(stride),
				AxisRange()))
		}
	}
	p := Reshape(Concatenate(patches, 3), nb*ho*wo, 9*cin)
	y := n.dense(prefix, p)
	return Reshape(y, nb, ho, wo, y.Shape().Dimensions[1])
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
