package data

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// MfeatView is one view (feature family) of the UCI Multiple Features data
// set.
type MfeatView struct {
	Name string // view name, also the file suffix: mfeat-<Name>
	Dim  int    // number of features (columns)
}

// MfeatViews lists the six view names ("fou","fac","kar","pix","zer","mor")
// with their dimensions, in that order.
func MfeatViews() []MfeatView {
	return []MfeatView{
		{"fou", 76},  // Fourier coefficients of the character shapes
		{"fac", 216}, // profile correlations
		{"kar", 64},  // Karhunen-Loeve coefficients
		{"pix", 240}, // pixel averages in 2 x 3 windows
		{"zer", 47},  // Zernike moments
		{"mor", 6},   // morphological features
	}
}

// mfeatLabels is the name of the file holding one class per row.
const mfeatLabels = "labels"

// maxLineBytes bounds the length of a text line (the widest mfeat row is
// about 4 KB).
const maxLineBytes = 1 << 20

// LoadMfeat reads the UCI Multiple Features digits from dir: the files
// mfeat-<view> for the requested views (whitespace-separated text matrices,
// one row per sample) and labels (one integer class per line). The modality
// names are the view names, in the order given; NumClasses is the largest
// label plus one (10 for the real data).
//
// The samples are split per class: round(testFraction * n_c) of the n_c
// samples of class c, chosen by rng, go to the test set and the rest to the
// training set (1500/500 for the real data at 0.25). Both sets are then
// shuffled by rng, so they are not in class order. Groups is nil.
// testFraction must be in (0, 1).
//
// Errors name the file and, for content, the line and column as a
// *ParseError: an unknown view (listing the valid ones), a missing file, a
// row with the wrong number of values, a value that is not a finite number,
// or a row count that differs from that of labels.
func LoadMfeat(dir string, views []string, testFraction float64, rng *rand.Rand) (train, test *Set, err error) {
	if len(views) == 0 {
		return nil, nil, fmt.Errorf("data: load mfeat %s: no views named", dir)
	}
	known := MfeatViews()
	dims := make([]int, len(views))
	for j, name := range views {
		k := slices.IndexFunc(known, func(v MfeatView) bool { return v.Name == name })
		if k < 0 {
			valid := make([]string, len(known))
			for i, v := range known {
				valid[i] = v.Name
			}
			return nil, nil, fmt.Errorf("data: load mfeat %s: %w %q (valid views: %s)",
				dir, ErrUnknownModality, name, strings.Join(valid, ", "))
		}
		if slices.Contains(views[:j], name) {
			return nil, nil, fmt.Errorf("data: load mfeat %s: view %q named twice", dir, name)
		}
		dims[j] = known[k].Dim
	}
	if !(testFraction > 0 && testFraction < 1) { // also rejects NaN
		return nil, nil, fmt.Errorf("data: load mfeat %s: testFraction = %v, want in (0, 1)", dir, testFraction)
	}
	if rng == nil {
		return nil, nil, fmt.Errorf("data: load mfeat %s: nil rng", dir)
	}

	labelsPath := filepath.Join(dir, mfeatLabels)
	labels, err := readLabelsFile(labelsPath)
	if err != nil {
		return nil, nil, err
	}
	k, _, row, distinct, ok := labelSpace(labels)
	if !ok {
		// Named by its row: blank lines are skipped, so the line may differ.
		return nil, nil, &ParseError{File: labelsPath, Err: detail(ErrLabel,
			"label %d of row %d would make %d classes, but only %d distinct labels occur (at least half of the classes must occur, and at most %d)",
			k-1, row+1, k, distinct, MaxInferredClasses)}
	}
	all := &Set{
		Modalities: slices.Clone(views),
		Dims:       dims,
		Features:   make([][]float32, len(views)),
		Labels:     labels,
		NumClasses: k,
	}
	for j, name := range views {
		path := filepath.Join(dir, "mfeat-"+name)
		feats, err := readMatrixFile(path, dims[j])
		if err != nil {
			return nil, nil, err
		}
		if rows := len(feats) / dims[j]; rows != len(labels) {
			return nil, nil, &ParseError{File: path,
				Err: detail(ErrShape, "%d rows, but %s has %d", rows, labelsPath, len(labels))}
		}
		all.Features[j] = feats
	}

	var trainIdx, testIdx []int
	byClass := make([][]int, all.NumClasses)
	for i, y := range labels {
		byClass[y] = append(byClass[y], i)
	}
	for _, idx := range byClass {
		rng.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
		nTest := int(math.Round(testFraction * float64(len(idx))))
		testIdx = append(testIdx, idx[:nTest]...)
		trainIdx = append(trainIdx, idx[nTest:]...)
	}
	for _, idx := range [][]int{trainIdx, testIdx} {
		rng.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
	}
	// Subset cannot fail here: every file was checked against labels.
	if train, err = all.Subset(trainIdx); err != nil {
		return nil, nil, err
	}
	if test, err = all.Subset(testIdx); err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// readLabelsFile reads one non-negative integer label per line.
func readLabelsFile(path string) ([]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: load %s: %w", path, err)
	}
	defer f.Close()
	var labels []int
	err = scanFields(f, path, func(line int, fields []string) error {
		if len(fields) != 1 {
			return &ParseError{File: path, Line: line, Err: detail(ErrShape, "%d values, want one label", len(fields))}
		}
		y, err := strconv.Atoi(fields[0])
		if err != nil {
			return &ParseError{File: path, Line: line, Column: 1, Err: fmt.Errorf("%w: %w", ErrLabel, err)}
		}
		if y < 0 {
			return &ParseError{File: path, Line: line, Column: 1, Err: detail(ErrLabel, "negative label %d", y)}
		}
		labels = append(labels, y)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(labels) == 0 {
		return nil, &ParseError{File: path, Err: detail(ErrShape, "no labels")}
	}
	return labels, nil
}

// readMatrixFile reads a whitespace-separated matrix of cols finite numbers
// per row, row-major, as float32.
func readMatrixFile(path string, cols int) ([]float32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: load %s: %w", path, err)
	}
	defer f.Close()
	var vals []float32
	err = scanFields(f, path, func(line int, fields []string) error {
		if len(fields) != cols {
			return &ParseError{File: path, Line: line, Err: detail(ErrShape, "%d values, want %d", len(fields), cols)}
		}
		for j, tok := range fields {
			v, err := strconv.ParseFloat(tok, 32)
			if err != nil {
				return &ParseError{File: path, Line: line, Column: j + 1, Err: fmt.Errorf("%w: %w", ErrFormat, err)}
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return &ParseError{File: path, Line: line, Column: j + 1, Err: detail(ErrNonFinite, "value %s", tok)}
			}
			vals = append(vals, float32(v))
		}
		return nil
	})
	return vals, err
}

// scanFields calls fn with the 1-based line number and whitespace-separated
// fields of every non-blank line of r.
func scanFields(r io.Reader, path string, fn func(line int, fields []string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxLineBytes)
	line := 0
	for sc.Scan() {
		line++
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if err := fn(line, fields); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return &ParseError{File: path, Line: line + 1, Err: fmt.Errorf("%w: %w", ErrFormat, err)}
	}
	return nil
}
