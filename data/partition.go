package data

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/stat/distmv"
)

// dirichletMaxAttempts bounds the number of whole-partition redraws in
// Dirichlet before it gives up on minSize.
const dirichletMaxAttempts = 1000

// dirichletCapFactor is the size cap of the label-skew scheme: a client that
// already holds dirichletCapFactor*n/N samples gets no share of further
// classes.
const dirichletCapFactor = 1.1

// IID partitions the sample indices 0..n-1 among numClients clients
// uniformly at random: it shuffles them and cuts the result into parts whose
// sizes differ by at most one (the first n%numClients clients get the extra
// sample). Each client's indices are sorted ascending. It is an error for
// there to be fewer samples than clients, since some clients would be empty.
func IID(n, numClients int, rng *rand.Rand) ([][]int, error) {
	if numClients < 1 {
		return nil, fmt.Errorf("data: IID: numClients = %d, want >= 1", numClients)
	}
	if n < numClients {
		return nil, fmt.Errorf("data: IID: %w: %d samples for %d clients would leave clients empty", ErrInfeasible, n, numClients)
	}
	if rng == nil {
		return nil, fmt.Errorf("data: IID: nil rng")
	}
	perm := rng.Perm(n)
	clients := make([][]int, numClients)
	base, extra := n/numClients, n%numClients
	start := 0
	for j := range clients {
		size := base
		if j < extra {
			size++
		}
		part := perm[start : start+size : start+size]
		slices.Sort(part)
		clients[j] = part
		start += size
	}
	return clients, nil
}

// Dirichlet partitions samples among numClients clients with label skew, the
// scheme of the FedCMI reference code (which follows NIID-Bench, Li et al.,
// "Federated Learning on Non-IID Data Silos", 2022). For each class c in
// order 0..numClasses-1 it
//
//  1. shuffles the indices of the samples of class c;
//  2. draws client proportions p ~ Dirichlet(alpha, ..., alpha);
//  3. zeroes p_j for every client j that already holds at least 1.1*n/N
//     samples (n samples, N clients) and renormalises;
//  4. cuts the shuffled list at the cumulative proportions, cut k being
//     int(len * (p_1 + ... + p_k)) for k < N, and gives piece j to client j.
//
// If some client then holds fewer than minSize samples, the whole partition
// is drawn again, continuing the same rng, up to 1000 times; after that
// Dirichlet returns an error wrapping ErrInfeasible. Small alpha gives strong
// skew (each client sees few classes); alpha = 1e8 approximates IID.
//
// Two cases the reference code leaves undefined arise at small alpha, where
// Gamma variates underflow to exactly zero:
//
//   - If step 3 zeroes every positive share (every client with a positive
//     share is at the cap; they cannot be all clients, as together they
//     would hold more than n samples), the unmasked draw is used for that
//     class, so that the class is not dropped.
//   - If every share is zero (the draw is 0/0), it is replaced by its limit
//     as alpha -> 0: the whole class goes to one client, chosen uniformly
//     among those below the cap (or among all if none is).
//
// labels[i] must be in 0..numClasses-1; alpha must be positive and finite;
// minSize must be in 0..n/numClients. Each client's indices are sorted
// ascending.
func Dirichlet(labels []int, numClasses, numClients int, alpha float64, minSize int, rng *rand.Rand) ([][]int, error) {
	n := len(labels)
	switch {
	case numClasses < 1:
		return nil, fmt.Errorf("data: Dirichlet: numClasses = %d, want >= 1", numClasses)
	case numClients < 1:
		return nil, fmt.Errorf("data: Dirichlet: numClients = %d, want >= 1", numClients)
	case !(alpha > 0) || math.IsInf(alpha, 1): // also rejects NaN
		return nil, fmt.Errorf("data: Dirichlet: alpha = %v, want > 0 and finite", alpha)
	case minSize < 0:
		return nil, fmt.Errorf("data: Dirichlet: minSize = %d, want >= 0", minSize)
	case minSize > 0 && minSize > n/numClients:
		return nil, fmt.Errorf("data: Dirichlet: %w: %d clients of at least %d samples need %d samples, have %d",
			ErrInfeasible, numClients, minSize, numClients*minSize, n)
	case rng == nil:
		return nil, fmt.Errorf("data: Dirichlet: nil rng")
	}
	byClass := make([][]int, numClasses)
	for i, y := range labels {
		if y < 0 || y >= numClasses {
			return nil, fmt.Errorf("data: Dirichlet: %w: labels[%d] = %d, want 0..%d", ErrLabel, i, y, numClasses-1)
		}
		byClass[y] = append(byClass[y], i)
	}

	conc := make([]float64, numClients)
	for j := range conc {
		conc[j] = alpha
	}
	// *rand.Rand is itself a rand.Source, so the draws continue rng's stream.
	dir := distmv.NewDirichlet(conc, rng)
	limit := dirichletCapFactor * float64(n) / float64(numClients)
	draw := make([]float64, numClients)
	share := make([]float64, numClients)
	smallest := 0
	for range dirichletMaxAttempts {
		clients := make([][]int, numClients)
		for _, class := range byClass {
			idx := slices.Clone(class)
			rng.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
			dir.Rand(draw)
			cappedShares(share, draw, clients, limit, rng)
			prev := 0
			cum := 0.0
			for j := range clients {
				next := len(idx)
				if j < numClients-1 {
					cum += share[j]
					next = min(max(int(cum*float64(len(idx))), prev), len(idx))
				}
				clients[j] = append(clients[j], idx[prev:next]...)
				prev = next
			}
		}
		smallest = len(clients[0])
		for _, c := range clients {
			smallest = min(smallest, len(c))
		}
		if smallest >= minSize {
			for _, c := range clients {
				slices.Sort(c)
			}
			return clients, nil
		}
	}
	return nil, fmt.Errorf("data: Dirichlet: %w: no partition gave every client >= %d samples in %d attempts "+
		"(alpha %g, %d clients, last smallest client %d)",
		ErrInfeasible, minSize, dirichletMaxAttempts, alpha, numClients, smallest)
}

// cappedShares writes into share the class proportions of one Dirichlet
// step: draw with the shares of clients at or above limit zeroed, then
// renormalised. See Dirichlet for the two fallbacks.
func cappedShares(share, draw []float64, clients [][]int, limit float64, rng *rand.Rand) {
	total := 0.0
	for j, p := range draw {
		if !(p > 0) { // NaN when every Gamma variate underflowed
			p = 0
		}
		draw[j] = p
		total += p
	}
	if total == 0 {
		// The alpha -> 0 limit of the Dirichlet: all mass on one client.
		var open []int
		for j, c := range clients {
			if float64(len(c)) < limit {
				open = append(open, j)
			}
		}
		winner := rng.IntN(len(clients))
		if len(open) > 0 {
			winner = open[rng.IntN(len(open))]
		}
		clear(share)
		share[winner] = 1
		return
	}
	kept := 0.0
	for j, p := range draw {
		share[j] = 0
		if float64(len(clients[j])) < limit {
			share[j] = p
			kept += p
		}
	}
	if kept == 0 {
		// Every client with a positive share is full: keep the raw draw
		// rather than drop the class.
		copy(share, draw)
		kept = total
	}
	for j := range share {
		share[j] /= kept
	}
}

// ByGroup partitions samples by a natural owner id such as a speaker: one
// client per distinct value in groups, ordered by increasing group value.
// clients[j] lists, ascending, the indices i with groups[i] == groupIDs[j].
// An empty groups slice is an error.
func ByGroup(groups []int) (clients [][]int, groupIDs []int, err error) {
	if len(groups) == 0 {
		return nil, nil, fmt.Errorf("data: ByGroup: no groups (the set has no natural owners)")
	}
	pos := make(map[int]int)
	for _, g := range groups {
		pos[g] = 0
	}
	groupIDs = make([]int, 0, len(pos))
	for g := range pos {
		groupIDs = append(groupIDs, g)
	}
	slices.Sort(groupIDs)
	for j, g := range groupIDs {
		pos[g] = j
	}
	clients = make([][]int, len(groupIDs))
	for i, g := range groups {
		clients[pos[g]] = append(clients[pos[g]], i)
	}
	return clients, groupIDs, nil
}
