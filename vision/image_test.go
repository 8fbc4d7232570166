package vision

import (
	"image"
	"image/color"
	"math"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		m    *Image
		want error
	}{
		{"ok", img(1, 1, 2, 0, 1), nil},
		{"nil", nil, ErrInvalid},
		{"zero channels", &Image{C: 0, H: 1, W: 1}, ErrInvalid},
		{"negative width", &Image{C: 1, H: 1, W: -1}, ErrInvalid},
		{"short Pix", img(3, 2, 2, 1, 2, 3), ErrInvalid},
		{"long Pix", img(1, 1, 1, 1, 2), ErrInvalid},
		{"overflowing shape", &Image{C: 1 << 40, H: 1 << 40, W: 1 << 40}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, tt.m.Validate(), tt.want)
		})
	}
}

func TestClone(t *testing.T) {
	m := img(1, 1, 2, 0.25, 0.5)
	c := m.Clone()
	c.Pix[0] = 1
	if m.Pix[0] != 0.25 {
		t.Error("Clone shares Pix with its source")
	}
	if (*Image)(nil).Clone() != nil {
		t.Error("nil.Clone() != nil")
	}
}

// paletted returns a 2x1 paletted image with the given palette, pixels
// using entries 0 and 1.
func paletted(pal ...color.Color) *image.Paletted {
	m := image.NewPaletted(image.Rect(0, 0, 2, 1), pal)
	m.Pix[0], m.Pix[1] = 0, 1
	return m
}

func TestFromImage(t *testing.T) {
	// A 2x1 RGB image: (255, 0, 51) and (0, 102, 255).
	rgb := image.NewRGBA(image.Rect(0, 0, 2, 1))
	copy(rgb.Pix, []uint8{255, 0, 51, 255, 0, 102, 255, 255})
	// Premultiplied half-transparent pixel: straight (200, 100, 0) at alpha
	// 128 is stored as (100, 50, 0), and a fully transparent one.
	premul := image.NewRGBA(image.Rect(0, 0, 2, 1))
	copy(premul.Pix, []uint8{100, 50, 0, 128, 0, 0, 0, 0})
	nrgba := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	copy(nrgba.Pix, []uint8{255, 51, 0, 7}) // alpha is dropped
	grey := image.NewGray(image.Rect(0, 0, 2, 1))
	copy(grey.Pix, []uint8{0, 51})
	grey16 := image.NewGray16(image.Rect(0, 0, 1, 1))
	copy(grey16.Pix, []uint8{0xff, 0xff})
	// A sub-image: bounds not at the origin.
	big := image.NewGray(image.Rect(0, 0, 3, 2))
	copy(big.Pix, []uint8{1, 2, 3, 4, 255, 6})
	sub := big.SubImage(image.Rect(1, 1, 2, 2))
	cmyk := image.NewCMYK(image.Rect(0, 0, 1, 1))
	copy(cmyk.Pix, []uint8{0, 255, 255, 0}) // pure red
	ycc := image.NewYCbCr(image.Rect(0, 0, 1, 1), image.YCbCrSubsampleRatio444)
	ycc.Y[0], ycc.Cb[0], ycc.Cr[0] = 100, 90, 200
	yr, yg, yb := color.YCbCrToRGB(100, 90, 200)

	const lR, lG, lB = 0.299, 0.587, 0.114
	tests := []struct {
		name     string
		src      image.Image
		channels int
		want     *Image
	}{
		{"rgb as stored", rgb, 0, img(3, 1, 2, 1, 0, 0, 0.4, 0.2, 1)},
		{"rgb to grey", rgb, 1, img(1, 1, 2, lR+lB*0.2, lG*0.4+lB)},
		{"premultiplied", premul, 3, img(3, 1, 2, 100.0/128, 0, 50.0/128, 0, 0, 0)},
		{"nrgba drops alpha", nrgba, 3, img(3, 1, 1, 1, 0.2, 0)},
		{"grey as stored", grey, 0, img(1, 1, 2, 0, 0.2)},
		{"grey to rgb", grey, 3, img(3, 1, 2, 0, 0.2, 0, 0.2, 0, 0.2)},
		{"grey16", grey16, 0, img(1, 1, 1, 1)},
		{"sub-image", sub, 0, img(1, 1, 1, 1)},
		{"grey palette", paletted(color.Gray{0}, color.Gray{255}), 0, img(1, 1, 2, 0, 1)},
		{"colour palette", paletted(color.RGBA{255, 0, 0, 255}, color.Gray{255}), 0, img(3, 1, 2, 1, 1, 0, 1, 0, 1)},
		{"index beyond palette", paletted(color.Gray{255}), 0, img(1, 1, 2, 1, 0)},
		{"cmyk generic path", cmyk, 0, img(3, 1, 1, 1, 0, 0)},
		{"ycbcr", ycc, 0, img(3, 1, 1, float32(yr)/255, float32(yg)/255, float32(yb)/255)},
		{"ycbcr luma", ycc, 1, img(1, 1, 1, 100.0/255)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromImage(tt.src, tt.channels)
			if err != nil {
				t.Fatal(err)
			}
			if got.C != tt.want.C || got.H != tt.want.H || got.W != tt.want.W || !near(got.Pix, tt.want.Pix, 1e-6) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestFromImageErrors(t *testing.T) {
	tests := []struct {
		name     string
		src      image.Image
		channels int
		want     error
	}{
		{"nil", nil, 0, ErrInvalid},
		{"two channels", greyRamp(2, 2), 2, ErrInvalid},
		{"empty", image.NewGray(image.Rect(0, 0, 0, 5)), 0, ErrInvalid},
		{"too large", image.NewUniform(color.Black), 0, ErrTooLarge}, // infinite bounds
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromImage(tt.src, tt.channels)
			checkErr(t, err, tt.want)
		})
	}
}

func TestToImage(t *testing.T) {
	m := img(3, 1, 2, 0, 1, -0.5, 2, float32(math.NaN()), 0.2)
	got, err := m.ToImage()
	if err != nil {
		t.Fatal(err)
	}
	n := got.(*image.NRGBA)
	want := []uint8{0, 0, 0, 255, 255, 255, 51, 255}
	if string(n.Pix) != string(want) {
		t.Errorf("ToImage = %v, want %v", n.Pix, want)
	}
	// Round trip through FromImage for 8-bit values.
	g, err := img(1, 1, 2, 0.2, 1).ToImage()
	if err != nil {
		t.Fatal(err)
	}
	back, err := FromImage(g, 0)
	if err != nil || !near(back.Pix, []float32{0.2, 1}, 1e-7) {
		t.Errorf("round trip = %v, %v", back, err)
	}
	_, err = img(2, 1, 1, 0, 0).ToImage()
	checkErr(t, err, ErrInvalid, "2 channels")
}

func TestCrop(t *testing.T) {
	// 1 x 3 x 3 with values 1..9.
	m := img(1, 3, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	tests := []struct {
		name                 string
		top, left, h, w      int
		want                 []float32
		wantErr              error
		wantErrFragmentFirst string
	}{
		{"inside", 1, 1, 2, 2, []float32{5, 6, 8, 9}, nil, ""},
		{"whole", 0, 0, 3, 3, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}, nil, ""},
		{"overhang top-left", -1, -1, 2, 2, []float32{0, 0, 0, 1}, nil, ""},
		{"overhang bottom-right", 2, 2, 2, 2, []float32{9, 0, 0, 0}, nil, ""},
		{"larger than image", -1, 0, 5, 1, []float32{0, 1, 4, 7, 0}, nil, ""},
		{"outside", 3, 0, 1, 1, []float32{0}, nil, ""},
		{"far outside", math.MaxInt - 1, math.MinInt, 1, 1, []float32{0}, nil, ""},
		{"zero height", 0, 0, 0, 1, nil, ErrInvalid, "crop"},
		{"too large", 0, 0, 1 << 20, 1 << 20, nil, ErrTooLarge, "crop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := m.Crop(tt.top, tt.left, tt.h, tt.w)
			checkErr(t, err, tt.wantErr, tt.wantErrFragmentFirst)
			if err == nil && !near(got.Pix, tt.want, 0) {
				t.Errorf("Crop = %v, want %v", got.Pix, tt.want)
			}
		})
	}
}

func TestFlipHorizontal(t *testing.T) {
	m := img(2, 2, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
	got, err := m.FlipHorizontal()
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10}
	if !near(got.Pix, want, 0) {
		t.Errorf("FlipHorizontal = %v, want %v", got.Pix, want)
	}
	if m.Pix[0] != 1 {
		t.Error("FlipHorizontal modified its input")
	}
}

func TestNormalize(t *testing.T) {
	m := img(2, 1, 2, 0, 1, 0.5, 1)
	nan := float32(math.NaN())
	tests := []struct {
		name      string
		mean, std []float32
		want      []float32
		wantErr   error
	}{
		{"per channel", []float32{0.5, 0.25}, []float32{0.5, 0.25}, []float32{-1, 1, 1, 3}, nil},
		{"broadcast", []float32{1}, []float32{2}, []float32{-0.5, 0, -0.25, 0}, nil},
		{"three means for two channels", []float32{0, 0, 0}, []float32{1, 1}, nil, ErrInvalid},
		{"no std", []float32{0}, nil, nil, ErrInvalid},
		{"zero std", []float32{0}, []float32{0}, nil, ErrInvalid},
		{"NaN mean", []float32{nan}, []float32{1}, nil, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := m.Normalize(tt.mean, tt.std)
			checkErr(t, err, tt.wantErr, "normalize")
			if err == nil && !near(got.Pix, tt.want, 1e-7) {
				t.Errorf("Normalize = %v, want %v", got.Pix, tt.want)
			}
		})
	}
}
