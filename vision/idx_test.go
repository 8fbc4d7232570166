package vision

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"testing/iotest"
)

func TestReadIDXTypes(t *testing.T) {
	tests := []struct {
		name    string
		typ     ElemType
		dims    []uint32
		payload []byte
		want    []float64
	}{
		{"unsigned byte", IDXUint8, []uint32{3}, []byte{0, 7, 255}, []float64{0, 7, 255}},
		{"signed byte", IDXInt8, []uint32{3}, []byte{0, 0x7f, 0xff}, []float64{0, 127, -1}},
		{"short", IDXInt16, []uint32{2}, []byte{0xff, 0xfe, 0x01, 0x00}, []float64{-2, 256}},
		{"int", IDXInt32, []uint32{1, 2}, []byte{0x80, 0, 0, 0, 0, 0, 0x01, 0x02}, []float64{math.MinInt32, 258}},
		{"float", IDXFloat32, []uint32{1}, []byte{0x3f, 0xc0, 0, 0}, []float64{1.5}},
		{"double", IDXFloat64, []uint32{1}, []byte{0xc0, 0x04, 0, 0, 0, 0, 0, 0}, []float64{-2.5}},
		{"zero-size dimension", IDXUint8, []uint32{0, 28, 28}, nil, []float64{}},
		{"2x2x1", IDXUint8, []uint32{2, 2, 1}, []byte{1, 2, 3, 4}, []float64{1, 2, 3, 4}},
	}
	for _, tt := range tests {
		file := makeIDX(tt.typ, tt.dims, tt.payload)
		for _, compressed := range []bool{false, true} {
			name := tt.name
			data := file
			if compressed {
				name += " gzip"
				data = gzipped(t, file)
			}
			t.Run(name, func(t *testing.T) {
				x, err := ReadIDX(bytes.NewReader(data))
				if err != nil {
					t.Fatal(err)
				}
				if x.Type != tt.typ || len(x.Dims) != len(tt.dims) {
					t.Fatalf("type %v dims %v, want %v %v", x.Type, x.Dims, tt.typ, tt.dims)
				}
				for i, d := range tt.dims {
					if x.Dims[i] != int(d) {
						t.Fatalf("dims %v, want %v", x.Dims, tt.dims)
					}
				}
				if x.Len() != len(tt.want) {
					t.Errorf("Len = %d, want %d", x.Len(), len(tt.want))
				}
				got := x.Float64s()
				if len(got) != len(tt.want) {
					t.Fatalf("Float64s = %v, want %v", got, tt.want)
				}
				for i := range got {
					if got[i] != tt.want[i] {
						t.Fatalf("Float64s = %v, want %v", got, tt.want)
					}
				}
			})
		}
	}
}

func TestReadIDXErrors(t *testing.T) {
	valid := makeIDX(IDXUint8, []uint32{2, 3}, []byte{1, 2, 3, 4, 5, 6})
	badChecksum := gzipped(t, valid)
	badChecksum[len(badChecksum)-8] ^= 0xff // CRC-32 in the gzip trailer
	tests := []struct {
		name      string
		data      []byte
		want      error
		fragments []string
	}{
		{"empty", nil, ErrTruncated, []string{"empty input"}},
		{"short magic", []byte{0, 0}, ErrTruncated, []string{"got 2 of 4 bytes"}},
		{"wrong magic", []byte{1, 2, 8, 1, 0, 0, 0, 0}, ErrFormat, []string{"magic number 01 02 08 01"}},
		{"PNG", []byte("\x89PNG\r\n\x1a\n"), ErrFormat, []string{"magic number 89 50"}},
		{"unknown type", []byte{0, 0, 0x0a, 1, 0, 0, 0, 0}, ErrFormat, []string{"unknown element type 0x0a"}},
		{"no dimensions", []byte{0, 0, 8, 0}, ErrFormat, []string{"0 dimensions"}},
		{"truncated dimensions", []byte{0, 0, 8, 3, 0, 0, 0, 2, 0, 0}, ErrTruncated, []string{"3 dimensions need 12 bytes, got 6"}},
		{"truncated data", valid[:len(valid)-2], ErrTruncated, []string{"declares 6 bytes (2x3 unsigned byte), got 4"}},
		{"truncated wide data", makeIDX(IDXFloat64, []uint32{2}, make([]byte, 9)), ErrTruncated, []string{"declares 16 bytes (2 double), got 9"}},
		{"trailing data", append(bytes.Clone(valid), 0), ErrCorrupt, []string{"trailing data after the 6 bytes"}},
		{"trailing data in gzip", gzipped(t, append(bytes.Clone(valid), 9, 9)), ErrCorrupt, []string{"IDX (gzip)", "trailing data"}},
		{"garbage after gzip", append(gzipped(t, valid), "junk"...), ErrCorrupt, []string{"trailing data after the gzip stream"}},
		{"second gzip member", append(gzipped(t, valid), gzipped(t, valid)...), ErrCorrupt, []string{"trailing data after the gzip stream"}},
		{"truncated gzip trailer", gzipped(t, valid)[:len(gzipped(t, valid))-3], ErrTruncated, []string{"IDX (gzip): incomplete stream after the 6 bytes"}},
		{"truncated gzip", gzipped(t, valid)[:25], ErrTruncated, []string{"IDX (gzip)"}},
		{"gzip header only", []byte{0x1f, 0x8b}, ErrTruncated, []string{"gzip header"}},
		{"gzip checksum", badChecksum, ErrCorrupt, []string{"checksum"}},
		{"too large", makeIDX(IDXUint8, []uint32{65536, 65536}, nil), ErrTooLarge, []string{"65536x65536 elements of unsigned byte"}},
		{"too large wide", makeIDX(IDXFloat64, []uint32{1<<28 + 1}, nil), ErrTooLarge, []string{"double"}},
		{"overflowing product", makeIDX(IDXInt32, []uint32{1 << 31, 1 << 31, 1 << 31, 1 << 31}, nil), ErrTooLarge, []string{"int"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, err := ReadIDX(bytes.NewReader(tt.data))
			checkErr(t, err, tt.want, tt.fragments...)
			if x != nil {
				t.Error("non-nil result with an error")
			}
		})
	}
	_, err := ReadIDX(nil)
	checkErr(t, err, ErrInvalid, "nil reader")
}

func TestReadIDXReaderError(t *testing.T) {
	boom := errors.New("network gone")
	valid := makeIDX(IDXUint8, []uint32{2, 3}, []byte{1, 2, 3, 4, 5, 6})
	for _, n := range []int{0, 3, 10} {
		_, err := ReadIDX(io.MultiReader(bytes.NewReader(valid[:n]), iotest.ErrReader(boom)))
		if !errors.Is(err, boom) {
			t.Errorf("after %d bytes: error %v does not wrap the reader's", n, err)
		}
	}
	if _, err := ReadIDX(iotest.OneByteReader(bytes.NewReader(gzipped(t, valid)))); err != nil {
		t.Errorf("one-byte reader: %v", err)
	}
}

// TestReadIDXDoesNotTrustHeader checks that a header declaring almost the
// maximum size, followed by a few bytes, costs memory in proportion to the
// bytes, not to the header.
func TestReadIDXDoesNotTrustHeader(t *testing.T) {
	data := makeIDX(IDXUint8, []uint32{1 << 15, 1 << 15, 1}, make([]byte, 100)) // declares 1 GiB
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadIDX(bytes.NewReader(data))
	runtime.ReadMemStats(&after)
	checkErr(t, err, ErrTruncated, "declares 1073741824 bytes", "got 100")
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("allocated %d bytes for a %d-byte input", alloc, len(data))
	}
}

func TestReadMNIST(t *testing.T) {
	images := makeIDX(IDXUint8, []uint32{2, 2, 3}, []byte{0, 51, 102, 153, 204, 255, 255, 0, 0, 0, 0, 0})
	labels := makeIDX(IDXUint8, []uint32{2}, []byte{7, 3})
	imgs, err := ReadMNISTImages(bytes.NewReader(gzipped(t, images)))
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 || imgs[1].C != 1 || imgs[1].H != 2 || imgs[1].W != 3 {
		t.Fatalf("got %d images of %+v", len(imgs), imgs[0])
	}
	if !near(imgs[0].Pix, []float32{0, 0.2, 0.4, 0.6, 0.8, 1}, 1e-7) || !near(imgs[1].Pix, []float32{1, 0, 0, 0, 0, 0}, 0) {
		t.Errorf("pixels %v %v", imgs[0].Pix, imgs[1].Pix)
	}
	if cap(imgs[0].Pix) != 6 {
		t.Errorf("image 0 has capacity %d, want 6 (appends must not reach image 1)", cap(imgs[0].Pix))
	}
	got, err := ReadMNISTLabels(bytes.NewReader(labels))
	if err != nil || len(got) != 2 || got[0] != 7 || got[1] != 3 {
		t.Errorf("labels %v, %v", got, err)
	}

	tests := []struct {
		name      string
		read      func(io.Reader) error
		data      []byte
		fragments []string
	}{
		{"labels as images", readImages, labels, []string{"MNIST images", "got 1 (2) of unsigned byte"}},
		{"images as labels", readLabels, images, []string{"MNIST labels", "got 3 (2x2x3)"}},
		{"signed images", readImages, makeIDX(IDXInt8, []uint32{1, 1, 1}, []byte{1}), []string{"of signed byte"}},
		{"float labels", readLabels, makeIDX(IDXFloat32, []uint32{1}, make([]byte, 4)), []string{"of float"}},
		{"empty images", readImages, makeIDX(IDXUint8, []uint32{3, 0, 28}, nil), []string{"image size 0x28"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, tt.read(bytes.NewReader(tt.data)), ErrFormat, tt.fragments...)
		})
	}
}

func readImages(r io.Reader) error { _, err := ReadMNISTImages(r); return err }
func readLabels(r io.Reader) error { _, err := ReadMNISTLabels(r); return err }

func TestLoadMNISTFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	images := write("images.gz", gzipped(t, makeIDX(IDXUint8, []uint32{2, 1, 1}, []byte{0, 255})))
	labels := write("labels", makeIDX(IDXUint8, []uint32{2}, []byte{1, 2}))
	three := write("three", makeIDX(IDXUint8, []uint32{3}, []byte{1, 2, 3}))
	bad := write("bad", []byte{0, 0, 8})
	imgs, ls, err := LoadMNIST(images, labels)
	if err != nil || len(imgs) != 2 || len(ls) != 2 || imgs[1].Pix[0] != 1 {
		t.Fatalf("LoadMNIST = %v, %v, %v", imgs, ls, err)
	}
	_, _, err = LoadMNIST(images, three)
	checkErr(t, err, ErrFormat, three, "3 labels for the 2 images")
	_, _, err = LoadMNIST(bad, labels)
	checkErr(t, err, ErrTruncated, bad)
	missing := filepath.Join(dir, "missing")
	_, _, err = LoadMNIST(images, missing)
	checkErr(t, err, fs.ErrNotExist, missing)

	x, err := ReadIDXFile(labels)
	if err != nil || x.Len() != 2 {
		t.Errorf("ReadIDXFile = %v, %v", x, err)
	}
	_, err = ReadIDXFile(bad)
	checkErr(t, err, ErrTruncated, bad)
	_, err = ReadIDXFile(missing)
	checkErr(t, err, fs.ErrNotExist, missing)
}

func TestElemType(t *testing.T) {
	for _, tt := range []struct {
		t    ElemType
		size int
		name string
	}{
		{IDXUint8, 1, "unsigned byte"}, {IDXInt8, 1, "signed byte"}, {IDXInt16, 2, "short"},
		{IDXInt32, 4, "int"}, {IDXFloat32, 4, "float"}, {IDXFloat64, 8, "double"}, {0x0a, 0, "type 0x0a"},
	} {
		if tt.t.Size() != tt.size || tt.t.String() != tt.name {
			t.Errorf("%#x: Size %d String %q, want %d %q", uint8(tt.t), tt.t.Size(), tt.t, tt.size, tt.name)
		}
	}
	if (&IDX{Type: 0x0a, Data: []byte{1}}).Float64s() != nil {
		t.Error("Float64s of an unknown type is not nil")
	}
}
