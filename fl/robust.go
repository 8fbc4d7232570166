package fl

import (
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"

	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/model"
)

// Aggregator names (ServerOptions.Aggregator).
const (
	AggregatorMean        = "mean"
	AggregatorMedian      = "median"
	AggregatorTrimmedMean = "trimmed_mean"
	AggregatorKrum        = "krum"
	AggregatorMultiKrum   = "multikrum"
	AggregatorBulyan      = "bulyan"
)

// AggregatorNames lists the known aggregators.
var AggregatorNames = []string{AggregatorMean, AggregatorMedian, AggregatorTrimmedMean, AggregatorKrum, AggregatorMultiKrum, AggregatorBulyan}

// RobustOptions configure a Byzantine-robust aggregator.
type RobustOptions struct {
	// Aggregator is one of AggregatorNames.
	Aggregator string
	// Trim is the fraction of values cut from each end per coordinate
	// (trimmed_mean), in [0, 0.5).
	Trim float64
	// KrumF is the number of Byzantine clients Krum, Multi-Krum and Bulyan
	// assume.
	KrumF int
	// MultiKrumM is how many updates Multi-Krum averages (0: n - f of the
	// group's n).
	MultiKrumM int
}

// Validate checks the options for a round of up to n clients (n < 1:
// unknown, the Krum bound is not checked).
func (o RobustOptions) Validate(n int) error {
	if !slices.Contains(AggregatorNames, o.Aggregator) {
		return fmt.Errorf("fl: unknown aggregator %q (known: %v)", o.Aggregator, AggregatorNames)
	}
	if !(o.Trim >= 0 && o.Trim < 0.5) {
		return fmt.Errorf("fl: trimmed fraction %v outside [0, 0.5)", o.Trim)
	}
	if o.KrumF < 0 || o.MultiKrumM < 0 {
		return fmt.Errorf("fl: krum f %d and multi-krum m %d must be >= 0", o.KrumF, o.MultiKrumM)
	}
	if n > 0 && (o.Aggregator == AggregatorKrum || o.Aggregator == AggregatorMultiKrum) && n <= 2*o.KrumF+2 {
		return fmt.Errorf("fl: krum with f = %d needs more than 2f+2 = %d clients per round, has %d", o.KrumF, 2*o.KrumF+2, n)
	}
	if n > 0 && o.Aggregator == AggregatorBulyan && n < 4*o.KrumF+3 {
		return fmt.Errorf("fl: bulyan with f = %d needs at least 4f+3 = %d clients per round, has %d", o.KrumF, 4*o.KrumF+3, n)
	}
	return nil
}

// Aggregation groups: modality m's parameters are group m, averaged over
// the updates holding m; the fusion head's are group fusionGroup, averaged
// over every update. numGroups bounds the group indices.
const (
	fusionGroup = model.MaxModalities
	numGroups   = fusionGroup + 1
)

// sideOf maps a layout side (-1 fusion, 0..M-1) to its group index.
func sideOf(info model.ParamInfo) int {
	if info.Side < 0 {
		return fusionGroup
	}
	return info.Side
}

// inGroup reports whether a client holding the modalities mask takes
// part in group g: the fusion head's, or that of a modality it holds.
func inGroup(mask data.Mask, g int) bool { return g == fusionGroup || mask.Has(g) }

// holds reports whether update u takes part in group g.
func holds(u Update, g int) bool { return inGroup(u.Modalities, g) }

// AggregateRobust returns the robust aggregate of the updates, per
// modality group: the parameters of modality m's side over the updates
// holding m, the fusion parameters over all (as AggregateModalityAware).
//
//   - median: the coordinate-wise median (Yin et al. 2018), unweighted;
//   - trimmed_mean: per coordinate, the mean after cutting floor(Trim n)
//     values from each end (Yin et al. 2018), unweighted;
//   - krum: the update of the group whose summed squared distance to its
//     n - f - 2 nearest neighbours (over the group's parameters, flattened)
//     is smallest (Blanchard et al. 2017);
//   - multikrum: the sample-weighted mean of the MultiKrumM updates of
//     lowest Krum score (n - f if 0);
//   - bulyan: Krum applied repeatedly (each time to the updates not yet
//     chosen) selects theta = n - 2f updates; per coordinate, the mean of
//     the beta = theta - 2f of their values closest to their median
//     (El Mhamdi et al. 2018, as Flower's Bulyan), unweighted.
//
// Median and trimmed mean drop the sample weights, as Flower's FedMedian
// and FedTrimmedAvg do: a weight would let one client outvote the others.
// A group too small for Krum's f (n <= 2f+2; Bulyan: n < 4f+3) falls back
// to the median, with a warning on log. A side no update holds keeps its value in global.
func AggregateRobust(layout []model.ParamInfo, global model.Params, updates []Update, o RobustOptions, log *slog.Logger) (model.Params, error) {
	if err := o.Validate(0); err != nil {
		return nil, err
	}
	if o.Aggregator == AggregatorMean {
		return AggregateModalityAware(layout, global, updates)
	}
	if len(global) != len(layout) {
		return nil, fmt.Errorf("fl: aggregate: global model has %d tensors, layout %d", len(global), len(layout))
	}
	if len(updates) == 0 {
		return nil, fmt.Errorf("fl: aggregate: no updates")
	}
	for k, u := range updates {
		if len(u.Params) != len(layout) {
			return nil, fmt.Errorf("fl: aggregate: update %d has %d tensors, want %d", k, len(u.Params), len(layout))
		}
		for i, info := range layout {
			if len(u.Params[i].Data) != info.Size() {
				return nil, fmt.Errorf("fl: aggregate: update %d tensor %q has %d values, want %d", k, info.Name, len(u.Params[i].Data), info.Size())
			}
		}
	}
	if log == nil {
		log = slog.Default()
	}
	out := global.Clone()
	for g := range numGroups {
		var members []int
		for k, u := range updates {
			if holds(u, g) {
				members = append(members, k)
			}
		}
		var tensors []int
		for i, info := range layout {
			if sideOf(info) == g {
				tensors = append(tensors, i)
			}
		}
		if len(members) == 0 || len(tensors) == 0 {
			continue
		}
		kind := o.Aggregator
		if (kind == AggregatorKrum || kind == AggregatorMultiKrum) && len(members) <= 2*o.KrumF+2 ||
			kind == AggregatorBulyan && len(members) < 4*o.KrumF+3 {
			log.Warn(kind+": group too small for f, using the coordinate-wise median", "group", groupName(g), "clients", len(members), "f", o.KrumF)
			kind = AggregatorMedian
		}
		switch kind {
		case AggregatorMedian, AggregatorTrimmedMean:
			cut := 0
			if kind == AggregatorTrimmedMean {
				cut = int(o.Trim * float64(len(members)))
			}
			col := make([]float64, len(members))
			for _, i := range tensors {
				for j := range out[i].Data {
					for c, k := range members {
						col[c] = float64(updates[k].Params[i].Data[j])
					}
					sort.Float64s(col)
					if kind == AggregatorMedian {
						out[i].Data[j] = float32(median(col))
					} else {
						out[i].Data[j] = float32(mean(col[cut : len(col)-cut]))
					}
				}
			}
		case AggregatorBulyan:
			chosen := bulyanSelect(pairDistances(updates, members, tensors), o.KrumF)
			beta := len(chosen) - 2*o.KrumF
			col := make([]float64, len(chosen))
			byDist := make([]int, len(chosen))
			for _, i := range tensors {
				for j := range out[i].Data {
					for c, a := range chosen {
						col[c] = float64(updates[members[a]].Params[i].Data[j])
					}
					out[i].Data[j] = float32(meanNearMedian(col, beta, byDist))
				}
			}
		case AggregatorKrum, AggregatorMultiKrum:
			chosen := krumSelect(updates, members, tensors, o.KrumF, kind, o.MultiKrumM)
			total := 0
			for _, k := range chosen {
				total += updates[k].NumSamples
			}
			for _, i := range tensors {
				for j := range out[i].Data {
					var acc float64
					for _, k := range chosen {
						acc += float64(updates[k].NumSamples) / float64(total) * float64(updates[k].Params[i].Data[j])
					}
					out[i].Data[j] = float32(acc)
				}
			}
		}
	}
	return out, nil
}

// krumSelect returns the members Krum (one) or Multi-Krum (m, n - f if 0)
// selects for the tensors of one group: those of lowest score, the sum of
// squared distances to their n - f - 2 nearest other members; ties go to
// the earlier member.
func krumSelect(updates []Update, members, tensors []int, f int, kind string, m int) []int {
	n := len(members)
	dist := pairDistances(updates, members, tensors)
	scores := make([]float64, n)
	near := make([]float64, 0, n-1)
	for a := range n {
		near = near[:0]
		for b := range n {
			if b != a {
				near = append(near, dist[a][b])
			}
		}
		sort.Float64s(near)
		for _, d := range near[:n-f-2] {
			scores[a] += d
		}
	}
	order := make([]int, n)
	for a := range order {
		order[a] = a
	}
	sort.SliceStable(order, func(x, y int) bool { return scores[order[x]] < scores[order[y]] })
	keep := 1
	if kind == AggregatorMultiKrum {
		keep = m
		if keep == 0 {
			keep = n - f
		}
		keep = min(keep, n)
	}
	chosen := make([]int, keep)
	for c := range chosen {
		chosen[c] = members[order[c]]
	}
	slices.Sort(chosen)
	return chosen
}

// pairDistances returns the squared Euclidean distances between the
// members' parameters over the tensors (flattened), by member position.
func pairDistances(updates []Update, members, tensors []int) [][]float64 {
	n := len(members)
	dist := make([][]float64, n)
	for a := range dist {
		dist[a] = make([]float64, n)
	}
	for a := range n {
		for b := a + 1; b < n; b++ {
			var d float64
			for _, i := range tensors {
				x, y := updates[members[a]].Params[i].Data, updates[members[b]].Params[i].Data
				for j := range x {
					e := float64(x[j]) - float64(y[j])
					d += e * e
				}
			}
			dist[a][b], dist[b][a] = d, d
		}
	}
	return dist
}

// bulyanSelect returns the positions (ascending) of the n - 2f members
// Bulyan's selection keeps: Krum, applied to the members not yet chosen
// (scores over the r - f - 2 nearest of the r remaining, at least none),
// picks one at a time; ties go to the earlier member.
func bulyanSelect(dist [][]float64, f int) []int {
	n := len(dist)
	left := make([]bool, n)
	for a := range left {
		left[a] = true
	}
	var chosen []int
	near := make([]float64, 0, n)
	for r := n; len(chosen) < n-2*f; r-- {
		best, bestScore := -1, 0.0
		for a := range n {
			if !left[a] {
				continue
			}
			near = near[:0]
			for b := range n {
				if b != a && left[b] {
					near = append(near, dist[a][b])
				}
			}
			sort.Float64s(near)
			score := 0.0
			for _, d := range near[:max(r-f-2, 0)] {
				score += d
			}
			if best < 0 || score < bestScore {
				best, bestScore = a, score
			}
		}
		left[best] = false
		chosen = append(chosen, best)
	}
	slices.Sort(chosen)
	return chosen
}

// meanNearMedian returns the mean of the beta values of col closest to
// col's median (ties to the earlier value), using idx (len(col)) as scratch.
func meanNearMedian(col []float64, beta int, idx []int) float64 {
	sorted := slices.Clone(col)
	sort.Float64s(sorted)
	med := median(sorted)
	for c := range idx {
		idx[c] = c
	}
	sort.SliceStable(idx, func(x, y int) bool { return math.Abs(col[idx[x]]-med) < math.Abs(col[idx[y]]-med) })
	var s float64
	for _, c := range idx[:beta] {
		s += col[c]
	}
	return s / float64(beta)
}

// median of sorted values.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func groupName(g int) string {
	if g == fusionGroup {
		return "fusion"
	}
	return fmt.Sprintf("modality %d", g)
}
