package data

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// ncmAccuracy fits a nearest-class-mean classifier on modality m of train
// and returns its accuracy on test.
func ncmAccuracy(train, test *Set, m int) float64 {
	d := train.Dims[m]
	means := make([][]float64, train.NumClasses)
	for y := range means {
		means[y] = make([]float64, d)
	}
	counts := train.ClassCounts()
	for i, y := range train.Labels {
		for j, v := range train.Row(m, i) {
			means[y][j] += float64(v) / float64(counts[y])
		}
	}
	correct := 0
	for i, y := range test.Labels {
		best, bestDist := -1, math.Inf(1)
		for c, mu := range means {
			dist := 0.0
			for j, v := range test.Row(m, i) {
				diff := float64(v) - mu[j]
				dist += diff * diff
			}
			if dist < bestDist {
				best, bestDist = c, dist
			}
		}
		if best == y {
			correct++
		}
	}
	return float64(correct) / float64(test.Len())
}

func TestSyntheticShapes(t *testing.T) {
	c := DefaultSynthetic()
	train, test, err := Synthetic(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		s        *Set
		perClass int
	}{
		{"train", train, c.TrainPerClass},
		{"test", test, c.TestPerClass},
	} {
		if err := tc.s.Validate(); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if got, want := tc.s.Len(), c.NumClasses*tc.perClass; got != want {
			t.Errorf("%s: Len = %d, want %d", tc.name, got, want)
		}
		if !slices.Equal(tc.s.Modalities, []string{"audio", "visual"}) || !slices.Equal(tc.s.Dims, []int{32, 32}) {
			t.Errorf("%s: modalities %v dims %v", tc.name, tc.s.Modalities, tc.s.Dims)
		}
		for y, n := range tc.s.ClassCounts() {
			if n != tc.perClass {
				t.Errorf("%s: class %d has %d samples, want %d", tc.name, y, n, tc.perClass)
			}
		}
		if tc.s.Groups != nil {
			t.Errorf("%s: Groups = %v, want nil", tc.name, tc.s.Groups)
		}
		// Shuffled: the first perClass labels are not all the same class.
		if slices.Min(tc.s.Labels[:tc.perClass]) == slices.Max(tc.s.Labels[:tc.perClass]) {
			t.Errorf("%s: samples are not shuffled", tc.name)
		}
	}
}

func TestSyntheticDeterminism(t *testing.T) {
	c := DefaultSynthetic()
	c.TrainPerClass, c.TestPerClass = 20, 10
	a, at, err := Synthetic(c)
	if err != nil {
		t.Fatal(err)
	}
	b, bt, err := Synthetic(c)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Labels, b.Labels) || !slices.Equal(a.Features[0], b.Features[0]) ||
		!slices.Equal(a.Features[1], b.Features[1]) || !slices.Equal(at.Features[1], bt.Features[1]) {
		t.Error("same config gave different data")
	}
	if slices.Equal(a.Features[0][:len(at.Features[0])], at.Features[0]) {
		t.Error("test set repeats the training set")
	}
	c.Seed++
	d, _, err := Synthetic(c)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(a.Features[0], d.Features[0]) {
		t.Error("different seeds gave the same data")
	}
	// More training samples leave the test set unchanged (separate streams).
	c.Seed--
	c.TrainPerClass = 30
	_, et, err := Synthetic(c)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(at.Features[0], et.Features[0]) {
		t.Error("changing TrainPerClass changed the test set")
	}
}

func TestSyntheticSeparability(t *testing.T) {
	c := DefaultSynthetic()
	for seed := range uint64(3) {
		c.Seed = seed
		train, test, err := Synthetic(c)
		if err != nil {
			t.Fatal(err)
		}
		strong := ncmAccuracy(train, test, 0)
		weak := ncmAccuracy(train, test, 1)
		t.Logf("seed %d: nearest-mean accuracy %.3f (modality 0), %.3f (modality 1)", seed, strong, weak)
		chance := 1 / float64(c.NumClasses)
		if strong < 0.9 {
			t.Errorf("seed %d: modality 0 accuracy %.3f, want > 0.9", seed, strong)
		}
		if weak > strong-0.3 {
			t.Errorf("seed %d: modality 1 accuracy %.3f is not clearly below modality 0's %.3f", seed, weak, strong)
		}
		if weak < 1.5*chance || weak > 0.65 {
			t.Errorf("seed %d: modality 1 accuracy %.3f, want in (%.3f, 0.65)", seed, weak, 1.5*chance)
		}
	}
}

func TestSyntheticValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*SyntheticConfig)
		want   string // substring of the error, "" for valid
	}{
		{"default", func(*SyntheticConfig) {}, ""},
		{"zero signal", func(c *SyntheticConfig) { c.Signal[1] = 0 }, ""},
		{"empty name", func(c *SyntheticConfig) { c.Modalities[1] = "" }, "Modalities[1]"},
		{"same names", func(c *SyntheticConfig) { c.Modalities[1] = "audio" }, "both"},
		{"zero dim", func(c *SyntheticConfig) { c.Dims[0] = 0 }, "Dims[0]"},
		{"one class", func(c *SyntheticConfig) { c.NumClasses = 1 }, "NumClasses"},
		{"no train", func(c *SyntheticConfig) { c.TrainPerClass = 0 }, "TrainPerClass"},
		{"no test", func(c *SyntheticConfig) { c.TestPerClass = -1 }, "TestPerClass"},
		{"negative signal", func(c *SyntheticConfig) { c.Signal[0] = -1 }, "Signal[0]"},
		{"NaN signal", func(c *SyntheticConfig) { c.Signal[1] = math.NaN() }, "Signal[1]"},
		{"infinite noise", func(c *SyntheticConfig) { c.Noise = math.Inf(1) }, "Noise"},
		{"too large", func(c *SyntheticConfig) { c.TrainPerClass = 1 << 40 }, "limit"},
		{"zero value", func(c *SyntheticConfig) { *c = SyntheticConfig{} }, "at least 2"},
		{"one modality", func(c *SyntheticConfig) {
			c.Modalities, c.Dims, c.Signal = c.Modalities[:1], c.Dims[:1], c.Signal[:1]
		}, "at least 2"},
		{"dims missing", func(c *SyntheticConfig) { c.Dims = c.Dims[:1] }, "one of each"},
		{"third repeats the first", func(c *SyntheticConfig) {
			c.Modalities, c.Dims, c.Signal = []string{"a", "b", "a"}, []int{4, 4, 4}, []float64{1, 1, 1}
		}, `both "a"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultSynthetic()
			tc.modify(&c)
			err := c.Validate()
			_, _, genErr := Synthetic(c)
			if tc.want == "" {
				if err != nil || genErr != nil {
					t.Fatalf("Validate = %v, Synthetic = %v, want nil", err, genErr)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want error containing %q", err, tc.want)
			}
			if genErr == nil || genErr.Error() != err.Error() {
				t.Fatalf("Synthetic = %v, want %v", genErr, err)
			}
		})
	}
}

func TestSyntheticClassDependentWeakness(t *testing.T) {
	c := DefaultSynthetic()
	g := newSynthGen(c)
	var lo, hi float64 = math.Inf(1), 0
	for y := range c.NumClasses {
		n0, n1 := norm(g.means[0][y]), norm(g.means[1][y])
		if math.Abs(n0-protoRadius*c.Signal[0]) > 1e-9 {
			t.Errorf("class %d: modality 0 mean norm %v, want %v", y, n0, protoRadius*c.Signal[0])
		}
		s := n1 / (protoRadius * c.Signal[1])
		lo, hi = min(lo, s), max(hi, s)
	}
	if math.Abs(lo-weakScaleMin) > 1e-9 || math.Abs(hi-weakScaleMax) > 1e-9 {
		t.Errorf("weak class scales span [%v, %v], want [%v, %v]", lo, hi, weakScaleMin, weakScaleMax)
	}
}

func norm(x []float64) float64 {
	s := 0.0
	for _, v := range x {
		s += v * v
	}
	return math.Sqrt(s)
}

func BenchmarkSyntheticDefault(b *testing.B) {
	c := DefaultSynthetic()
	for b.Loop() {
		if _, _, err := Synthetic(c); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSyntheticThreeModalities checks a set of three modalities: shapes,
// and each modality as separable as its own signal says (a nearest class
// mean classifier: strong ~0.95, weak ~0.5, no signal at chance).
func TestSyntheticThreeModalities(t *testing.T) {
	c := DefaultSynthetic()
	c.Modalities = []string{"audio", "visual", "text"}
	c.Dims = []int{32, 32, 16}
	c.Signal = []float64{1, 0.35, 0}
	train, test, err := Synthetic(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := train.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(train.Features) != 3 || len(train.Features[2]) != train.Len()*16 || !slices.Equal(train.Modalities, c.Modalities) {
		t.Fatalf("three-modality set: %d feature arrays, dims %v", len(train.Features), train.Dims)
	}
	strong, weak, none := ncmAccuracy(train, test, 0), ncmAccuracy(train, test, 1), ncmAccuracy(train, test, 2)
	if !(strong > 0.85 && weak > 0.3 && weak < 0.7 && none < 0.3) {
		t.Errorf("nearest-class-mean accuracies %.2f, %.2f, %.2f; want strong > 0.85, weak in (0.3, 0.7), no signal < 0.3", strong, weak, none)
	}
	// The input slices are not shared with the set.
	c.Modalities[0] = "changed"
	if train.Modalities[0] != "audio" {
		t.Error("the set shares the config's Modalities slice")
	}
}
