package deploy

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestCapWeights pins capWeights on hand-computed cases and checks its
// defining properties on random ones.
func TestCapWeights(t *testing.T) {
	for _, tc := range []struct {
		name  string
		n     []int
		share float64
		want  []int
	}{
		{"one result", []int{2e9}, 0.5, []int{2e9}},
		{"none", nil, 0.5, nil},
		{"honest and even", []int{100, 120, 90}, 0.5, []int{100, 120, 90}},
		{"exactly at the cap", []int{200, 100, 100}, 0.5, []int{200, 100, 100}},
		{"a liar among three", []int{2e9, 100, 100, 100}, 0.5, []int{300, 100, 100, 100}},
		{"a liar, cap a third", []int{100, 2e9, 110, 90, 100}, 1.0 / 3, []int{100, 200, 110, 90, 100}},
		{"two liars", []int{1e9, 2e9, 100, 200}, 0.3, []int{225, 225, 100, 200}},
		{"two results: not capped", []int{2e9, 100}, 0.5, []int{2e9, 100}},
		{"two results, a strict cap: not capped", []int{2e9, 100}, 0.1, []int{2e9, 100}},
		{"a cap below 1/k: equal weights", []int{300, 100, 200}, 0.1, []int{100, 100, 100}},
		{"no cap", []int{2e9, 1, 1}, 1, []int{2e9, 1, 1}},
		{"rounded down", []int{1000, 3, 4}, 0.5, []int{7, 3, 4}},
		{"ties above the cap", []int{500, 500, 10, 10}, 0.3, []int{15, 15, 10, 10}},
	} {
		got := capWeights(tc.n, tc.share)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: capWeights(%v, %.3g) = %v, want %v", tc.name, tc.n, tc.share, got, tc.want)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		k := 1 + rng.IntN(8)
		n := make([]int, k)
		for i := range n {
			n[i] = 1 + rng.IntN(1000)
			if rng.IntN(4) == 0 {
				n[i] = 1 + rng.IntN(2e9)
			}
		}
		share := []float64{0.1, 0.25, 0.5, 0.7, 1}[rng.IntN(5)]
		got := capWeights(n, share)
		c := max(share, 1/float64(k))
		total := 0
		for _, v := range got {
			total += v
		}
		level := slices.Max(got)
		for i, v := range got {
			switch {
			case v > n[i] || v < 1:
				t.Fatalf("capWeights(%v, %v) = %v: count %d raised or below 1", n, share, got, i)
			case v < n[i] && v != level:
				t.Fatalf("capWeights(%v, %v) = %v: count %d lowered below the level %d", n, share, got, i, level)
			case k < minCapResults && v != n[i]:
				t.Fatalf("capWeights(%v, %v) = %v: fewer than %d counts changed", n, share, got, minCapResults)
			case k >= minCapResults && float64(v) > c*float64(total)*(1+1e-12):
				t.Fatalf("capWeights(%v, %v) = %v: share %.4f of count %d over the cap %.4f", n, share, got, float64(v)/float64(total), i, c)
			}
		}
		// The level is the largest that fits: one more sample for every
		// lowered count would break the cap.
		j := 0
		for i, v := range got {
			if v < n[i] {
				j++
			}
		}
		if j > 0 && float64(level+1) <= c*float64(total+j) {
			t.Fatalf("capWeights(%v, %v) = %v: the level %d could be higher", n, share, got, level)
		}
	}
}
