package vision

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"strings"
	"testing"
)

// checkFuzzError checks the form of an error returned for fuzzed input.
func checkFuzzError(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || !strings.HasPrefix(err.Error(), "vision: ") {
		t.Fatalf("error %q (%T) is not a vision *Error", err, err)
	}
	for _, s := range []error{ErrFormat, ErrCorrupt, ErrTruncated, ErrTooLarge, ErrInvalid} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error %q wraps no sentinel", err)
}

// FuzzReadIDX feeds arbitrary bytes to ReadIDX. It must not panic; errors
// must be *Error values wrapping a sentinel; a success must be consistent
// and survive a round trip.
func FuzzReadIDX(f *testing.F) {
	valid := makeIDX(IDXUint8, []uint32{2, 2, 2}, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(valid)
	f.Add(gzipped(f, valid))
	f.Add(makeIDX(IDXFloat64, []uint32{1, 1}, []byte{0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18}))
	f.Add(valid[:7])
	f.Add(makeIDX(IDXUint8, []uint32{1 << 15, 1 << 15}, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := ReadIDX(bytes.NewReader(b))
		if err != nil {
			if x != nil {
				t.Fatal("result with an error")
			}
			checkFuzzError(t, err)
			return
		}
		if len(x.Dims) == 0 || len(x.Data) != x.Len()*x.Type.Size() {
			t.Fatalf("inconsistent IDX: %v dims %v, %d bytes", x.Type, x.Dims, len(x.Data))
		}
		dims := make([]uint32, len(x.Dims))
		for i, d := range x.Dims {
			dims[i] = uint32(d)
		}
		y, err := ReadIDX(bytes.NewReader(makeIDX(x.Type, dims, x.Data)))
		if err != nil || y.Type != x.Type || !bytes.Equal(y.Data, x.Data) {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}

// FuzzDecode feeds arbitrary bytes and channel counts to a Decoder limited
// to one megapixel, so that each run allocates little. It must not panic;
// errors must be *Error values wrapping a sentinel; a success must be a
// valid image of the asked channels with values in [0, 1].
func FuzzDecode(f *testing.F) {
	rgba := image.NewNRGBA(image.Rect(0, 0, 3, 2))
	for i := range rgba.Pix {
		rgba.Pix[i] = uint8(40 * i)
	}
	pal := image.NewPaletted(image.Rect(0, 0, 2, 2), color.Palette{color.Black, color.RGBA{200, 10, 10, 255}})
	pal.Pix[3] = 1
	g16 := image.NewGray16(image.Rect(0, 0, 2, 1))
	g16.Pix[0] = 0x80
	pngData := encodePNG(f, rgba)
	jpegData := encodeJPEG(f, gradient(17, 9), 75)
	for _, b := range [][]byte{
		pngData, encodePNG(f, pal), encodePNG(f, g16), encodePNG(f, greyRamp(5, 3)),
		jpegData, encodeJPEG(f, greyRamp(9, 9), 50),
		pngData[:len(pngData)/2], jpegData[:len(jpegData)-10],
		withPNGSize(pngData, 5000, 5000), []byte("GIF89a"),
	} {
		f.Add(b, uint8(0))
	}
	f.Add(pngData, uint8(1))
	f.Add(jpegData, uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, channels uint8) {
		d := Decoder{Channels: int(channels % 4), MaxPixels: 1 << 20}
		m, err := d.Decode(bytes.NewReader(b))
		if err != nil {
			if m != nil {
				t.Fatal("image with an error")
			}
			checkFuzzError(t, err)
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatal(err)
		}
		if m.H*m.W > 1<<20 || (d.Channels != 0 && m.C != d.Channels) || (m.C != 1 && m.C != 3) {
			t.Fatalf("image %dx%dx%d for channels %d", m.C, m.H, m.W, d.Channels)
		}
		for _, v := range m.Pix {
			if !(v >= 0 && v <= 1) {
				t.Fatalf("value %v outside [0, 1]", v)
			}
		}
	})
}
