package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // see network.go
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/nn"
)

// TestConvMatchesDirect checks the im2col convolution against a direct
// loop over output pixels, kernel taps and channels.
func TestConvMatchesDirect(t *testing.T) {
	const nb, hh, ww, cin, cout = 2, 5, 4, 3, 4
	rng := rand.New(rand.NewPCG(1, 2))
	randn := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	x, w, bias := randn(nb*hh*ww*cin), randn(9*cin*cout), randn(cout)
	for _, stride := range []int{1, 2} {
		exec := MustNewExec(backend(t), func(xn, wn, bn *Node) *Node {
			n := &network{p: map[string]*Node{"c/weights": wn, "c/biases": bn}}
			y, g := n.conv("c", toFeatureMap(TransposeAllAxes(xn, 0, 3, 1, 2)), grid{nb, hh, ww}, stride, activation.TypeNone)
			return TransposeAllAxes(Reshape(y, cout, g.n, g.h+2, g.w+2), 1, 2, 3, 0)
		})
		out := exec.MustExec(tensors.FromFlatDataAndDimensions(x, nb, hh, ww, cin),
			tensors.FromFlatDataAndDimensions(w, 9*cin, cout), tensors.FromFlatDataAndDimensions(bias, cout))[0]
		ho, wo := (hh-1)/stride+1, (ww-1)/stride+1
		if d := out.Shape().Dimensions; d[1] != ho+2 || d[2] != wo+2 || d[3] != cout {
			t.Fatalf("stride %d: output shape %v", stride, d)
		}
		got := tensors.MustCopyFlatData[float32](out)
		// The next convolution reads the border as its zero padding.
		for b := range nb {
			for i := range ho + 2 {
				for j := range wo + 2 {
					for o := range cout {
						if v := got[((b*(ho+2)+i)*(wo+2)+j)*cout+o]; (i == 0 || j == 0 || i == ho+1 || j == wo+1) && v != 0 {
							t.Fatalf("stride %d: border out[%d,%d,%d,%d] = %v, want 0", stride, b, i, j, o, v)
						}
					}
				}
			}
		}
		for b := range nb {
			for i := range ho {
				for j := range wo {
					for o := range cout {
						want := float64(bias[o])
						for di := range 3 {
							for dj := range 3 {
								y, xx := i*stride+di-1, j*stride+dj-1
								if y < 0 || y >= hh || xx < 0 || xx >= ww {
									continue // zero padding
								}
								for c := range cin {
									want += float64(x[((b*hh+y)*ww+xx)*cin+c]) * float64(w[((di*3+dj)*cin+c)*cout+o])
								}
							}
						}
						g := float64(got[((b*(ho+2)+i+1)*(wo+2)+j+1)*cout+o])
						if math.Abs(g-want) > 1e-4 {
							t.Fatalf("stride %d out[%d,%d,%d,%d] = %v, direct %v", stride, b, i, j, o, g, want)
						}
					}
				}
			}
		}
	}
}

// TestPatchProductGradient checks patchProduct's own gradient against
// GoMLX's autodiff of the fused dense and border mask it replaces, for the
// loss sum(c * y) with random c and a random 0/1 mask: the same sums in
// another order, so equal to float32 rounding. Both forms of the weights'
// gradient are covered (Cout at most dzLeftMaxCout and above it).
// (TestCNNStepGradient checks a whole CNN step against finite differences.)
func TestPatchProductGradient(t *testing.T) {
	const k, q = 19, 70
	for _, tc := range []struct {
		cout int
		act  activation.Type
	}{
		{5, activation.TypeNone},
		{5, activation.TypeRelu},
		{dzLeftMaxCout + 3, activation.TypeNone},
		{dzLeftMaxCout + 3, activation.TypeRelu},
	} {
		t.Run(fmt.Sprintf("cout%d-%s", tc.cout, tc.act), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			w, p, c := randnTensor(rng, tc.cout, k), randnTensor(rng, k, q), randnTensor(rng, tc.cout, q)
			m := make([]float32, q)
			for i := range m {
				m[i] = float32(rng.IntN(2))
			}
			mask := tensors.FromFlatDataAndDimensions(m, 1, q)
			grads := func(custom bool) [][]float32 {
				exec := MustNewExec(backend(t), func(wn, pn, cn, mn *Node) []*Node {
					var y *Node
					if custom {
						y = patchProduct(wn, pn, mn, tc.act)
					} else {
						y = Mul(nn.Dense(wn, pn, nil, compute.DenseLayoutInputOutputs, tc.act), mn)
					}
					return Gradient(ReduceAllSum(Mul(y, cn)), wn, pn)
				})
				defer exec.Finalize()
				var out [][]float32
				for _, g := range exec.MustExec(w, p, c, mask) {
					out = append(out, tensors.MustCopyFlatData[float32](g))
				}
				return out
			}
			got, want := grads(true), grads(false)
			for i, name := range []string{"w", "p"} {
				zero := 0
				for j := range want[i] {
					if want[i][j] == 0 {
						zero++
					}
					if d := math.Abs(float64(got[i][j] - want[i][j])); d > 1e-4*(1+math.Abs(float64(want[i][j]))) {
						t.Fatalf("d%s[%d] = %v, autodiff %v", name, j, got[i][j], want[i][j])
					}
				}
				if zero == len(want[i]) {
					t.Fatalf("d%s is all zeros", name)
				}
			}
		})
	}
}

// TestReluVJP checks both forms of patchProduct's ReLU gradient (the Go
// backend always takes the fused one) against dy * (y > 0) computed here,
// on outputs with exact zeros, where the gradient must be 0.
func TestReluVJP(t *testing.T) {
	y := []float32{-2, 0, 0.5, 0, 3, -0.1, 1e-30, 7}
	dy := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	want := []float32{0, 0, 3, 0, 5, 0, 7, 8}
	for _, fused := range []bool{true, false} {
		t.Run(fmt.Sprintf("fused=%v", fused), func(t *testing.T) {
			if fused && !backend(t).Capabilities().Operations[compute.OpTypeFusedActivationVJP] {
				t.Skip("the backend has no fused activation gradient")
			}
			got := MustExecOnce(backend(t), func(yn, dyn *Node) *Node { return reluVJP(yn, dyn, fused) }, y, dy)
			if g := tensors.MustCopyFlatData[float32](got); !slices.Equal(g, want) {
				t.Errorf("got %v, want %v", g, want)
			}
		})
	}
}

// randnTensor returns a float32 tensor of the given dimensions with
// standard normal values drawn from rng.
func randnTensor(rng *rand.Rand, dims ...int) *tensors.Tensor {
	size := 1
	for _, d := range dims {
		size *= d
	}
	v := make([]float32, size)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return tensors.FromFlatDataAndDimensions(v, dims...)
}

// TestPadGradient checks pad's own gradient against GoMLX's autodiff of
// Pad, for the loss sum(c * pad(x)) with random c: both copy the same
// values, so they must be equal exactly.
func TestPadGradient(t *testing.T) {
	for _, tc := range []struct {
		name string
		dims []int
		axes []PadAxis
	}{
		{"1d margins", []int{11}, []PadAxis{{Start: 3, End: 5}}},
		{"3d end only", []int{2, 3, 4}, []PadAxis{{}, {End: 1}, {End: 2}}},
		{"2d both", []int{3, 5}, []PadAxis{{Start: 1, End: 2}, {Start: 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, 6))
			padded := slices.Clone(tc.dims)
			for i, a := range tc.axes {
				padded[i] += a.Start + a.End
			}
			x, c := randnTensor(rng, tc.dims...), randnTensor(rng, padded...)
			grad := func(custom bool) []float32 {
				exec := MustNewExec(backend(t), func(xn, cn *Node) *Node {
					fill := ScalarOne(xn.Graph(), xn.DType())
					var y *Node
					if custom {
						y = pad(xn, fill, tc.axes...)
					} else {
						y = Pad(xn, fill, tc.axes...)
					}
					return Gradient(ReduceAllSum(Mul(y, cn)), xn)[0]
				})
				defer exec.Finalize()
				return tensors.MustCopyFlatData[float32](exec.MustExec(x, c)[0])
			}
			got, want := grad(true), grad(false)
			if !slices.Equal(got, want) {
				t.Fatalf("gradient %v, autodiff of Pad %v", got, want)
			}
		})
	}
}

// cnnArch has a two-frame CNN on modality 0 and an MLP on modality 1.
func cnnArch() Arch {
	a := tinyArch()
	a.Encoders, a.CNN = make([]string, 2), make([]CNN, 2)
	a.Encoders[0] = EncoderCNN
	a.CNN[0] = CNN{Input: [3]int{1, 5, 4}, Frames: 2, Channels: []int{3, 4}, Blocks: 1, StemStride: 2}
	a.InputDims[0] = 40
	return a
}

func TestCNNStepGradient(t *testing.T) {
	arch := cnnArch()
	checkStepGradient(t, arch, toyBatch(arch, 6, 3))
}

func TestCNNValidate(t *testing.T) {
	a := cnnArch()
	a.InputDims[0] = 41
	if a.Validate() == nil {
		t.Error("input size mismatch accepted")
	}
	a = cnnArch()
	a.CNN[0].Channels = nil
	if a.Validate() == nil {
		t.Error("CNN without stages accepted")
	}
	a = cnnArch()
	a.Encoders[1] = "transformer"
	if a.Validate() == nil {
		t.Error("unknown encoder accepted")
	}
}

// twoCNNArch has a CNN encoder (one frame, one block per stage, 10
// classes) on each of two modalities, of images shaped in[m].
func twoCNNArch(in [2][3]int, channels []int, stem int) Arch {
	dims := make([]int, 2)
	cnn := make([]CNN, 2)
	for m := range 2 {
		dims[m] = in[m][0] * in[m][1] * in[m][2]
		cnn[m] = CNN{Input: in[m], Frames: 1, Channels: channels, Blocks: 1, StemStride: stem}
	}
	arch := DefaultArch([]string{"audio", "visual"}, dims, 10)
	arch.Encoders = []string{EncoderCNN, EncoderCNN}
	arch.CNN = cnn
	return arch
}

// BenchmarkCNNStep is one FedCMI training step (infiltration and proximal
// term on) of CNN encoders on both sides, batch 16, at two sizes: "small"
// is the audio-visual digits scale (a 1x64x48 pooled spectrogram, a 1x28x28
// image, channels 8-16-32), "large" a 1x64x64 spectrogram and channels
// 16-32-64 on both sides.
func BenchmarkCNNStep(b *testing.B) {
	for _, tc := range []struct {
		name     string
		in       [2][3]int
		channels []int
		stem     int
	}{
		{"small", [2][3]int{{1, 64, 48}, {1, 28, 28}}, []int{8, 16, 32}, 1},
		{"small-stem2", [2][3]int{{1, 64, 48}, {1, 28, 28}}, []int{8, 16, 32}, 2},
		{"large", [2][3]int{{1, 64, 64}, {1, 28, 28}}, []int{16, 32, 64}, 1},
		{"large-stem2", [2][3]int{{1, 64, 64}, {1, 28, 28}}, []int{16, 32, 64}, 2},
	} {
		b.Run(tc.name, func(b *testing.B) {
			arch := twoCNNArch(tc.in, tc.channels, tc.stem)
			e, err := NewEngine(backendFor(b, arch), arch, 16)
			if err != nil {
				b.Fatal(err)
			}
			batch := toyBatch(arch, 16, 1)
			l, err := e.NewLocal(mustInit(b, arch, 1), TrainConfig{Has: []bool{true, true}, C1: 2, Momentum: 0.9, WeightDecay: 1e-4, Terms: []Term{Infiltration(1, false), Proximal(1)}})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			benchSteps(b, l, batch)
		})
	}
}

// benchSteps times l's steps on batch after three untimed warm-up steps,
// as ../shared/bench/torch_step.py does: the first step compiles the graph
// and the first few fill the backend's buffer pool.
func benchSteps(b *testing.B, l *Local, batch Batch) {
	for range 3 {
		if _, err := l.Step(batch, 0.01); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, err := l.Step(batch, 0.01); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCNNInputLayout checks that the CNN reads samples laid out as
// [frames, C, H, W] (channel planes, as package data stores images):
// permuting the input's channel planes together with the stem's input
// channels leaves the encoding unchanged, which a wrong reading of the
// layout (say, as [H, W, C]) would not.
func TestCNNInputLayout(t *testing.T) {
	a := tinyArch()
	a.Encoders, a.CNN = make([]string, 2), make([]CNN, 2)
	a.Encoders[0] = EncoderCNN
	a.CNN[0] = CNN{Input: [3]int{3, 4, 5}, Frames: 2, Channels: []int{4, 4}, Blocks: 1, StemStride: 1}
	a.InputDims[0] = 2 * 3 * 4 * 5
	p := jitter(mustInit(t, a, 3), 3)
	const n = 2
	b := toyBatch(a, n, 5)
	perm := []int{2, 0, 1} // new channel c holds old channel perm[c]
	x2 := make([]float32, len(b.X[0]))
	plane := 4 * 5
	for s := range n * 2 { // samples x frames
		for c := range 3 {
			copy(x2[(s*3+c)*plane:(s*3+c+1)*plane], b.X[0][(s*3+perm[c])*plane:(s*3+perm[c]+1)*plane])
		}
	}
	p2 := p.Clone()
	for i, info := range a.Layout() {
		if info.Name != "audio/encoder/stem/weights" {
			continue
		}
		cout := info.Shape[1]
		for k := range 9 { // rows are (kernel tap, input channel)
			for c := range 3 {
				copy(p2[i].Data[(k*3+c)*cout:(k*3+c+1)*cout], p[i].Data[(k*3+perm[c])*cout:(k*3+perm[c]+1)*cout])
			}
		}
	}
	encode := func(params Params, x []float32) []float32 {
		layout := a.Layout()
		exec := MustNewExec(backend(t), func(g *Graph, in []*Node) *Node {
			return newNetwork(&a, layout, in[:len(layout)], false).encode(0, in[len(layout)])
		})
		args := []any{}
		for _, tn := range toTensors(params) {
			args = append(args, tn)
		}
		args = append(args, tensors.FromFlatDataAndDimensions(x, n, a.InputDims[0]))
		return tensors.MustCopyFlatData[float32](exec.MustExec(args...)[0])
	}
	h1, h2 := encode(p, b.X[0]), encode(p2, x2)
	for i := range h1 {
		if math.Abs(float64(h1[i]-h2[i])) > 1e-4 {
			t.Fatalf("encoding %d: %v vs %v: the CNN does not read [frames, C, H, W]", i, h1[i], h2[i])
		}
	}
}

// TestCNNChunksMatchWholeBatch checks that encoding the batch in chunks
// (each through its own copy of the network) gives the step and gradient
// of the whole batch at once.
func TestCNNChunksMatchWholeBatch(t *testing.T) {
	arch := cnnArch()
	b := toyBatch(arch, 7, 3) // 7 samples of 2 frames x 5 x 4: chunks of 2, 2, 2, 1
	p := mustInit(t, arch, 1)
	cfg := TrainConfig{Has: []bool{true, true}, C1: 2, Terms: []Term{Infiltration(1, false)}}
	run := func(chunk int) (Params, StepStats) {
		saved := cnnChunkPositions
		defer func() { cnnChunkPositions = saved }()
		cnnChunkPositions = chunk
		e, err := NewEngine(backendFor(t, arch), arch, 8)
		if err != nil {
			t.Fatal(err)
		}
		return gradientAt(t, e, p, jitter(p, 2), cfg, b)
	}
	whole, wst := run(1 << 30)
	chunked, cst := run(80)
	if math.Abs(wst.Loss-cst.Loss) > 1e-5 {
		t.Errorf("loss %v in chunks, %v whole", cst.Loss, wst.Loss)
	}
	for i := range whole {
		for j := range whole[i].Data {
			if d := math.Abs(float64(whole[i].Data[j] - chunked[i].Data[j])); d > 1e-5 {
				t.Fatalf("%s[%d]: gradient %v in chunks, %v whole", arch.Layout()[i].Name, j, chunked[i].Data[j], whole[i].Data[j])
			}
		}
	}
}

// TestCNNConcurrentSteps trains two clients at once on the backend a CNN
// trained one client at a time gets (nodes in parallel while an execution
// starts alone): compute's Go backend deadlocks when two executions run
// their nodes in parallel at once, which its default mode must never do.
// A hang fails the test after a minute instead of at go test's timeout.
func TestCNNConcurrentSteps(t *testing.T) {
	// Products large enough for the backend to fan them out over its
	// workers (the tiny cnnArch's never deadlock, even under
	// go:ops_parallel).
	arch := twoCNNArch([2][3]int{{1, 64, 48}, {1, 28, 28}}, []int{8, 16}, 2)
	e, err := NewEngine(backendFor(t, arch), arch, 8)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	for c := range 2 {
		l, err := e.NewLocal(mustInit(t, arch, uint64(c+1)), TrainConfig{Has: []bool{true, true}, C1: 2, Momentum: 0.9})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		b := toyBatch(arch, 8, uint64(c+1))
		go func() {
			for range 20 {
				if _, err := l.Step(b, 0.01); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(time.Minute):
			t.Fatal("two clients' steps did not finish in a minute: deadlocked?")
		}
	}
}
