package data

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// standardizeFixture: modality "a" has a spread and a constant dimension,
// "b" one dimension.
//
//	a: [0 5] [0 5] [4 5] [4 5]  -> mean [2 5], std [2 (spread), 1 (constant)]
//	b: [2] [6] [2] [6]          -> mean 4, std 2
func standardizeFixture() *Set {
	return &Set{
		Modalities: []string{"a", "b"},
		Dims:       []int{2, 1},
		Features:   [][]float32{{0, 5, 0, 5, 4, 5, 4, 5}, {2, 6, 2, 6}},
		Labels:     []int{0, 1, 0, 1},
		NumClasses: 2,
	}
}

func TestFitStandardizer(t *testing.T) {
	z := FitStandardizer(standardizeFixture())
	if !slices.Equal(z.Modalities, []string{"a", "b"}) {
		t.Errorf("Modalities = %v", z.Modalities)
	}
	wantMean := [][]float64{{2, 5}, {4}}
	wantStd := [][]float64{{2, 1}, {2}}
	for m := range wantMean {
		if !slices.Equal(z.Mean[m], wantMean[m]) || !slices.Equal(z.Std[m], wantStd[m]) {
			t.Errorf("modality %d: mean %v std %v, want %v %v", m, z.Mean[m], z.Std[m], wantMean[m], wantStd[m])
		}
	}
}

func TestStandardizerApply(t *testing.T) {
	train := standardizeFixture()
	z := FitStandardizer(train)
	got, err := z.Apply(train)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]float32{{-1, 0, -1, 0, 1, 0, 1, 0}, {-1, 1, -1, 1}}
	for m := range want {
		if !slices.Equal(got.Features[m], want[m]) {
			t.Errorf("modality %d: %v, want %v", m, got.Features[m], want[m])
		}
	}
	if !slices.Equal(train.Features[0], standardizeFixture().Features[0]) {
		t.Error("Apply modified its input")
	}

	// New data uses the training statistics: a [6 7] -> [(6-2)/2 (7-5)/1],
	// b [0] -> (0-4)/2.
	test := &Set{
		Modalities: []string{"a", "b"}, Dims: []int{2, 1},
		Features: [][]float32{{6, 7}, {0}}, Labels: []int{1}, NumClasses: 2,
	}
	got, err = z.Apply(test)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Features[0], []float32{2, 2}) || !slices.Equal(got.Features[1], []float32{-2}) {
		t.Errorf("test features %v, want [[2 2] [-2]]", got.Features)
	}

	// A client holding one modality, in another order, is matched by name.
	only, err := test.Select("b")
	if err != nil {
		t.Fatal(err)
	}
	got, err = z.Apply(only)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Features[0], []float32{-2}) {
		t.Errorf("b only: %v, want [-2]", got.Features[0])
	}
}

func TestFitStandardizerEdgeCases(t *testing.T) {
	// A constant dimension whose summed mean is not exact in float64
	// still maps to exactly 0.
	c := float32(0.1)
	s := &Set{
		Modalities: []string{"x"}, Dims: []int{1},
		Features: [][]float32{{c, c, c, c, c, c, c}}, Labels: make([]int, 7), NumClasses: 1,
	}
	z := FitStandardizer(s)
	if z.Std[0][0] != 1 {
		t.Errorf("std of a constant = %v, want 1", z.Std[0][0])
	}
	got, err := z.Apply(s)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got.Features[0] {
		if v != 0 {
			t.Errorf("constant row %d maps to %v, want 0", i, v)
		}
	}

	// No samples: the identity.
	empty := &Set{Modalities: []string{"x"}, Dims: []int{2}, Features: [][]float32{nil}, NumClasses: 1}
	z = FitStandardizer(empty)
	if !slices.Equal(z.Mean[0], []float64{0, 0}) || !slices.Equal(z.Std[0], []float64{1, 1}) {
		t.Errorf("empty set: mean %v std %v, want zeros and ones", z.Mean[0], z.Std[0])
	}

	// Large offsets do not lose the spread: 1e4 + {-1, 1} has std 1.
	big := &Set{
		Modalities: []string{"x"}, Dims: []int{1},
		Features: [][]float32{{9999, 10001, 9999, 10001}}, Labels: make([]int, 4), NumClasses: 1,
	}
	if z := FitStandardizer(big); z.Mean[0][0] != 10000 || z.Std[0][0] != 1 {
		t.Errorf("offset data: mean %v std %v, want 10000 1", z.Mean[0][0], z.Std[0][0])
	}

	if z := FitStandardizer(nil); len(z.Modalities) != 0 {
		t.Errorf("nil set: %+v", z)
	}
}

func TestStandardizerErrors(t *testing.T) {
	fit := func() *Standardizer { return FitStandardizer(standardizeFixture()) }
	tests := []struct {
		name string
		z    func() *Standardizer
		s    func() *Set
		is   error
		want string
	}{
		{
			name: "unknown modality",
			z:    fit,
			s: func() *Set {
				s := standardizeFixture()
				s.Modalities[1] = "c"
				return s
			},
			is: ErrUnknownModality, want: `"c"`,
		},
		{
			name: "dimension mismatch",
			z:    fit,
			s: func() *Set {
				s := standardizeFixture()
				s.Dims[1], s.Features[1] = 2, make([]float32, 8)
				return s
			},
			is: ErrShape, want: `modality "b" has dimension 2, standardizer 1`,
		},
		{
			name: "invalid set",
			z:    fit,
			s: func() *Set {
				s := standardizeFixture()
				s.Features[0][3] = float32(math.NaN())
				return s
			},
			is: ErrNonFinite, want: `modality "a" row 1 column 1`,
		},
		{
			name: "std too small for float32",
			z: func() *Standardizer {
				z := fit()
				z.Std[1][0] = 1e-300
				return z
			},
			s:  standardizeFixture,
			is: ErrNonFinite, want: `modality "b" row 0 column 1`,
		},
		{
			name: "zero std",
			z: func() *Standardizer {
				z := fit()
				z.Std[0][1] = 0
				return z
			},
			s:    standardizeFixture,
			want: `modality "a" dimension 1`,
		},
		{
			name: "missing std vector",
			z: func() *Standardizer {
				z := fit()
				z.Std = z.Std[:1]
				return z
			},
			s:  standardizeFixture,
			is: ErrShape, want: "1 std",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.z().Apply(tc.s())
			if err == nil {
				t.Fatal("Apply succeeded, want error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q does not wrap %q", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// TestStandardizerJSON checks that the statistics survive being stored with
// a run.
func TestStandardizerJSON(t *testing.T) {
	z := FitStandardizer(standardizeFixture())
	b, err := json.Marshal(z)
	if err != nil {
		t.Fatal(err)
	}
	var back Standardizer
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	got, err := back.Apply(standardizeFixture())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Features[1], []float32{-1, 1, -1, 1}) {
		t.Errorf("after JSON round trip: %v", got.Features[1])
	}
}
