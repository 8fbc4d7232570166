package data

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// smallSet has 3 samples of a 2-D "audio" and a 1-D "visual" modality.
func smallSet() *Set {
	return &Set{
		Modalities: []string{"audio", "visual"},
		Dims:       []int{2, 1},
		Features:   [][]float32{{1, 2, 3, 4, 5, 6}, {7, 8, 9}},
		Labels:     []int{0, 2, 1},
		Groups:     []int{4, 4, 5},
		NumClasses: 3,
	}
}

func TestSetRow(t *testing.T) {
	s := smallSet()
	if s.Len() != 3 {
		t.Fatalf("Len = %d, want 3", s.Len())
	}
	row := s.Row(0, 1)
	if !slices.Equal(row, []float32{3, 4}) {
		t.Errorf("Row(0, 1) = %v, want [3 4]", row)
	}
	row[0] = 30 // shares storage
	if s.Features[0][2] != 30 {
		t.Error("Row copied the features")
	}
	_ = append(row, 99) // capacity is clipped: must not overwrite sample 2
	if s.Features[0][4] != 5 {
		t.Error("appending to a Row overwrote the next sample")
	}
	if !slices.Equal(s.Row(1, 2), []float32{9}) {
		t.Errorf("Row(1, 2) = %v, want [9]", s.Row(1, 2))
	}
}

func TestSetValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Set)
		is     error
		want   string // "" for valid
	}{
		{"valid", func(*Set) {}, nil, ""},
		{"no groups", func(s *Set) { s.Groups = nil }, nil, ""},
		{"empty", func(s *Set) { s.Labels, s.Groups, s.Features = nil, nil, [][]float32{nil, nil} }, nil, ""},
		{"no modalities", func(s *Set) { s.Modalities, s.Dims, s.Features = nil, nil, nil }, ErrShape, "no modalities"},
		{"dims length", func(s *Set) { s.Dims = s.Dims[:1] }, ErrShape, "1 dims"},
		{"empty name", func(s *Set) { s.Modalities[1] = "" }, nil, "modality 1 has an empty name"},
		{"duplicate name", func(s *Set) { s.Modalities[1] = "audio" }, nil, `"audio" appears twice`},
		{"no classes", func(s *Set) { s.NumClasses = 0 }, nil, "NumClasses = 0"},
		{"label too large", func(s *Set) { s.Labels[1] = 3 }, ErrLabel, "row 1 has label 3"},
		{"negative label", func(s *Set) { s.Labels[2] = -1 }, ErrLabel, "row 2 has label -1"},
		{"groups length", func(s *Set) { s.Groups = s.Groups[:2] }, ErrShape, "2 groups for 3 labels"},
		{"zero dim", func(s *Set) { s.Dims[1] = 0 }, ErrShape, `"visual" has dimension 0`},
		{"short features", func(s *Set) { s.Features[0] = s.Features[0][:5] }, ErrShape, `"audio" has 5 values, want 3 rows x 2 = 6`},
		{"NaN", func(s *Set) { s.Features[0][3] = float32(math.NaN()) }, ErrNonFinite, `"audio" row 1 column 1 is NaN`},
		{"Inf", func(s *Set) { s.Features[1][2] = float32(math.Inf(1)) }, ErrNonFinite, `"visual" row 2 column 0 is +Inf`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := smallSet()
			tc.modify(s)
			err := s.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want error containing %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q does not wrap %q", err, tc.is)
			}
		})
	}
	var nilSet *Set
	if err := nilSet.Validate(); err == nil {
		t.Error("nil set validated")
	}
}

func TestSetIndexSelect(t *testing.T) {
	s := smallSet()
	if m, err := s.Index("visual"); err != nil || m != 1 {
		t.Errorf("Index(visual) = %d, %v", m, err)
	}
	_, err := s.Index("text")
	if !errors.Is(err, ErrUnknownModality) || !strings.Contains(err.Error(), `"text" (have audio, visual)`) {
		t.Errorf("Index(text) error = %v", err)
	}

	sel, err := s.Select("visual", "audio")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sel.Modalities, []string{"visual", "audio"}) || !slices.Equal(sel.Dims, []int{1, 2}) {
		t.Errorf("Select: modalities %v dims %v", sel.Modalities, sel.Dims)
	}
	if &sel.Features[0][0] != &s.Features[1][0] {
		t.Error("Select copied the features")
	}
	if err := sel.Validate(); err != nil {
		t.Error(err)
	}
	sel.Modalities[0] = "changed"
	if s.Modalities[1] != "visual" {
		t.Error("Select shares the name slice")
	}
	for _, names := range [][]string{{}, {"audio", "audio"}, {"audio", "text"}} {
		if _, err := s.Select(names...); err == nil {
			t.Errorf("Select(%q) succeeded, want error", names)
		}
	}
}

func TestSetSubset(t *testing.T) {
	s := smallSet()
	sub, err := s.Subset([]int{2, 0, 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Validate(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sub.Features[0], []float32{5, 6, 1, 2, 5, 6}) || !slices.Equal(sub.Features[1], []float32{9, 7, 9}) {
		t.Errorf("features %v", sub.Features)
	}
	if !slices.Equal(sub.Labels, []int{1, 0, 1}) || !slices.Equal(sub.Groups, []int{5, 4, 5}) {
		t.Errorf("labels %v groups %v", sub.Labels, sub.Groups)
	}
	sub.Features[0][0] = 100
	if s.Features[0][4] != 5 {
		t.Error("Subset shares features")
	}
	empty, err := s.Subset(nil)
	if err != nil || empty.Len() != 0 || empty.Validate() != nil {
		t.Errorf("empty subset: %v, %v", empty, err)
	}
	if _, err := s.Subset([]int{3}); err == nil || !strings.Contains(err.Error(), "index 3") {
		t.Errorf("out of range subset: err = %v", err)
	}
	bad := smallSet()
	bad.Features[1] = bad.Features[1][:2]
	if _, err := bad.Subset([]int{0}); !errors.Is(err, ErrShape) {
		t.Errorf("inconsistent set: err = %v, want ErrShape", err)
	}
}

func TestSetClassCounts(t *testing.T) {
	s := smallSet()
	s.Labels = []int{2, 2, 0, 7, -1}
	if got := s.ClassCounts(); !slices.Equal(got, []int{1, 0, 2}) {
		t.Errorf("ClassCounts = %v, want [1 0 2]", got)
	}
}

func TestParseErrorFormat(t *testing.T) {
	tests := []struct {
		err  *ParseError
		want string
	}{
		{&ParseError{File: "f", Line: 3, Column: 2, Err: ErrFormat}, "data: f:3:2: bad format"},
		{&ParseError{File: "f", Line: 3, Err: ErrFormat}, "data: f:3: bad format"},
		{&ParseError{File: "x.npz", Array: "labels", Err: ErrLabel}, `data: x.npz: array "labels": bad label`},
		{&ParseError{File: "f"}, "data: f: unknown error"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestShapes(t *testing.T) {
	s := &Set{
		Modalities: []string{"a", "v"}, Dims: []int{6, 2}, NumClasses: 2,
		Features: [][]float32{make([]float32, 12), make([]float32, 4)}, Labels: []int{0, 1},
		Shapes: [][]int{{1, 2, 3}, nil},
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := s.Shape(1); len(got) != 1 || got[0] != 2 {
		t.Fatalf("plain modality shape %v", got)
	}
	sel, err := s.Select("v", "a")
	if err != nil || sel.Shape(1)[2] != 3 || sel.Shapes[0] != nil {
		t.Fatalf("select lost shapes: %v %v", sel.Shapes, err)
	}
	s.Shapes[0] = []int{1, 2, 2}
	if s.Validate() == nil {
		t.Fatal("a shape that does not match the dimension was accepted")
	}
}
