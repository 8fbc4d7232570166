package data

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0)) }

// checkPartition verifies that clients is a partition of 0..n-1 into
// ascending lists.
func checkPartition(t *testing.T, clients [][]int, n int) {
	t.Helper()
	seen := make([]bool, n)
	total := 0
	for j, c := range clients {
		if !slices.IsSorted(c) {
			t.Errorf("client %d: indices not sorted", j)
		}
		for _, i := range c {
			if i < 0 || i >= n {
				t.Fatalf("client %d: index %d out of range", j, i)
			}
			if seen[i] {
				t.Fatalf("index %d given to two clients", i)
			}
			seen[i] = true
		}
		total += len(c)
	}
	if total != n {
		t.Errorf("partition covers %d of %d samples", total, n)
	}
}

func TestIID(t *testing.T) {
	tests := []struct {
		n, clients int
		sizes      []int
	}{
		{10, 1, []int{10}},
		{10, 3, []int{4, 3, 3}},
		{12, 4, []int{3, 3, 3, 3}},
		{5, 5, []int{1, 1, 1, 1, 1}},
	}
	for _, tc := range tests {
		got, err := IID(tc.n, tc.clients, newRand(1))
		if err != nil {
			t.Fatalf("IID(%d, %d): %v", tc.n, tc.clients, err)
		}
		checkPartition(t, got, tc.n)
		var sizes []int
		for _, c := range got {
			sizes = append(sizes, len(c))
		}
		if !slices.Equal(sizes, tc.sizes) {
			t.Errorf("IID(%d, %d) sizes %v, want %v", tc.n, tc.clients, sizes, tc.sizes)
		}
	}
	a, _ := IID(100, 4, newRand(3))
	b, _ := IID(100, 4, newRand(3))
	c, _ := IID(100, 4, newRand(4))
	if !reflect.DeepEqual(a, b) {
		t.Error("same seed gave different partitions")
	}
	if reflect.DeepEqual(a, c) {
		t.Error("different seeds gave the same partition")
	}
	if slices.Equal(a[0], []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24}) {
		t.Error("IID did not shuffle")
	}
}

func TestIIDErrors(t *testing.T) {
	tests := []struct {
		n, clients int
		rng        *rand.Rand
		want       string
	}{
		{10, 0, newRand(1), "numClients = 0"},
		{3, 4, newRand(1), "3 samples for 4 clients"},
		{10, 2, nil, "nil rng"},
	}
	for _, tc := range tests {
		if _, err := IID(tc.n, tc.clients, tc.rng); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("IID(%d, %d): err = %v, want %q", tc.n, tc.clients, err, tc.want)
		}
	}
}

// skewedLabels returns labels of numClasses classes with unequal sizes
// (class c has base + 10*c samples), in a shuffled order.
func skewedLabels(numClasses, base int) []int {
	var labels []int
	for c := range numClasses {
		for range base + 10*c {
			labels = append(labels, c)
		}
	}
	rng := newRand(99)
	rng.Shuffle(len(labels), func(i, j int) { labels[i], labels[j] = labels[j], labels[i] })
	return labels
}

// labelSkew returns the mean, over clients, of the total variation distance
// between the client's label distribution and the global one.
func labelSkew(labels []int, numClasses int, clients [][]int) float64 {
	global := make([]float64, numClasses)
	for _, y := range labels {
		global[y] += 1 / float64(len(labels))
	}
	sum := 0.0
	for _, c := range clients {
		local := make([]float64, numClasses)
		for _, i := range c {
			local[labels[i]] += 1 / float64(len(c))
		}
		tv := 0.0
		for y := range local {
			tv += math.Abs(local[y]-global[y]) / 2
		}
		sum += tv
	}
	return sum / float64(len(clients))
}

func TestDirichletProperties(t *testing.T) {
	const numClasses = 10
	labels := skewedLabels(numClasses, 50) // 950 samples, largest class 140
	n := len(labels)
	largest := slices.Max((&Set{Labels: labels, NumClasses: numClasses}).ClassCounts())
	tests := []struct {
		alpha            float64
		clients, minSize int
	}{
		{0.1, 10, 0},
		{0.1, 10, 10},
		{0.5, 20, 5},
		{1, 5, 50},
		{1e8, 8, 100},
	}
	for _, tc := range tests {
		for seed := range uint64(3) {
			got, err := Dirichlet(labels, numClasses, tc.clients, tc.alpha, tc.minSize, newRand(seed))
			if err != nil {
				t.Fatalf("alpha %g, %d clients, minSize %d, seed %d: %v", tc.alpha, tc.clients, tc.minSize, seed, err)
			}
			if len(got) != tc.clients {
				t.Fatalf("%d clients, want %d", len(got), tc.clients)
			}
			checkPartition(t, got, n)
			limit := dirichletCapFactor*float64(n)/float64(tc.clients) + float64(largest)
			for j, c := range got {
				if len(c) < tc.minSize {
					t.Errorf("alpha %g seed %d: client %d has %d samples, minSize %d", tc.alpha, seed, j, len(c), tc.minSize)
				}
				if float64(len(c)) > limit {
					t.Errorf("alpha %g seed %d: client %d has %d samples, cap %.1f", tc.alpha, seed, j, len(c), limit)
				}
			}
		}
	}
}

func TestDirichletSkew(t *testing.T) {
	const numClasses = 10
	labels := skewedLabels(numClasses, 50)
	for _, tc := range []struct {
		alpha    float64
		lo, hi   float64 // bounds on the mean total variation distance
		maxSizes float64 // bound on max/min client size
	}{
		{0.05, 0.6, 1, math.Inf(1)},
		{1e8, 0, 0.05, 1.2},
	} {
		got, err := Dirichlet(labels, numClasses, 10, tc.alpha, 1, newRand(5))
		if err != nil {
			t.Fatal(err)
		}
		skew := labelSkew(labels, numClasses, got)
		if skew < tc.lo || skew > tc.hi {
			t.Errorf("alpha %g: mean label skew %.3f, want in [%.2f, %.2f]", tc.alpha, skew, tc.lo, tc.hi)
		}
		lo, hi := len(labels), 0
		for _, c := range got {
			lo, hi = min(lo, len(c)), max(hi, len(c))
		}
		if float64(hi)/float64(lo) > tc.maxSizes {
			t.Errorf("alpha %g: client sizes from %d to %d", tc.alpha, lo, hi)
		}
	}
}

// TestDirichletCuts pins the cut arithmetic on a case worked by hand. With
// alpha = 1e8 the two shares are 0.5 (to about 1e-4). Class 0 (5 samples)
// is cut at int(0.5*5) = 2: sizes 2 and 3. Both clients are below the cap
// 1.1*10/2 = 5.5, so class 1 is cut the same way: sizes 4 and 6.
func TestDirichletCuts(t *testing.T) {
	labels := []int{0, 1, 0, 1, 0, 1, 0, 1, 0, 1}
	got, err := Dirichlet(labels, 2, 2, 1e8, 0, newRand(1))
	if err != nil {
		t.Fatal(err)
	}
	checkPartition(t, got, len(labels))
	if len(got[0]) != 4 || len(got[1]) != 6 {
		t.Errorf("sizes %d, %d, want 4, 6", len(got[0]), len(got[1]))
	}
	for j, c := range got {
		counts := make([]int, 2)
		for _, i := range c {
			counts[labels[i]]++
		}
		if want := []int{2 + j, 2 + j}; !slices.Equal(counts, want) {
			t.Errorf("client %d class counts %v, want %v", j, counts, want)
		}
	}
}

func TestDirichletDeterminism(t *testing.T) {
	labels := skewedLabels(5, 20)
	a, err := Dirichlet(labels, 5, 4, 0.5, 2, newRand(11))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Dirichlet(labels, 5, 4, 0.5, 2, newRand(11))
	c, _ := Dirichlet(labels, 5, 4, 0.5, 2, newRand(12))
	if !reflect.DeepEqual(a, b) {
		t.Error("same seed gave different partitions")
	}
	if reflect.DeepEqual(a, c) {
		t.Error("different seeds gave the same partition")
	}
}

// TestDirichletTinyAlpha reaches the underflow fallback: every Gamma variate
// is 0, so each class goes whole to one client.
func TestDirichletTinyAlpha(t *testing.T) {
	labels := skewedLabels(6, 10)
	got, err := Dirichlet(labels, 6, 3, 1e-9, 0, newRand(2))
	if err != nil {
		t.Fatal(err)
	}
	checkPartition(t, got, len(labels))
	owner := make(map[int]int)
	for j, c := range got {
		for _, i := range c {
			if o, ok := owner[labels[i]]; ok && o != j {
				t.Errorf("class %d split between clients %d and %d", labels[i], o, j)
			}
			owner[labels[i]] = j
		}
	}
}

func TestCappedShares(t *testing.T) {
	clients := [][]int{make([]int, 10), nil, nil} // client 0 is full at limit 5
	tests := []struct {
		name string
		draw []float64
		want []float64
	}{
		{"renormalise", []float64{0.5, 0.3, 0.2}, []float64{0, 0.6, 0.4}},
		{"all open shares zero: unmasked draw", []float64{1, 0, 0}, []float64{1, 0, 0}},
	}
	for _, tc := range tests {
		share := make([]float64, 3)
		cappedShares(share, slices.Clone(tc.draw), clients, 5, newRand(1))
		for j := range share {
			if math.Abs(share[j]-tc.want[j]) > 1e-12 {
				t.Errorf("%s: shares %v, want %v", tc.name, share, tc.want)
				break
			}
		}
	}
	// An underflowed draw (NaN from 0/0) puts everything on one open client.
	for seed := range uint64(20) {
		share := make([]float64, 3)
		cappedShares(share, []float64{math.NaN(), math.NaN(), math.NaN()}, clients, 5, newRand(seed))
		if share[0] != 0 || share[1]+share[2] != 1 || share[1]*share[2] != 0 {
			t.Fatalf("seed %d: underflow shares %v, want one-hot on client 1 or 2", seed, share)
		}
	}
}

func TestDirichletErrors(t *testing.T) {
	labels := skewedLabels(3, 10) // 60 samples
	tests := []struct {
		name                  string
		labels                []int
		classes, clients, min int
		alpha                 float64
		rng                   *rand.Rand
		is                    error
		want                  string
	}{
		{"zero alpha", labels, 3, 4, 0, 0, newRand(1), nil, "alpha = 0"},
		{"NaN alpha", labels, 3, 4, 0, math.NaN(), newRand(1), nil, "alpha = NaN"},
		{"infinite alpha", labels, 3, 4, 0, math.Inf(1), newRand(1), nil, "alpha = +Inf"},
		{"no clients", labels, 3, 0, 0, 1, newRand(1), nil, "numClients = 0"},
		{"no classes", labels, 0, 4, 0, 1, newRand(1), nil, "numClasses = 0"},
		{"negative minSize", labels, 3, 4, -1, 1, newRand(1), nil, "minSize = -1"},
		{"nil rng", labels, 3, 4, 0, 1, nil, nil, "nil rng"},
		{"label out of range", []int{0, 1, 3}, 3, 1, 0, 1, newRand(1), ErrLabel, "labels[2] = 3"},
		{"minSize impossible", labels, 3, 4, 16, 1, newRand(1), ErrInfeasible, "need 64 samples, have 60"},
		{"minSize unreachable", labels, 3, 10, 6, 0.01, newRand(1), ErrInfeasible, "in 1000 attempts"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Dirichlet(tc.labels, tc.classes, tc.clients, tc.alpha, tc.min, tc.rng)
			if err == nil {
				t.Fatal("Dirichlet succeeded, want error")
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

func TestByGroup(t *testing.T) {
	tests := []struct {
		groups  []int
		clients [][]int
		ids     []int
	}{
		{[]int{5, 2, 5, 9, 2}, [][]int{{1, 4}, {0, 2}, {3}}, []int{2, 5, 9}},
		{[]int{0, 0, 0}, [][]int{{0, 1, 2}}, []int{0}},
		{[]int{3, -1}, [][]int{{1}, {0}}, []int{-1, 3}},
	}
	for _, tc := range tests {
		clients, ids, err := ByGroup(tc.groups)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(clients, tc.clients) || !slices.Equal(ids, tc.ids) {
			t.Errorf("ByGroup(%v) = %v, %v, want %v, %v", tc.groups, clients, ids, tc.clients, tc.ids)
		}
	}
	if _, _, err := ByGroup(nil); err == nil {
		t.Error("ByGroup(nil) succeeded, want error")
	}
}
