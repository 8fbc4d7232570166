package data

import (
	"fmt"
	"math"
	"strings"
)

// Set is a labelled multimodal sample set with named modalities.
//
// Sample i is described by one feature row per modality,
// Features[m][i*Dims[m] : (i+1)*Dims[m]], and by Labels[i]. Sets returned by
// this package are valid (see Validate); a Set built by hand should be
// validated before use.
//
// Sets are treated as read-only values: Select and Apply share label and
// group slices (and Select also feature slices) with their input, so
// modifying a Set in place may change others.
type Set struct {
	Modalities []string    // modality names in order, e.g. {"audio","visual"}; unique, non-empty
	Dims       []int       // feature dimension per modality
	Features   [][]float32 // Features[m] is row-major N x Dims[m]
	Labels     []int       // N labels in 0..NumClasses-1
	Groups     []int       // nil, or N natural owner ids (e.g. speaker)
	NumClasses int         // number of classes K, at least 1
	// Shapes is nil, or gives per modality the shape of one sample (e.g.
	// [1, 257, 299] for a spectrogram, [3, 32, 32] for an image), whose
	// product is Dims[m]; nil for a modality means a plain vector.
	Shapes [][]int
}

// Shape returns the sample shape of modality m: Shapes[m] if set, else [Dims[m]].
func (s *Set) Shape(m int) []int {
	if m < len(s.Shapes) && s.Shapes[m] != nil {
		return s.Shapes[m]
	}
	return []int{s.Dims[m]}
}

// Len returns the number of samples N.
func (s *Set) Len() int { return len(s.Labels) }

// Row returns the features of sample i in modality m as a slice into
// Features[m], without copying. The slice's capacity is clipped to the row,
// so appending to it cannot overwrite the next sample. Like slice indexing,
// Row panics if m or i is out of range.
func (s *Set) Row(m, i int) []float32 {
	d := s.Dims[m]
	return s.Features[m][i*d : (i+1)*d : (i+1)*d]
}

// Validate reports the first inconsistency in s: modality names that are
// empty or repeated, slice lengths that do not match the number of
// modalities or samples, a non-positive dimension or class count, a label
// outside 0..NumClasses-1, or a NaN or infinite feature (naming the
// modality, row and column). An empty set (N = 0) is valid.
func (s *Set) Validate() error {
	if s == nil {
		return fmt.Errorf("data: nil set")
	}
	if len(s.Modalities) == 0 {
		return fmt.Errorf("data: %w: set has no modalities", ErrShape)
	}
	if len(s.Dims) != len(s.Modalities) || len(s.Features) != len(s.Modalities) {
		return fmt.Errorf("data: %w: %d modalities but %d dims and %d feature arrays",
			ErrShape, len(s.Modalities), len(s.Dims), len(s.Features))
	}
	if s.Shapes != nil && len(s.Shapes) != len(s.Modalities) {
		return fmt.Errorf("data: %w: %d modalities but %d shapes", ErrShape, len(s.Modalities), len(s.Shapes))
	}
	for m := range s.Shapes {
		if s.Shapes[m] == nil {
			continue
		}
		size := 1
		for _, d := range s.Shapes[m] {
			size *= d
		}
		if size != s.Dims[m] {
			return fmt.Errorf("data: %w: modality %d: shape %v holds %d values, dimension is %d", ErrShape, m, s.Shapes[m], size, s.Dims[m])
		}
	}
	seen := make(map[string]bool, len(s.Modalities))
	for m, name := range s.Modalities {
		if name == "" {
			return fmt.Errorf("data: modality %d has an empty name", m)
		}
		if seen[name] {
			return fmt.Errorf("data: modality %q appears twice", name)
		}
		seen[name] = true
	}
	if s.NumClasses < 1 {
		return fmt.Errorf("data: NumClasses = %d, want >= 1", s.NumClasses)
	}
	n := s.Len()
	if s.Groups != nil && len(s.Groups) != n {
		return fmt.Errorf("data: %w: %d groups for %d labels", ErrShape, len(s.Groups), n)
	}
	for i, y := range s.Labels {
		if y < 0 || y >= s.NumClasses {
			return fmt.Errorf("data: %w: row %d has label %d, want 0..%d", ErrLabel, i, y, s.NumClasses-1)
		}
	}
	for m, name := range s.Modalities {
		d := s.Dims[m]
		if d < 1 {
			return fmt.Errorf("data: %w: modality %q has dimension %d", ErrShape, name, d)
		}
		if len(s.Features[m]) != n*d {
			return fmt.Errorf("data: %w: modality %q has %d values, want %d rows x %d = %d",
				ErrShape, name, len(s.Features[m]), n, d, n*d)
		}
		if at := firstNonFinite32(s.Features[m]); at >= 0 {
			return fmt.Errorf("data: %w: modality %q row %d column %d is %v",
				ErrNonFinite, name, at/d, at%d, s.Features[m][at])
		}
	}
	return nil
}

// Index returns the position of the modality called name.
func (s *Set) Index(name string) (int, error) {
	m, err := s.index(name)
	if err != nil {
		return -1, fmt.Errorf("data: %w", err)
	}
	return m, nil
}

// index is Index without the package prefix on errors, for callers that
// add their own context.
func (s *Set) index(name string) (int, error) {
	for m, have := range s.Modalities {
		if have == name {
			return m, nil
		}
	}
	return -1, fmt.Errorf("%w %q (have %s)", ErrUnknownModality, name, strings.Join(s.Modalities, ", "))
}

// Select returns a Set holding only the named modalities, in the order
// given. The result shares feature, label and group slices with s. Naming a
// modality twice, or none, is an error.
func (s *Set) Select(names ...string) (*Set, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("data: select: no modalities named")
	}
	out := &Set{
		Modalities: make([]string, len(names)),
		Dims:       make([]int, len(names)),
		Features:   make([][]float32, len(names)),
		Labels:     s.Labels,
		Groups:     s.Groups,
		NumClasses: s.NumClasses,
	}
	for j, name := range names {
		m, err := s.index(name)
		if err != nil {
			return nil, fmt.Errorf("data: select: %w", err)
		}
		for _, prev := range names[:j] {
			if prev == name {
				return nil, fmt.Errorf("data: select: modality %q named twice", name)
			}
		}
		out.Modalities[j] = name
		out.Dims[j] = s.Dims[m]
		out.Features[j] = s.Features[m]
		if s.Shapes != nil {
			if out.Shapes == nil {
				out.Shapes = make([][]int, len(names))
			}
			out.Shapes[j] = s.Shapes[m]
		}
	}
	return out, nil
}

// Subset returns a new Set holding the samples idx, in that order, with
// copied features, labels and groups. It is how a client's share of a
// partition (see IID, Dirichlet, ByGroup) becomes its local data set.
// Indices outside 0..Len()-1 are an error; repeated indices are allowed.
func (s *Set) Subset(idx []int) (*Set, error) {
	n := s.Len()
	for k, i := range idx {
		if i < 0 || i >= n {
			return nil, fmt.Errorf("data: subset: index %d (position %d) out of range 0..%d", i, k, n-1)
		}
	}
	out := &Set{
		Modalities: append([]string(nil), s.Modalities...),
		Dims:       append([]int(nil), s.Dims...),
		Features:   make([][]float32, len(s.Features)),
		Labels:     make([]int, len(idx)),
		NumClasses: s.NumClasses,
		Shapes:     s.Shapes,
	}
	for m := range s.Features {
		if m >= len(s.Dims) || len(s.Features[m]) != n*s.Dims[m] {
			return nil, fmt.Errorf("data: subset: %w: modality %d does not hold %d rows", ErrShape, m, n)
		}
		d := s.Dims[m]
		f := make([]float32, 0, len(idx)*d)
		for _, i := range idx {
			f = append(f, s.Features[m][i*d:(i+1)*d]...)
		}
		out.Features[m] = f
	}
	for k, i := range idx {
		out.Labels[k] = s.Labels[i]
	}
	if s.Groups != nil {
		if len(s.Groups) != n {
			return nil, fmt.Errorf("data: subset: %w: %d groups for %d labels", ErrShape, len(s.Groups), n)
		}
		out.Groups = make([]int, len(idx))
		for k, i := range idx {
			out.Groups[k] = s.Groups[i]
		}
	}
	return out, nil
}

// ClassCounts returns the number of samples of each class 0..NumClasses-1.
// Labels outside that range are not counted (Validate reports them).
func (s *Set) ClassCounts() []int {
	counts := make([]int, max(s.NumClasses, 0))
	for _, y := range s.Labels {
		if y >= 0 && y < len(counts) {
			counts[y]++
		}
	}
	return counts
}

// firstNonFinite32 returns the index of the first NaN or infinite value in
// x, or -1 if all values are finite.
func firstNonFinite32(x []float32) int {
	for i, v := range x {
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return i
		}
	}
	return -1
}
