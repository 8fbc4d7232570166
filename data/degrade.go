package data

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// checkRate reports an error unless rate is in [0, 1).
func checkRate(what string, rate float64) error {
	if !(rate >= 0 && rate < 1) { // also rejects NaN
		return fmt.Errorf("data: %s = %v, want in [0, 1)", what, rate)
	}
	return nil
}

// DropModalities returns masks with every client's every modality removed
// independently with probability rate (the missing-modality setting of
// FedMultimodal, Feng et al., KDD 2023). Clients are visited in order and
// each draws one number per modality 0..numModalities-1, held or not, so
// a client's draws do not depend on the others' masks. A client may be left
// with none (the empty Mask): the caller leaves it out.
func DropModalities(masks []Mask, numModalities int, rate float64, rng *rand.Rand) ([]Mask, error) {
	if err := checkRate("missing modality rate", rate); err != nil {
		return nil, err
	}
	if numModalities < 1 || numModalities > maxMaskModalities {
		return nil, fmt.Errorf("data: drop modalities: %d modalities, want 1..%d", numModalities, maxMaskModalities)
	}
	out := slices.Clone(masks)
	if rate == 0 {
		return out, nil
	}
	for i := range out {
		for m := range numModalities {
			if rng.Float64() < rate {
				out[i] &^= 1 << m
			}
		}
	}
	return out, nil
}

// NoisyLabels returns a copy of labels in which every row of every client
// (parts) is relabelled through that client's class-transition matrix Q:
// row y of Q keeps y with probability 1 - rate and moves to each other
// class c with probability rate·w_yc, where w_y is a Dirichlet(1) draw
// over the other classes, one per client and class. Each client thus errs
// in its own systematic way (some wrong classes more likely than others),
// as annotators do, rather than uniformly. Rows in no part keep their
// labels. The draws are seeded by rng alone, client by client.
func NoisyLabels(labels []int, parts [][]int, numClasses int, rate float64, rng *rand.Rand) ([]int, error) {
	if err := checkRate("label noise", rate); err != nil {
		return nil, err
	}
	out := slices.Clone(labels)
	if rate == 0 || numClasses < 2 {
		return out, nil
	}
	cum := make([]float64, numClasses) // cumulative weights of row y's other classes
	for p, part := range parts {
		// One transition matrix per client, drawn (all of it, so that the
		// draws after it do not depend on the client's classes) before its
		// rows; only the rows of the classes it holds are kept, which
		// bounds the memory by its classes, not k².
		held := make([]bool, numClasses)
		for _, i := range part {
			if i < 0 || i >= len(labels) {
				return nil, fmt.Errorf("data: label noise: client %d holds row %d of %d", p, i, len(labels))
			}
			if y := labels[i]; y < 0 || y >= numClasses {
				return nil, fmt.Errorf("data: label noise: row %d has label %d, want 0..%d", i, y, numClasses-1)
			}
			held[labels[i]] = true
		}
		q := make([][]float64, numClasses)
		for y := range q {
			var row []float64 // nil: a class the client does not hold, drawn and dropped
			if held[y] {
				row = make([]float64, numClasses)
				q[y] = row
			}
			sum := 0.0
			for c := range numClasses {
				if c != y {
					v := rng.ExpFloat64() // Gamma(1): normalised, a Dirichlet(1) draw
					sum += v
					if row != nil {
						row[c] = v
					}
				}
			}
			for c := range row {
				row[c] /= sum
			}
		}
		for _, i := range part {
			y := labels[i]
			if rng.Float64() >= rate {
				continue
			}
			acc := 0.0
			for c := range numClasses {
				acc += q[y][c]
				cum[c] = acc
			}
			u := rng.Float64() * acc
			c, _ := slices.BinarySearchFunc(cum, u, func(e, t float64) int {
				if e <= t {
					return -1
				}
				return 1
			})
			if c >= numClasses || c == y { // float round-off at the top end
				c = lastOther(q[y], y)
			}
			out[i] = c
		}
	}
	return out, nil
}

// lastOther returns the last class c != y with positive weight in w.
func lastOther(w []float64, y int) int {
	for c := len(w) - 1; c >= 0; c-- {
		if c != y && w[c] > 0 {
			return c
		}
	}
	return y
}

// DropLabels returns each client's rows without its unlabelled ones:
// round(rate·n) of a client's n rows (at most n - 1: every client keeps one
// labelled row), chosen by a seeded shuffle, lose their labels. No method here has an unsupervised loss, so an unlabelled row
// would enter no loss term: leaving it out of training is the same thing,
// and the client's weight in averaging (its number of rows) counts only
// the labelled ones. The remaining rows keep their order.
func DropLabels(parts [][]int, rate float64, rng *rand.Rand) ([][]int, error) {
	if err := checkRate("missing label rate", rate); err != nil {
		return nil, err
	}
	out := make([][]int, len(parts))
	for p, part := range parts {
		n := len(part)
		drop := min(int(math.Round(rate*float64(n))), max(n-1, 0)) // a client keeps one labelled row
		perm := rng.Perm(n)
		gone := make([]bool, n)
		for _, k := range perm[:drop] {
			gone[k] = true
		}
		out[p] = make([]int, 0, n-drop)
		for k, i := range part {
			if !gone[k] {
				out[p] = append(out[p], i)
			}
		}
	}
	return out, nil
}

// DropSampleModalities makes modalities missing per sample inside clients:
// in each client holding two or more modalities (parts[i], masks[i]), each
// row loses each of the client's modalities independently with
// probability rate. It returns every row's modalities (rows holds n
// entries; a row in no part keeps 0) and the parts without the rows left
// with none, in their order. Clients holding one modality are unchanged.
func DropSampleModalities(parts [][]int, masks []Mask, n int, rate float64, rng *rand.Rand) (rows []Mask, kept [][]int, err error) {
	if err := checkRate("missing sample rate", rate); err != nil {
		return nil, nil, err
	}
	if len(parts) != len(masks) {
		return nil, nil, fmt.Errorf("data: drop sample modalities: %d parts, %d masks", len(parts), len(masks))
	}
	rows = make([]Mask, n)
	kept = make([][]int, len(parts))
	for p, part := range parts {
		kept[p] = make([]int, 0, len(part))
		for _, i := range part {
			if i < 0 || i >= n {
				return nil, nil, fmt.Errorf("data: drop sample modalities: client %d holds row %d of %d", p, i, n)
			}
			k := masks[p]
			if k.Count() >= 2 {
				for m := range maxMaskModalities {
					if k.Has(m) && rng.Float64() < rate {
						k &^= 1 << m
					}
				}
			}
			rows[i] = k
			if k != 0 {
				kept[p] = append(kept[p], i)
			}
		}
	}
	return rows, kept, nil
}
