package vision

import (
	"math/rand/v2"
	"testing"
)

// The expected values are worked out by hand from the filter definition:
// output x has centre c = (x + 0.5) * in/out, and input pixel i weight
// triangle((i + 0.5 - c) / max(in/out, 1)), normalised to sum 1, over the
// inputs within the support.
func TestResizeValues(t *testing.T) {
	tests := []struct {
		name string
		in   *Image
		h, w int
		want []float32
	}{
		// in 4, out 2: centre 1 takes pixels 0,1,2 with weights 3/7, 3/7, 1/7.
		{"shrink 4 to 2", img(1, 1, 4, 0, 1, 2, 3), 1, 2, []float32{5.0 / 7, 16.0 / 7}},
		{"shrink vertically", img(1, 4, 1, 0, 1, 2, 3), 2, 1, []float32{5.0 / 7, 16.0 / 7}},
		// in 6, out 4: centre 0.75 takes pixels 0,1 with weights 5/8, 3/8;
		// centre 2.25 takes 1,2,3 with weights 1/3, 5/9, 1/9.
		{"shrink 6 to 4", img(1, 1, 6, 0, 1, 2, 3, 4, 5), 1, 4, []float32{3.0 / 8, 16.0 / 9, 29.0 / 9, 37.0 / 8}},
		// Upscaling is plain bilinear with clamped edges.
		{"grow 2 to 4", img(1, 1, 2, 0, 1), 1, 4, []float32{0, 0.25, 0.75, 1}},
		{"2x2 to 1x1 is the mean", img(1, 2, 2, 1, 2, 3, 4), 1, 1, []float32{2.5}},
		// Antialiasing: an alternating pattern shrunk by 4 averages out
		// (weights 5/28, 7/28, 7/28, 5/28, 3/28, 1/28 around centre 2).
		{"antialias", img(1, 1, 8, 0, 1, 0, 1, 0, 1, 0, 1), 1, 2, []float32{13.0 / 28, 15.0 / 28}},
		{"channels independent", img(2, 1, 4, 0, 1, 2, 3, 3, 2, 1, 0), 1, 2, []float32{5.0 / 7, 16.0 / 7, 16.0 / 7, 5.0 / 7}},
		{"same size copies", img(1, 2, 2, 1, 2, 3, 4), 2, 2, []float32{1, 2, 3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.Resize(tt.h, tt.w)
			if err != nil {
				t.Fatal(err)
			}
			if got.H != tt.h || got.W != tt.w || got.C != tt.in.C {
				t.Fatalf("shape %dx%dx%d, want %dx%dx%d", got.C, got.H, got.W, tt.in.C, tt.h, tt.w)
			}
			if !near(got.Pix, tt.want, 1e-6) {
				t.Errorf("Resize = %v, want %v", got.Pix, tt.want)
			}
		})
	}
}

// TestResizeConstant checks that any resize keeps a constant image
// constant: the weights of every output sum to one.
func TestResizeConstant(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		h, w := 1+rng.IntN(40), 1+rng.IntN(40)
		m := &Image{C: 2, H: h, W: w, Pix: make([]float32, 2*h*w)}
		for i := range m.Pix {
			m.Pix[i] = 0.7
		}
		oh, ow := 1+rng.IntN(40), 1+rng.IntN(40)
		got, err := m.Resize(oh, ow)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range got.Pix {
			if v < 0.7-1e-5 || v > 0.7+1e-5 {
				t.Fatalf("%dx%d to %dx%d: value %v, want 0.7", h, w, oh, ow, v)
			}
		}
	}
}

func TestResizedCropMatchesCropThenResize(t *testing.T) {
	src, err := FromImage(gradient(13, 9), 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range [][6]int{
		{2, 3, 5, 7, 4, 4},   // inside, shrinking
		{0, 0, 9, 13, 9, 13}, // whole, same size
		{1, 1, 3, 3, 8, 5},   // inside, growing
		{-2, 10, 6, 6, 3, 3}, // overhanging: padded with zeros
	} {
		got, err := src.ResizedCrop(r[0], r[1], r[2], r[3], r[4], r[5])
		if err != nil {
			t.Fatal(err)
		}
		c, err := src.Crop(r[0], r[1], r[2], r[3])
		if err != nil {
			t.Fatal(err)
		}
		want, err := c.Resize(r[4], r[5])
		if err != nil {
			t.Fatal(err)
		}
		if !near(got.Pix, want.Pix, 0) {
			t.Errorf("ResizedCrop%v differs from Crop then Resize", r)
		}
	}
}

func TestResizeShorter(t *testing.T) {
	tests := []struct {
		h, w, size   int
		wantH, wantW int
	}{
		{240, 320, 64, 64, 85}, // 64*320/240 = 85.3
		{320, 240, 64, 85, 64},
		{10, 10, 5, 5, 5},
		{3, 1000, 2, 2, 666}, // 2*1000/3 = 666.7, truncated as torchvision
		{4, 6, 8, 8, 12},
	}
	for _, tt := range tests {
		m := &Image{C: 1, H: tt.h, W: tt.w, Pix: make([]float32, tt.h*tt.w)}
		got, err := m.ResizeShorter(tt.size)
		if err != nil {
			t.Fatal(err)
		}
		if got.H != tt.wantH || got.W != tt.wantW {
			t.Errorf("%dx%d shorter to %d: got %dx%d, want %dx%d", tt.h, tt.w, tt.size, got.H, got.W, tt.wantH, tt.wantW)
		}
	}
}

func TestResizeErrors(t *testing.T) {
	m := img(1, 1, 2, 0, 1)
	tests := []struct {
		name string
		f    func() (*Image, error)
		want error
	}{
		{"zero height", func() (*Image, error) { return m.Resize(0, 2) }, ErrInvalid},
		{"negative width", func() (*Image, error) { return m.Resize(2, -1) }, ErrInvalid},
		{"too large", func() (*Image, error) { return m.Resize(1<<30, 1<<30) }, ErrTooLarge},
		{"invalid image", func() (*Image, error) { return img(1, 2, 2, 0).Resize(1, 1) }, ErrInvalid},
		{"nil image", func() (*Image, error) { return (*Image)(nil).Resize(1, 1) }, ErrInvalid},
		{"shorter zero", func() (*Image, error) { return m.ResizeShorter(0) }, ErrInvalid},
		{"shorter too large", func() (*Image, error) { return m.ResizeShorter(1 << 40) }, ErrTooLarge},
		{"shorter long side too large", func() (*Image, error) { return m.ResizeShorter(MaxPixels / 4) }, ErrTooLarge},
		{"crop size zero", func() (*Image, error) { return m.ResizedCrop(0, 0, 0, 1, 1, 1) }, ErrInvalid},
		{"crop output zero", func() (*Image, error) { return m.ResizedCrop(0, 0, 1, 1, 1, 0) }, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.f()
			checkErr(t, err, tt.want)
		})
	}
}
