package vision

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestCenterCrop(t *testing.T) {
	// 1 x 5 x 5 with values 0..24.
	five := &Image{C: 1, H: 5, W: 5, Pix: make([]float32, 25)}
	for i := range five.Pix {
		five.Pix[i] = float32(i)
	}
	tests := []struct {
		name string
		in   *Image
		h, w int
		want []float32
	}{
		// (5-2)/2 = 1.5 rounds to even: 2.
		{"odd margin rounds half to even", five, 2, 2, []float32{12, 13, 17, 18}},
		// (5-3)/2 = 1.
		{"even margin", five, 3, 1, []float32{7, 12, 17}},
		// (5-4)/2 = 0.5 rounds to 0.
		{"half rounds down to even", five, 4, 1, []float32{2, 7, 12, 17}},
		{"same size", five, 5, 5, five.Pix},
		// 1x2 padded to 4x3: (4-1)/2 = 1 row above, 2 below; (3-2)/2 = 0
		// columns left, 1 right.
		{"padding", img(1, 1, 2, 1, 2), 4, 3, []float32{0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CenterCrop{tt.h, tt.w}.Apply(tt.in, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got.H != tt.h || got.W != tt.w || !near(got.Pix, tt.want, 0) {
				t.Errorf("CenterCrop = %dx%d %v, want %dx%d %v", got.H, got.W, got.Pix, tt.h, tt.w, tt.want)
			}
		})
	}
}

func TestRandomResizedCropFallback(t *testing.T) {
	// With a scale range no region can satisfy (area 2 to 3 times the
	// image's), every attempt fails and the centred fallback is used.
	impossible := RandomResizedCrop{Scale: [2]float64{2, 3}}
	tests := []struct {
		name            string
		height, width   int
		top, left, h, w int
	}{
		// Tall: ratio 10/100 < 3/4, so w = 10, h = round(10/0.75) = 13,
		// top = (100-13)/2 = 43.
		{"tall", 100, 10, 43, 0, 13, 10},
		// Wide: ratio 10 > 4/3, so h = 10, w = round(10*4/3) = 13.
		{"wide", 10, 100, 0, 43, 10, 13},
		// Square: within the ratio range, the whole image.
		{"square", 7, 7, 0, 0, 7, 7},
		// Tall with rounding: w = 3, h = round(3/0.75) = 4, top = (9-4)/2 = 2.
		{"tall small", 9, 3, 2, 0, 4, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 1))
			top, left, h, w, err := impossible.Params(rng, tt.height, tt.width)
			if err != nil {
				t.Fatal(err)
			}
			if top != tt.top || left != tt.left || h != tt.h || w != tt.w {
				t.Errorf("Params = (%d, %d, %d, %d), want (%d, %d, %d, %d)", top, left, h, w, tt.top, tt.left, tt.h, tt.w)
			}
		})
	}
}

func TestRandomResizedCropParams(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	// Full scale and unit ratio on a square image: always the whole image.
	whole := RandomResizedCrop{Scale: [2]float64{1, 1}, Ratio: [2]float64{1, 1}}
	for range 20 {
		top, left, h, w, err := whole.Params(rng, 8, 8)
		if err != nil || top != 0 || left != 0 || h != 8 || w != 8 {
			t.Fatalf("Params = (%d, %d, %d, %d, %v), want the whole 8x8 image", top, left, h, w, err)
		}
	}
	// Default ranges: every region lies inside the image, and successful
	// draws respect the ranges up to rounding.
	var t0 RandomResizedCrop
	const H, W = 120, 160
	var sumFrac float64
	const n = 4000
	for range n {
		top, left, h, w, err := t0.Params(rng, H, W)
		if err != nil {
			t.Fatal(err)
		}
		if top < 0 || left < 0 || h < 1 || w < 1 || top+h > H || left+w > W {
			t.Fatalf("region (%d, %d, %d, %d) outside %dx%d", top, left, h, w, H, W)
		}
		frac := float64(h*w) / (H * W)
		r := float64(w) / float64(h)
		if frac < 0.07 || frac > 1 || r < 0.70 || r > 1.42 {
			t.Fatalf("region %dx%d: area fraction %.3f, ratio %.3f out of range", h, w, frac, r)
		}
		sumFrac += frac
	}
	// Fitting regions have an area fraction uniform in (0.08, 1), with
	// large ones rejected more often: the mean lies well inside.
	if mean := sumFrac / n; mean < 0.35 || mean > 0.6 {
		t.Errorf("mean area fraction %.3f, want about 0.5", mean)
	}
	// Same seed, same regions.
	a := rand.New(rand.NewPCG(9, 9))
	b := rand.New(rand.NewPCG(9, 9))
	for range 10 {
		t1, l1, h1, w1, _ := t0.Params(a, 50, 70)
		t2, l2, h2, w2, _ := t0.Params(b, 50, 70)
		if t1 != t2 || l1 != l2 || h1 != h2 || w1 != w2 {
			t.Fatal("same seed gave different regions")
		}
	}
}

func TestRandomResizedCropErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	m := img(1, 2, 2, 0, 0, 0, 0)
	tests := []struct {
		name string
		t    RandomResizedCrop
		rng  *rand.Rand
		want error
	}{
		{"nil rng", RandomResizedCrop{H: 1, W: 1}, nil, ErrInvalid},
		{"reversed scale", RandomResizedCrop{H: 1, W: 1, Scale: [2]float64{1, 0.5}}, rng, ErrInvalid},
		{"zero ratio", RandomResizedCrop{H: 1, W: 1, Ratio: [2]float64{0, 1}}, rng, ErrInvalid},
		{"NaN scale", RandomResizedCrop{H: 1, W: 1, Scale: [2]float64{math.NaN(), 1}}, rng, ErrInvalid},
		{"infinite ratio", RandomResizedCrop{H: 1, W: 1, Ratio: [2]float64{1, math.Inf(1)}}, rng, ErrInvalid},
		{"zero size", RandomResizedCrop{}, rng, ErrInvalid},
		{"too large", RandomResizedCrop{H: 1 << 16, W: 1 << 16}, rng, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.t.Apply(m, tt.rng)
			checkErr(t, err, tt.want)
		})
	}
}

func TestRandomHorizontalFlip(t *testing.T) {
	m := img(1, 1, 2, 1, 2)
	rng := rand.New(rand.NewPCG(5, 6))
	flipped := func(p float64) int {
		n := 0
		for range 2000 {
			got, err := RandomHorizontalFlip{P: p}.Apply(m, rng)
			if err != nil {
				t.Fatal(err)
			}
			if got.Pix[0] == 2 {
				n++
			}
		}
		return n
	}
	if n := flipped(0); n != 0 {
		t.Errorf("P=0 flipped %d of 2000", n)
	}
	if n := flipped(1); n != 2000 {
		t.Errorf("P=1 flipped %d of 2000", n)
	}
	// Binomial(2000, 0.5): standard deviation 22; allow 5 of them.
	if n := flipped(0.5); n < 890 || n > 1110 {
		t.Errorf("P=0.5 flipped %d of 2000", n)
	}
	for _, p := range []float64{-0.1, 1.5, math.NaN()} {
		_, err := RandomHorizontalFlip{P: p}.Apply(m, rng)
		checkErr(t, err, ErrInvalid, "probability")
	}
	_, err := RandomHorizontalFlip{P: 0.5}.Apply(m, nil)
	checkErr(t, err, ErrInvalid, "nil")
}

// constant returns a c x h x w image with every value v.
func constant(c, h, w int, v float32) *Image {
	m := &Image{C: c, H: h, W: w, Pix: make([]float32, c*h*w)}
	for i := range m.Pix {
		m.Pix[i] = v
	}
	return m
}

func TestPipelines(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	m := constant(3, 40, 30, 0.5)
	// Normalised constant: (0.5 - mean) / std per channel.
	want := []float32{(0.5 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (0.5 - 0.406) / 0.225}
	for name, p := range map[string]Pipeline{"train": TrainPipeline(16), "eval": EvalPipeline(16)} {
		got, err := p.Apply(m, rng)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.C != 3 || got.H != 16 || got.W != 16 {
			t.Fatalf("%s: shape %dx%dx%d, want 3x16x16", name, got.C, got.H, got.W)
		}
		for c := range 3 {
			for _, v := range got.Pix[c*256 : (c+1)*256] {
				if math.Abs(float64(v-want[c])) > 1e-5 {
					t.Fatalf("%s: channel %d value %v, want %v", name, c, v, want[c])
				}
			}
		}
	}
	if m.Pix[0] != 0.5 {
		t.Error("a pipeline modified its input")
	}
	// Eval on a gradient: shorter side 30 -> 16, 40 -> 21, centre crop
	// 16 rows from row round(5/2) = 2.
	g, err := FromImage(gradient(30, 40), 3)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Pipeline{ResizeShorter{16}, CenterCrop{16, 16}}.Apply(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := g.ResizeShorter(16)
	c, _ := r.Crop(2, 0, 16, 16)
	if r.H != 21 || !near(got.Pix, c.Pix, 0) {
		t.Errorf("eval pipeline differs from ResizeShorter(16) + Crop(2, 0, 16, 16)")
	}
	// An empty pipeline returns its input.
	if same, err := Pipeline(nil).Apply(m, nil); err != nil || same != m {
		t.Errorf("empty pipeline: %v, %v", same, err)
	}
}

func TestPipelineErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	grey := constant(1, 8, 8, 0.5)
	_, err := TrainPipeline(4).Apply(grey, rng)
	checkErr(t, err, ErrInvalid, "step 2", "vision.Normalize", "3 means")
	if strings.Count(err.Error(), "vision:") != 1 {
		t.Errorf("error %q repeats the prefix", err)
	}
	_, err = Pipeline{nil}.Apply(grey, rng)
	checkErr(t, err, ErrInvalid, "step 0 is nil")
	_, err = TrainPipeline(4).Apply(nil, rng)
	checkErr(t, err, ErrInvalid, "nil image")
	_, err = TrainPipeline(0).Apply(constant(3, 4, 4, 0), rng)
	checkErr(t, err, ErrInvalid, "step 0")
	_, err = EvalPipeline(4).Apply(&Image{C: 3, H: 4, W: 4}, rng)
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("invalid image: %v", err)
	}
}

func TestResizeTransformShortcuts(t *testing.T) {
	m := constant(1, 4, 6, 0.1)
	for _, tr := range []Transform{Resize{4, 6}, ResizeShorter{4}, CenterCrop{4, 6}} {
		got, err := tr.Apply(m, nil)
		if err != nil || got != m {
			t.Errorf("%T on an image of its size: %v, %v; want the input back", tr, got, err)
		}
	}
	got, err := Resize{2, 3}.Apply(m, nil)
	if err != nil || got.H != 2 || got.W != 3 {
		t.Errorf("Resize{2, 3} = %v, %v", got, err)
	}
}
