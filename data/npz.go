package data

import (
	"archive/zip"
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"codeberg.org/sbinet/npyio/npy"
)

// Names of the non-feature arrays of an .npz feature set.
const (
	labelsArray = "labels"
	groupsArray = "groups"
)

// Limits that keep a corrupt or hostile header from causing huge
// allocations. NumPy itself refuses headers above 10000 bytes by default.
const (
	maxNPYHeader   = 10000
	maxNPYElements = 1 << 31
)

// DefaultNPZMaxBytes is the default of NPZOptions.MaxBytes: the most that
// the arrays LoadNPZ reads from one .npz file may decompress to, 4 GiB.
const DefaultNPZMaxBytes = 4 << 30

// MaxInferredClasses is the largest class count LoadNPZ infers from the
// labels when none is given; a larger label space must be declared.
const MaxInferredClasses = 10000

// NPZOptions are the settings of LoadNPZWith.
type NPZOptions struct {
	// NumClasses is K; labels must then be below it. 0 infers K as the
	// largest label + 1 over both files, within bounds: K may not exceed
	// MaxInferredClasses, and at least half of the classes 0..K-1 must
	// occur, so that one corrupt label (say 1000000) is an error naming
	// its row instead of a model with a million outputs.
	NumClasses int

	// MaxBytes bounds the decompressed size of the arrays read from each
	// file (labels, groups and the modalities), as their zip entries
	// declare it, before anything is decompressed: a small compressed file
	// cannot expand to gigabytes (a zip bomb). 0 means DefaultNPZMaxBytes.
	MaxBytes int64

	// Logger receives warnings, such as test labels that the training set
	// never has. nil means slog.Default().
	Logger *slog.Logger

	// TrainOnly reads train.npz alone (the test set returned is nil, and
	// K is inferred from the training labels): for a tuning run, which
	// evaluates on a split of the training set and must not read, or
	// depend on, the test set.
	TrainOnly bool
}

// LoadNPZ reads dir/train.npz and dir/test.npz with numClasses as
// NPZOptions.NumClasses and the other options at their defaults (see
// LoadNPZWith).
func LoadNPZ(dir string, modalities []string, numClasses int) (train, test *Set, err error) {
	return LoadNPZWith(dir, modalities, NPZOptions{NumClasses: numClasses})
}

// LoadNPZWith reads dir/train.npz and dir/test.npz. Each holds one 2-D
// float32/float64 array per modality (N x D_m, array name = modality name),
// "labels" (N, any integer dtype, values 0..K-1) and optionally "groups"
// (N, integers). modalities chooses which arrays are the modalities (in
// order). K is opts.NumClasses, or inferred from the labels (see
// NPZOptions); a test set with labels beyond the training set's largest is
// logged as a warning, since it silently widens an inferred K.
//
// Array names may carry NumPy's ".npy" suffix inside the archive (np.savez
// writes "labels.npy"); both forms are accepted. Arrays may be C- or
// Fortran-ordered, little- or big-endian, stored or deflated (np.savez and
// np.savez_compressed). Features are converted to float32; a float64 value
// beyond float32 range is an error, like NaN and infinities.
//
// Errors are *ParseError values naming the file and array, wrapping
// ErrFormat, ErrShape, ErrLabel, ErrNonFinite or ErrUnknownModality; a
// missing file gives an error satisfying errors.Is(err, fs.ErrNotExist).
func LoadNPZWith(dir string, modalities []string, opts NPZOptions) (train, test *Set, err error) {
	if len(modalities) == 0 {
		return nil, nil, fmt.Errorf("data: load %s: no modalities named", dir)
	}
	for j, name := range modalities {
		switch {
		case name == "":
			return nil, nil, fmt.Errorf("data: load %s: modality %d has an empty name", dir, j)
		case name == labelsArray || name == groupsArray:
			return nil, nil, fmt.Errorf("data: load %s: %q cannot be a modality", dir, name)
		case slices.Contains(modalities[:j], name):
			return nil, nil, fmt.Errorf("data: load %s: modality %q named twice", dir, name)
		}
	}
	numClasses := opts.NumClasses
	if numClasses < 0 {
		return nil, nil, fmt.Errorf("data: load %s: numClasses = %d, want >= 0", dir, numClasses)
	}
	maxBytes, err := npzMaxBytes(dir, "MaxBytes", opts.MaxBytes)
	if err != nil {
		return nil, nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	trainPath := filepath.Join(dir, "train.npz")
	testPath := filepath.Join(dir, "test.npz")
	train, err = readNPZSet(trainPath, modalities, maxBytes)
	if err != nil {
		return nil, nil, err
	}
	if opts.TrainOnly {
		k := numClasses
		if k == 0 {
			if k, err = inferClasses(labelFile{trainPath, train.Labels}); err != nil {
				return nil, nil, err
			}
		}
		if err := checkLabels(trainPath, train, k); err != nil {
			return nil, nil, err
		}
		return train, nil, nil
	}
	test, err = readNPZSet(testPath, modalities, maxBytes)
	if err != nil {
		return nil, nil, err
	}
	for m, name := range modalities {
		if train.Dims[m] != test.Dims[m] {
			return nil, nil, &ParseError{File: testPath, Array: name,
				Err: detail(ErrShape, "dimension %d, but %d in %s", test.Dims[m], train.Dims[m], trainPath)}
		}
	}
	files := []struct {
		path string
		set  *Set
	}{{trainPath, train}, {testPath, test}}
	trainMax, testMax := slices.Max(train.Labels), slices.Max(test.Labels)
	if testMax > trainMax {
		log.Warn("data: the test set has labels the training set never has",
			"test", testPath, "test_max_label", testMax, "train", trainPath, "train_max_label", trainMax,
			"num_classes", numClasses, "note", "with num_classes 0 these labels add classes no client trains on")
	}
	k := numClasses
	if k == 0 {
		if k, err = inferClasses(labelFile{trainPath, train.Labels}, labelFile{testPath, test.Labels}); err != nil {
			return nil, nil, err
		}
	}
	for _, f := range files {
		if err := checkLabels(f.path, f.set, k); err != nil {
			return nil, nil, err
		}
	}
	return train, test, nil
}

// checkLabels checks that set's labels (read from path) are below k and
// sets its NumClasses to k.
func checkLabels(path string, set *Set, k int) error {
	for i, y := range set.Labels {
		if y >= k {
			return &ParseError{File: path, Array: labelsArray,
				Err: detail(ErrLabel, "row %d has label %d, want 0..%d (numClasses %d)", i, y, k-1, k)}
		}
	}
	set.NumClasses = k
	return nil
}

// npzMaxBytes returns the decompression bound v asks for, 0 meaning
// DefaultNPZMaxBytes; a negative v is an error naming where and field.
func npzMaxBytes(where, field string, v int64) (int64, error) {
	switch {
	case v < 0:
		return 0, fmt.Errorf("data: load %s: %s = %d, want >= 0", where, field, v)
	case v == 0:
		return DefaultNPZMaxBytes, nil
	}
	return v, nil
}

// labelFile is a file's labels, for inferClasses.
type labelFile struct {
	path   string
	labels []int
}

// inferClasses returns the largest label + 1 of the files' labels, or an
// error naming the file and row of the largest label when labelSpace
// refuses that count.
func inferClasses(files ...labelFile) (int, error) {
	lists := make([][]int, len(files))
	for i, f := range files {
		lists[i] = f.labels
	}
	k, file, row, distinct, ok := labelSpace(lists...)
	if !ok {
		return 0, &ParseError{File: files[file].path, Array: labelsArray, Err: detail(ErrLabel,
			"row %d has label %d, which would make %d classes, but only %d distinct labels occur (at least half of the classes must occur, and at most %d are inferred); if the label is right, set the number of classes (data.num_classes)",
			row, k-1, k, distinct, MaxInferredClasses)}
	}
	return k, nil
}

// labelSpace returns the largest label + 1 over the given lists of
// non-negative labels, which list and row hold that label, and how many
// distinct labels occur. ok is false when that count is beyond
// MaxInferredClasses or more than twice the number of distinct labels: a
// sparse label space is more often a corrupt label than classes that
// never occur (and a huge one would be allocated per class).
func labelSpace(lists ...[]int) (k, list, row, distinct int, ok bool) {
	seen := make(map[int]bool)
	top := -1
	for l, labels := range lists {
		for i, y := range labels {
			seen[y] = true
			if y > top {
				list, row, top = l, i, y
			}
		}
	}
	return top + 1, list, row, len(seen), top < MaxInferredClasses && top+1 <= 2*len(seen)
}

// readNPZSet reads one .npz file into a Set without NumClasses. Labels are
// checked to be non-negative, features to be finite. The arrays it reads
// may together decompress to at most maxBytes, as their zip entries
// declare (the zip reader enforces the declared sizes).
func readNPZSet(path string, modalities []string, maxBytes int64) (*Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: load %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("data: load %s: %w", path, err)
	}
	zr, err := zip.NewReader(f, info.Size())
	if err != nil {
		return nil, &ParseError{File: path, Err: fmt.Errorf("%w: not a valid .npz (zip) archive: %w", ErrFormat, err)}
	}
	entries := make(map[string]*zip.File) // array name -> archive entry
	var names []string
	for _, zf := range zr.File {
		name := strings.TrimSuffix(zf.Name, ".npy")
		if _, dup := entries[name]; !dup {
			entries[name] = zf
			names = append(names, name)
		}
	}
	slices.Sort(names)
	// Check the declared sizes of every array to read before decompressing
	// any of them.
	var total uint64
	for _, name := range append([]string{labelsArray, groupsArray}, modalities...) {
		zf, ok := entries[name]
		if !ok {
			continue // reported by read, in order
		}
		total += zf.UncompressedSize64
		if zf.UncompressedSize64 > uint64(maxBytes) || total > uint64(maxBytes) {
			return nil, &ParseError{File: path, Array: name, Err: detail(ErrFormat,
				"decompresses to %d bytes (%d with the arrays before it), beyond the limit of %d bytes per file (%d compressed); raise the limit (data.npz_max_mb) if the data set is really this large",
				zf.UncompressedSize64, total, maxBytes, info.Size())}
		}
	}
	read := func(name string, missing error, rows int) (*npyArray, error) {
		zf, ok := entries[name]
		if !ok {
			return nil, &ParseError{File: path, Array: name,
				Err: detail(missing, "no such array (have %s)", strings.Join(names, ", "))}
		}
		a, err := readNPY(zf, rows)
		if err != nil {
			return nil, &ParseError{File: path, Array: name, Err: err}
		}
		return a, nil
	}

	s := &Set{
		Modalities: slices.Clone(modalities),
		Dims:       make([]int, len(modalities)),
		Features:   make([][]float32, len(modalities)),
	}
	la, err := read(labelsArray, ErrFormat, -1)
	if err != nil {
		return nil, err
	}
	if s.Labels, err = la.intVector(); err != nil {
		return nil, &ParseError{File: path, Array: labelsArray, Err: err}
	}
	n := len(s.Labels)
	if n == 0 {
		return nil, &ParseError{File: path, Array: labelsArray, Err: detail(ErrShape, "no samples")}
	}
	for i, y := range s.Labels {
		if y < 0 {
			return nil, &ParseError{File: path, Array: labelsArray, Err: detail(ErrLabel, "row %d has negative label %d", i, y)}
		}
	}
	if _, ok := entries[groupsArray]; ok {
		ga, err := read(groupsArray, ErrFormat, n)
		if err != nil {
			return nil, err
		}
		if s.Groups, err = ga.intVector(); err != nil {
			return nil, &ParseError{File: path, Array: groupsArray, Err: err}
		}
	}
	for m, name := range modalities {
		a, err := read(name, ErrUnknownModality, n)
		if err != nil {
			return nil, err
		}
		feats, d, err := a.floatMatrix()
		if err != nil {
			return nil, &ParseError{File: path, Array: name, Err: err}
		}
		s.Dims[m], s.Features[m] = d, feats
	}
	return s, nil
}

// npyArray is one decoded .npy header with its raw data.
type npyArray struct {
	kind    byte // 'f' float, 'i' signed, 'u' unsigned integer, 'b' bool
	size    int  // bytes per element
	order   binary.ByteOrder
	dtype   string // as written in the header, e.g. "<f4"
	shape   []int
	fortran bool
	raw     []byte
}

// readNPY reads the archive entry zf as a .npy array. The header is parsed
// by npyio; the data is decoded here, because npyio's typed reads neither
// convert between types nor report data that stops short. rows, if >= 0,
// is the number of rows the array must have, checked before its data is
// read.
func readNPY(zf *zip.File, rows int) (*npyArray, error) {
	rc, err := zf.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	defer rc.Close()
	br := bufio.NewReader(rc)
	if err := checkNPYHeaderLen(br); err != nil {
		return nil, err
	}
	hdr, err := readNPYHeader(br)
	if err != nil {
		return nil, err
	}
	a, err := parseDtype(hdr.Descr.Type)
	if err != nil {
		return nil, err
	}
	a.fortran = hdr.Descr.Fortran
	a.shape = hdr.Descr.Shape
	elems := 1
	for _, d := range a.shape {
		if d < 0 {
			return nil, detail(ErrFormat, "negative dimension in shape %v", a.shape)
		}
		if d > 0 && elems > maxNPYElements/d {
			return nil, detail(ErrFormat, "shape %v is too large (limit %d elements)", a.shape, maxNPYElements)
		}
		elems *= d
	}
	if rows >= 0 && len(a.shape) > 0 && a.shape[0] != rows {
		return nil, detail(ErrShape, "%d rows, but labels has %d", a.shape[0], rows)
	}
	want := int64(elems) * int64(a.size)
	// Reading one byte past the end both detects trailing garbage and lets
	// the zip reader reach the end of the entry and verify its checksum.
	a.raw, err = io.ReadAll(io.LimitReader(br, want+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading data: %w", ErrFormat, err)
	}
	if got := int64(len(a.raw)); got != want {
		if got < want {
			return nil, detail(ErrFormat, "data truncated: %d bytes, want %d for shape %v of %s", got, want, a.shape, a.dtype)
		}
		return nil, detail(ErrFormat, "data longer than %d bytes for shape %v of %s", want, a.shape, a.dtype)
	}
	return a, nil
}

// checkNPYHeaderLen rejects headers longer than maxNPYHeader before npyio
// allocates a buffer of the declared length (up to 4 GiB).
func checkNPYHeaderLen(br *bufio.Reader) error {
	// magic (6 bytes), version (2), header length (2 in version 1, else 4)
	b, err := br.Peek(12)
	if len(b) < 10 {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("%w: reading npy header: %w", ErrFormat, err)
	}
	var n int
	switch {
	case b[6] == 1:
		n = int(binary.LittleEndian.Uint16(b[8:10]))
	case len(b) < 12:
		return fmt.Errorf("%w: reading npy header: %w", ErrFormat, io.ErrUnexpectedEOF)
	default:
		n = int(binary.LittleEndian.Uint32(b[8:12]))
	}
	if n > maxNPYHeader {
		return detail(ErrFormat, "npy header of %d bytes (limit %d)", n, maxNPYHeader)
	}
	return nil
}

// readNPYHeader parses a .npy header with npyio, turning its panics on
// malformed input (it slices without bounds checks) into errors.
func readNPYHeader(r io.Reader) (hdr npy.Header, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = detail(ErrFormat, "malformed npy header (%v)", p)
		}
	}()
	rd, err := npy.NewReader(r)
	if err != nil {
		return npy.Header{}, fmt.Errorf("%w: npy header: %w", ErrFormat, err)
	}
	return rd.Header, nil
}

// parseDtype interprets a simple NumPy dtype string such as "'<f4'".
func parseDtype(descr string) (*npyArray, error) {
	t := strings.Trim(descr, `'" `)
	if len(t) < 3 {
		return nil, detail(ErrFormat, "unsupported dtype %s", descr)
	}
	a := &npyArray{dtype: t, kind: t[1]}
	switch t[0] {
	case '<', '|':
		a.order = binary.LittleEndian
	case '>':
		a.order = binary.BigEndian
	case '=':
		a.order = binary.NativeEndian
	default:
		return nil, detail(ErrFormat, "unsupported dtype %s", descr)
	}
	size, err := strconv.Atoi(t[2:])
	if err != nil {
		return nil, detail(ErrFormat, "unsupported dtype %s", descr)
	}
	a.size = size
	switch {
	case a.kind == 'f' && (size == 4 || size == 8),
		(a.kind == 'i' || a.kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8),
		a.kind == 'b' && size == 1:
		return a, nil
	}
	return nil, detail(ErrFormat, "unsupported dtype %s (want float32, float64 or an integer type)", descr)
}

// intVector decodes a 1-D integer array.
func (a *npyArray) intVector() ([]int, error) {
	if len(a.shape) != 1 {
		return nil, detail(ErrShape, "shape %v, want 1-D (N)", a.shape)
	}
	if a.kind != 'i' && a.kind != 'u' {
		return nil, detail(ErrLabel, "dtype %s, want an integer type", a.dtype)
	}
	out := make([]int, a.shape[0])
	for i := range out {
		b := a.raw[i*a.size : (i+1)*a.size]
		var u uint64
		switch a.size {
		case 1:
			u = uint64(b[0])
		case 2:
			u = uint64(a.order.Uint16(b))
		case 4:
			u = uint64(a.order.Uint32(b))
		case 8:
			u = a.order.Uint64(b)
		}
		if a.kind == 'u' {
			if u > math.MaxInt {
				return nil, detail(ErrLabel, "row %d: value %d overflows int", i, u)
			}
			out[i] = int(u)
			continue
		}
		// Sign-extend from the element width.
		shift := 64 - 8*uint(a.size)
		v := int64(u<<shift) >> shift
		if v < math.MinInt || v > math.MaxInt {
			return nil, detail(ErrLabel, "row %d: value %d overflows int", i, v)
		}
		out[i] = int(v)
	}
	return out, nil
}

// floatMatrix decodes a 2-D float array into row-major float32 values and
// returns them with the number of columns.
func (a *npyArray) floatMatrix() ([]float32, int, error) {
	if len(a.shape) != 2 {
		return nil, 0, detail(ErrShape, "shape %v, want 2-D (N x D)", a.shape)
	}
	if a.kind != 'f' {
		return nil, 0, detail(ErrFormat, "dtype %s, want float32 or float64", a.dtype)
	}
	rows, cols := a.shape[0], a.shape[1]
	if cols == 0 {
		return nil, 0, detail(ErrShape, "shape %v has no features", a.shape)
	}
	out := make([]float32, rows*cols)
	for i := range rows {
		for j := range cols {
			k := i*cols + j // position in the file
			if a.fortran {
				k = j*rows + i
			}
			var v float64
			if a.size == 4 {
				v = float64(math.Float32frombits(a.order.Uint32(a.raw[4*k:])))
			} else {
				v = math.Float64frombits(a.order.Uint64(a.raw[8*k:]))
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, 0, detail(ErrNonFinite, "row %d column %d is %v", i, j, v)
			}
			if math.Abs(v) > math.MaxFloat32 {
				return nil, 0, detail(ErrNonFinite, "row %d column %d is %g, beyond float32 range", i, j, v)
			}
			out[i*cols+j] = float32(v)
		}
	}
	return out, cols, nil
}
