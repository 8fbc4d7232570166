package fl

import (
	"fmt"
	"math"
)

// RDPOrders are the Rényi orders the accountant evaluates: TensorFlow
// Privacy's compute_dp_sgd_privacy list (1.25 ... 4.5, 5 ... 63, 128, 256,
// 512), so that its published values can be checked.
var RDPOrders = func() []float64 {
	o := []float64{1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5}
	for a := 5; a < 64; a++ {
		o = append(o, float64(a))
	}
	return append(o, 128, 256, 512)
}()

// SubsampledGaussianRDP returns the Rényi DP, at order alpha, of steps
// compositions of the sampled Gaussian mechanism with sampling rate q and
// noise multiplier sigma (noise standard deviation over L2 sensitivity):
// Mironov, Talwar, Zhang, "Rényi Differential Privacy of the Sampled
// Gaussian Mechanism" (2019), Section 3.3, computed as TensorFlow Privacy's
// compute_rdp and Opacus' analysis do (a finite sum for integer orders, the
// two-sided series for fractional ones). The analysis assumes Poisson
// sampling with rate q; like those libraries, fedcmi applies it to sampling
// a fixed K of N clients with q = K/N. At a fractional order whose series
// would need more than maxFracTerms terms (none of RDPOrders in practice)
// it returns +Inf.
func SubsampledGaussianRDP(q, sigma float64, steps int, alpha float64) float64 {
	switch {
	case q == 0 || steps == 0:
		return 0
	case sigma == 0 || math.IsInf(alpha, 1):
		return math.Inf(1)
	case q == 1:
		return float64(steps) * alpha / (2 * sigma * sigma)
	}
	var logA float64
	if alpha == math.Trunc(alpha) {
		logA = logAInt(q, sigma, int(alpha))
	} else if l, ok := logAFrac(q, sigma, alpha); ok {
		logA = l
	} else {
		// A series too long to sum: +Inf is a true (if useless) bound,
		// so RDPEpsilon takes its epsilon from another order.
		return math.Inf(1)
	}
	return float64(steps) * logA / (alpha - 1)
}

// logAInt is log A_alpha for an integer alpha (MTZ19, Section 3.3):
// A_alpha = sum_i binom(alpha, i) (1-q)^(alpha-i) q^i exp((i^2 - i)/(2 sigma^2)).
func logAInt(q, sigma float64, alpha int) float64 {
	logA := math.Inf(-1)
	for i := 0; i <= alpha; i++ {
		fi := float64(i)
		s := logBinom(float64(alpha), fi) + fi*math.Log(q) + float64(alpha-i)*math.Log1p(-q) +
			(fi*fi-fi)/(2*sigma*sigma)
		logA = logAdd(logA, s)
	}
	return logA
}

// maxFracTerms caps logAFrac's series, so that no input makes the
// accountant run for hours (about 0.3 s per order at the cap). At the
// orders of RDPOrders the terms fall below exp(-30) within 1.7e5 terms at
// any q and sigma (measured up to sigma = 1e8; the slowest case, q = 1/2
// and a large sigma, leaves only |binom(alpha, i)| ~ i^-(alpha+1) to shrink
// them); orders below 1 need far more. A variable so that tests can lower
// it.
var maxFracTerms = 1 << 20

// logAFrac is log A_alpha for a fractional alpha: the integrals over
// (-inf, z0] and [z0, inf) as series in i, summed until their terms fall
// below exp(-30) (MTZ19, Section 3.3). It reports false if that takes more
// than maxFracTerms terms.
func logAFrac(q, sigma, alpha float64) (float64, bool) {
	logA0, logA1 := math.Inf(-1), math.Inf(-1)
	z0 := sigma*sigma*math.Log(1/q-1) + 0.5
	// coef is binom(alpha, i), updated term by term rather than recomputed
	// (O(i) each): the same products in the same order, so the same value.
	coef := 1.0
	for i := 0.0; i < float64(maxFracTerms); i++ {
		logCoef := math.Log(math.Abs(coef))
		j := alpha - i
		logT0 := logCoef + i*math.Log(q) + j*math.Log1p(-q)
		logT1 := logCoef + j*math.Log(q) + i*math.Log1p(-q)
		logE0 := math.Log(0.5) + logErfc((i-z0)/(math.Sqrt2*sigma))
		logE1 := math.Log(0.5) + logErfc((z0-j)/(math.Sqrt2*sigma))
		logS0 := logT0 + (i*i-i)/(2*sigma*sigma) + logE0
		logS1 := logT1 + (j*j-j)/(2*sigma*sigma) + logE1
		if coef > 0 {
			logA0, logA1 = logAdd(logA0, logS0), logAdd(logA1, logS1)
		} else {
			logA0, logA1 = logSub(logA0, logS0), logSub(logA1, logS1)
		}
		if max(logS0, logS1) < -30 {
			return logAdd(logA0, logA1), true
		}
		coef *= (alpha - i) / (i + 1)
	}
	return math.Inf(1), false
}

func logBinom(n, k float64) float64 {
	a, _ := math.Lgamma(n + 1)
	b, _ := math.Lgamma(k + 1)
	c, _ := math.Lgamma(n - k + 1)
	return a - b - c
}

// logAdd returns log(exp(x) + exp(y)).
func logAdd(x, y float64) float64 {
	a, b := min(x, y), max(x, y)
	if math.IsInf(a, -1) {
		return b
	}
	return math.Log1p(math.Exp(a-b)) + b
}

// logSub returns log(exp(x) - exp(y)) for x >= y.
func logSub(x, y float64) float64 {
	switch {
	case math.IsInf(y, -1):
		return x
	case x <= y:
		return math.Inf(-1)
	}
	d := math.Expm1(x - y)
	if math.IsInf(d, 1) {
		return x
	}
	return math.Log(d) + y
}

// logErfc returns log(erfc(x)), with the asymptotic series at infinity
// where erfc underflows or is subnormal (whose logarithm math.Log gets
// wrong on some platforms).
func logErfc(x float64) float64 {
	if r := math.Erfc(x); r > 0x1p-1000 {
		return math.Log(r)
	}
	x2 := x * x
	return -math.Log(math.Pi)/2 - math.Log(x) - x2 - 0.5/x2 + 0.625/(x2*x2) -
		37.0/24.0/(x2*x2*x2) + 353.0/64.0/(x2*x2*x2*x2)
}

// RDPEpsilon converts Rényi DP values rdp at orders to (epsilon, delta)-DP:
// the smallest epsilon over the orders by the conversion of Canonne, Kamath
// and Steinke (2020, Proposition 12 of arXiv:2004.00010 v4), which
// TensorFlow Privacy (dp_accounting) and Opacus use, and the order it came
// from.
func RDPEpsilon(orders, rdp []float64, delta float64) (eps, order float64) {
	eps, order = math.Inf(1), math.NaN()
	for k, a := range orders {
		r := rdp[k]
		var e float64
		switch {
		case delta*delta+math.Expm1(-r) > 0:
			e = 0 // the KL bound delta <= sqrt(1 - exp(-r)) already holds
		case a > 1.01:
			e = r + math.Log1p(-1/a) - math.Log(delta*a)/(a-1)
		default:
			e = math.Inf(1)
		}
		if e < eps {
			eps, order = e, a
		}
	}
	return max(eps, 0), order
}

// Accountant tracks the privacy of client-level DP-FedAvg: each round is
// one sampled Gaussian mechanism with sampling rate Q (clients per round
// over clients) and noise multiplier Sigma, composed over rounds.
type Accountant struct {
	Q, Sigma, Delta float64
}

// Epsilon returns epsilon after rounds rounds at the accountant's delta,
// and the Rényi order that gives it.
func (a Accountant) Epsilon(rounds int) (eps, order float64) {
	rdp := make([]float64, len(RDPOrders))
	for k, o := range RDPOrders {
		rdp[k] = SubsampledGaussianRDP(a.Q, a.Sigma, rounds, o)
	}
	return RDPEpsilon(RDPOrders, rdp, a.Delta)
}

// Validate checks the accountant's parameters.
func (a Accountant) Validate() error {
	switch {
	case !(a.Q > 0 && a.Q <= 1):
		return fmt.Errorf("fl: accountant: sampling rate %v outside (0, 1]", a.Q)
	case !(a.Sigma >= 0):
		return fmt.Errorf("fl: accountant: noise multiplier %v", a.Sigma)
	case !(a.Delta > 0 && a.Delta < 1):
		return fmt.Errorf("fl: accountant: delta %v outside (0, 1)", a.Delta)
	}
	return nil
}
