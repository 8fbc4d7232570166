package vision

import "math"

// Resize returns m resized to h x w pixels by bilinear interpolation,
// antialiased when shrinking. The filter is the one of PIL's
// Image.resize(BILINEAR) and of torchvision's resize with antialias=True: a
// triangle kernel on pixel centres (half-pixel convention, edges clamped)
// that is widened by the scale factor when an axis shrinks, so every input
// pixel contributes to the output instead of being skipped. Each axis is
// resampled separately, horizontally first. An image already of size h x w
// is returned as a copy.
func (m *Image) Resize(h, w int) (*Image, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := checkSize("resize", h, w); err != nil {
		return nil, wrap("", err)
	}
	return resample(m, 0, 0, m.H, m.W, h, w), nil
}

// ResizeShorter returns m resized so that its shorter side is size pixels,
// keeping the aspect ratio: the longer side becomes
// floor(size * longer / shorter), as torchvision's Resize(size) computes
// it. A square image becomes size x size.
func (m *Image) ResizeShorter(size int) (*Image, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	h, w, err := shorterSize(m.H, m.W, size)
	if err != nil {
		return nil, wrap("", err)
	}
	return resample(m, 0, 0, m.H, m.W, h, w), nil
}

// shorterSize computes the output size of ResizeShorter.
func shorterSize(h, w, size int) (int, int, error) {
	if size <= 0 {
		return 0, 0, errorf(ErrInvalid, "resize: shorter side %d, want positive", size)
	}
	if size > MaxPixels {
		return 0, 0, errorf(ErrTooLarge, "resize: shorter side %d exceeds %d pixels", size, MaxPixels)
	}
	short, long := h, w
	if w < h {
		short, long = w, h
	}
	// size and long are at most MaxPixels (and so is long for a valid
	// image within the limit); the product fits in an int64.
	newLong := int(int64(size) * int64(long) / int64(short))
	if w < h {
		return newLong, size, checkSize("resize", newLong, size)
	}
	return size, newLong, checkSize("resize", size, newLong)
}

// ResizedCrop returns the h x w region of m at row top and column left,
// resized to outH x outW: m.Crop(top, left, h, w) followed by Resize, done
// in one pass when the region lies inside m. Only pixels of the region
// contribute, as when torchvision crops and then resizes.
func (m *Image) ResizedCrop(top, left, h, w, outH, outW int) (*Image, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := checkSize("crop", h, w); err != nil {
		return nil, wrap("", err)
	}
	if err := checkSize("resize", outH, outW); err != nil {
		return nil, wrap("", err)
	}
	if top >= 0 && left >= 0 && top <= m.H-h && left <= m.W-w {
		return resample(m, top, left, h, w, outH, outW), nil
	}
	c, err := m.Crop(top, left, h, w)
	if err != nil {
		return nil, err
	}
	return resample(c, 0, 0, h, w, outH, outW), nil
}

// coeffs holds the filter taps of one axis: output i is the sum over
// k < n[i] of w[i*stride+k] * input[start[i]+k].
type coeffs struct {
	start, n []int
	stride   int
	w        []float32
}

// triangle is the bilinear filter kernel, of support 1.
func triangle(x float64) float64 {
	x = math.Abs(x)
	if x < 1 {
		return 1 - x
	}
	return 0
}

// makeCoeffs computes the taps for resampling inSize pixels to outSize, as
// PIL's precompute_coeffs does for a box covering the whole input.
func makeCoeffs(inSize, outSize int) coeffs {
	scale := float64(inSize) / float64(outSize)
	filterScale := max(scale, 1)
	support := filterScale // the triangle's support is 1
	stride := int(math.Ceil(support))*2 + 1
	c := coeffs{
		start:  make([]int, outSize),
		n:      make([]int, outSize),
		stride: stride,
		w:      make([]float32, outSize*stride),
	}
	tmp := make([]float64, stride)
	for i := range outSize {
		center := (float64(i) + 0.5) * scale
		lo := max(int(math.Floor(center-support+0.5)), 0)
		hi := min(int(math.Floor(center+support+0.5)), inSize)
		n := min(hi-lo, stride)
		var sum float64
		for k := range n {
			tmp[k] = triangle((float64(lo+k) - center + 0.5) / filterScale)
			sum += tmp[k]
		}
		if n <= 0 || sum == 0 { // cannot happen for valid sizes; keep the nearest pixel
			lo, n = min(int(center), inSize-1), 1
			tmp[0], sum = 1, 1
		}
		c.start[i], c.n[i] = lo, n
		for k := range n {
			c.w[i*stride+k] = float32(tmp[k] / sum)
		}
	}
	return c
}

// resample resizes the h x w region of m at (top, left), which lies inside
// m, to outH x outW.
func resample(m *Image, top, left, h, w, outH, outW int) *Image {
	out := newImage(m.C, outH, outW)
	var hc, vc coeffs
	if w != outW {
		hc = makeCoeffs(w, outW)
	}
	if h != outH {
		vc = makeCoeffs(h, outH)
	}
	tmp := make([]float32, h*outW) // one channel after the horizontal pass
	for c := range m.C {
		// Horizontal pass: h rows of the region, each to outW values.
		for y := range h {
			src := m.Pix[(c*m.H+top+y)*m.W+left:][:w]
			dst := tmp[y*outW : (y+1)*outW]
			if w == outW {
				copy(dst, src)
				continue
			}
			for x := range dst {
				ws := hc.w[x*hc.stride:][:hc.n[x]]
				in := src[hc.start[x]:][:len(ws)]
				var sum float32
				for k, wt := range ws {
					sum += wt * in[k]
				}
				dst[x] = sum
			}
		}
		// Vertical pass: outH rows, each a weighted sum of tmp rows.
		plane := out.Pix[c*outH*outW : (c+1)*outH*outW]
		if h == outH {
			copy(plane, tmp)
			continue
		}
		for y := range outH {
			dst := plane[y*outW : (y+1)*outW]
			ws := vc.w[y*vc.stride:][:vc.n[y]]
			for k, wt := range ws {
				src := tmp[(vc.start[y]+k)*outW:][:outW]
				for x, v := range src {
					dst[x] += wt * v
				}
			}
		}
	}
	return out
}
