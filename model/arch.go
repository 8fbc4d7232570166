package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// Projector kinds (Arch.Projector).
const (
	ProjectorLinear = "linear" // Linear(D, D)
	ProjectorMLP    = "mlp"    // Linear-ReLU-Linear-ReLU-Linear, all D x D
)

// Fusion kinds (Arch.Fusion).
const (
	FusionConcat = "concat" // Linear([x; y]) -> K
	FusionSum    = "sum"    // Linear(x) + Linear(y) -> K
	FusionFiLM   = "film"   // gamma, beta = Linear(x); Linear(gamma*y + beta) -> K
	FusionGated  = "gated"  // Linear(sigmoid(Linear x) * Linear y) -> K
)

// Encoder kinds (Arch.Encoders).
const (
	EncoderMLP = "mlp" // dense layers over a feature vector (the default)
	EncoderCNN = "cnn" // residual CNN over images or spectrograms (see CNN)
)

// CNN configures a residual convolutional encoder. Convolutions are 3x3
// with zero padding 1, computed as im2col matrix products (fast on the Go
// backend); each stage after the first starts with a stride-2 convolution
// that halves H and W; features are averaged over space (and over frames),
// then a dense layer maps them to D. There is no batch normalisation:
// its running statistics do not average well across clients.
type CNN struct {
	// Input is one image's shape [C, H, W] (a spectrogram is [1, F, T]).
	Input [3]int
	// Frames is the number of images per sample (frames of a clip, laid
	// out [Frames, C, H, W]); their features are averaged. Default 1.
	Frames int
	// Channels lists the stages' widths. Default [16, 32, 64].
	Channels []int
	// Blocks is the number of residual blocks per stage. Default 1.
	Blocks int
	// StemStride is the stride of the first convolution (1 or 2; 0 means
	// 1). A stride-2 stem, as in ResNet, quarters the cost of everything
	// after it.
	StemStride int
}

// DefaultCNN returns the default CNN for images of shape input.
func DefaultCNN(input [3]int) CNN {
	return CNN{Input: input, Frames: 1, Channels: []int{16, 32, 64}, Blocks: 1, StemStride: 2}
}

// size is the number of input values per sample.
func (c *CNN) size() int { return max(c.Frames, 1) * c.Input[0] * c.Input[1] * c.Input[2] }

// Parts of a modality branch; every parameter belongs to exactly one (see ParamInfo.Part).
const (
	PartEncoder      = "encoder"
	PartSelf         = "self"
	PartInfiltration = "infiltration"
	PartClassifier   = "classifier"
	PartFusion       = "fusion"
)

// Arch describes the FedCMI network of M >= 2 modalities (method note,
// "Model"; docs/methods.md, "More than two modalities"): per modality an
// MLP encoder E_m, a self projector S_m, an infiltration projector I_m and
// a classifier C_m shared by both projectors; plus a fusion head F over M
// slots. The zero value is not valid; start from DefaultArch.
type Arch struct {
	// Modalities names the M modalities, e.g. {"audio", "visual"}. They
	// prefix every parameter name ("audio/encoder/0/weights").
	Modalities []string
	// InputDims is the feature dimension of each modality's input vectors.
	InputDims []int
	// NumClasses is K, the number of classes.
	NumClasses int
	// Encoders chooses each modality's encoder: EncoderMLP (default when
	// empty) or EncoderCNN. nil means EncoderMLP for every modality.
	Encoders []string
	// Hidden lists the widths of an MLP encoder's hidden layers (may be
	// empty: then the encoder is a single Linear(input, D) + ReLU).
	// Default [128].
	Hidden []int
	// CNN configures modality m's encoder when Encoders[m] is EncoderCNN;
	// InputDims[m] must then equal Frames*C*H*W. nil when no modality has
	// a CNN encoder.
	CNN []CNN
	// EmbedDim is D, the width of encoder outputs and projectors. Default 64.
	EmbedDim int
	// Projector is ProjectorLinear (default) or ProjectorMLP.
	Projector string
	// Fusion is one of FusionConcat (default), FusionSum, FusionFiLM,
	// FusionGated. FiLM and gated fusion condition one modality on the
	// other, so they need M = 2.
	Fusion string
}

// MaxModalities is the largest number of modalities an Arch may have.
const MaxModalities = 8

// NumModalities is M, the number of modalities.
func (a *Arch) NumModalities() int { return len(a.Modalities) }

// Encoder returns modality m's encoder kind (EncoderMLP where Encoders
// leaves it empty).
func (a *Arch) Encoder(m int) string {
	if m < len(a.Encoders) && a.Encoders[m] != "" {
		return a.Encoders[m]
	}
	return EncoderMLP
}

// hasCNN reports whether some modality has a CNN encoder.
func (a *Arch) hasCNN() bool {
	return slices.Contains(a.Encoders, EncoderCNN)
}

// Clone returns a deep copy of a.
func (a Arch) Clone() Arch {
	a.Modalities = slices.Clone(a.Modalities)
	a.InputDims = slices.Clone(a.InputDims)
	a.Encoders = slices.Clone(a.Encoders)
	a.Hidden = slices.Clone(a.Hidden)
	cnn := slices.Clone(a.CNN)
	for i := range cnn {
		cnn[i].Channels = slices.Clone(cnn[i].Channels)
	}
	a.CNN = cnn
	return a
}

// DefaultArch returns the default architecture for the given inputs.
func DefaultArch(modalities []string, inputDims []int, numClasses int) Arch {
	return Arch{
		Modalities: slices.Clone(modalities),
		InputDims:  slices.Clone(inputDims),
		NumClasses: numClasses,
		Hidden:     []int{128},
		EmbedDim:   64,
		Projector:  ProjectorLinear,
		Fusion:     FusionConcat,
	}
}

// Validate reports the first invalid field.
func (a *Arch) Validate() error {
	nm := len(a.Modalities)
	if nm < 2 || nm > MaxModalities {
		return fmt.Errorf("model: %d modalities %q: want 2 to %d", nm, a.Modalities, MaxModalities)
	}
	if len(a.InputDims) != nm {
		return fmt.Errorf("model: %d input dimensions for %d modalities", len(a.InputDims), nm)
	}
	if a.Encoders != nil && len(a.Encoders) != nm {
		return fmt.Errorf("model: %d encoders for %d modalities", len(a.Encoders), nm)
	}
	for m, name := range a.Modalities {
		if i := slices.Index(a.Modalities, name); i < m {
			return fmt.Errorf("model: modalities %d and %d are both named %q", i, m, name)
		}
		if name == "" || strings.Contains(name, "/") || name == PartFusion {
			return fmt.Errorf("model: modality %d name %q: must be non-empty, without '/', and not %q", m, name, PartFusion)
		}
		if a.InputDims[m] < 1 {
			return fmt.Errorf("model: modality %q: input dimension %d < 1", name, a.InputDims[m])
		}
		switch a.Encoder(m) {
		case EncoderMLP:
		case EncoderCNN:
			if m >= len(a.CNN) {
				return fmt.Errorf("model: modality %q: CNN encoder without a CNN configuration", name)
			}
			c := &a.CNN[m]
			if c.Input[0] < 1 || c.Input[1] < 1 || c.Input[2] < 1 || c.Frames < 1 {
				return fmt.Errorf("model: modality %q: CNN input %v x %d frames: every dimension must be >= 1", name, c.Input, c.Frames)
			}
			if c.size() != a.InputDims[m] {
				return fmt.Errorf("model: modality %q: CNN input %d frames x %v = %d values, but the data has %d", name, c.Frames, c.Input, c.size(), a.InputDims[m])
			}
			if c.StemStride < 0 || c.StemStride > 2 {
				return fmt.Errorf("model: modality %q: CNN stem stride %d: want 1 or 2", name, c.StemStride)
			}
			if len(c.Channels) == 0 || slices.Min(c.Channels) < 1 || c.Blocks < 0 {
				return fmt.Errorf("model: modality %q: CNN channels %v and blocks %d: need at least one stage of width >= 1 and blocks >= 0", name, c.Channels, c.Blocks)
			}
		default:
			return fmt.Errorf("model: modality %q: encoder %q: want %q or %q", name, a.Encoder(m), EncoderMLP, EncoderCNN)
		}
	}
	if a.NumClasses < 2 {
		return fmt.Errorf("model: num classes %d < 2", a.NumClasses)
	}
	for i, h := range a.Hidden {
		if h < 1 {
			return fmt.Errorf("model: hidden layer %d width %d < 1", i, h)
		}
	}
	if a.EmbedDim < 1 {
		return fmt.Errorf("model: embed dim %d < 1", a.EmbedDim)
	}
	if a.Projector != ProjectorLinear && a.Projector != ProjectorMLP {
		return fmt.Errorf("model: projector %q: want %q or %q", a.Projector, ProjectorLinear, ProjectorMLP)
	}
	switch a.Fusion {
	case FusionConcat, FusionSum:
	case FusionFiLM, FusionGated:
		if nm != 2 {
			return fmt.Errorf("model: fusion %q conditions one modality on the other and needs 2 modalities, not %d: use concat or sum", a.Fusion, nm)
		}
	default:
		return fmt.Errorf("model: fusion %q: want one of concat, sum, film, gated", a.Fusion)
	}
	return nil
}

// ParamInfo describes one parameter tensor of an Arch.
type ParamInfo struct {
	// Name is the parameter's identity, on disk and on the wire:
	// "<modality>/<part>/<layer>/{weights,biases}" or "fusion/...".
	Name string
	// Shape is [in, out] for weights and [out] for biases.
	Shape []int
	// Side is the modality index (0..M-1) the parameter belongs to, or -1
	// for the fusion head. Aggregation averages a side over the clients that
	// hold that modality.
	Side int
	// Part is one of PartEncoder, PartSelf, PartInfiltration, PartClassifier, PartFusion.
	Part string
	// FanIn is the input width of the layer, for initialisation.
	FanIn int
	// Init is the initialisation: InitDefault, InitHe or InitZero.
	Init string
}

// Size is the number of elements.
func (p ParamInfo) Size() int {
	n := 1
	for _, d := range p.Shape {
		n *= d
	}
	return n
}

// Personal reports whether the parameter stays on the client when
// personalised branches are on (infiltration projectors and classifiers).
func (p ParamInfo) Personal() bool {
	return p.Part == PartInfiltration || p.Part == PartClassifier
}

// linearLayer is one dense layer of the layout.
type linearLayer struct {
	prefix  string
	in, out int
	init    string // InitDefault, InitHe or InitZero
}

// Initialisations (ParamInfo.Init).
const (
	// InitDefault is PyTorch's nn.Linear default: weights and biases
	// ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
	InitDefault = ""
	// InitHe is He (Kaiming) uniform for ReLU layers: weights
	// ~ U(-sqrt(6/fan_in), sqrt(6/fan_in)), biases 0. Without batch
	// normalisation, the default's smaller variance shrinks activations by
	// about 2.4x per layer and a CNN of ten layers outputs constants.
	InitHe = "he"
	// InitZero starts weights and biases at 0: the last convolution of a
	// residual block, so that every block starts as the identity.
	InitZero = "zero"
)

// modalityLayers lists the dense layers of one part of modality m.
func (a *Arch) partLayers(m int, part string) []linearLayer {
	name := a.Modalities[m]
	d := a.EmbedDim
	var widths []int
	switch part {
	case PartEncoder:
		if a.Encoder(m) == EncoderCNN {
			return a.cnnLayers(m)
		}
		widths = append([]int{a.InputDims[m]}, a.Hidden...)
		widths = append(widths, d)
	case PartSelf, PartInfiltration:
		widths = []int{d, d}
		if a.Projector == ProjectorMLP {
			widths = []int{d, d, d, d}
		}
	case PartClassifier:
		return []linearLayer{{prefix: name + "/" + part, in: d, out: a.NumClasses}}
	}
	layers := make([]linearLayer, len(widths)-1)
	for i := range layers {
		layers[i] = linearLayer{prefix: fmt.Sprintf("%s/%s/%d", name, part, i), in: widths[i], out: widths[i+1]}
	}
	return layers
}

// cnnLayers lists the layers of modality m's CNN encoder, in order: stem,
// then per stage an optional stride-2 "down" convolution and the residual
// blocks' two convolutions, then the dense output layer. A 3x3 convolution
// from Cin to Cout channels is stored im2col-style as [9*Cin, Cout], rows
// ordered (kernel row, kernel column, input channel).
func (a *Arch) cnnLayers(m int) []linearLayer {
	c := &a.CNN[m]
	pre := a.Modalities[m] + "/" + PartEncoder
	ch := c.Channels
	layers := []linearLayer{{pre + "/stem", 9 * c.Input[0], ch[0], InitHe}}
	for s := range ch {
		if s > 0 {
			layers = append(layers, linearLayer{fmt.Sprintf("%s/s%d/down", pre, s), 9 * ch[s-1], ch[s], InitHe})
		}
		for b := range c.Blocks {
			layers = append(layers,
				linearLayer{fmt.Sprintf("%s/s%d/b%d/conv1", pre, s, b), 9 * ch[s], ch[s], InitHe},
				linearLayer{fmt.Sprintf("%s/s%d/b%d/conv2", pre, s, b), 9 * ch[s], ch[s], InitZero})
		}
	}
	return append(layers, linearLayer{pre + "/out", ch[len(ch)-1], a.EmbedDim, InitHe})
}

// fusionSlot names slot m of a sum fusion: "x" and "y" for two
// modalities (the names of the two-modality code), else "in<m>".
func (a *Arch) fusionSlot(m int) string {
	if len(a.Modalities) == 2 {
		return [2]string{"fusion/x", "fusion/y"}[m]
	}
	return fmt.Sprintf("fusion/in%d", m)
}

// fusionLayers lists the dense layers of the fusion head.
func (a *Arch) fusionLayers() []linearLayer {
	d, k := a.EmbedDim, a.NumClasses
	switch a.Fusion {
	case FusionSum:
		out := make([]linearLayer, len(a.Modalities))
		for m := range out {
			out[m] = linearLayer{prefix: a.fusionSlot(m), in: d, out: k}
		}
		return out
	case FusionFiLM:
		return []linearLayer{{prefix: "fusion/film", in: d, out: 2 * d}, {prefix: "fusion/out", in: d, out: k}}
	case FusionGated:
		return []linearLayer{{prefix: "fusion/x", in: d, out: d}, {prefix: "fusion/y", in: d, out: d}, {prefix: "fusion/out", in: d, out: k}}
	default:
		return []linearLayer{{prefix: "fusion/out", in: len(a.Modalities) * d, out: k}}
	}
}

// Layout lists every parameter in a fixed order: modality 0's encoder, self
// projector, infiltration projector, classifier; then modality 1's, and so
// on; then the fusion head. The order is the order of Params.
func (a *Arch) Layout() []ParamInfo {
	var out []ParamInfo
	add := func(l linearLayer, side int, part string) {
		out = append(out,
			ParamInfo{Name: l.prefix + "/weights", Shape: []int{l.in, l.out}, Side: side, Part: part, FanIn: l.in, Init: l.init},
			ParamInfo{Name: l.prefix + "/biases", Shape: []int{l.out}, Side: side, Part: part, FanIn: l.in, Init: l.init})
	}
	for m := range a.Modalities {
		for _, part := range []string{PartEncoder, PartSelf, PartInfiltration, PartClassifier} {
			for _, l := range a.partLayers(m, part) {
				add(l, m, part)
			}
		}
	}
	for _, l := range a.fusionLayers() {
		add(l, -1, PartFusion)
	}
	return out
}

// Tensor is a named float32 tensor, row-major.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// Params is the full set of a model's parameters, in Layout order.
type Params []Tensor

// Clone returns a deep copy.
func (p Params) Clone() Params {
	out := make(Params, len(p))
	for i, t := range p {
		out[i] = Tensor{Name: t.Name, Shape: slices.Clone(t.Shape), Data: slices.Clone(t.Data)}
	}
	return out
}

// NumElements is the total number of scalars.
func (p Params) NumElements() int {
	n := 0
	for _, t := range p {
		n += len(t.Data)
	}
	return n
}

// Init returns freshly initialised parameters drawn from seed, each as its
// ParamInfo.Init says: PyTorch's nn.Linear default for MLP, projector,
// classifier and fusion layers; He uniform for CNN layers, with the last
// convolution of each residual block at zero.
func (a *Arch) Init(seed uint64) (Params, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x6d6f64656c))
	layout := a.Layout()
	p := make(Params, len(layout))
	for i, info := range layout {
		bound := 1 / math.Sqrt(float64(info.FanIn))
		switch {
		case info.Init == InitZero, info.Init == InitHe && len(info.Shape) == 1:
			bound = 0
		case info.Init == InitHe:
			bound = math.Sqrt(6 / float64(info.FanIn))
		}
		data := make([]float32, info.Size())
		for j := range data {
			data[j] = float32((2*rng.Float64() - 1) * bound)
		}
		p[i] = Tensor{Name: info.Name, Shape: slices.Clone(info.Shape), Data: data}
	}
	return p, nil
}

// Check verifies that p matches the layout of a: same names in the same
// order, same shapes, finite values. The error names the first culprit.
func (a *Arch) Check(p Params) error {
	layout := a.Layout()
	if len(p) != len(layout) {
		return fmt.Errorf("model: %d parameter tensors, architecture has %d", len(p), len(layout))
	}
	for i, info := range layout {
		t := p[i]
		if t.Name != info.Name {
			return fmt.Errorf("model: parameter %d is %q, want %q", i, t.Name, info.Name)
		}
		if !slices.Equal(t.Shape, info.Shape) {
			return fmt.Errorf("model: parameter %q has shape %v, want %v", t.Name, t.Shape, info.Shape)
		}
		if len(t.Data) != info.Size() {
			return fmt.Errorf("model: parameter %q has %d values, shape %v needs %d", t.Name, len(t.Data), t.Shape, info.Size())
		}
		if !allFinite(t.Data) {
			for j, v := range t.Data {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					return fmt.Errorf("model: parameter %q value %d is %v", t.Name, j, v)
				}
			}
		}
	}
	return nil
}

// allFinite reports whether no value is NaN or infinite: v*0 is 0 for a
// finite v and NaN otherwise, so the sum is NaN exactly when one is not
// finite (a branch-free loop; Check runs on every model a client receives).
func allFinite(data []float32) bool {
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(data); i += 4 {
		s0 += data[i] * 0
		s1 += data[i+1] * 0
		s2 += data[i+2] * 0
		s3 += data[i+3] * 0
	}
	for ; i < len(data); i++ {
		s0 += data[i] * 0
	}
	return s0+s1+s2+s3 == 0
}
