package metrics

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Summary condenses a run.
type Summary struct {
	Rounds        int                // number of rounds
	Final         map[string]float64 // head -> accuracy in the last round
	Best          map[string]float64 // head -> best accuracy over rounds (NaN if never measured)
	BestRound     int                // Round field of the round with the best Heads[0] accuracy (first on ties); 0 if none
	MeanDominance float64            // mean over rounds of Dominance (NaN rounds skipped; NaN if none)
	Seconds       float64            // total wall time: Elapsed of the last round, or the sum of Seconds if that is NaN
}

// Summarize condenses rounds, whose Heads follow s.Heads. A round with fewer
// head values than s has NaN for the missing heads; extra values are
// ignored. Final and Best have an entry for every head (empty maps when s
// has no heads), so they are never nil.
func Summarize(s Schema, rounds []Round) Summary {
	sum := Summary{
		Rounds:        len(rounds),
		Final:         make(map[string]float64, len(s.Heads)),
		Best:          make(map[string]float64, len(s.Heads)),
		MeanDominance: math.NaN(),
	}
	head := func(r Round, i int) float64 {
		if i < len(r.Heads) {
			return r.Heads[i]
		}
		return math.NaN()
	}
	for i, h := range s.Heads {
		best := math.NaN()
		for _, r := range rounds {
			if v := head(r, i); better(v, best) {
				best = v
			}
		}
		sum.Best[h] = best
		if len(rounds) > 0 {
			sum.Final[h] = head(rounds[len(rounds)-1], i)
		} else {
			sum.Final[h] = math.NaN()
		}
	}
	if len(s.Heads) > 0 {
		best := math.NaN()
		for _, r := range rounds {
			if v := head(r, 0); better(v, best) {
				best, sum.BestRound = v, r.Round
			}
		}
	}
	var domSum float64
	domN := 0
	secSum := 0.0
	for _, r := range rounds {
		if !math.IsNaN(r.Dominance) {
			domSum += r.Dominance
			domN++
		}
		if !math.IsNaN(r.Seconds) {
			secSum += r.Seconds
		}
	}
	if domN > 0 {
		sum.MeanDominance = domSum / float64(domN)
	}
	sum.Seconds = secSum
	if len(rounds) > 0 && !math.IsNaN(rounds[len(rounds)-1].Elapsed) {
		// Elapsed also counts setup and evaluation between rounds.
		sum.Seconds = rounds[len(rounds)-1].Elapsed
	}
	return sum
}

// better reports whether v beats best; an unmeasured v never does, and any
// measured v beats an unmeasured best. Ties keep the earlier round.
func better(v, best float64) bool {
	return !math.IsNaN(v) && (math.IsNaN(best) || v > best)
}

// summaryJSON is the JSON form of Summary; jsonFloat turns NaN into null,
// which encoding/json would otherwise refuse.
type summaryJSON struct {
	Rounds        int                  `json:"rounds"`
	Final         map[string]jsonFloat `json:"final"`
	Best          map[string]jsonFloat `json:"best"`
	BestRound     int                  `json:"best_round"`
	MeanDominance *jsonFloat           `json:"dominance_mean"`
	Seconds       jsonFloat            `json:"seconds"`
	// OldMeanDominance is the key files written before the metric had one
	// name everywhere used ("mean_dominance"); read, never written.
	OldMeanDominance *jsonFloat `json:"mean_dominance,omitempty"`
}

// MarshalJSON encodes s as {"rounds":..,"final":{..},"best":{..},
// "best_round":..,"dominance_mean":..,"seconds":..}, non-finite floats as
// null. dominance_mean is the mean over rounds of the per-round dominance
// (the mean dominance ratio of metrics.csv's dominance column).
func (s Summary) MarshalJSON() ([]byte, error) {
	return json.Marshal(summaryJSON{
		Rounds:        s.Rounds,
		Final:         toJSONFloats(s.Final),
		Best:          toJSONFloats(s.Best),
		BestRound:     s.BestRound,
		MeanDominance: ptr(jsonFloat(s.MeanDominance)),
		Seconds:       jsonFloat(s.Seconds),
	})
}

// UnmarshalJSON decodes what MarshalJSON wrote, null as NaN, and the older
// key mean_dominance for dominance_mean. Unknown keys (such as the "extra"
// object of a run's summary.json) are ignored.
func (s *Summary) UnmarshalJSON(b []byte) error {
	// Absent floats are "not measured".
	j := summaryJSON{Seconds: jsonFloat(math.NaN())}
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("metrics: decode summary: %w", err)
	}
	dom := math.NaN()
	switch {
	case j.MeanDominance != nil:
		dom = float64(*j.MeanDominance)
	case j.OldMeanDominance != nil:
		dom = float64(*j.OldMeanDominance)
	}
	*s = Summary{
		Rounds:        j.Rounds,
		Final:         fromJSONFloats(j.Final),
		Best:          fromJSONFloats(j.Best),
		BestRound:     j.BestRound,
		MeanDominance: dom,
		Seconds:       float64(j.Seconds),
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// jsonFloat is a float64 that encodes non-finite values as null and decodes
// null as NaN.
type jsonFloat float64

// MarshalJSON implements json.Marshaler.
func (f jsonFloat) MarshalJSON() ([]byte, error) {
	return appendJSONFloat(nil, float64(f)), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *jsonFloat) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = jsonFloat(math.NaN())
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("not a number: %s", b)
	}
	*f = jsonFloat(v)
	return nil
}

func toJSONFloats(m map[string]float64) map[string]jsonFloat {
	out := make(map[string]jsonFloat, len(m))
	for k, v := range m {
		out[k] = jsonFloat(v)
	}
	return out
}

func fromJSONFloats(m map[string]jsonFloat) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		out[k] = float64(v)
	}
	return out
}

// MeanStd returns the mean and the sample standard deviation (n-1
// denominator; 0 for a single value) of the non-NaN values, and how many
// there were. With none, both are NaN.
func MeanStd(xs []float64) (mean, std float64, n int) {
	sum := 0.0
	for _, x := range xs {
		if !math.IsNaN(x) {
			sum += x
			n++
		}
	}
	if n == 0 {
		return math.NaN(), math.NaN(), 0
	}
	mean = sum / float64(n)
	if n == 1 {
		return mean, 0, 1
	}
	ss := 0.0
	for _, x := range xs {
		if !math.IsNaN(x) {
			ss += (x - mean) * (x - mean)
		}
	}
	return mean, math.Sqrt(ss / float64(n-1)), n
}
