package data

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestDegradeRatesRefused(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, rate := range []float64{-0.1, 1, 1.5, math.NaN(), math.Inf(1)} {
		if _, err := DropModalities([]Mask{3}, 2, rate, rng); err == nil || !strings.Contains(err.Error(), "missing modality rate") {
			t.Errorf("DropModalities rate %v: %v", rate, err)
		}
		if _, err := NoisyLabels([]int{0}, [][]int{{0}}, 2, rate, rng); err == nil || !strings.Contains(err.Error(), "label noise") {
			t.Errorf("NoisyLabels rate %v: %v", rate, err)
		}
		if _, err := DropLabels([][]int{{0}}, rate, rng); err == nil || !strings.Contains(err.Error(), "missing label rate") {
			t.Errorf("DropLabels rate %v: %v", rate, err)
		}
	}
}

func TestDropModalities(t *testing.T) {
	masks := make([]Mask, 4000)
	for i := range masks {
		masks[i] = Full(3)
	}
	for _, rate := range []float64{0, 0.1, 0.5} {
		got, err := DropModalities(masks, 3, rate, rand.New(rand.NewPCG(7, 8)))
		if err != nil {
			t.Fatal(err)
		}
		again, _ := DropModalities(masks, 3, rate, rand.New(rand.NewPCG(7, 8)))
		if !slices.Equal(got, again) {
			t.Errorf("rate %v: not deterministic", rate)
		}
		lost, none := 0, 0
		for _, k := range got {
			lost += 3 - k.Count()
			if k == 0 {
				none++
			}
		}
		// Each of 12000 modality slots is lost with probability rate (std
		// of the share about 0.005); none left with probability rate^3.
		if share := float64(lost) / 12000; math.Abs(share-rate) > 0.02 {
			t.Errorf("rate %v: %.3f of the modalities lost", rate, share)
		}
		if share := float64(none) / 4000; math.Abs(share-rate*rate*rate) > 0.02 {
			t.Errorf("rate %v: %.3f of the clients left with none", rate, share)
		}
	}
	// Only held modalities can go.
	got, _ := DropModalities([]Mask{1, 2}, 2, 0.9, rand.New(rand.NewPCG(1, 1)))
	if got[0]&^1 != 0 || got[1]&^2 != 0 {
		t.Errorf("masks %v gained modalities", got)
	}
}

func TestNoisyLabels(t *testing.T) {
	const k, n = 5, 20000
	labels := make([]int, n+10)
	for i := range labels {
		labels[i] = i % k
	}
	half := make([]int, n/2)
	for i := range half {
		half[i] = i
	}
	other := make([]int, n/2)
	for i := range other {
		other[i] = n/2 + i
	}
	parts := [][]int{half, other} // rows n..n+9 belong to no client
	got, err := NoisyLabels(labels, parts, k, 0.3, rand.New(rand.NewPCG(3, 4)))
	if err != nil {
		t.Fatal(err)
	}
	if labels[0] != 0 || labels[1] != 1 {
		t.Fatal("the input labels changed")
	}
	if !slices.Equal(got[n:], labels[n:]) {
		t.Error("rows of no client were relabelled")
	}
	// Per client: the share of changed labels is the rate, and the wrong
	// classes of class 0 follow the client's own Dirichlet row, so the two
	// clients' most frequent wrong class of class 0 differ in share.
	var top [2]float64
	for p, part := range parts {
		changed := 0
		wrong := make([]int, k)
		zeros := 0
		for _, i := range part {
			if got[i] != labels[i] {
				changed++
			}
			if labels[i] == 0 {
				zeros++
				wrong[got[i]]++
			}
		}
		if share := float64(changed) / float64(len(part)); math.Abs(share-0.3) > 0.02 {
			t.Errorf("client %d: %.3f of the labels changed, want 0.3", p, share)
		}
		if keep := float64(wrong[0]) / float64(zeros); math.Abs(keep-0.7) > 0.03 {
			t.Errorf("client %d: class 0 kept %.3f, want 0.7", p, keep)
		}
		top[p] = float64(slices.Max(wrong[1:])) / float64(zeros)
	}
	// Uniform noise would give each wrong class 0.3/4 = 0.075.
	if top[0] < 0.1 && top[1] < 0.1 {
		t.Errorf("wrong classes look uniform: top shares %v", top)
	}
	if math.Abs(top[0]-top[1]) < 1e-3 {
		t.Errorf("both clients share one transition matrix: %v", top)
	}
	if _, err := NoisyLabels([]int{0, 7}, [][]int{{0, 1}}, 2, 0.5, rand.New(rand.NewPCG(1, 1))); err == nil || !strings.Contains(err.Error(), "row 1 has label 7") {
		t.Errorf("bad label: %v", err)
	}
	if _, err := NoisyLabels([]int{0}, [][]int{{3}}, 2, 0.5, rand.New(rand.NewPCG(1, 1))); err == nil || !strings.Contains(err.Error(), "client 0 holds row 3") {
		t.Errorf("bad row: %v", err)
	}
	// A client keeps the transition rows of the classes it holds only:
	// with 3000 classes the whole matrix would be 72 MB.
	const many = 3000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := NoisyLabels([]int{1, 1}, [][]int{{0, 1}}, many, 0.5, rand.New(rand.NewPCG(1, 1))); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if b := after.TotalAlloc - before.TotalAlloc; b > 1<<20 {
		t.Errorf("label noise over %d classes for a client of one class allocated %d bytes, want under 1 MiB", many, b)
	}
}

func TestDropLabels(t *testing.T) {
	parts := [][]int{{5, 3, 9, 1, 7, 2, 8, 4, 6, 0}, {11, 10}, {}}
	for _, tc := range []struct {
		rate float64
		lens []int
	}{{0, []int{10, 2, 0}}, {0.25, []int{7, 1, 0}}, {0.5, []int{5, 1, 0}}, {0.9, []int{1, 1, 0}}} {
		got, err := DropLabels(parts, tc.rate, rand.New(rand.NewPCG(5, 6)))
		if err != nil {
			t.Fatal(err)
		}
		for p := range parts {
			if len(got[p]) != tc.lens[p] {
				t.Errorf("rate %v client %d: %d rows, want %d", tc.rate, p, len(got[p]), tc.lens[p])
			}
			// A subsequence of the client's rows: order kept, nothing new.
			j := 0
			for _, i := range parts[p] {
				if j < len(got[p]) && got[p][j] == i {
					j++
				}
			}
			if j != len(got[p]) {
				t.Errorf("rate %v client %d: %v is not a subsequence of %v", tc.rate, p, got[p], parts[p])
			}
		}
	}
}

func TestDropSampleModalities(t *testing.T) {
	const n = 6000
	all := make([]int, n/2)
	for i := range all {
		all[i] = i
	}
	uni := make([]int, n/2)
	for i := range uni {
		uni[i] = n/2 + i
	}
	parts, masks := [][]int{all, uni}, []Mask{Full(2), 1}
	rows, kept, err := DropSampleModalities(parts, masks, n, 0.3, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	lost, none := 0, 0
	for _, i := range all {
		lost += 2 - rows[i].Count()
		if rows[i] == 0 {
			none++
		}
	}
	// Each of 6000 slots lost with probability 0.3; a row loses both with 0.09.
	if share := float64(lost) / float64(n); math.Abs(share-0.3) > 0.03 {
		t.Errorf("%.3f of the multimodal client's slots lost, want 0.3", share)
	}
	if len(kept[0]) != len(all)-none || math.Abs(float64(none)/float64(len(all))-0.09) > 0.02 {
		t.Errorf("%d rows kept of %d, %d left with none", len(kept[0]), len(all), none)
	}
	for _, i := range kept[0] {
		if rows[i] == 0 {
			t.Fatal("a row without modalities was kept")
		}
	}
	// The unimodal client keeps every row and its one modality.
	if len(kept[1]) != len(uni) || rows[uni[0]] != 1 {
		t.Errorf("unimodal client changed: %d rows, mask %v", len(kept[1]), rows[uni[0]])
	}
	if _, _, err := DropSampleModalities(parts, masks, n, 1, rand.New(rand.NewPCG(1, 2))); err == nil || !strings.Contains(err.Error(), "missing sample rate") {
		t.Errorf("rate 1: %v", err)
	}
}
