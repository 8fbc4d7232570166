package data

import (
	"strings"
	"testing"
)

// TestDigest: the digest is stable for equal content and changes with
// any part of it.
func TestDigest(t *testing.T) {
	base := func() *Set {
		return &Set{
			Modalities: []string{"a", "v"}, Dims: []int{2, 1},
			Features: [][]float32{{1, 2, 3, 4}, {5, 6}},
			Labels:   []int{0, 1}, NumClasses: 2,
		}
	}
	d0 := base().Digest()
	if !strings.HasPrefix(d0, "sha256:") || len(d0) != len("sha256:")+64 {
		t.Fatalf("digest %q", d0)
	}
	if base().Digest() != d0 {
		t.Fatal("equal sets, different digests")
	}
	for _, tc := range []struct {
		name string
		edit func(*Set)
	}{
		{"a feature", func(s *Set) { s.Features[0][3] = 4.0000005 }},
		{"a label", func(s *Set) { s.Labels[1] = 0 }},
		{"the class count", func(s *Set) { s.NumClasses = 3 }},
		{"a modality's name", func(s *Set) { s.Modalities[1] = "w" }},
		{"a shape", func(s *Set) { s.Shapes = [][]int{{2, 1}, nil} }},
		{"groups", func(s *Set) { s.Groups = []int{0, 0} }},
		// Moving a value from one modality to the other keeps the bytes
		// in order; the lengths tell them apart.
		{"the split between modalities", func(s *Set) {
			s.Dims = []int{1, 2}
			s.Features = [][]float32{{1, 2}, {3, 4, 5, 6}}
		}},
	} {
		s := base()
		tc.edit(s)
		if s.Digest() == d0 {
			t.Errorf("%s changed, the digest did not", tc.name)
		}
	}
}

func BenchmarkDigest(b *testing.B) {
	s := &Set{Modalities: []string{"a"}, Dims: []int{1 << 10}, Features: [][]float32{make([]float32, 1<<20)}, Labels: make([]int, 1<<10), NumClasses: 1}
	b.SetBytes(4 << 20)
	for b.Loop() {
		s.Digest()
	}
}
