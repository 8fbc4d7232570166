package vision

import (
	"image"
	"image/color"
	"math"
)

// MaxPixels bounds the height x width of every image this package decodes
// or creates: [Decode] refuses larger images from their header, before
// decoding, and the transforms refuse larger target sizes. At 50
// megapixels a 3-channel float32 image takes 600 MB.
const MaxPixels = 50_000_000

// Image is a float32 image tensor in CHW layout: channel-major, then rows
// top to bottom, then columns left to right, so the value of channel c at
// row y and column x is Pix[(c*H+y)*W+x]. Decoded images hold values in
// [0, 1] (8-bit samples divided by 255, 16-bit ones by 65535, as
// torchvision's ToTensor does); after [Normalize] values are unbounded.
//
// Functions of this package never modify an Image they are given; they
// return new ones. An Image is valid when C, H and W are positive and
// len(Pix) == C*H*W ([Image.Validate]).
type Image struct {
	C, H, W int       // channels (1 grey, 3 RGB), height and width in pixels
	Pix     []float32 // C*H*W values in CHW order
}

// Validate reports whether m is a usable image: non-nil, with positive C,
// H and W and exactly C*H*W values. Every function of this package that
// takes an *Image validates it first.
func (m *Image) Validate() error {
	if m == nil {
		return &Error{Err: errorf(ErrInvalid, "nil image")}
	}
	if m.C <= 0 || m.H <= 0 || m.W <= 0 {
		return &Error{Err: errorf(ErrInvalid, "image shape %dx%dx%d (CxHxW): sizes must be positive",
			m.C, m.H, m.W)}
	}
	n, ok := mul(m.C, m.H, m.W)
	if !ok || n != len(m.Pix) {
		return &Error{Err: errorf(ErrInvalid, "image shape %dx%dx%d (CxHxW) needs %d values, Pix has %d",
			m.C, m.H, m.W, n, len(m.Pix))}
	}
	return nil
}

// Clone returns a deep copy of m, or nil for a nil m.
func (m *Image) Clone() *Image {
	if m == nil {
		return nil
	}
	c := *m
	c.Pix = append([]float32(nil), m.Pix...)
	return &c
}

// mul returns the product of non-negative factors and whether it fits in
// an int.
func mul(factors ...int) (int, bool) {
	p := 1
	for _, f := range factors {
		if f < 0 {
			return 0, false
		}
		if f != 0 && p > math.MaxInt/f {
			return 0, false
		}
		p *= f
	}
	return p, true
}

// checkSize validates an output size requested of a transform.
func checkSize(op string, h, w int) error {
	if h <= 0 || w <= 0 {
		return errorf(ErrInvalid, "%s: size %dx%d (HxW): sizes must be positive", op, h, w)
	}
	if n, ok := mul(h, w); !ok || n > MaxPixels {
		return errorf(ErrTooLarge, "%s: size %dx%d (HxW) exceeds %d pixels", op, h, w, MaxPixels)
	}
	return nil
}

// newImage allocates a zero image of a size already checked.
func newImage(c, h, w int) *Image {
	return &Image{C: c, H: h, W: w, Pix: make([]float32, c*h*w)}
}

// Luma weights of ITU-R BT.601, as PIL's convert("L") and Go's
// color.GrayModel use.
const (
	lumaR = 0.299
	lumaG = 0.587
	lumaB = 0.114
)

// FromImage converts a decoded image to a float32 CHW tensor with values
// in [0, 1]. channels is 1 (grey), 3 (RGB) or 0 (as stored: 1 for grey
// images, including paletted images whose palette is all grey, 3 for all
// others). A grey image asked for 3 channels has its value repeated; a
// colour image asked for 1 channel becomes its luma 0.299R + 0.587G +
// 0.114B (for JPEG's YCbCr images, the stored Y). Alpha is discarded: the
// colour values kept are the straight (non-premultiplied) ones, as PIL's
// convert("RGB") keeps them. Images of more than [MaxPixels] pixels are
// refused.
func FromImage(src image.Image, channels int) (*Image, error) {
	m, err := fromImage(src, channels)
	if err != nil {
		return nil, wrap("", err)
	}
	return m, nil
}

func fromImage(src image.Image, channels int) (*Image, error) {
	if src == nil {
		return nil, errorf(ErrInvalid, "nil image.Image")
	}
	if channels != 0 && channels != 1 && channels != 3 {
		return nil, errorf(ErrInvalid, "channels = %d, want 0 (as stored), 1 or 3", channels)
	}
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return nil, errorf(ErrInvalid, "empty image (%dx%d)", w, h)
	}
	if n, ok := mul(w, h); !ok || n > MaxPixels {
		return nil, errorf(ErrTooLarge, "image %dx%d exceeds %d pixels", w, h, MaxPixels)
	}
	if channels == 0 {
		channels = naturalChannels(src)
	}
	m := newImage(channels, h, w)
	hw := h * w
	// Planes to fill: grey alone, or red, green and blue.
	grey := m.Pix[:hw]
	var rp, gp, bp []float32
	if channels == 3 {
		rp, gp, bp = m.Pix[:hw], m.Pix[hw:2*hw], m.Pix[2*hw:]
	}
	// set stores one pixel given its straight RGB values in [0, 1].
	set := func(i int, r, g, bl float32) {
		if rp == nil {
			grey[i] = min(lumaR*r+lumaG*g+lumaB*bl, 1)
			return
		}
		rp[i], gp[i], bp[i] = r, g, bl
	}
	// by255[v] is v/255, as torchvision's ToTensor divides.
	var by255 [256]float32
	for v := range by255 {
		by255[v] = float32(v) / 255
	}
	switch s := src.(type) {
	case *image.Gray:
		for y := range h {
			row := s.Pix[s.PixOffset(b.Min.X, b.Min.Y+y):][:w]
			dst := grey[y*w : (y+1)*w]
			for x, v := range row {
				dst[x] = by255[v]
			}
		}
		if rp != nil {
			copy(gp, rp)
			copy(bp, rp)
		}
	case *image.Gray16:
		for y := range h {
			row := s.Pix[s.PixOffset(b.Min.X, b.Min.Y+y):][:2*w]
			dst := grey[y*w : (y+1)*w]
			for x := range dst {
				dst[x] = float32(uint16(row[2*x])<<8|uint16(row[2*x+1])) / 65535
			}
		}
		if rp != nil {
			copy(gp, rp)
			copy(bp, rp)
		}
	case *image.YCbCr:
		if rp == nil { // the stored luma
			for y := range h {
				row := s.Y[s.YOffset(b.Min.X, b.Min.Y+y):][:w]
				dst := grey[y*w : (y+1)*w]
				for x, v := range row {
					dst[x] = by255[v]
				}
			}
			break
		}
		// The chroma offset of column x, relative to the row's first
		// column, is the same on every row for all subsampling ratios.
		cx := make([]int, w)
		base := s.COffset(b.Min.X, b.Min.Y)
		for x := range cx {
			cx[x] = s.COffset(b.Min.X+x, b.Min.Y) - base
		}
		for y := range h {
			ys := s.Y[s.YOffset(b.Min.X, b.Min.Y+y):][:w]
			c0 := s.COffset(b.Min.X, b.Min.Y+y)
			cb, cr := s.Cb[c0:], s.Cr[c0:]
			rs, gs, bs := rp[y*w:(y+1)*w], gp[y*w:(y+1)*w], bp[y*w:(y+1)*w]
			for x, yy := range ys {
				r, g, bl := color.YCbCrToRGB(yy, cb[cx[x]], cr[cx[x]])
				rs[x], gs[x], bs[x] = by255[r], by255[g], by255[bl]
			}
		}
	case *image.NRGBA:
		for y := range h {
			row := s.Pix[s.PixOffset(b.Min.X, b.Min.Y+y):][:4*w]
			for x := range w {
				p := row[4*x : 4*x+3 : 4*x+3]
				set(y*w+x, by255[p[0]], by255[p[1]], by255[p[2]])
			}
		}
	case *image.RGBA:
		for y := range h {
			row := s.Pix[s.PixOffset(b.Min.X, b.Min.Y+y):][:4*w]
			for x := range w {
				p := row[4*x : 4*x+4 : 4*x+4]
				switch a := float32(p[3]); a {
				case 255:
					set(y*w+x, by255[p[0]], by255[p[1]], by255[p[2]])
				case 0:
					set(y*w+x, 0, 0, 0)
				default: // un-premultiply
					set(y*w+x, min(float32(p[0])/a, 1), min(float32(p[1])/a, 1), min(float32(p[2])/a, 1))
				}
			}
		}
	case *image.Paletted:
		pal := make([][3]float32, len(s.Palette))
		for k, c := range s.Palette {
			pal[k] = straight(c)
		}
		for y := range h {
			row := s.Pix[s.PixOffset(b.Min.X, b.Min.Y+y):][:w]
			for x, k := range row {
				var p [3]float32 // an index beyond the palette is black
				if int(k) < len(pal) {
					p = pal[k]
				}
				set(y*w+x, p[0], p[1], p[2])
			}
		}
	default:
		for y := range h {
			for x := range w {
				p := straight(src.At(b.Min.X+x, b.Min.Y+y))
				set(y*w+x, p[0], p[1], p[2])
			}
		}
	}
	return m, nil
}

// straight returns the non-premultiplied RGB values of c in [0, 1]; a nil
// colour is black.
func straight(c color.Color) [3]float32 {
	if c == nil {
		return [3]float32{}
	}
	n := color.NRGBA64Model.Convert(c).(color.NRGBA64)
	return [3]float32{float32(n.R) / 65535, float32(n.G) / 65535, float32(n.B) / 65535}
}

// naturalChannels is 1 for grey images and 3 for colour ones.
func naturalChannels(src image.Image) int {
	switch s := src.(type) {
	case *image.Gray, *image.Gray16:
		return 1
	case *image.Paletted:
		if len(s.Palette) == 0 {
			return 3
		}
		for _, c := range s.Palette {
			if c == nil {
				return 3
			}
			r, g, b, _ := c.RGBA()
			if r != g || g != b {
				return 3
			}
		}
		return 1
	}
	switch src.ColorModel() {
	case color.GrayModel, color.Gray16Model:
		return 1
	}
	return 3
}

// ToImage converts m back to an 8-bit image for viewing or saving: an
// *image.Gray for one channel, an opaque *image.NRGBA for three. Values
// are clamped to [0, 1] and scaled to 0..255 with rounding, so a
// normalised image should be de-normalised first. Other channel counts are
// refused.
func (m *Image) ToImage() (image.Image, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	hw := m.H * m.W
	switch m.C {
	case 1:
		g := image.NewGray(image.Rect(0, 0, m.W, m.H))
		for i := range hw {
			g.Pix[i] = to8(m.Pix[i])
		}
		return g, nil
	case 3:
		n := image.NewNRGBA(image.Rect(0, 0, m.W, m.H))
		for i := range hw {
			n.Pix[4*i] = to8(m.Pix[i])
			n.Pix[4*i+1] = to8(m.Pix[hw+i])
			n.Pix[4*i+2] = to8(m.Pix[2*hw+i])
			n.Pix[4*i+3] = 255
		}
		return n, nil
	}
	return nil, &Error{Err: errorf(ErrInvalid, "ToImage: %d channels, want 1 or 3", m.C)}
}

// to8 maps [0, 1] to 0..255, clamping; NaN becomes 0.
func to8(v float32) uint8 {
	if !(v > 0) {
		return 0
	}
	if v >= 1 {
		return 255
	}
	return uint8(v*255 + 0.5)
}

// Crop returns the h x w region of m whose top-left corner is at row top,
// column left. The region may extend beyond m, even lie wholly outside it:
// pixels outside m are 0, as with torchvision's crop (which pads with
// zeros) on PIL images.
func (m *Image) Crop(top, left, h, w int) (*Image, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := checkSize("crop", h, w); err != nil {
		return nil, wrap("", err)
	}
	out := newImage(m.C, h, w)
	// Overlap of rows [top, top+h) with [0, m.H), written without
	// computing top+h when top is far out of range.
	if top >= m.H || top <= -h || left >= m.W || left <= -w {
		return out, nil
	}
	y0, y1 := max(top, 0), min(top+h, m.H)
	x0, x1 := max(left, 0), min(left+w, m.W)
	for c := range m.C {
		for y := y0; y < y1; y++ {
			src := m.Pix[(c*m.H+y)*m.W:]
			dst := out.Pix[(c*h+y-top)*w:]
			copy(dst[x0-left:x1-left], src[x0:x1])
		}
	}
	return out, nil
}

// FlipHorizontal returns m mirrored left to right.
func (m *Image) FlipHorizontal() (*Image, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	out := newImage(m.C, m.H, m.W)
	for r := range m.C * m.H {
		src := m.Pix[r*m.W : (r+1)*m.W]
		dst := out.Pix[r*m.W : (r+1)*m.W]
		for x, v := range src {
			dst[m.W-1-x] = v
		}
	}
	return out, nil
}

// Normalize returns m with channel c mapped to (v - mean[c]) / std[c].
// mean and std hold one value per channel, or a single value used for
// every channel. A std that is zero, or any value that is not finite, is
// refused.
func (m *Image) Normalize(mean, std []float32) (*Image, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if (len(mean) != m.C && len(mean) != 1) || (len(std) != m.C && len(std) != 1) {
		return nil, &Error{Err: errorf(ErrInvalid,
			"normalize: %d means and %d stds for a %d-channel image; give one per channel, or one for all",
			len(mean), len(std), m.C)}
	}
	for i, s := range std {
		if s == 0 || isInf(s) || s != s {
			return nil, &Error{Err: errorf(ErrInvalid, "normalize: std[%d] = %v, want finite and non-zero", i, s)}
		}
	}
	for i, v := range mean {
		if isInf(v) || v != v {
			return nil, &Error{Err: errorf(ErrInvalid, "normalize: mean[%d] = %v, want finite", i, v)}
		}
	}
	out := newImage(m.C, m.H, m.W)
	hw := m.H * m.W
	for c := range m.C {
		mu, sd := mean[min(c, len(mean)-1)], std[min(c, len(std)-1)]
		src, dst := m.Pix[c*hw:(c+1)*hw], out.Pix[c*hw:(c+1)*hw]
		for i, v := range src {
			dst[i] = (v - mu) / sd
		}
	}
	return out, nil
}

func isInf(v float32) bool { return math.IsInf(float64(v), 0) }
