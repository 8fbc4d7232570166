package text

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// idfDocs is a training set for the tests below. With N = 1 and Dim 4096
// the tokens fall into these buckets (see TestHashGolden): a 1837 (sign -),
// b 2408 (+), x 2562 (-), y 2742 (-). a occurs in all 3 documents, b and x
// in one each (x twice, counted once); no other bucket is used.
func idfDocs() [][]string { return [][]string{{"a", "b"}, {"a"}, {"a", "x", "x"}} }

func TestFitIDF(t *testing.T) {
	tests := []struct {
		name string
		docs [][]string
		bag  HashedBag
		docN int
		df   map[int]int // non-zero frequencies
	}{
		{"documents", idfDocs(), HashedBag{Dim: 4096, N: 1}, 3, map[int]int{1837: 3, 2408: 1, 2562: 1}},
		// Dim 1: every n-gram is in bucket 0, so a document counts once
		// however many n-grams it has, even if their signed values cancel
		// (a and b have opposite signs); empty documents count in Docs.
		{"one bucket", [][]string{{"a", "b"}, nil, {}, {"x"}}, HashedBag{Dim: 1, N: 2}, 4, map[int]int{0: 2}},
		{"no documents", nil, HashedBag{Dim: 5, N: 1}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := FitIDF(tt.docs, tt.bag)
			if err := d.Validate(); err != nil {
				t.Fatal(err)
			}
			if d.Bag != tt.bag || d.Docs != tt.docN || len(d.DF) != tt.bag.Dim {
				t.Fatalf("bag %+v, docs %d, %d frequencies; want %+v, %d, %d",
					d.Bag, d.Docs, len(d.DF), tt.bag, tt.docN, tt.bag.Dim)
			}
			for j, df := range d.DF {
				if df != tt.df[j] {
					t.Errorf("DF[%d] = %d, want %d", j, df, tt.df[j])
				}
			}
		})
	}
}

func TestIDFApply(t *testing.T) {
	// Smoothed idf, by hand: n = 3 documents, so
	//	a (df 3):            ln(4/4) + 1 = 1
	//	b, x (df 1):         ln(4/2) + 1 = 1.69314718
	//	y and others (df 0): ln(4/1) + 1 = 2.38629436
	// The vector of "a b y" with counts and signs is a -1, b +1, y -1,
	// so its tf-idf is -1, 1.69314718, -2.38629436, of norm
	// sqrt(1 + 2.86674741 + 5.69440398) = 3.09211063, and normalised
	// -0.32340369, 0.54757005, -0.77173641.
	const tol = 1e-6
	tests := []struct {
		name string
		bag  HashedBag
		docs [][]string
		toks []string
		want map[int]float32
	}{
		{"counts", HashedBag{Dim: 4096, N: 1}, idfDocs(), []string{"a", "b", "y"},
			map[int]float32{1837: -1, 2408: 1.69314718, 2742: -2.38629436}},
		{"normalised", HashedBag{Dim: 4096, N: 1, Normalize: true}, idfDocs(), []string{"a", "b", "y"},
			map[int]float32{1837: -0.32340369, 2408: 0.54757005, 2742: -0.77173641}},
		// Sublinear tf of x (twice): 1 + ln 2 = 1.69314718, times idf
		// 1.69314718 = 2.86674741.
		{"sublinear", HashedBag{Dim: 4096, N: 1, Sublinear: true}, idfDocs(), []string{"x", "x"},
			map[int]float32{2562: -2.86674741}},
		// Dim 1, 2 documents, df 1: ln(3/2) + 1 = 1.40546511; the bucket
		// holds a + x = -2.
		{"one bucket", HashedBag{Dim: 1, N: 1}, [][]string{{"b"}, nil}, []string{"a", "x"},
			map[int]float32{0: -2.81093022}},
		{"no documents is identity", HashedBag{Dim: 4096, N: 1}, nil, []string{"a", "b", "b"},
			map[int]float32{1837: -1, 2408: 2}},
		{"empty vector stays empty", HashedBag{Dim: 4096, N: 1, Normalize: true}, idfDocs(), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := FitIDF(tt.docs, tt.bag)
			vec := make([]float32, tt.bag.Dim)
			if err := tt.bag.Featurize(tt.toks, vec); err != nil {
				t.Fatal(err)
			}
			if err := d.Apply(vec); err != nil {
				t.Fatal(err)
			}
			for j, got := range vec {
				if want := tt.want[j]; math.Abs(float64(got-want)) > tol {
					t.Errorf("element %d = %v, want %v", j, got, want)
				}
			}
		})
	}
}

func TestIDFErrors(t *testing.T) {
	bag := HashedBag{Dim: 3, N: 1}
	good := func() *IDF { return &IDF{Bag: bag, Docs: 2, DF: []int{0, 1, 2}} }
	tests := []struct {
		name     string
		idf      *IDF
		vec      []float32
		validate error // from Validate
		apply    error // from Apply
	}{
		{"good", good(), []float32{1, 2, 3}, nil, nil},
		{"nil", nil, []float32{1, 2, 3}, ErrConfig, ErrConfig},
		{"bad bag", &IDF{Bag: HashedBag{Dim: 3}, DF: []int{0, 0, 0}}, []float32{1, 2, 3}, ErrConfig, ErrConfig},
		{"fitted with bad bag", FitIDF(idfDocs(), HashedBag{Dim: 0, N: 1}), []float32{}, ErrConfig, ErrConfig},
		{"negative docs", &IDF{Bag: bag, Docs: -1, DF: []int{0, 0, 0}}, []float32{1, 2, 3}, ErrFormat, ErrFormat},
		{"short df", &IDF{Bag: bag, Docs: 2, DF: []int{0, 1}}, []float32{1, 2, 3}, ErrShape, ErrShape},
		{"nil df", &IDF{Bag: bag, Docs: 2}, []float32{1, 2, 3}, ErrShape, ErrShape},
		{"vector too short", good(), []float32{1, 2}, nil, ErrShape},
		{"vector too long", good(), []float32{1, 2, 3, 4}, nil, ErrShape},
		{"df above docs", &IDF{Bag: bag, Docs: 2, DF: []int{0, 3, 0}}, []float32{0, 1, 0}, ErrFormat, ErrFormat},
		{"negative df", &IDF{Bag: bag, Docs: 2, DF: []int{-2, 0, 0}}, []float32{1, 0, 0}, ErrFormat, ErrFormat},
		// Apply checks only the frequencies it uses.
		{"bad df unused", &IDF{Bag: bag, Docs: 2, DF: []int{-2, 0, 0}}, []float32{0, 1, 1}, ErrFormat, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.idf.Validate(); !errors.Is(err, tt.validate) || (err == nil) != (tt.validate == nil) {
				t.Errorf("Validate: %v, want %v", err, tt.validate)
			}
			vec := slices.Clone(tt.vec)
			err := tt.idf.Apply(vec)
			if !errors.Is(err, tt.apply) || (err == nil) != (tt.apply == nil) {
				t.Fatalf("Apply: %v, want %v", err, tt.apply)
			}
			if err == nil {
				return
			}
			if !strings.HasPrefix(err.Error(), "text: idf: ") || strings.Count(err.Error(), "text: ") != 1 {
				t.Errorf("error %q: want one %q prefix", err, "text: idf: ")
			}
			if !slices.Equal(vec, tt.vec) {
				t.Errorf("vector changed to %v on error", vec)
			}
		})
	}
}

// TestIDFJSON checks that an IDF survives being stored with a run.
func TestIDFJSON(t *testing.T) {
	bag := HashedBag{Dim: 4096, N: 1, Normalize: true}
	d := FitIDF(idfDocs(), bag)
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"bag":{"dim":4096,"n":1,"sublinear":false,"normalize":true}`, `"docs":3`, `"df":[0,`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("JSON lacks %s", field)
		}
	}
	var back IDF
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.Validate(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, d) {
		t.Error("IDF changed in a JSON round trip")
	}
	want, _ := bag.Vector("a b y")
	got := slices.Clone(want)
	if err := d.Apply(want); err != nil {
		t.Fatal(err)
	}
	if err := back.Apply(got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("after JSON round trip: %v, want %v", got, want)
	}
}
