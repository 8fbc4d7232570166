package fl

import (
	"math"
	"testing"
)

func TestClassTemperatures(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name   string
		pa, pv []float64
		c3     float64
		want   []float64
	}{
		{
			// r = (2, 1, 4), r_bar = 7/3: only class 2 is above the mean;
			// T_2 = 1/(1 + 2 ln(4/(7/3))) = 1/(1 + 2 ln(12/7)).
			name: "first dominant",
			pa:   []float64{0.8, 0.5, 0.8}, pv: []float64{0.4, 0.5, 0.2}, c3: 2,
			want: []float64{1, 1, 1 / (1 + 2*math.Log(12.0/7))},
		},
		{
			// r = (0.5, 0.25): r_bar = 0.375 <= 1, so s = 1/r = (2, 4) against
			// the threshold 1/r_bar = 8/3: T_1 = 1/(1 + 2 ln(4 * 3/8)) = 1/(1 + 2 ln 1.5).
			name: "second dominant",
			pa:   []float64{0.3, 0.2}, pv: []float64{0.6, 0.8}, c3: 2,
			want: []float64{1, 1 / (1 + 2*math.Log(1.5))},
		},
		{
			// r = (1, 1/3, 1/10), r_bar = (1 + 1/3 + 1/10)/3 = 43/90, threshold 90/43.
			// s = (1, 3, 10): T_1 = 1/(1 + 2 ln(3*43/90)) = 1/(1 + 2 ln(43/30)),
			// T_2 = 1/(1 + 2 ln(10*43/90)) = 1/(1 + 2 ln(43/9)).
			name: "second dominant, three classes",
			pa:   []float64{0.6, 0.3, 0.08}, pv: []float64{0.6, 0.9, 0.8}, c3: 2,
			want: []float64{1, 1 / (1 + 2*math.Log(43.0/30)), 1 / (1 + 2*math.Log(43.0/9))},
		},
		{
			name: "balanced", pa: []float64{0.5, 0.5}, pv: []float64{0.5, 0.5}, c3: 2,
			want: []float64{1, 1},
		},
		{
			// Class 1 absent (NaN), class 2: the weak head gives zero
			// probability (ratio +Inf), skipped in the mean, sharpest.
			// Mean over class 0 and 3: r = (2, 1) -> 1.5; T_0 = 1/(1+2 ln(4/3)).
			name: "absent and zero classes",
			pa:   []float64{0.6, nan, 0.5, 0.3}, pv: []float64{0.3, nan, 0, 0.3}, c3: 2,
			want: []float64{1 / (1 + 2*math.Log(4.0/3)), 1, MinTemperature, 1},
		},
		{
			// r = (1e9, 1): r_bar ~ 5e8; T_0 = 1/(1 + 2 ln 2) ~ 0.419 (fine);
			// with c3 = 50: 1/(1 + 50 ln 2) ~ 0.028 -> clamped to MinTemperature.
			name: "extreme ratio clamped",
			pa:   []float64{0.999, 0.5}, pv: []float64{0.999e-9, 0.5}, c3: 50,
			want: []float64{MinTemperature, 1},
		},
		{
			name: "no modality-1 probability at all", pa: []float64{0.5, 0.5}, pv: []float64{0, 0}, c3: 2,
			want: []float64{MinTemperature, MinTemperature},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ClassTemperatures(tc.pa, tc.pv, tc.c3)
			for c := range tc.want {
				if math.Abs(got[c]-tc.want[c]) > 1e-9 {
					t.Fatalf("class %d: T = %v, want %v (all %v)", c, got[c], tc.want[c], got)
				}
			}
		})
	}
}

func TestGuardTemperature(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{
		{0.5, 0.5},
		{1, 1},
		{0.001, MinTemperature},
		{0, MaxTemperature},
		{-3, MaxTemperature}, // 1 + c3 ln(.) < 0 for a negative c3
		{1e9, MaxTemperature},
		{math.Inf(1), MaxTemperature},
		{math.NaN(), 1},
	} {
		if got := GuardTemperature(tc.in); got != tc.want {
			t.Errorf("GuardTemperature(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestDominanceRatio(t *testing.T) {
	// Batch of 3: p_A(y) = (0.9, 0.8, 0.7), p_V(y) = (0.3, 0.2, 0.1): rho = 2.4/0.6 = 4.
	if rho := DominanceRatio(0.9+0.8+0.7, 0.3+0.2+0.1); math.Abs(rho-4) > 1e-12 {
		t.Fatalf("rho = %v", rho)
	}
}
