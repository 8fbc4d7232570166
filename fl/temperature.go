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
// classes present: if r_bar > 1 (modality 0 dominant) then
// T_c = 1/(1 + c3 ln(r_c/r_bar)) where r_c > r_bar, else 1; otherwise the
// same with s_c = pv[c]/pa[c]. Classes whose ratio is undefined (0/0) or
// absent get 1; an infinite ratio (the weak head gives the class zero
// probability) gets MinTemperature. Results are clamped to
// [MinTemperature, MaxTemperature].
func ClassTemperatures(pa, pv []float64, c3 float64) []float64 {
	k := len(pa)
	temps := make([]float64, k)
	ratio := func(num, den []float64) ([]float64, float64) {
		r := make([]float64, k)
		sum, n := 0.0, 0
		for c := range k {
			r[c] = num[c] / den[c]
			// The method note skips classes whose denominator is zero in the mean.
			if !math.IsNaN(r[c]) && !math.IsInf(r[c], 0) {
				sum += r[c]
				n++
			}
		}
		if n == 0 {
			return r, math.NaN()
		}
		return r, sum / float64(n)
	}
	r, rbar := ratio(pa, pv)
	// Only infinite ratios (modality 1 never right): modality 0 dominates.
	allInf := math.IsNaN(rbar) && slices.ContainsFunc(r, func(v float64) bool { return math.IsInf(v, 1) })
	if !(rbar > 1) && !allInf {
		r, rbar = ratio(pv, pa)
	}
	for c := range k {
		switch {
		case math.IsInf(r[c], 1):
			temps[c] = MinTemperature
		case math.IsNaN(r[c]) || math.IsNaN(rbar):
			temps[c] = 1
		case r[c] > rbar:
			temps[c] = GuardTemperature(1 / (1 + c3*math.Log(r[c]/rbar)))
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
