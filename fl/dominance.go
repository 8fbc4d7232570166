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
// probabilities: Sum[m][c] sums modality m's p_m(y) over the Count[c]
// samples of class c. Clients report them; the server pools them.
type ClassStats struct {
	Sum   [][]float64
	Count []float64
}

// NewClassStats returns zero statistics for nm modalities and k classes.
func NewClassStats(nm, k int) ClassStats {
	s := ClassStats{Sum: make([][]float64, nm), Count: make([]float64, k)}
	for m := range s.Sum {
		s.Sum[m] = make([]float64, k)
	}
	return s
}

// Len is the number of classes.
func (s ClassStats) Len() int { return len(s.Count) }

// Means returns the per-class mean true-class probabilities P_m(c) of
// every modality; NaN for a class without samples.
func (s ClassStats) Means() [][]float64 {
	k := s.Len()
	out := make([][]float64, len(s.Sum))
	for m := range out {
		out[m] = make([]float64, k)
		for c := range k {
			out[m][c] = math.NaN()
			if s.Count[c] > 0 {
				out[m][c] = s.Sum[m][c] / s.Count[c]
			}
		}
	}
	return out
}

// Teacher returns the modality whose self head is the most confident over
// all samples, the one with the largest sum of p_m(y): the infiltration
// teacher (ties, and statistics without samples, go to the later modality,
// as the method's rule rho > 1 gives modality 1 a tie between two).
func (s ClassStats) Teacher() int {
	totals := make([]float64, len(s.Sum))
	for m := range s.Sum {
		for c := range s.Len() {
			totals[m] += s.Sum[m][c]
		}
	}
	return teacherOf(totals)
}

// teacherOf returns the modality of the largest of sums, the infiltration
// teacher of the method's rule (model.Batch.Dir 0): ties go to the later
// modality, as rho > 1 gives modality 1 a tie between two.
func teacherOf(sums []float64) int {
	best := 0
	for m, v := range sums {
		if v >= sums[best] {
			best = m
		}
	}
	return best
}

// Validate checks that the statistics describe nm modalities and k classes
// with finite, non-negative sums no larger than the counts (probabilities
// are <= 1).
func (s ClassStats) Validate(nm, k int) error {
	if len(s.Sum) != nm || len(s.Count) != k {
		return fmt.Errorf("fl: class statistics of %d modalities for %d classes, want %d and %d", len(s.Sum), len(s.Count), nm, k)
	}
	for m := range s.Sum {
		if len(s.Sum[m]) != k {
			return fmt.Errorf("fl: class statistics of modality %d for %d classes, want %d", m, len(s.Sum[m]), k)
		}
	}
	for c := range k {
		n := s.Count[c]
		if math.IsNaN(n) || math.IsInf(n, 0) || n < 0 {
			return fmt.Errorf("fl: class %d count is %v", c, n)
		}
		for m := range s.Sum {
			v := s.Sum[m][c]
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				return fmt.Errorf("fl: class %d statistics of modality %d hold %v", c, m, v)
			}
			if v > n*(1+1e-6) {
				return fmt.Errorf("fl: class %d probability sum %v of modality %d exceeds its %v samples", c, v, m, n)
			}
		}
	}
	return nil
}

// DominanceTable is the server's pooled per-class dominance: per modality
// and class the mean true-class probability of the self head, smoothed
// across rounds.
type DominanceTable struct {
	// P[m][c] is modality m's mean for class c; NaN where no client has
	// reported the class yet.
	P [][]float64
	// Rounds is the number of rounds pooled so far.
	Rounds int
}

// Len is the number of classes.
func (t *DominanceTable) Len() int {
	if len(t.P) == 0 {
		return 0
	}
	return len(t.P[0])
}

// Clone returns a deep copy (nil for nil).
func (t *DominanceTable) Clone() *DominanceTable {
	if t == nil {
		return nil
	}
	p := make([][]float64, len(t.P))
	for m := range p {
		p[m] = slices.Clone(t.P[m])
	}
	return &DominanceTable{P: p, Rounds: t.Rounds}
}

// Stats returns the table as statistics of one pseudo-sample per class
// reported (for deriving the teachers and temperatures).
func (t *DominanceTable) Stats() ClassStats {
	s := NewClassStats(len(t.P), t.Len())
	for c := range t.Len() {
		if slices.ContainsFunc(t.P, func(p []float64) bool { return math.IsNaN(p[c]) }) {
			continue
		}
		for m := range t.P {
			s.Sum[m][c] = t.P[m][c]
		}
		s.Count[c] = 1
	}
	return s
}

// PoolStats merges one round's client statistics (of nm modalities and k
// classes) into prev (nil before the first round) and returns the new
// table. Per class, the round's estimate is the count-weighted mean over
// clients, sum_k Sum_k(c) / sum_k n_k(c); the table keeps smoothing *
// previous + (1 - smoothing) * estimate, or the estimate alone for a class
// it has not seen, and the previous value for a class nobody reported this
// round, clamped into [0, 1]. It returns prev unchanged if no client
// reported anything.
func PoolStats(prev *DominanceTable, round []ClassStats, nm, k int, smoothing float64) *DominanceTable {
	pooled := NewClassStats(nm, k)
	any := false
	for _, s := range round {
		for c := range k {
			for m := range nm {
				pooled.Sum[m][c] += s.Sum[m][c]
			}
			pooled.Count[c] += s.Count[c]
			any = any || s.Count[c] > 0
		}
	}
	if !any {
		return prev
	}
	next := &DominanceTable{P: pooled.Means(), Rounds: 1}
	clampTable(next)
	if prev == nil {
		return next
	}
	next.Rounds = prev.Rounds + 1
	for c := range k {
		for m := range nm {
			switch {
			case math.IsNaN(next.P[m][c]):
				next.P[m][c] = prev.P[m][c]
			case !math.IsNaN(prev.P[m][c]):
				next.P[m][c] = smoothing*prev.P[m][c] + (1-smoothing)*next.P[m][c]
			}
		}
	}
	clampTable(next) // smoothing two values of [0, 1] may round above 1
	return next
}

// clampTable clamps t's means into [0, 1], NaN (no report yet) aside:
// ClassStats.Validate lets sums exceed their counts by float rounding,
// and clients refuse a table with a mean above 1 (DominanceTable.validate).
func clampTable(t *DominanceTable) {
	for _, p := range t.P {
		for c, v := range p {
			if !math.IsNaN(v) {
				p[c] = min(max(v, 0), 1)
			}
		}
	}
}

// marshalTable encodes a table as JSON; NaN (no report yet) is null.
func marshalTable(t *DominanceTable) ([]byte, error) {
	if t == nil {
		return []byte("null"), nil
	}
	p := make([][]*float64, len(t.P))
	for m, v := range t.P {
		p[m] = make([]*float64, len(v))
		for i := range v {
			if !math.IsNaN(v[i]) {
				p[m][i] = &v[i]
			}
		}
	}
	return json.Marshal(struct {
		P      [][]*float64 `json:"p"`
		Rounds int          `json:"rounds"`
	}{p, t.Rounds})
}

// unmarshalTable decodes marshalTable's output.
func unmarshalTable(data []byte) (*DominanceTable, error) {
	var raw *struct {
		P      [][]*float64 `json:"p"`
		Rounds int          `json:"rounds"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("fl: dominance table: %w", err)
	}
	if raw == nil {
		return nil, nil
	}
	if len(raw.P) < 2 || len(raw.P[0]) == 0 || raw.Rounds < 0 {
		return nil, fmt.Errorf("fl: dominance table of %d modalities after %d rounds: want at least 2 modalities and 1 class", len(raw.P), raw.Rounds)
	}
	t := &DominanceTable{P: make([][]float64, len(raw.P)), Rounds: raw.Rounds}
	for m, v := range raw.P {
		t.P[m] = make([]float64, len(v))
		for i, p := range v {
			t.P[m][i] = math.NaN()
			if p != nil {
				t.P[m][i] = *p
			}
		}
	}
	if err := t.validate(len(raw.P), len(raw.P[0])); err != nil {
		return nil, fmt.Errorf("fl: %w", err)
	}
	return t, nil
}

// validate checks that t holds nm modalities of k classes after a
// non-negative number of rounds, every mean in [0, 1] or NaN (no report
// yet).
func (t *DominanceTable) validate(nm, k int) error {
	if len(t.P) != nm || t.Rounds < 0 {
		return fmt.Errorf("dominance table of %d modalities after %d rounds, want %d modalities", len(t.P), t.Rounds, nm)
	}
	for m := range t.P {
		if len(t.P[m]) != k {
			return fmt.Errorf("dominance table of %d classes for modality %d, want %d", len(t.P[m]), m, k)
		}
		for cl, v := range t.P[m] {
			if !math.IsNaN(v) && !(v >= 0 && v <= 1) {
				return fmt.Errorf("dominance table: modality %d class %d holds %v, outside [0, 1]", m, cl, v)
			}
		}
	}
	return nil
}

// Directions returns the infiltration teacher of every class derived from
// s, as model.Batch.Dir codes (m+1 for modality m). With perClass, a class
// follows its own most confident modality where there is a single one
// (largest P_m(c)); otherwise, and for classes without samples or with a
// tie, every class follows the overall teacher s.Teacher(). With two
// modalities: 1 (modality 0 dominant, distil it into modality 1) or 2.
func Directions(s ClassStats, perClass bool) []float32 {
	overall := float32(s.Teacher() + 1)
	means := s.Means()
	dirs := make([]float32, s.Len())
	for c := range dirs {
		dirs[c] = overall
		if !perClass || s.Count[c] <= 0 {
			continue
		}
		best, tie := 0, false
		for m := 1; m < len(means); m++ {
			switch {
			case means[m][c] > means[best][c]:
				best, tie = m, false
			case means[m][c] == means[best][c]:
				tie = true
			}
		}
		if !tie {
			dirs[c] = float32(best + 1)
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
