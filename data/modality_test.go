package data

import (
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestMask(t *testing.T) {
	names := []string{"audio", "visual"}
	tests := []struct {
		k      Mask
		has    []int
		format string
	}{
		{0, nil, "none"},
		{1, []int{0}, "audio"},
		{2, []int{1}, "visual"},
		{3, []int{0, 1}, "audio+visual"},
		{9, []int{0, 3}, "audio+#3"},
		{255, []int{0, 1, 2, 3, 4, 5, 6, 7}, "audio+visual+#2+#3+#4+#5+#6+#7"},
	}
	for _, tc := range tests {
		var has []int
		for m := -1; m <= 8; m++ {
			if tc.k.Has(m) {
				has = append(has, m)
			}
		}
		if !slices.Equal(has, tc.has) {
			t.Errorf("Mask %08b: has %v, want %v", uint8(tc.k), has, tc.has)
		}
		bools := tc.k.Bools(4)
		for m := range 4 {
			if bools[m] != slices.Contains(tc.has, m) {
				t.Errorf("Mask %08b: Bools(4) = %v", uint8(tc.k), bools)
				break
			}
		}
		if got := tc.k.Count(); got != len(tc.has) {
			t.Errorf("Mask %08b: Count = %d, want %d", uint8(tc.k), got, len(tc.has))
		}
		if got := tc.k.Format(names); got != tc.format {
			t.Errorf("Mask %08b: Format = %q, want %q", uint8(tc.k), got, tc.format)
		}
	}
}

func TestFull(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want Mask
	}{{-1, 0}, {0, 0}, {1, 1}, {2, 3}, {3, 7}, {8, 255}, {9, 255}} {
		if got := Full(tc.n); got != tc.want {
			t.Errorf("Full(%d) = %08b, want %08b", tc.n, got, tc.want)
		}
	}
}

func TestAllocateModalities(t *testing.T) {
	tests := []struct {
		clients     int
		ratio       float64
		multi, a, v int
	}{
		{10, 0.2, 2, 4, 4},
		{10, 0, 0, 5, 5},
		{10, 1, 10, 0, 0},
		{5, 0.5, 3, 1, 1}, // 2.5 rounds to 3
		{6, 0.5, 3, 2, 1}, // odd one out goes to modality 0
		{1, 0, 0, 1, 0},
		{7, 0.3, 2, 3, 2},
	}
	for _, tc := range tests {
		masks, err := AllocateModalities(tc.clients, 2, tc.ratio, newRand(1))
		if err != nil {
			t.Fatal(err)
		}
		count := map[Mask]int{}
		for _, k := range masks {
			count[k]++
		}
		if len(masks) != tc.clients || count[3] != tc.multi || count[1] != tc.a || count[2] != tc.v {
			t.Errorf("AllocateModalities(%d, 2, %v): %d masks, %d multi, %d A-only, %d V-only; want %d, %d, %d",
				tc.clients, tc.ratio, len(masks), count[3], count[1], count[2], tc.multi, tc.a, tc.v)
		}
	}
	a, _ := AllocateModalities(20, 2, 0.4, newRand(7))
	b, _ := AllocateModalities(20, 2, 0.4, newRand(7))
	c, _ := AllocateModalities(20, 2, 0.4, newRand(8))
	if !slices.Equal(a, b) {
		t.Error("same seed gave different allocations")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds gave the same allocation")
	}
	// Three modalities: 3 multimodal clients of 10 hold all three; the
	// other 7 split 3, 2, 2.
	masks, err := AllocateModalities(10, 3, 0.3, newRand(1))
	if err != nil {
		t.Fatal(err)
	}
	count := map[Mask]int{}
	for _, k := range masks {
		count[k]++
	}
	if want := map[Mask]int{7: 3, 1: 3, 2: 2, 4: 2}; !maps.Equal(count, want) {
		t.Errorf("three modalities: %v, want %v", count, want)
	}
	if _, err := AllocateModalities(4, 1, 0.5, newRand(1)); err == nil || !strings.Contains(err.Error(), "1 modalities") {
		t.Errorf("one modality: err = %v", err)
	}
}

func TestAllocateModalitiesErrors(t *testing.T) {
	for _, tc := range []struct {
		clients int
		ratio   float64
		nilRng  bool
		want    string
	}{
		{0, 0.5, false, "numClients = 0"},
		{4, -0.1, false, "multiRatio = -0.1"},
		{4, 1.5, false, "multiRatio = 1.5"},
		{4, math.NaN(), false, "multiRatio = NaN"},
		{4, 0.5, true, "nil rng"},
	} {
		rng := newRand(1)
		if tc.nilRng {
			rng = nil
		}
		_, err := AllocateModalities(tc.clients, 2, tc.ratio, rng)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AllocateModalities(%d, 2, %v): err = %v, want %q", tc.clients, tc.ratio, err, tc.want)
		}
	}
}
