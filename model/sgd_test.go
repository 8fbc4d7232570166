package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestSGDKernelsMatchScalar checks the vector kernels against the scalar
// update, bit for bit, with and without the proximal term, for lengths
// that leave every possible tail.
func TestSGDKernelsMatchScalar(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 70 {
		for _, prox := range []bool{false, true} {
			vec := func() []float32 {
				v := make([]float32, n)
				for i := range v {
					v[i] = float32(rng.NormFloat64())
				}
				return v
			}
			w, m, g := vec(), vec(), vec()
			var anchor []float32
			if prox {
				anchor = vec()
			}
			w2, m2 := append([]float32(nil), w...), append([]float32(nil), m...)
			sgdStep(w, m, g, anchor, 0.05, 1e-4, 0.9, 0.3)
			sgdScalar(w2, m2, g, anchor, 0.05, 1e-4, 0.9, 0.3)
			for i := range w {
				if math.Float32bits(w[i]) != math.Float32bits(w2[i]) || math.Float32bits(m[i]) != math.Float32bits(m2[i]) {
					t.Fatalf("n=%d prox=%v element %d: w %v m %v, scalar %v %v", n, prox, i, w[i], m[i], w2[i], m2[i])
				}
			}
		}
	}
	// A hand-computed element: g' = 1 + 0.1*2 + 0.5*(2-1) = 1.7, m = 0.9*1
	// + 1.7 = 2.6, w = 2 - 0.1*2.6 = 1.74.
	w, m := []float32{2}, []float32{1}
	sgdStep(w, m, []float32{1}, []float32{1}, 0.1, 0.1, 0.9, 0.5)
	if math.Abs(float64(m[0])-2.6) > 1e-6 || math.Abs(float64(w[0])-1.74) > 1e-6 {
		t.Errorf("w %v m %v, want 1.74 and 2.6", w[0], m[0])
	}
}
