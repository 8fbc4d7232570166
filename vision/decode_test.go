package vision

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

// withPNGSize returns a copy of a PNG file with the width and height of
// its IHDR chunk replaced and the chunk's CRC recomputed.
func withPNGSize(b []byte, w, h uint32) []byte {
	b = bytes.Clone(b)
	// Signature (8), length (4), "IHDR" (4), then width and height; the
	// CRC follows the 13 bytes of data and covers type and data.
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

// withJPEGSize returns a copy of a baseline JPEG file with the height and
// width of its SOF0 segment replaced.
func withJPEGSize(tb testing.TB, b []byte, w, h uint16) []byte {
	b = bytes.Clone(b)
	i := bytes.Index(b, []byte{0xff, 0xc0})
	if i < 0 {
		tb.Fatal("no SOF0 marker")
	}
	// Marker (2), length (2), precision (1), height (2), width (2).
	binary.BigEndian.PutUint16(b[i+5:], h)
	binary.BigEndian.PutUint16(b[i+7:], w)
	return b
}

func TestDecodePNG(t *testing.T) {
	grey := image.NewGray(image.Rect(0, 0, 2, 1))
	copy(grey.Pix, []uint8{0, 255})
	rgb := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	copy(rgb.Pix, []uint8{255, 0, 51, 255, 0, 102, 255, 255})
	alpha := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	copy(alpha.Pix, []uint8{255, 51, 0, 128})
	g16 := image.NewGray16(image.Rect(0, 0, 2, 1))
	copy(g16.Pix, []uint8{0, 0, 0xff, 0xff})
	pg := image.NewPaletted(image.Rect(0, 0, 2, 1), color.Palette{color.Gray{51}, color.Gray{255}})
	pg.Pix[1] = 1
	pc := image.NewPaletted(image.Rect(0, 0, 2, 1), color.Palette{color.RGBA{255, 0, 0, 255}, color.Gray{255}})
	pc.Pix[1] = 1
	const lR, lG, lB = 0.299, 0.587, 0.114
	tests := []struct {
		name     string
		src      image.Image
		channels int
		want     *Image
	}{
		{"grey as stored", grey, 0, img(1, 1, 2, 0, 1)},
		{"grey forced to 1", grey, 1, img(1, 1, 2, 0, 1)},
		{"grey to rgb", grey, 3, img(3, 1, 2, 0, 1, 0, 1, 0, 1)},
		{"rgb", rgb, 0, img(3, 1, 2, 1, 0, 0, 0.4, 0.2, 1)},
		{"rgb to grey", rgb, 1, img(1, 1, 2, lR+lB*0.2, lG*0.4+lB)},
		{"alpha dropped", alpha, 0, img(3, 1, 1, 1, 0.2, 0)},
		{"16-bit grey", g16, 0, img(1, 1, 2, 0, 1)},
		{"grey palette", pg, 0, img(1, 1, 2, 0.2, 1)},
		{"colour palette", pc, 0, img(3, 1, 2, 1, 1, 0, 1, 0, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(bytes.NewReader(encodePNG(t, tt.src)), tt.channels)
			if err != nil {
				t.Fatal(err)
			}
			if got.C != tt.want.C || got.H != tt.want.H || got.W != tt.want.W || !near(got.Pix, tt.want.Pix, 1e-6) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeJPEG(t *testing.T) {
	src := gradient(32, 24)
	want, err := FromImage(src, 3)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(bytes.NewReader(encodeJPEG(t, src, 95)), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.C != 3 || got.H != 24 || got.W != 32 {
		t.Fatalf("decoded JPEG has shape %dx%dx%d, want 3x24x32", got.C, got.H, got.W)
	}
	// Lossy, with chroma subsampled: close on average.
	var sum float64
	for i, v := range got.Pix {
		sum += math.Abs(float64(v - want.Pix[i]))
	}
	if mean := sum / float64(len(got.Pix)); mean > 5.0/255 {
		t.Errorf("decoded JPEG differs from its source by %.4f on average", mean)
	}
	// The conversion of the decoded YCbCr pixels is exactly the standard
	// library's.
	std, err := jpeg.Decode(bytes.NewReader(encodeJPEG(t, src, 95)))
	if err != nil {
		t.Fatal(err)
	}
	for y := range 24 {
		for x := range 32 {
			r, g, b, _ := std.At(x, y).RGBA()
			for c, v := range []uint32{r, g, b} {
				if got.Pix[(c*24+y)*32+x] != float32(v>>8)/255 {
					t.Fatalf("pixel (%d, %d) channel %d: %v, standard library %v", x, y, c, got.Pix[(c*24+y)*32+x], float32(v>>8)/255)
				}
			}
		}
	}
	// A grey JPEG has one channel unless three are asked for.
	grey := encodeJPEG(t, greyRamp(16, 8), 95)
	for _, tt := range []struct{ channels, want int }{{0, 1}, {1, 1}, {3, 3}} {
		m, err := Decode(bytes.NewReader(grey), tt.channels)
		if err != nil {
			t.Fatal(err)
		}
		if m.C != tt.want || m.H != 8 || m.W != 16 {
			t.Errorf("grey JPEG, channels %d: shape %dx%dx%d, want %dx8x16", tt.channels, m.C, m.H, m.W, tt.want)
		}
	}
	// A colour JPEG asked for one channel keeps its luma.
	m, err := Decode(bytes.NewReader(encodeJPEG(t, src, 95)), 1)
	if err != nil || m.C != 1 {
		t.Fatalf("colour JPEG to grey: %v, %v", m, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	pngData := encodePNG(t, gradient(8, 8))
	jpegData := encodeJPEG(t, gradient(64, 64), 90)
	badCRC := bytes.Clone(pngData)
	badCRC[17] ^= 0xff // inside the IHDR data
	arith := bytes.Clone(jpegData)
	arith[bytes.Index(arith, []byte{0xff, 0xc0})+1] = 0xc9 // SOF9: arithmetic coding
	tests := []struct {
		name      string
		data      []byte
		decoder   Decoder
		want      error
		fragments []string
	}{
		{"empty", nil, Decoder{}, ErrTruncated, []string{"empty input"}},
		{"GIF", []byte("GIF89a\x01\x00\x01\x00"), Decoder{}, ErrFormat, []string{"GIF"}},
		{"BMP", []byte("BM\x00\x00\x00\x00"), Decoder{}, ErrFormat, []string{"BMP"}},
		{"WebP", []byte("RIFF\x00\x00\x00\x00WEBPVP8 "), Decoder{}, ErrFormat, []string{"WebP"}},
		{"TIFF", []byte("II*\x00\x08\x00\x00\x00"), Decoder{}, ErrFormat, []string{"TIFF"}},
		{"AVIF", []byte("\x00\x00\x00\x1cftypavif"), Decoder{}, ErrFormat, []string{"AVIF"}},
		{"gzip", []byte{0x1f, 0x8b, 8, 0}, Decoder{}, ErrFormat, []string{"gzip data"}},
		{"text", []byte("hello, world"), Decoder{}, ErrFormat, []string{"not a JPEG or PNG", "68 65 6c"}},
		{"one byte", []byte{0xff}, Decoder{}, ErrFormat, []string{"ff"}},
		{"PNG signature only", pngData[:8], Decoder{}, ErrTruncated, []string{"PNG header"}},
		{"PNG cut in IHDR", pngData[:20], Decoder{}, ErrTruncated, []string{"PNG header"}},
		{"PNG cut in data", pngData[:len(pngData)/2], Decoder{}, ErrTruncated, []string{"PNG"}},
		{"PNG without IEND", pngData[:len(pngData)-12], Decoder{}, ErrTruncated, []string{"PNG"}},
		{"PNG bad checksum", badCRC, Decoder{}, ErrCorrupt, []string{"PNG header", "checksum"}},
		{"JPEG markers only", []byte{0xff, 0xd8, 0xff, 0xd9}, Decoder{}, ErrCorrupt, []string{"JPEG"}},
		{"JPEG cut", jpegData[:len(jpegData)/2], Decoder{}, ErrTruncated, []string{"JPEG"}},
		// The decoder skips bytes looking for a marker, as libjpeg does.
		{"JPEG garbage", append([]byte{0xff, 0xd8}, bytes.Repeat([]byte{0x12}, 100)...), Decoder{}, ErrTruncated, []string{"JPEG header"}},
		{"JPEG scan before frame", []byte{0xff, 0xd8, 0xff, 0xda, 0x00, 0x03, 0x55}, Decoder{}, ErrCorrupt, []string{"JPEG header", "missing SOF"}},
		{"JPEG arithmetic coding", arith, Decoder{}, ErrFormat, []string{"JPEG", "unsupported JPEG feature"}},
		{"PNG too large", withPNGSize(pngData, 10000, 10000), Decoder{}, ErrTooLarge, []string{"10000x10000", "50000000"}},
		{"PNG zero width", withPNGSize(pngData, 0, 8), Decoder{}, ErrCorrupt, []string{"PNG"}},
		{"JPEG too large", withJPEGSize(t, jpegData, 65000, 65000), Decoder{}, ErrTooLarge, []string{"65000x65000"}},
		{"below a lower limit", pngData, Decoder{MaxPixels: 63}, ErrTooLarge, []string{"8x8", "limit of 63"}},
		{"channels 2", pngData, Decoder{Channels: 2}, ErrInvalid, []string{"channels = 2"}},
		{"channels -1", pngData, Decoder{Channels: -1}, ErrInvalid, []string{"channels = -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tt.decoder.Decode(bytes.NewReader(tt.data))
			checkErr(t, err, tt.want, tt.fragments...)
			if m != nil {
				t.Error("non-nil image with an error")
			}
		})
	}
	// A limit at the image's size passes.
	if _, err := (Decoder{MaxPixels: 64}).Decode(bytes.NewReader(pngData)); err != nil {
		t.Errorf("limit 64 on an 8x8 image: %v", err)
	}
	_, err := Decode(nil, 0)
	checkErr(t, err, ErrInvalid, "nil reader")
}

func TestDecodeReaderErrors(t *testing.T) {
	boom := errors.New("disk on fire")
	pngData := encodePNG(t, gradient(8, 8))
	for name, r := range map[string]io.Reader{
		"at once":      iotest.ErrReader(boom),
		"after header": io.MultiReader(bytes.NewReader(pngData[:40]), iotest.ErrReader(boom)),
		"in data":      io.MultiReader(bytes.NewReader(pngData[:len(pngData)-20]), iotest.ErrReader(boom)),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Decode(r, 0)
			if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "vision: ") {
				t.Errorf("error %v does not wrap the reader's error", err)
			}
		})
	}
	// One byte at a time works.
	if _, err := Decode(iotest.OneByteReader(bytes.NewReader(pngData)), 0); err != nil {
		t.Errorf("one-byte reader: %v", err)
	}
}

func TestDecodeFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.png")
	bad := filepath.Join(dir, "bad.jpg")
	if err := os.WriteFile(good, encodePNG(t, greyRamp(3, 2)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte{0xff, 0xd8, 0xff}, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := DecodeFile(good, 3)
	if err != nil || m.C != 3 || m.H != 2 || m.W != 3 {
		t.Fatalf("DecodeFile = %v, %v", m, err)
	}
	_, err = DecodeFile(bad, 0)
	checkErr(t, err, ErrTruncated, bad, "JPEG")
	_, err = DecodeFile(dir, 0)
	checkErr(t, err, ErrInvalid, dir, "is a folder")
	missing := filepath.Join(dir, "missing.png")
	_, err = DecodeFile(missing, 0)
	checkErr(t, err, fs.ErrNotExist, missing)
	if strings.Count(err.Error(), missing) != 1 {
		t.Errorf("error %q names the file more than once", err)
	}
}
