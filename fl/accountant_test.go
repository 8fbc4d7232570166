package fl

import (
	"math"
	"testing"
)

// The expected values are TensorFlow Privacy's own test values:
// tensorflow/privacy, tensorflow_privacy/privacy/analysis/rdp_accountant_test.py
// (test_compute_rdp_no_data, test_compute_rdp_no_sampling,
// test_compute_rdp_scalar, test_compute_rdp_sequence).
func TestSubsampledGaussianRDPPublished(t *testing.T) {
	cases := []struct {
		q, sigma float64
		steps    int
		order    float64
		want     float64
		tol      float64
	}{
		{0, 10, 1, 20, 0, 0},
		{1, 10, 1, 20, 0.1, 1e-15},
		{0.1, 2, 10, 5, 0.07737, 5e-6},
		{0.01, 2.5, 50, 1.5, 0.00065, 1e-5},
		{0.01, 2.5, 50, 2.5, 0.001085, 1e-5},
		{0.01, 2.5, 50, 5, 0.00218075, 1e-5},
		{0.01, 2.5, 50, 50, 0.023846, 1e-5},
		{0.01, 2.5, 50, 100, 167.416307, 1e-5},
		{0.01, 2.5, 50, math.Inf(1), math.Inf(1), 0},
	}
	for _, c := range cases {
		got := SubsampledGaussianRDP(c.q, c.sigma, c.steps, c.order)
		if math.IsInf(c.want, 1) {
			if !math.IsInf(got, 1) {
				t.Errorf("rdp(q=%v, sigma=%v, steps=%d, order=%v) = %v, want +Inf", c.q, c.sigma, c.steps, c.order, got)
			}
			continue
		}
		if math.Abs(got-c.want) > c.tol {
			t.Errorf("rdp(q=%v, sigma=%v, steps=%d, order=%v) = %.8g, want %.8g", c.q, c.sigma, c.steps, c.order, got, c.want)
		}
	}
}

// The expected epsilons and orders are those of TensorFlow Privacy's
// compute_dp_sgd_privacy (tensorflow/privacy,
// tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_test.py,
// test_compute_dp_sgd_privacy: n, batch size, noise multiplier, epochs,
// delta -> epsilon, optimal order), which runs the RDP accountant over
// ceil(epochs*n/batch) steps at q = batch/n with the orders of RDPOrders.
func TestAccountantPublished(t *testing.T) {
	cases := []struct {
		n, batch      int
		sigma, epochs float64
		delta         float64
		eps, order    float64
	}{
		{60000, 150, 1.3, 15, 1e-5, 0.7242234026109595, 19},
		{100000, 100, 1.0, 30, 1e-7, 1.4154988495444842, 13},
		{100000000, 1024, 0.1, 10, 1e-7, 5907982.3113978775, 1.25},
	}
	for _, c := range cases {
		a := Accountant{Q: float64(c.batch) / float64(c.n), Sigma: c.sigma, Delta: c.delta}
		steps := int(math.Ceil(c.epochs * float64(c.n) / float64(c.batch)))
		eps, order := a.Epsilon(steps)
		if math.Abs(eps-c.eps) > 1e-6*max(1, c.eps) || order != c.order {
			t.Errorf("n=%d batch=%d sigma=%v epochs=%v delta=%v: epsilon %.10g at order %v, want %.10g at %v",
				c.n, c.batch, c.sigma, c.epochs, c.delta, eps, order, c.eps, c.order)
		}
	}
}

func TestRDPEpsilonConstant(t *testing.T) {
	// tensorflow/privacy rdp_accountant_test.py,
	// test_get_privacy_spent_check_target_delta: a constant RDP of 1.1 at
	// orders 2..32 gives epsilon 1.32783806176 at order 32 for delta 1e-5.
	var orders, rdp []float64
	for o := 2; o <= 32; o++ {
		orders = append(orders, float64(o))
		rdp = append(rdp, 1.1)
	}
	eps, order := RDPEpsilon(orders, rdp, 1e-5)
	if math.Abs(eps-1.32783806176) > 1e-9 || order != 32 {
		t.Errorf("epsilon %.12g at order %v, want 1.32783806176 at 32", eps, order)
	}
}

func TestAccountantMonotone(t *testing.T) {
	a := Accountant{Q: 0.1, Sigma: 1.1, Delta: 1e-5}
	prev := 0.0
	for r := 1; r <= 50; r += 7 {
		eps, _ := a.Epsilon(r)
		if !(eps > prev) {
			t.Fatalf("epsilon after %d rounds %v, not above %v", r, eps, prev)
		}
		prev = eps
	}
	if eps, _ := (Accountant{Q: 0.1, Sigma: 0, Delta: 1e-5}).Epsilon(1); !math.IsInf(eps, 1) {
		t.Errorf("no noise: epsilon %v, want +Inf", eps)
	}
}

func TestSubsampledGaussianRDPFractional(t *testing.T) {
	// Reference values: log A_alpha by numerical integration of
	// mu0(z) * ((1-q) + q exp((2z-1)/(2 sigma^2)))^alpha with mpmath (the
	// check tensorflow/privacy's rdp_accountant_test.py makes), divided by
	// alpha - 1. The series reaches terms where erfc is subnormal.
	cases := []struct{ q, sigma, order, want float64 }{
		{0.1, 1.1, 1.5, 0.008985506317241512},
		{0.1, 1.1, 1.25, 0.007269809521446182},
		{0.01, 2.5, 1.5, 1.3001417943734774e-05},
	}
	for _, c := range cases {
		got := SubsampledGaussianRDP(c.q, c.sigma, 1, c.order)
		if math.Abs(got-c.want) > 1e-9*max(1, c.want) {
			t.Errorf("rdp(q=%v, sigma=%v, order=%v) = %.12g, want %.12g", c.q, c.sigma, c.order, got, c.want)
		}
	}
}
