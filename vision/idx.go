package vision

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// MaxIDXBytes bounds the payload an IDX header may declare (the product of
// its dimensions times the element size); larger headers are refused with
// [ErrTooLarge] before anything is allocated. The MNIST training images
// take 47 MB.
const MaxIDXBytes = 1 << 31

// ElemType is the element type of an IDX file, coded in the third byte of
// its magic number.
type ElemType uint8

// The IDX element types. Multi-byte elements are stored big-endian.
const (
	IDXUint8   ElemType = 0x08 // unsigned byte
	IDXInt8    ElemType = 0x09 // signed byte
	IDXInt16   ElemType = 0x0B // 16-bit signed integer
	IDXInt32   ElemType = 0x0C // 32-bit signed integer
	IDXFloat32 ElemType = 0x0D // 32-bit IEEE float
	IDXFloat64 ElemType = 0x0E // 64-bit IEEE float
)

// Size returns the size of one element in bytes, or 0 for a code that is
// not an IDX element type.
func (t ElemType) Size() int {
	switch t {
	case IDXUint8, IDXInt8:
		return 1
	case IDXInt16:
		return 2
	case IDXInt32, IDXFloat32:
		return 4
	case IDXFloat64:
		return 8
	}
	return 0
}

// String returns the name of the type as the IDX format description gives
// it, such as "unsigned byte", or "type 0x0a" for an unknown code.
func (t ElemType) String() string {
	switch t {
	case IDXUint8:
		return "unsigned byte"
	case IDXInt8:
		return "signed byte"
	case IDXInt16:
		return "short"
	case IDXInt32:
		return "int"
	case IDXFloat32:
		return "float"
	case IDXFloat64:
		return "double"
	}
	return fmt.Sprintf("type 0x%02x", uint8(t))
}

// IDX is the content of an IDX file: an array of any dimensionality of one
// element type.
type IDX struct {
	Type ElemType // element type
	Dims []int    // sizes of the dimensions, outermost first
	// Data holds the elements in row-major order, as stored in the file:
	// one byte each for IDXUint8 and IDXInt8, big-endian for the wider
	// types. For IDXUint8 the bytes are the values.
	Data []byte
}

// Len returns the number of elements, the product of Dims.
func (x *IDX) Len() int {
	n, _ := mul(x.Dims...)
	return n
}

// Float64s converts the elements to float64 values, which represent every
// IDX type exactly. It converts len(Data)/Type.Size() elements, so an IDX
// returned by [ReadIDX] converts whole, and returns nil for an unknown type.
func (x *IDX) Float64s() []float64 {
	size := x.Type.Size()
	if size == 0 {
		return nil
	}
	out := make([]float64, len(x.Data)/size)
	d := x.Data
	for i := range out {
		e := d[i*size : (i+1)*size]
		switch x.Type {
		case IDXUint8:
			out[i] = float64(e[0])
		case IDXInt8:
			out[i] = float64(int8(e[0]))
		case IDXInt16:
			out[i] = float64(int16(binary.BigEndian.Uint16(e)))
		case IDXInt32:
			out[i] = float64(int32(binary.BigEndian.Uint32(e)))
		case IDXFloat32:
			out[i] = float64(math.Float32frombits(binary.BigEndian.Uint32(e)))
		case IDXFloat64:
			out[i] = math.Float64frombits(binary.BigEndian.Uint64(e))
		}
	}
	return out
}

// shape formats dimensions as "60000x28x28".
func shape(dims []int) string {
	s := make([]string, len(dims))
	for i, d := range dims {
		s[i] = strconv.Itoa(d)
	}
	return strings.Join(s, "x")
}

// ReadIDX reads one IDX file from r, gzip-compressed or not (compression is
// recognised by the gzip magic bytes 1F 8B; the file must be one gzip
// member, as gzip writes it). The header is four magic bytes
// (0, 0, the [ElemType] code, the number of dimensions) followed by each
// dimension as a big-endian uint32; the elements follow. All six element
// types are read. Refused, with errors saying what was expected and what
// was found: a wrong magic number ([ErrFormat]), an unknown element type or
// zero dimensions ([ErrFormat]), a declared payload above [MaxIDXBytes]
// ([ErrTooLarge]), input that ends early ([ErrTruncated], with the declared
// and received sizes), and any byte after the payload, or a corrupt gzip
// stream ([ErrCorrupt]).
//
// The header is not trusted for allocation: the payload buffer grows with
// the data actually read, so a short input with a large declared size costs
// at most about twice the bytes it delivers.
func ReadIDX(r io.Reader) (*IDX, error) {
	x, err := readIDX(r)
	if err != nil {
		return nil, wrap("", err)
	}
	return x, nil
}

// ReadIDXFile reads the named IDX file (see [ReadIDX]); errors name the
// file, and a missing file gives an error for which
// errors.Is(err, fs.ErrNotExist) holds.
func ReadIDXFile(path string) (*IDX, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{Path: path, Err: openError(err)}
	}
	defer f.Close()
	x, err := readIDX(f)
	if err != nil {
		return nil, wrap(path, err)
	}
	return x, nil
}

func readIDX(r io.Reader) (*IDX, error) {
	if r == nil {
		return nil, errorf(ErrInvalid, "IDX: nil reader")
	}
	rec := &recordingReader{r: r}
	br := bufio.NewReader(rec)
	var src io.Reader = br
	what := "IDX"
	gzipped := false
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, streamError(rec, "gzip header", err)
		}
		zr.Multistream(false)
		src, what, gzipped = zr, "IDX (gzip)", true
	}

	var magic [4]byte
	if n, err := io.ReadFull(src, magic[:]); err != nil {
		if n == 0 && err == io.EOF && what == "IDX" {
			return nil, errorf(ErrTruncated, "%s: empty input", what)
		}
		return nil, streamError(rec, fmt.Sprintf("%s magic number: got %d of 4 bytes", what, n), err)
	}
	if magic[0] != 0 || magic[1] != 0 {
		return nil, errorf(ErrFormat, "%s: magic number % x, want 00 00 <type> <dimensions>", what, magic[:])
	}
	typ, nd := ElemType(magic[2]), int(magic[3])
	if typ.Size() == 0 {
		return nil, errorf(ErrFormat,
			"%s: unknown element type 0x%02x, want 0x08, 0x09, 0x0b, 0x0c, 0x0d or 0x0e", what, magic[2])
	}
	if nd == 0 {
		return nil, errorf(ErrFormat, "%s: header declares 0 dimensions", what)
	}
	raw := make([]byte, 4*nd)
	if n, err := io.ReadFull(src, raw); err != nil {
		return nil, streamError(rec,
			fmt.Sprintf("%s header: %d dimensions need %d bytes, got %d", what, nd, 4*nd, n), err)
	}
	dims := make([]int, nd)
	size := uint64(typ.Size())
	for i := range dims {
		d := binary.BigEndian.Uint32(raw[4*i:])
		dims[i] = int(d)
		if d != 0 && size > MaxIDXBytes/uint64(d) {
			size = MaxIDXBytes + 1 // stop multiplying before it can overflow
		} else {
			size *= uint64(d)
		}
	}
	if size > MaxIDXBytes {
		return nil, errorf(ErrTooLarge, "%s: header declares %s elements of %s, more than %d bytes",
			what, shape(dims), typ, MaxIDXBytes)
	}
	n := int(size)
	data, err := readN(src, n)
	if err != nil {
		return nil, streamError(rec, fmt.Sprintf("%s data: header declares %d bytes (%s %s), got %d",
			what, n, shape(dims), typ, len(data)), err)
	}
	// The payload must end the stream; reading on also checks the gzip
	// checksum.
	var one [1]byte
	if k, err := io.ReadFull(src, one[:]); k > 0 {
		return nil, errorf(ErrCorrupt, "%s: trailing data after the %d bytes the header declares (%s %s)",
			what, n, shape(dims), typ)
	} else if err != io.EOF {
		return nil, streamError(rec,
			fmt.Sprintf("%s: incomplete stream after the %d bytes of data", what, n), err)
	}
	if gzipped {
		if extra, _ := br.Peek(1); len(extra) > 0 {
			return nil, errorf(ErrCorrupt, "%s: trailing data after the gzip stream", what)
		}
		if rec.err != nil {
			return nil, fmt.Errorf("reading %s: %w", what, rec.err)
		}
	}
	return &IDX{Type: typ, Dims: dims, Data: data}, nil
}

// readN reads exactly n bytes, growing its buffer only as data arrives.
func readN(r io.Reader, n int) ([]byte, error) {
	const first = 64 << 10 // then doubling, up to n
	buf := make([]byte, 0, min(n, first))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			next := make([]byte, len(buf), min(n, 2*cap(buf)))
			copy(next, buf)
			buf = next
		}
		k, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// streamError classifies an error met while reading: the reader's own
// failure, the end of input, or a corrupt (gzip) stream.
func streamError(rec *recordingReader, what string, err error) error {
	switch {
	case rec.err != nil:
		return fmt.Errorf("reading %s: %w", what, rec.err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(ErrTruncated, "%s", what)
	}
	return errorf(ErrCorrupt, "%s: %w", what, err)
}

// ReadMNISTImages reads an IDX file of unsigned bytes with three
// dimensions (images x rows x columns), gzip-compressed or not, as MNIST's
// train-images-idx3-ubyte. It returns one 1 x rows x columns [Image] per
// image, with values byte/255 in [0, 1]; the images share one backing array
// (each Pix is capped at its own length). Any other element type or
// dimensionality is refused with [ErrFormat] naming what was found. For a
// dense N x (rows*columns) byte matrix, use [ReadIDX] and its Data.
func ReadMNISTImages(r io.Reader) ([]*Image, error) {
	imgs, err := readMNISTImages(r)
	return imgs, wrap("", err)
}

func readMNISTImages(r io.Reader) ([]*Image, error) {
	x, err := readIDX(r)
	if err != nil {
		return nil, err
	}
	if x.Type != IDXUint8 || len(x.Dims) != 3 {
		return nil, errorf(ErrFormat,
			"MNIST images: want 3 dimensions (images x rows x columns) of unsigned byte, got %d (%s) of %s",
			len(x.Dims), shape(x.Dims), x.Type)
	}
	n, h, w := x.Dims[0], x.Dims[1], x.Dims[2]
	if n > 0 && (h == 0 || w == 0) {
		return nil, errorf(ErrFormat, "MNIST images: image size %dx%d", h, w)
	}
	pix := make([]float32, len(x.Data))
	for i, b := range x.Data {
		pix[i] = float32(b) / 255
	}
	imgs := make([]*Image, n)
	hw := h * w
	for i := range imgs {
		imgs[i] = &Image{C: 1, H: h, W: w, Pix: pix[i*hw : (i+1)*hw : (i+1)*hw]}
	}
	return imgs, nil
}

// ReadMNISTLabels reads an IDX file of unsigned bytes with one dimension,
// gzip-compressed or not, as MNIST's train-labels-idx1-ubyte, and returns
// the labels. Values are not checked against a number of classes (MNIST
// has 10, EMNIST up to 62). Any other element type or dimensionality is
// refused with [ErrFormat].
func ReadMNISTLabels(r io.Reader) ([]int, error) {
	labels, err := readMNISTLabels(r)
	return labels, wrap("", err)
}

func readMNISTLabels(r io.Reader) ([]int, error) {
	x, err := readIDX(r)
	if err != nil {
		return nil, err
	}
	if x.Type != IDXUint8 || len(x.Dims) != 1 {
		return nil, errorf(ErrFormat, "MNIST labels: want 1 dimension of unsigned byte, got %d (%s) of %s",
			len(x.Dims), shape(x.Dims), x.Type)
	}
	labels := make([]int, len(x.Data))
	for i, b := range x.Data {
		labels[i] = int(b)
	}
	return labels, nil
}

// LoadMNIST reads an MNIST image file and its label file (see
// [ReadMNISTImages] and [ReadMNISTLabels]) and checks that they hold the
// same number of samples. Errors name the file concerned.
func LoadMNIST(imagesPath, labelsPath string) ([]*Image, []int, error) {
	imgs, err := loadFile(imagesPath, readMNISTImages)
	if err != nil {
		return nil, nil, err
	}
	labels, err := loadFile(labelsPath, readMNISTLabels)
	if err != nil {
		return nil, nil, err
	}
	if len(imgs) != len(labels) {
		return nil, nil, &Error{Path: labelsPath, Err: errorf(ErrFormat, "%d labels for the %d images of %s",
			len(labels), len(imgs), imagesPath)}
	}
	return imgs, labels, nil
}

// loadFile opens path and reads it with read, naming the file in errors.
func loadFile[T any](path string, read func(io.Reader) (T, error)) (T, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		return zero, &Error{Path: path, Err: openError(err)}
	}
	defer f.Close()
	v, err := read(f)
	if err != nil {
		return zero, wrap(path, err)
	}
	return v, nil
}
