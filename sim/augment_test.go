package sim

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestAugmenter(t *testing.T) {
	if a, err := augmenter([]string{"none", "none"}, [][]int{{4}, {4}}); a != nil || err != nil {
		t.Fatalf("no augmentation: %v %v", a != nil, err)
	}
	if _, err := augmenter([]string{"crop", "none"}, [][]int{{16}, {4}}); err == nil {
		t.Fatal("augmenting vectors accepted")
	}
	// Two frames of 1x4x4 per sample, two samples.
	a, err := augmenter([]string{"none", "crop_flip"}, [][]int{{3}, {2, 1, 4, 4}})
	if err != nil {
		t.Fatal(err)
	}
	rows := make([]float32, 2*2*16)
	for i := range rows {
		rows[i] = float32(i % 16) // a ramp in every frame
	}
	orig := slices.Clone(rows)
	run := func(seed uint64) []float32 {
		r := slices.Clone(orig)
		if err := a(1, r, 2, rand.New(rand.NewPCG(seed, 0))); err != nil {
			t.Fatal(err)
		}
		return r
	}
	x, y := run(1), run(1)
	if !slices.Equal(x, y) {
		t.Fatal("same seed, different augmentation")
	}
	if slices.Equal(x, orig) {
		t.Fatal("crop_flip left every frame unchanged")
	}
	for _, v := range x {
		if v < 0 || v > 15 {
			t.Fatalf("value %v outside the image's range: not a crop of it", v)
		}
	}
	mod0 := []float32{1, 2, 3}
	if err := a(0, mod0, 1, rand.New(rand.NewPCG(1, 0))); err != nil || !slices.Equal(mod0, []float32{1, 2, 3}) {
		t.Fatalf("modality without augmentation changed: %v %v", mod0, err)
	}
	// Three modalities, the third an image the list of two does not
	// name: it is left alone, and a third entry augments it.
	three := [][]int{{3}, {2, 1, 4, 4}, {1, 4, 4}}
	a, err = augmenter([]string{"none", "crop"}, three)
	if err != nil {
		t.Fatal(err)
	}
	img := slices.Clone(orig[:16])
	if err := a(2, img, 1, rand.New(rand.NewPCG(1, 0))); err != nil || !slices.Equal(img, orig[:16]) {
		t.Fatalf("an unnamed modality was augmented: %v", err)
	}
	if a, err = augmenter([]string{"none", "none", "crop_flip"}, three); err != nil {
		t.Fatal(err)
	}
	changed := false
	for seed := range uint64(5) {
		img := slices.Clone(orig[:16])
		if err := a(2, img, 1, rand.New(rand.NewPCG(seed, 0))); err != nil {
			t.Fatal(err)
		}
		changed = changed || !slices.Equal(img, orig[:16])
	}
	if !changed {
		t.Fatal("the third modality's augmentation changed nothing")
	}
	if _, err := augmenter([]string{"none", "none", "none", "crop"}, three); err == nil {
		t.Fatal("four augmentations for three modalities accepted")
	}
}
