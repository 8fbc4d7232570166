package data

import (
	"fmt"
	"math"
	"slices"
)

// Standardizer holds per-modality, per-dimension mean and std computed on
// training data. Apply maps a feature x of modality m, dimension j, to
// (x - Mean[m][j]) / Std[m][j].
//
// The fields are exported so that the statistics can be stored with a run
// (for example as JSON) and applied again to new data.
type Standardizer struct {
	Modalities []string    // modality names, as in the Set it was fitted on
	Mean, Std  [][]float64 // Mean[m][j], Std[m][j] for modality m, dimension j
}

// FitStandardizer computes the mean and the population standard deviation
// (divisor N) of every feature dimension of train.
//
// The standard deviation of a dimension that is constant in train is set to
// 1 rather than 0, so that Apply maps that dimension to exactly 0 instead of
// dividing by zero; such a dimension carries no information in training. A
// train set without samples gives mean 0 and std 1 (the identity). train
// should be valid (see Set.Validate); a modality whose feature slice is
// shorter than Len rows contributes only its complete rows.
func FitStandardizer(train *Set) *Standardizer {
	z := &Standardizer{}
	if train == nil {
		return z
	}
	z.Modalities = slices.Clone(train.Modalities)
	z.Mean = make([][]float64, len(train.Modalities))
	z.Std = make([][]float64, len(train.Modalities))
	for m := range train.Modalities {
		d := 0
		var x []float32
		if m < len(train.Dims) && m < len(train.Features) {
			d, x = max(train.Dims[m], 0), train.Features[m]
		}
		mean, std := make([]float64, d), make([]float64, d)
		n := min(train.Len(), len(x)/max(d, 1))
		// Two passes in float64: the mean first, then squared deviations,
		// which is accurate even when the mean is large relative to the
		// spread (unscaled features in the hundreds or thousands).
		for i := range n {
			for j, v := range x[i*d : (i+1)*d] {
				mean[j] += float64(v)
			}
		}
		for j := range mean {
			if n > 0 {
				mean[j] /= float64(n)
			}
		}
		constant := make([]bool, d)
		for j := range constant {
			constant[j] = true
		}
		for i := range n {
			for j, v := range x[i*d : (i+1)*d] {
				dev := float64(v) - mean[j]
				std[j] += dev * dev
				if v != x[j] {
					constant[j] = false
				}
			}
		}
		for j := range std {
			switch {
			case n == 0:
				std[j] = 1
			case constant[j]:
				// Exact, so that the dimension maps to exactly 0 (the
				// summed mean may be off by rounding).
				mean[j], std[j] = float64(x[j]), 1
			default:
				std[j] = math.Sqrt(std[j] / float64(n))
			}
		}
		z.Mean[m], z.Std[m] = mean, std
	}
	return z
}

// Validate reports whether z is usable: one mean and std vector per
// modality, of equal lengths, with finite means and positive finite stds.
// It matters for a Standardizer read back from storage.
func (z *Standardizer) Validate() error {
	if len(z.Mean) != len(z.Modalities) || len(z.Std) != len(z.Modalities) {
		return fmt.Errorf("data: standardizer: %w: %d modalities, %d mean and %d std vectors",
			ErrShape, len(z.Modalities), len(z.Mean), len(z.Std))
	}
	for m, name := range z.Modalities {
		if len(z.Mean[m]) != len(z.Std[m]) {
			return fmt.Errorf("data: standardizer: %w: modality %q has %d means and %d stds",
				ErrShape, name, len(z.Mean[m]), len(z.Std[m]))
		}
		for j := range z.Mean[m] {
			mu, sd := z.Mean[m][j], z.Std[m][j]
			if math.IsNaN(mu) || math.IsInf(mu, 0) || !(sd > 0) || math.IsInf(sd, 0) {
				return fmt.Errorf("data: standardizer: modality %q dimension %d has mean %v and std %v, want finite mean and positive finite std",
					name, j, mu, sd)
			}
		}
	}
	return nil
}

// Apply returns a standardised copy of s: new feature slices, with the
// labels and groups of s shared. Each modality of s is matched by name with
// a modality of z, which may hold more modalities than s (so a
// Standardizer fitted on all modalities also serves a client that holds
// one). A modality of s missing from z, or with a different dimension, is
// an error.
func (z *Standardizer) Apply(s *Set) (*Set, error) {
	if err := z.Validate(); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err // already says what is wrong with s
	}
	out := &Set{
		Modalities: slices.Clone(s.Modalities),
		Dims:       slices.Clone(s.Dims),
		Features:   make([][]float32, len(s.Modalities)),
		Labels:     s.Labels,
		Groups:     s.Groups,
		NumClasses: s.NumClasses,
		Shapes:     s.Shapes,
	}
	for m, name := range s.Modalities {
		k := slices.Index(z.Modalities, name)
		if k < 0 {
			return nil, fmt.Errorf("data: standardize: %w %q (standardizer has %v)", ErrUnknownModality, name, z.Modalities)
		}
		mean, std := z.Mean[k], z.Std[k]
		d := s.Dims[m]
		if len(mean) != d {
			return nil, fmt.Errorf("data: standardize: %w: modality %q has dimension %d, standardizer %d",
				ErrShape, name, d, len(mean))
		}
		x := s.Features[m]
		y := make([]float32, len(x))
		for i, v := range x {
			j := i % d
			y[i] = float32((float64(v) - mean[j]) / std[j])
			if math.IsInf(float64(y[i]), 0) {
				// A tiny but valid std (a nearly constant training column)
				// can take a finite value beyond float32.
				return nil, fmt.Errorf("data: standardize: %w: modality %q row %d column %d: %v standardises to %v (mean %g, std %g)",
					ErrNonFinite, name, i/d, j+1, v, y[i], mean[j], std[j])
			}
		}
		out.Features[m] = y
	}
	return out, nil
}
