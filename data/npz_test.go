package data

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"codeberg.org/sbinet/npyio/npz"
)

// writeNPZ writes arrays to path with npyio's writer, naming the entries
// "<name>.npy" as np.savez does.
func writeNPZ(t testing.TB, path string, arrays map[string]any) {
	t.Helper()
	vs := make(map[string]any, len(arrays))
	for name, v := range arrays {
		vs[name+".npy"] = v
	}
	if err := npz.Write(path, vs); err != nil {
		t.Fatal(err)
	}
}

// rawNPY builds a version 1.0 .npy file by hand, for layouts npyio's writer
// does not produce (Fortran order, big-endian, broken headers).
func rawNPY(descr string, fortran bool, shape string, data []byte) []byte {
	order := "False"
	if fortran {
		order = "True"
	}
	hdr := fmt.Sprintf("{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr, order, shape)
	for (10+len(hdr)+1)%64 != 0 {
		hdr += " "
	}
	hdr += "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&b, binary.LittleEndian, uint16(len(hdr)))
	b.WriteString(hdr)
	b.Write(data)
	return b.Bytes()
}

// writeZip writes the given entries (name -> raw bytes) as a zip archive.
func writeZip(t testing.TB, path string, entries map[string][]byte) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	names := make([]string, 0, len(entries))
	for name := range entries {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(entries[name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Fixture arrays: 3 training and 2 test samples of a 2-D "audio" and a 3-D
// "visual" modality.
func trainArrays() map[string]any {
	return map[string]any{
		"audio":  [][]float32{{1, 2}, {3, 4}, {5, 6}},
		"visual": [][]float64{{0.5, 0, -1}, {1, 1, 1}, {2, 2, 2}},
		"labels": []int64{0, 1, 2},
		"groups": []int32{7, 7, 9},
	}
}

func testArrays() map[string]any {
	return map[string]any{
		"audio":  [][]float32{{-1, -2}, {0, 0}},
		"visual": [][]float64{{3, 3, 3}, {4, 4, 4}},
		"labels": []uint8{1, 0},
	}
}

// npzDir writes train.npz and test.npz from the fixture arrays after
// applying the edits (a nil value deletes an array).
func npzDir(t testing.TB, trainEdit, testEdit map[string]any) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []struct {
		name  string
		base  map[string]any
		edits map[string]any
	}{{"train.npz", trainArrays(), trainEdit}, {"test.npz", testArrays(), testEdit}} {
		for k, v := range f.edits {
			if v == nil {
				delete(f.base, k)
			} else {
				f.base[k] = v
			}
		}
		writeNPZ(t, filepath.Join(dir, f.name), f.base)
	}
	return dir
}

func TestLoadNPZ(t *testing.T) {
	dir := npzDir(t, nil, nil)
	train, test, err := LoadNPZ(dir, []string{"visual", "audio"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Set{train, test} {
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(s.Modalities, []string{"visual", "audio"}) || !slices.Equal(s.Dims, []int{3, 2}) {
			t.Errorf("modalities %v dims %v, want [visual audio] [3 2]", s.Modalities, s.Dims)
		}
		if s.NumClasses != 3 {
			t.Errorf("NumClasses = %d, want 3", s.NumClasses)
		}
	}
	if want := []float32{0.5, 0, -1, 1, 1, 1, 2, 2, 2}; !slices.Equal(train.Features[0], want) {
		t.Errorf("train visual = %v, want %v", train.Features[0], want)
	}
	if want := []float32{-1, -2, 0, 0}; !slices.Equal(test.Features[1], want) {
		t.Errorf("test audio = %v, want %v", test.Features[1], want)
	}
	if !slices.Equal(train.Labels, []int{0, 1, 2}) || !slices.Equal(test.Labels, []int{1, 0}) {
		t.Errorf("labels %v %v", train.Labels, test.Labels)
	}
	if !slices.Equal(train.Groups, []int{7, 7, 9}) || test.Groups != nil {
		t.Errorf("groups %v %v, want [7 7 9] []", train.Groups, test.Groups)
	}
}

func TestLoadNPZNumClasses(t *testing.T) {
	tests := []struct {
		name       string
		testLabels any
		numClasses int
		want       int
	}{
		{"from train", []uint8{1, 0}, 0, 3},
		{"from test", []int16{3, 0}, 0, 4},
		{"given", []uint8{1, 0}, 10, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := npzDir(t, nil, map[string]any{"labels": tc.testLabels})
			train, test, err := LoadNPZ(dir, []string{"audio"}, tc.numClasses)
			if err != nil {
				t.Fatal(err)
			}
			if train.NumClasses != tc.want || test.NumClasses != tc.want {
				t.Errorf("NumClasses = %d, %d, want %d", train.NumClasses, test.NumClasses, tc.want)
			}
		})
	}
}

// TestLoadNPZLayouts checks arrays that npyio's writer cannot produce:
// Fortran order, big-endian, every integer width, entries without ".npy".
func TestLoadNPZLayouts(t *testing.T) {
	be := func(vs ...float64) []byte {
		var b bytes.Buffer
		binary.Write(&b, binary.BigEndian, vs)
		return b.Bytes()
	}
	le32 := func(vs ...float32) []byte {
		var b bytes.Buffer
		binary.Write(&b, binary.LittleEndian, vs)
		return b.Bytes()
	}
	dir := t.TempDir()
	// The matrix [[1 2 3] [4 5 6]] stored column by column.
	writeZip(t, filepath.Join(dir, "train.npz"), map[string][]byte{
		"audio.npy": rawNPY("<f4", true, "(2, 3)", le32(1, 4, 2, 5, 3, 6)),
		"visual":    rawNPY(">f8", false, "(2, 1)", be(-1.5, 2.5)),
		"labels":    rawNPY(">i2", false, "(2,)", []byte{0, 1, 0, 0}),
		"groups":    rawNPY("<i1", false, "(2,)", []byte{0xff, 3}),
	})
	writeZip(t, filepath.Join(dir, "test.npz"), map[string][]byte{
		"audio.npy":  rawNPY("<f4", false, "(1, 3)", le32(7, 8, 9)),
		"visual.npy": rawNPY("<f8", true, "(1, 1)", binary.LittleEndian.AppendUint64(nil, math.Float64bits(0.25))),
		"labels.npy": rawNPY("<u8", false, "(1,)", binary.LittleEndian.AppendUint64(nil, 1)),
	})
	train, test, err := LoadNPZ(dir, []string{"audio", "visual"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{1, 2, 3, 4, 5, 6}; !slices.Equal(train.Features[0], want) {
		t.Errorf("Fortran audio = %v, want %v", train.Features[0], want)
	}
	if want := []float32{-1.5, 2.5}; !slices.Equal(train.Features[1], want) {
		t.Errorf("big-endian visual = %v, want %v", train.Features[1], want)
	}
	if !slices.Equal(train.Labels, []int{1, 0}) || !slices.Equal(train.Groups, []int{-1, 3}) {
		t.Errorf("labels %v groups %v, want [1 0] [-1 3]", train.Labels, train.Groups)
	}
	if !slices.Equal(test.Features[1], []float32{0.25}) || !slices.Equal(test.Labels, []int{1}) {
		t.Errorf("test visual %v labels %v", test.Features[1], test.Labels)
	}
}

func TestLoadNPZErrors(t *testing.T) {
	nan := [][]float64{{0, 0, 0}, {1, 1, 1}, {2, math.NaN(), 2}}
	tests := []struct {
		name       string
		setup      func(t *testing.T) string // returns the directory
		modalities []string
		numClasses int
		is         error    // sentinel the error must wrap, or nil
		want       []string // substrings of the message
	}{
		{
			name:  "missing train file",
			setup: func(t *testing.T) string { return t.TempDir() },
			is:    fs.ErrNotExist, want: []string{"train.npz"},
		},
		{
			name: "missing test file",
			setup: func(t *testing.T) string {
				dir := npzDir(t, nil, nil)
				os.Remove(filepath.Join(dir, "test.npz"))
				return dir
			},
			is: fs.ErrNotExist, want: []string{"test.npz"},
		},
		{
			name: "truncated zip",
			setup: func(t *testing.T) string {
				dir := npzDir(t, nil, nil)
				path := filepath.Join(dir, "train.npz")
				b, _ := os.ReadFile(path)
				os.WriteFile(path, b[:len(b)/2], 0o644)
				return dir
			},
			is: ErrFormat, want: []string{"train.npz", "zip"},
		},
		{
			name: "not a zip",
			setup: func(t *testing.T) string {
				dir := npzDir(t, nil, nil)
				os.WriteFile(filepath.Join(dir, "test.npz"), []byte("hello"), 0o644)
				return dir
			},
			is: ErrFormat, want: []string{"test.npz"},
		},
		{
			name:       "missing modality",
			setup:      func(t *testing.T) string { return npzDir(t, nil, nil) },
			modalities: []string{"audio", "text"},
			is:         ErrUnknownModality, want: []string{"train.npz", `"text"`, "have audio, groups, labels, visual"},
		},
		{
			name:  "missing labels",
			setup: func(t *testing.T) string { return npzDir(t, nil, map[string]any{"labels": nil}) },
			is:    ErrFormat, want: []string{"test.npz", `"labels"`, "no such array"},
		},
		{
			name:  "modality not 2-D",
			setup: func(t *testing.T) string { return npzDir(t, map[string]any{"audio": []float32{1, 2, 3}}, nil) },
			is:    ErrShape, want: []string{"train.npz", `"audio"`, "want 2-D"},
		},
		{
			name:  "labels not 1-D",
			setup: func(t *testing.T) string { return npzDir(t, map[string]any{"labels": [][]int64{{0}, {1}, {2}}}, nil) },
			is:    ErrShape, want: []string{"train.npz", `"labels"`, "want 1-D"},
		},
		{
			name: "row count mismatch",
			setup: func(t *testing.T) string {
				return npzDir(t, map[string]any{"visual": [][]float64{{1, 2, 3}, {4, 5, 6}}}, nil)
			},
			is: ErrShape, want: []string{"train.npz", `"visual"`, "2 rows, but labels has 3"},
		},
		{
			name:  "groups length mismatch",
			setup: func(t *testing.T) string { return npzDir(t, map[string]any{"groups": []int64{1}}, nil) },
			is:    ErrShape, want: []string{"train.npz", `"groups"`, "1 rows"},
		},
		{
			name: "dimension differs between files",
			setup: func(t *testing.T) string {
				return npzDir(t, nil, map[string]any{"audio": [][]float32{{1, 2, 3}, {4, 5, 6}}})
			},
			is: ErrShape, want: []string{"test.npz", `"audio"`, "dimension 3, but 2"},
		},
		{
			name:  "float labels",
			setup: func(t *testing.T) string { return npzDir(t, map[string]any{"labels": []float64{0, 1, 2}}, nil) },
			is:    ErrLabel, want: []string{"train.npz", `"labels"`, "integer"},
		},
		{
			name:  "negative label",
			setup: func(t *testing.T) string { return npzDir(t, map[string]any{"labels": []int8{0, -1, 2}}, nil) },
			is:    ErrLabel, want: []string{"train.npz", "row 1", "-1"},
		},
		{
			name:       "label beyond numClasses",
			setup:      func(t *testing.T) string { return npzDir(t, nil, nil) },
			numClasses: 2,
			is:         ErrLabel, want: []string{"train.npz", "row 2", "label 2", "0..1"},
		},
		{
			name:  "NaN feature",
			setup: func(t *testing.T) string { return npzDir(t, map[string]any{"visual": nan}, nil) },
			is:    ErrNonFinite, want: []string{"train.npz", `"visual"`, "row 2 column 1", "NaN"},
		},
		{
			name: "infinite feature",
			setup: func(t *testing.T) string {
				return npzDir(t, nil, map[string]any{"audio": [][]float32{{0, 0}, {float32(math.Inf(-1)), 0}}})
			},
			is: ErrNonFinite, want: []string{"test.npz", `"audio"`, "row 1 column 0", "-Inf"},
		},
		{
			name: "beyond float32",
			setup: func(t *testing.T) string {
				return npzDir(t, nil, map[string]any{"visual": [][]float64{{0, 0, 0}, {0, 1e300, 0}}})
			},
			is: ErrNonFinite, want: []string{"test.npz", "row 1 column 1", "float32 range"},
		},
		{
			// npyio writes an empty slice with shape (), so build it by hand.
			name: "empty set",
			setup: func(t *testing.T) string {
				return rawDir(t, map[string][]byte{"labels.npy": rawNPY("<i8", false, "(0,)", nil)})
			},
			is: ErrShape, want: []string{"train.npz", `"labels"`, "no samples"},
		},
		{
			name: "integer features",
			setup: func(t *testing.T) string {
				return npzDir(t, map[string]any{"audio": [][]int32{{1, 2}, {3, 4}, {5, 6}}}, nil)
			},
			is: ErrFormat, want: []string{"train.npz", `"audio"`, "want float32 or float64"},
		},
		{
			name: "no features",
			setup: func(t *testing.T) string {
				return rawDir(t, map[string][]byte{"audio.npy": rawNPY("<f4", false, "(3, 0)", nil)})
			},
			is: ErrShape, want: []string{"train.npz", "no features"},
		},
		{
			name: "truncated array data",
			setup: func(t *testing.T) string {
				return rawDir(t, map[string][]byte{"audio.npy": rawNPY("<f4", false, "(3, 2)", make([]byte, 20))})
			},
			is: ErrFormat, want: []string{"train.npz", `"audio"`, "truncated", "20 bytes, want 24"},
		},
		{
			name: "trailing array data",
			setup: func(t *testing.T) string {
				return rawDir(t, map[string][]byte{"audio.npy": rawNPY("<f4", false, "(3, 2)", make([]byte, 25))})
			},
			is: ErrFormat, want: []string{"train.npz", `"audio"`, "longer than 24 bytes"},
		},
		{
			name: "garbage npy",
			setup: func(t *testing.T) string {
				return rawDir(t, map[string][]byte{"audio.npy": []byte("\x93NUMPY\x01\x00\x04\x00abcd")})
			},
			is: ErrFormat, want: []string{"train.npz", `"audio"`, "header"},
		},
		{
			name: "short npy",
			setup: func(t *testing.T) string {
				return rawDir(t, map[string][]byte{"audio.npy": []byte("\x93NUM")})
			},
			is: ErrFormat, want: []string{"train.npz", `"audio"`, "unexpected EOF"},
		},
		{
			name: "huge npy header",
			setup: func(t *testing.T) string {
				return rawDir(t, map[string][]byte{"audio.npy": []byte("\x93NUMPY\x02\x00\xff\xff\xff\xff")})
			},
			is: ErrFormat, want: []string{"train.npz", "limit 10000"},
		},
		{
			name: "unsupported dtype",
			setup: func(t *testing.T) string {
				return rawDir(t, map[string][]byte{"audio.npy": rawNPY("<c8", false, "(3, 2)", make([]byte, 48))})
			},
			is: ErrFormat, want: []string{"train.npz", "unsupported dtype"},
		},
		{
			name: "huge shape",
			setup: func(t *testing.T) string {
				return rawDir(t, map[string][]byte{"audio.npy": rawNPY("<f4", false, "(4294967296, 4294967296)", nil)})
			},
			is: ErrFormat, want: []string{"train.npz", "too large"},
		},
		{
			name:       "labels as modality",
			setup:      func(t *testing.T) string { return t.TempDir() },
			modalities: []string{"labels"},
			want:       []string{`"labels" cannot be a modality`},
		},
		{
			name:       "modality twice",
			setup:      func(t *testing.T) string { return t.TempDir() },
			modalities: []string{"audio", "audio"},
			want:       []string{"twice"},
		},
		{
			name:       "no modalities",
			setup:      func(t *testing.T) string { return t.TempDir() },
			modalities: []string{},
			want:       []string{"no modalities"},
		},
		{
			name:       "negative numClasses",
			setup:      func(t *testing.T) string { return t.TempDir() },
			numClasses: -1,
			want:       []string{"numClasses = -1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mods := tc.modalities
			if mods == nil {
				mods = []string{"audio", "visual"}
			}
			train, test, err := LoadNPZ(tc.setup(t), mods, tc.numClasses)
			if err == nil {
				t.Fatalf("LoadNPZ succeeded (%d, %d samples), want error", train.Len(), test.Len())
			}
			if train != nil || test != nil {
				t.Errorf("LoadNPZ returned sets with an error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q does not wrap %q", err, tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// rawDir writes a valid test.npz and a train.npz whose entries are the valid
// fixture's, except those given as raw .npy bytes.
func rawDir(t *testing.T, entries map[string][]byte) string {
	t.Helper()
	dir := npzDir(t, nil, nil)
	// The fixture's labels and visual array, encoded by hand.
	var labels, visual bytes.Buffer
	binary.Write(&labels, binary.LittleEndian, []int64{0, 1, 2})
	binary.Write(&visual, binary.LittleEndian, []float64{0.5, 0, -1, 1, 1, 1, 2, 2, 2})
	all := map[string][]byte{
		"labels.npy": rawNPY("<i8", false, "(3,)", labels.Bytes()),
		"visual.npy": rawNPY("<f8", false, "(3, 3)", visual.Bytes()),
	}
	for k, v := range entries {
		all[k] = v
	}
	writeZip(t, filepath.Join(dir, "train.npz"), all)
	return dir
}

// FuzzLoadNPZ feeds arbitrary bytes as train.npz next to a valid test.npz.
// LoadNPZ must not panic; on success the sets must be valid, on failure the
// error must name the file.
func FuzzLoadNPZ(f *testing.F) {
	seedDir := npzDir(f, nil, nil)
	valid, err := os.ReadFile(filepath.Join(seedDir, "train.npz"))
	if err != nil {
		f.Fatal(err)
	}
	testNPZ, err := os.ReadFile(filepath.Join(seedDir, "test.npz"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add([]byte{})
	var raw bytes.Buffer
	zw := zip.NewWriter(&raw)
	for name, b := range map[string][]byte{
		"labels.npy": rawNPY("|u1", false, "(1,)", []byte{0}),
		"audio.npy":  rawNPY("<f4", true, "(1, 2)", make([]byte, 8)),
		"visual.npy": rawNPY(">f8", false, "(1, 3)", make([]byte, 24)),
	} {
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		w.Write(b)
	}
	zw.Close()
	f.Add(raw.Bytes())

	// One directory per fuzzing process, reused by its sequential runs:
	// a fresh t.TempDir per input made fuzzing I/O-bound.
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "test.npz"), testNPZ, 0o644); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, "train.npz"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		train, test, err := LoadNPZ(dir, []string{"audio", "visual"}, 0)
		if err != nil {
			if !strings.Contains(err.Error(), "train.npz") && !strings.Contains(err.Error(), "test.npz") {
				t.Errorf("error %q names no file", err)
			}
			return
		}
		for _, s := range []*Set{train, test} {
			if err := s.Validate(); err != nil {
				t.Errorf("LoadNPZ returned an invalid set: %v", err)
			}
		}
	})
}

// TestLoadNPZInferredClassBound: an inferred class count must be backed by
// the labels (at most MaxInferredClasses, at least half of the classes
// occurring); otherwise the error names the file and row of the largest
// label. A class count given explicitly is not bounded this way.
func TestLoadNPZInferredClassBound(t *testing.T) {
	many := make([]int32, MaxInferredClasses+1) // labels 0..MaxInferredClasses, all distinct
	manyFeats := make([][]float32, len(many))
	for i := range many {
		many[i] = int32(i)
		manyFeats[i] = []float32{0, 0}
	}
	tests := []struct {
		name        string
		train, test map[string]any
		numClasses  int
		want        []string // substrings of the error; nil: loads
		classes     int      // with want nil
	}{
		{"corrupt training label", map[string]any{"labels": []int64{0, 1000000, 2}}, nil, 0,
			[]string{"train.npz", `"labels"`, "row 1 has label 1000000", "1000001 classes", "4 distinct", "data.num_classes"}, 0},
		{"corrupt test label", nil, map[string]any{"labels": []int64{1, 5000}}, 0,
			[]string{"test.npz", "row 1 has label 5000", "4 distinct"}, 0},
		{"sparse labels", map[string]any{"labels": []int64{0, 9, 9}}, map[string]any{"labels": []int64{9, 0}}, 0,
			[]string{"train.npz", "row 1 has label 9", "10 classes", "2 distinct"}, 0},
		{"beyond the maximum", map[string]any{"labels": many, "audio": manyFeats, "visual": nil, "groups": nil},
			map[string]any{"visual": nil}, 0,
			[]string{"train.npz", "row 10000 has label 10000", "at most 10000"}, 0},
		{"half the classes occur", map[string]any{"labels": []int64{0, 3, 3}}, map[string]any{"labels": []int64{3, 0}}, 0, nil, 4},
		{"given explicitly", map[string]any{"labels": []int64{0, 1000000, 2}}, nil, 1000001, nil, 1000001},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := npzDir(t, tc.train, tc.test)
			train, _, err := LoadNPZ(dir, []string{"audio"}, tc.numClasses)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if train.NumClasses != tc.classes {
					t.Fatalf("NumClasses = %d, want %d", train.NumClasses, tc.classes)
				}
				return
			}
			if !errors.Is(err, ErrLabel) {
				t.Fatalf("err = %v, want one wrapping ErrLabel", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestLoadNPZWarnsTestLabels: test labels beyond the training set's largest
// (which widen an inferred class count) are logged as a warning naming
// both files; a test set within the training labels logs nothing.
func TestLoadNPZWarnsTestLabels(t *testing.T) {
	for _, tc := range []struct {
		name       string
		testLabels []int64
		classes    int
		warn       bool
	}{
		{"beyond training", []int64{7, 0}, 8, true},
		{"within training", []int64{2, 0}, 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := npzDir(t, nil, map[string]any{"labels": tc.testLabels})
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			train, _, err := LoadNPZWith(dir, []string{"audio"}, NPZOptions{Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			if train.NumClasses != tc.classes {
				t.Errorf("NumClasses = %d, want %d", train.NumClasses, tc.classes)
			}
			out := buf.String()
			if !tc.warn {
				if out != "" {
					t.Errorf("unexpected log: %s", out)
				}
				return
			}
			for _, w := range []string{"level=WARN", "test.npz", "test_max_label=7", "train.npz", "train_max_label=2"} {
				if !strings.Contains(out, w) {
					t.Errorf("log %q lacks %q", out, w)
				}
			}
		})
	}
}

// TestLoadNPZTrainOnly: TrainOnly reads train.npz alone: the number of
// classes comes from its labels (a test label beyond them changes
// nothing), a missing test.npz is no error, and no test set is returned.
func TestLoadNPZTrainOnly(t *testing.T) {
	dir := npzDir(t, nil, map[string]any{"labels": []int64{7, 0}})
	train, test, err := LoadNPZWith(dir, []string{"audio"}, NPZOptions{TrainOnly: true})
	if err != nil || test != nil || train.NumClasses != 3 {
		t.Fatalf("train-only: %v, test %v, NumClasses %d; want 3 classes and no test set", err, test, train.NumClasses)
	}
	if err := os.Remove(filepath.Join(dir, "test.npz")); err != nil {
		t.Fatal(err)
	}
	if train, _, err = LoadNPZWith(dir, []string{"audio"}, NPZOptions{TrainOnly: true, NumClasses: 5}); err != nil || train.NumClasses != 5 {
		t.Errorf("without test.npz: %v, NumClasses %d", err, train.NumClasses)
	}
	if _, _, err := LoadNPZWith(dir, []string{"audio"}, NPZOptions{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("both files without test.npz: %v, want not found", err)
	}
}

// writeBomb writes a deflated .npz whose "audio" array is rows x cols
// float32 zeros: a few kilobytes on disk, rows*cols*4 bytes decompressed.
func writeBomb(t *testing.T, path string, rows, cols int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	add := func(name, descr, shape string, size int) {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(rawNPY(descr, false, shape, nil)); err != nil {
			t.Fatal(err)
		}
		zero := make([]byte, 1<<16)
		for size > 0 {
			n := min(size, len(zero))
			if _, err := w.Write(zero[:n]); err != nil {
				t.Fatal(err)
			}
			size -= n
		}
	}
	add("labels.npy", "|u1", fmt.Sprintf("(%d,)", rows), rows)
	add("audio.npy", "<f4", fmt.Sprintf("(%d, %d)", rows, cols), rows*cols*4)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLoadNPZZipBomb: a small compressed file whose arrays expand beyond
// MaxBytes is refused, naming the file and the array, before it is
// decompressed; under the limit the same file loads.
func TestLoadNPZZipBomb(t *testing.T) {
	const rows, cols = 1 << 16, 64 // audio: 16 MiB of zeros
	dir := npzDir(t, nil, nil)
	path := filepath.Join(dir, "train.npz")
	writeBomb(t, path, rows, cols)
	if fi, err := os.Stat(path); err != nil || fi.Size() > 1<<20 {
		t.Fatalf("bomb of %v bytes (%v), want a small file", fi.Size(), err)
	}
	_, _, err := LoadNPZWith(dir, []string{"audio"}, NPZOptions{MaxBytes: 4 << 20})
	if !errors.Is(err, ErrFormat) {
		t.Fatalf("err = %v, want one wrapping ErrFormat", err)
	}
	for _, w := range []string{"train.npz", `array "audio"`, "decompresses to 16777344 bytes", "limit of 4194304 bytes", "data.npz_max_mb"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	// Within the limit, the arrays load (the test set's audio has 2 columns,
	// so the dimension check is what fails, after decompression).
	_, _, err = LoadNPZWith(dir, []string{"audio"}, NPZOptions{MaxBytes: 20 << 20})
	if !errors.Is(err, ErrShape) || !strings.Contains(err.Error(), "dimension 2, but 64") {
		t.Fatalf("err = %v, want the dimension mismatch", err)
	}
}
