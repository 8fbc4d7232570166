package deploy

import (
	"log/slog"
	"math"
	"slices"

	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/model"
)

// DefaultMaxWeightShare is the largest share of a round's aggregation
// weight that one participant's result takes by default (ServeOptions.
// MaxWeightShare): weights are sample counts only the participants know,
// so without a cap one that claims a huge count decides the average alone.
const DefaultMaxWeightShare = 0.5

// minCapResults is the fewest results a round's weights are capped in:
// with two, any cap at or below one half would force equal weights, which
// cannot tell a large honest participant from a liar.
const minCapResults = 3

// capWeights returns the sample counts n (the aggregation weights of a
// round's results) with every count's share of the total capped at share,
// or at 1/len(n) if share is below that (equal weights); fewer than
// minCapResults counts are returned as they are. The counts above
// the cap are lowered to one level T, the largest at which each is at most
// share of the new total:
//
//	T = share * (sum of the counts below T + j*T), j = counts lowered,
//
// rounded down (never below 1). Counts below T are unchanged, and so are
// all counts when none exceeds the cap, so honest rounds keep their
// weights.
func capWeights(n []int, share float64) []int {
	out := slices.Clone(n)
	k := len(n)
	if k < minCapResults {
		return out
	}
	c := max(share, 1/float64(k))
	if c >= 1 {
		return out
	}
	total := 0.0
	for _, v := range n {
		total += float64(v)
	}
	sorted := slices.Clone(n)
	slices.SortFunc(sorted, func(a, b int) int { return b - a }) // descending
	if float64(sorted[0]) <= c*total {
		return out
	}
	rest := total // the sum of the counts not lowered
	level := sorted[k-1]
	for j := 1; j < k && float64(j)*c < 1; j++ {
		rest -= float64(sorted[j-1])
		t := c * rest / (1 - float64(j)*c)
		if t >= float64(sorted[j]) {
			level = max(int(math.Floor(t)), 1)
			// Undo a rounding error of t that lost a whole sample.
			if up := float64(level + 1); up <= c*(rest+float64(j)*up) {
				level++
			}
			break
		}
	}
	for i, v := range out {
		out[i] = min(v, level)
	}
	return out
}

// weightCap caps each result's share of a round's aggregation weight
// (capWeights) before the strategy aggregates.
type weightCap struct {
	fl.Strategy
	share float64
	log   *slog.Logger
	met   *Metrics
}

func (w weightCap) AggregateFit(round int, global model.Params, results []fl.Result, failures []fl.Failure) (model.Params, error) {
	n := make([]int, len(results))
	for i, r := range results {
		n[i] = r.Res.NumSamples
	}
	capped := capWeights(n, w.share)
	out, copied := results, false
	for i := range results {
		if capped[i] == n[i] {
			continue
		}
		if !copied { // the results are the caller's
			out, copied = slices.Clone(results), true
		}
		out[i].Res.NumSamples = capped[i]
		w.met.WeightCapped.Inc()
		w.log.Warn("aggregation weight capped: the participant claims a larger share of the round than allowed",
			"round", round, "participant", results[i].ClientID, "samples", n[i], "weight", capped[i], "max_share", w.share)
	}
	return w.Strategy.AggregateFit(round, global, out, failures)
}
