package fl

import (
	"math"
	"slices"
)

// Bounds of a class-wise temperature. The method's formula
// T_c = 1/(1 + c3 ln(r_c / r_bar)) stays in (0, 1] for c3 >= 0 but tends to
// 0 for extreme ratios (a class the weak modality never gets right), where
// dividing logits by T overflows softmax; MinTemperature bounds it.
// MaxTemperature bounds the soft end for a user-chosen negative c3.
const (
	MinTemperature = 0.05
	MaxTemperature = 20
)

// ClassTemperatures implements FedCMI's class-wise temperature adaptation.
// pa[c] and pv[c] are the mean true-class probabilities of the two self
// heads over the client's samples of class c (NaN for a class the client
// does not have). With r_c = pa[c]/pv[c] and r_bar its mean over the
// classes present (classes with pv[c] = 0 skipped):
//
//   - r_bar > 1 (modality 0 dominant): T_c = 1/(1 + c3 ln(r_c/r_bar)) where
//     r_c > r_bar, else 1;
//   - otherwise (modality 1 dominant), with s_c = 1/r_c and threshold
//     1/r_bar as the reference code does: T_c = 1/(1 + c3 ln(s_c r_bar))
//     where s_c > 1/r_bar, else 1.
//
// Classes whose ratio is undefined (0/0, absent) get 1; a class the weak
// head gives zero probability (ratio +Inf in the dominant direction) gets
// MinTemperature. Results are clamped by GuardTemperature.
func ClassTemperatures(pa, pv []float64, c3 float64) []float64 {
	k := len(pa)
	r := make([]float64, k)
	sum, n := 0.0, 0
	for c := range k {
		r[c] = pa[c] / pv[c]
		// The method skips classes whose denominator is zero in the mean.
		if !math.IsNaN(r[c]) && !math.IsInf(r[c], 0) {
			sum += r[c]
			n++
		}
	}
	rbar := math.NaN()
	if n > 0 {
		rbar = sum / float64(n)
	}
	// Only infinite ratios (modality 1 never right): modality 0 dominates.
	onlyInf := n == 0 && slices.ContainsFunc(r, func(v float64) bool { return math.IsInf(v, 1) })
	temps := make([]float64, k)
	for c := range k {
		// ratio is the class's imbalance in the dominant direction and
		// bar its threshold.
		ratio, bar := r[c], rbar
		if !(rbar > 1) && !onlyInf {
			ratio, bar = 1/r[c], 1/rbar
		}
		switch {
		case math.IsInf(ratio, 1):
			temps[c] = MinTemperature
		case math.IsNaN(ratio) || math.IsNaN(bar):
			temps[c] = 1
		case ratio > bar:
			temps[c] = GuardTemperature(1 / (1 + c3*math.Log(ratio/bar)))
		default:
			temps[c] = 1
		}
	}
	return temps
}

// GuardTemperature clamps t to [MinTemperature, MaxTemperature]; a
// non-positive or infinite t (from 1 + c3 ln(.) <= 0) becomes
// MaxTemperature and NaN becomes 1.
func GuardTemperature(t float64) float64 {
	switch {
	case math.IsNaN(t):
		return 1
	case t <= 0 || math.IsInf(t, 0):
		return MaxTemperature
	}
	return min(max(t, MinTemperature), MaxTemperature)
}

// DominanceRatio returns rho = sum_i pa_i / sum_i pv_i for the true-class
// probabilities of a batch (+Inf when only the denominator is zero, NaN
// when both are).
func DominanceRatio(sumPA, sumPV float64) float64 {
	return sumPA / sumPV
}

// PairTemperatures returns the class-wise temperatures of every ordered
// (teacher, student) pair of modalities from the per-modality class means
// (means[m][c], as ClassStats.Means returns them): out[c][t*nm+s] is class
// c's temperature when modality t teaches modality s. Each pair a < b gets
// ClassTemperatures(means[a], means[b], c3), in both directions, as the
// method measures both directions of its two modalities with one ratio;
// the diagonal is 1.
func PairTemperatures(means [][]float64, c3 float64) [][]float64 {
	nm := len(means)
	if nm == 0 {
		return nil
	}
	k := len(means[0])
	out := make([][]float64, k)
	for c := range out {
		out[c] = make([]float64, nm*nm)
		for m := range nm {
			out[c][m*nm+m] = 1
		}
	}
	for a := range nm {
		for b := a + 1; b < nm; b++ {
			temps := ClassTemperatures(means[a], means[b], c3)
			for c := range k {
				out[c][a*nm+b], out[c][b*nm+a] = temps[c], temps[c]
			}
		}
	}
	return out
}
