package fl

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Dominance says where a client's infiltration direction and class-wise
// temperatures come from. The method's own rule (DominanceBatch) measures
// the direction on each training batch with the local model; once a small
// client's weak modality memorises its training set, that ratio hovers
// around 1 and the direction flips at random. The other sources measure it
// on data or with a model that has not memorised the batch.
type Dominance int

const (
	// DominanceBatch is FedCMI as published: per batch,
	// rho = sum_i p_A(y_i) / sum_i p_V(y_i) of the local model's self heads
	// decides the direction; temperatures come from the received model on
	// the client's training data.
	DominanceBatch Dominance = iota
	// DominanceTeacher takes the direction and the temperatures from the
	// received (global) model's self heads on the client's training data,
	// before local training: rho = sum over the data of p_A(y) / sum of
	// p_V(y), fixed for the round.
	DominanceTeacher
	// DominanceHoldout measures as DominanceTeacher but on a seeded,
	// stratified slice of the client's data that the client never trains
	// on (FitConfig.Holdout of each class with at least two samples).
	DominanceHoldout
	// DominanceFederated uses the server's per-class table: clients report
	// per-class sums of p_A(y), p_V(y) and counts (measured as
	// DominanceTeacher, or on the held-out slice when FitConfig.Holdout > 0);
	// the server pools them over the round's multimodal clients, smooths
	// them across rounds and broadcasts the table with the next round.
	// Until a table exists a client uses its own statistics.
	DominanceFederated
)

var dominanceNames = [...]string{"batch", "teacher", "holdout", "federated"}

// String returns the source's name.
func (d Dominance) String() string {
	if d < 0 || int(d) >= len(dominanceNames) {
		return fmt.Sprintf("Dominance(%d)", int(d))
	}
	return dominanceNames[d]
}

// ClassStats are per-class sums of the self heads' true-class
// probabilities: SumPA[c] and SumPV[c] over Count[c] samples of class c.
// Clients report them; the server pools them.
type ClassStats struct {
	SumPA, SumPV, Count []float64
}

// NewClassStats returns zero statistics for k classes.
func NewClassStats(k int) ClassStats {
	return ClassStats{SumPA: make([]float64, k), SumPV: make([]float64, k), Count: make([]float64, k)}
}

// Len is the number of classes.
func (s ClassStats) Len() int { return len(s.Count) }

// Means returns the per-class mean true-class probabilities P_A(c), P_V(c);
// NaN for a class without samples.
func (s ClassStats) Means() (pa, pv []float64) {
	k := s.Len()
	pa, pv = make([]float64, k), make([]float64, k)
	for c := range k {
		if s.Count[c] <= 0 {
			pa[c], pv[c] = math.NaN(), math.NaN()
			continue
		}
		pa[c] = s.SumPA[c] / s.Count[c]
		pv[c] = s.SumPV[c] / s.Count[c]
	}
	return pa, pv
}

// Ratio is the dominance ratio over all samples, sum p_A(y) / sum p_V(y)
// (NaN without samples): above 1, modality 0 dominates.
func (s ClassStats) Ratio() float64 {
	var a, v float64
	for c := range s.Len() {
		a += s.SumPA[c]
		v += s.SumPV[c]
	}
	if a == 0 && v == 0 {
		return math.NaN()
	}
	return a / v
}

// Validate checks that the statistics describe k classes with finite,
// non-negative sums no larger than the counts (probabilities are <= 1).
func (s ClassStats) Validate(k int) error {
	if len(s.SumPA) != k || len(s.SumPV) != k || len(s.Count) != k {
		return fmt.Errorf("fl: class statistics for %d/%d/%d classes, want %d", len(s.SumPA), len(s.SumPV), len(s.Count), k)
	}
	for c := range k {
		n := s.Count[c]
		for _, v := range []float64{s.SumPA[c], s.SumPV[c], n} {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				return fmt.Errorf("fl: class %d statistics hold %v", c, v)
			}
		}
		if s.SumPA[c] > n*(1+1e-6) || s.SumPV[c] > n*(1+1e-6) {
			return fmt.Errorf("fl: class %d probability sums %v, %v exceed its %v samples", c, s.SumPA[c], s.SumPV[c], n)
		}
	}
	return nil
}

// DominanceTable is the server's pooled per-class dominance: per-class mean
// true-class probabilities of both self heads, smoothed across rounds.
type DominanceTable struct {
	// PA and PV are the per-class means; NaN where no client has reported
	// the class yet.
	PA, PV []float64
	// Rounds is the number of rounds pooled so far.
	Rounds int
}

// Clone returns a deep copy (nil for nil).
func (t *DominanceTable) Clone() *DominanceTable {
	if t == nil {
		return nil
	}
	return &DominanceTable{PA: slices.Clone(t.PA), PV: slices.Clone(t.PV), Rounds: t.Rounds}
}

// Stats returns the table as statistics of one pseudo-sample per class
// reported (for deriving the direction and temperatures).
func (t *DominanceTable) Stats() ClassStats {
	s := NewClassStats(len(t.PA))
	for c := range t.PA {
		if math.IsNaN(t.PA[c]) || math.IsNaN(t.PV[c]) {
			continue
		}
		s.SumPA[c], s.SumPV[c], s.Count[c] = t.PA[c], t.PV[c], 1
	}
	return s
}

// PoolStats merges one round's client statistics into prev (nil before the
// first round) and returns the new table. Per class, the round's estimate
// is the count-weighted mean over clients, sum_k SumP_k(c) / sum_k n_k(c);
// the table keeps smoothing * previous + (1 - smoothing) * estimate, or the
// estimate alone for a class it has not seen, and the previous value for a
// class nobody reported this round. It returns prev unchanged if no client
// reported anything.
func PoolStats(prev *DominanceTable, round []ClassStats, k int, smoothing float64) *DominanceTable {
	pooled := NewClassStats(k)
	any := false
	for _, s := range round {
		for c := range k {
			pooled.SumPA[c] += s.SumPA[c]
			pooled.SumPV[c] += s.SumPV[c]
			pooled.Count[c] += s.Count[c]
			any = any || s.Count[c] > 0
		}
	}
	if !any {
		return prev
	}
	pa, pv := pooled.Means()
	next := &DominanceTable{PA: pa, PV: pv, Rounds: 1}
	if prev == nil {
		return next
	}
	next.Rounds = prev.Rounds + 1
	for c := range k {
		switch {
		case math.IsNaN(pa[c]):
			next.PA[c], next.PV[c] = prev.PA[c], prev.PV[c]
		case !math.IsNaN(prev.PA[c]):
			next.PA[c] = smoothing*prev.PA[c] + (1-smoothing)*pa[c]
			next.PV[c] = smoothing*prev.PV[c] + (1-smoothing)*pv[c]
		}
	}
	return next
}

// marshalTable encodes a table as JSON; NaN (no report yet) is null.
func marshalTable(t *DominanceTable) ([]byte, error) {
	if t == nil {
		return []byte("null"), nil
	}
	enc := func(v []float64) []*float64 {
		out := make([]*float64, len(v))
		for i := range v {
			if !math.IsNaN(v[i]) {
				out[i] = &v[i]
			}
		}
		return out
	}
	return json.Marshal(struct {
		PA     []*float64 `json:"pa"`
		PV     []*float64 `json:"pv"`
		Rounds int        `json:"rounds"`
	}{enc(t.PA), enc(t.PV), t.Rounds})
}

// unmarshalTable decodes marshalTable's output.
func unmarshalTable(data []byte) (*DominanceTable, error) {
	var raw *struct {
		PA     []*float64 `json:"pa"`
		PV     []*float64 `json:"pv"`
		Rounds int        `json:"rounds"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("fl: dominance table: %w", err)
	}
	if raw == nil {
		return nil, nil
	}
	if len(raw.PA) != len(raw.PV) || len(raw.PA) == 0 || raw.Rounds < 0 {
		return nil, fmt.Errorf("fl: dominance table for %d/%d classes after %d rounds", len(raw.PA), len(raw.PV), raw.Rounds)
	}
	dec := func(v []*float64) ([]float64, error) {
		out := make([]float64, len(v))
		for i, p := range v {
			switch {
			case p == nil:
				out[i] = math.NaN()
			case *p < 0 || *p > 1:
				return nil, fmt.Errorf("fl: dominance table probability %v outside [0, 1]", *p)
			default:
				out[i] = *p
			}
		}
		return out, nil
	}
	pa, err := dec(raw.PA)
	if err != nil {
		return nil, err
	}
	pv, err := dec(raw.PV)
	if err != nil {
		return nil, err
	}
	return &DominanceTable{PA: pa, PV: pv, Rounds: raw.Rounds}, nil
}

// Directions returns the infiltration direction of every class derived
// from s: +1 (modality 0 dominant, distil it into modality 1) or -1. With
// perClass, a class follows its own ratio P_A(c) / P_V(c) where defined;
// otherwise, and for classes without a defined ratio, every class follows
// the overall ratio s.Ratio() (ties and an undefined overall ratio go to
// modality 1, as the method's rule rho > 1 does).
func Directions(s ClassStats, perClass bool) []float32 {
	overall := float32(-1)
	if s.Ratio() > 1 {
		overall = 1
	}
	pa, pv := s.Means()
	dirs := make([]float32, s.Len())
	for c := range dirs {
		dirs[c] = overall
		if !perClass || math.IsNaN(pa[c]) || pa[c] == pv[c] {
			continue
		}
		if pa[c] > pv[c] {
			dirs[c] = 1
		} else {
			dirs[c] = -1
		}
	}
	return dirs
}

// HoldoutSplit splits a client's samples (indices with their labels) into
// a training part and a held-out part, stratified by class: each class
// with at least two samples sends round(fraction * n_c), at least one and
// at most n_c - 1, to the held-out part, chosen by a generator seeded with
// seed. Both parts keep the order of index. fraction 0 holds out nothing.
func HoldoutSplit(index, labels []int, fraction float64, seed uint64) (train, held []int) {
	if fraction <= 0 {
		return slices.Clone(index), nil
	}
	byClass := map[int][]int{} // class -> positions in index
	var classes []int
	for p, y := range labels {
		if _, ok := byClass[y]; !ok {
			classes = append(classes, y)
		}
		byClass[y] = append(byClass[y], p)
	}
	slices.Sort(classes)
	rng := rand.New(rand.NewPCG(seed, 0x686f6c646f7574))
	out := make([]bool, len(index))
	for _, y := range classes {
		pos := byClass[y]
		if len(pos) < 2 {
			continue
		}
		k := min(max(int(math.Round(fraction*float64(len(pos)))), 1), len(pos)-1)
		for _, j := range rng.Perm(len(pos))[:k] {
			out[pos[j]] = true
		}
	}
	for p, i := range index {
		if out[p] {
			held = append(held, i)
		} else {
			train = append(train, i)
		}
	}
	return train, held
}
