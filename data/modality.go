package data

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Mask is a set of modality indices (bit m set = modality m present), e.g.
// the modalities a client holds. It covers modalities 0..7.
type Mask uint8

// maxMaskModalities is the number of modalities a Mask can hold.
const maxMaskModalities = 8

// Has reports whether modality m is in k. Indices outside 0..7 are never in
// a Mask.
func (k Mask) Has(m int) bool {
	return m >= 0 && m < maxMaskModalities && k&(1<<m) != 0
}

// Bools returns, for modalities 0..n-1, whether each is in k (the form
// package model takes).
func (k Mask) Bools(n int) []bool {
	out := make([]bool, n)
	for m := range out {
		out[m] = k.Has(m)
	}
	return out
}

// Count returns the number of modalities in k.
func (k Mask) Count() int { return bits.OnesCount8(uint8(k)) }

// Full returns the Mask holding modalities 0..numModalities-1. It returns the
// empty Mask for numModalities <= 0 and all eight modalities for
// numModalities >= 8.
func Full(numModalities int) Mask {
	switch {
	case numModalities <= 0:
		return 0
	case numModalities >= maxMaskModalities:
		return math.MaxUint8
	}
	return Mask(1<<numModalities - 1)
}

// Format names the modalities in k, joined by "+", e.g. "audio+visual",
// "audio", or "none" for the empty Mask. A modality without a name in names
// is written as its index, e.g. "#3".
func (k Mask) Format(names []string) string {
	if k == 0 {
		return "none"
	}
	var parts []string
	for m := range maxMaskModalities {
		if !k.Has(m) {
			continue
		}
		if m < len(names) {
			parts = append(parts, names[m])
		} else {
			parts = append(parts, "#"+strconv.Itoa(m))
		}
	}
	return strings.Join(parts, "+")
}

// AllocateModalities assigns a modality set to each of numClients clients
// for a set of numModalities (2..8) modalities: round(multiRatio*numClients)
// clients are multimodal (Full(numModalities), every modality); the rest
// are split evenly into the unimodal kinds, modality 0 first (with two
// modalities, the odd one out goes to modality 0). Which client gets what
// is a seeded shuffle. Errors if multiRatio outside [0,1], numClients < 1
// or numModalities outside 2..8.
//
// Rounding is half away from zero (math.Round), so 0.5 of 5 clients gives 3
// multimodal ones.
func AllocateModalities(numClients, numModalities int, multiRatio float64, rng *rand.Rand) ([]Mask, error) {
	if numClients < 1 {
		return nil, fmt.Errorf("data: allocate modalities: numClients = %d, want >= 1", numClients)
	}
	if numModalities < 2 || numModalities > maxMaskModalities {
		return nil, fmt.Errorf("data: allocate modalities: %d modalities, want 2..%d", numModalities, maxMaskModalities)
	}
	if !(multiRatio >= 0 && multiRatio <= 1) { // also rejects NaN
		return nil, fmt.Errorf("data: allocate modalities: multiRatio = %v, want in [0, 1]", multiRatio)
	}
	if rng == nil {
		return nil, fmt.Errorf("data: allocate modalities: nil rng")
	}
	multi := int(math.Round(multiRatio * float64(numClients)))
	uni := numClients - multi
	masks := make([]Mask, 0, numClients)
	for range multi {
		masks = append(masks, Full(numModalities))
	}
	for m := range numModalities {
		n := uni / numModalities
		if m < uni%numModalities {
			n++
		}
		for range n {
			masks = append(masks, 1<<m)
		}
	}
	rng.Shuffle(len(masks), func(i, j int) { masks[i], masks[j] = masks[j], masks[i] })
	return masks, nil
}
