package fl

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/model"
)

// relearnMethod registers fedrelearn (methods).
var relearnMethod = Method{Name: "fedrelearn", SumsOnly: true,
	Recipe: RelearnFit{},
	Report: &RelearnReport{},
	Server: func(base *ModalityAware, cfg *config.Config) Strategy {
		return &Relearn{Base: base, Lambda: cfg.FedRelearn.Lambda, Every: cfg.FedRelearn.Every, Rounds: cfg.Rounds}
	},
	Doc: "fedrelearn: diagnosing and re-learning (Wei et al., ECCV 2024): clustering purity of each modality's features before and after local training, pooled by the server, softly re-initialises the encoders that learn too fast"}

// Relearn is fedrelearn, diagnosing and re-learning (Wei, Li, Hu,
// "Diagnosing and Re-learning for Balanced Multimodal Learning", ECCV
// 2024), in federated form. The paper diagnoses each modality's learning
// state from how well its encoder's features separate the classes —
// k-means with one cluster per class on the features, scored by purity —
// and softly re-initialises each encoder, θ ← α θ_init + (1 − α) θ, with
// α = tanh(λ · gap), where the authors' code takes gap = |purity on the
// training set − purity on a validation set|: a modality whose features
// separate the training data much better than unseen data is learning too
// fast (memorising) and is pulled back towards its initialisation the
// most.
//
// Federated choices (docs/methods.md, fedrelearn):
//   - No client sets data aside. In a diagnosis round each client measures,
//     per modality it holds, the purity of its training rows' features
//     under the model it received (data that model was not fitted to this
//     round: the stand-in for validation) and under the model it trained
//     (the training purity). gap = |after − before|: the separation the
//     client's own local epochs added.
//   - The server pools the gaps per modality over the clients holding it,
//     weighted by their samples, and applies the soft re-initialisation to
//     the aggregated global encoder and self projector of that modality
//     (what produces the features measured), towards the run's initial
//     parameters.
//   - Diagnosis rounds are every Every-th round, never within the last
//     Every rounds (the model re-learns for at least Every rounds after a
//     re-initialisation), as the authors re-initialise every few epochs
//     and stop before the end.
//
// Features are the self embeddings S_m(E_m(x_m)) (the fusion head's
// inputs), min-max scaled per dimension to [-1, 1] as in the authors'
// code; k-means is seeded k-means++ with relearnInits restarts, one
// cluster per class the client holds, and the same seeds before and after
// training (as the authors cluster with one fixed seed).
type Relearn struct {
	// Base samples clients, writes their instructions and aggregates.
	Base *ModalityAware
	// Lambda scales the gap: α = tanh(Lambda · gap).
	Lambda float64
	// Every is the diagnosis period in rounds; Rounds the run's length.
	Every, Rounds int

	// init is the global model of round 1 (the re-initialisation target).
	init model.Params
	// Alpha holds the strengths of the last re-initialisation, per
	// modality (for logs and tests).
	Alpha []float64
}

// RelearnFit is fedrelearn's recipe (FitConfig.Recipe).
type RelearnFit struct {
	// On asks for the clustering purities (a diagnosis round).
	On bool
}

// hooks implements Recipe.
func (c RelearnFit) hooks(multi bool) []roundHook {
	if !c.On {
		return nil
	}
	return []roundHook{relearnHook{}}
}

// validate implements Recipe: a flag, nothing to check.
func (c RelearnFit) validate(nm, k, d int) error { return nil }

// RelearnReport holds a client's purities, per modality (FitMetrics.Report).
type RelearnReport struct {
	Purity []RelearnPurity
}

// validate implements Report: at most one purity per modality of the
// model, each over 0..the client's samples. Their values are checked where
// they are pooled (pooledGaps ignores impossible ones).
func (r *RelearnReport) validate(b MetricBounds, _ int) error {
	if len(r.Purity) > b.Modalities {
		return fmt.Errorf("fl: metrics: fedrelearn purities of %d modalities, the model has %d", len(r.Purity), b.Modalities)
	}
	for m, p := range r.Purity {
		if err := count(fmt.Sprintf("fedrelearn rows of modality %d", m), p.N, b.Samples); err != nil {
			return err
		}
	}
	return nil
}

// RelearnPurity is one modality's clustering purity on a client's training
// rows under the received model (Before) and the trained one (After), over
// N rows; N = 0: not measured.
type RelearnPurity struct {
	Before, After float64
	N             int
}

// relearnInits is the number of k-means restarts (the best inertia wins),
// scikit-learn's classic n_init. With the before and after clusterings
// drawing the same seeds, 10 restarts keep the gap of slightly moved
// features (noise 0.01-0.1 of the spread) at 0.002-0.011, against
// 0.002-0.029 with 3 (docs/methods.md, fedrelearn).
const relearnInits = 10

// relearnIters bounds the Lloyd iterations of one k-means run.
const relearnIters = 50

// Diagnoses reports whether round is a diagnosis and re-learning round.
func (r *Relearn) Diagnoses(round int) bool {
	return r.Every > 0 && round%r.Every == 0 && round <= r.Rounds-r.Every
}

// ConfigureFit implements Strategy: Base's instructions, asking for the
// purities in diagnosis rounds.
func (r *Relearn) ConfigureFit(round int, global model.Params, clients []ClientInfo) ([]Instruction, error) {
	if r.init == nil {
		r.init = global.Clone()
	}
	ins, err := r.Base.ConfigureFit(round, global, clients)
	if r.Diagnoses(round) {
		for k := range ins {
			ins[k].Ins.Config.Recipe = RelearnFit{On: true}
		}
	}
	return ins, err
}

// AggregateFit implements Strategy: Base's aggregate, then, in a diagnosis
// round, the soft re-initialisation of each modality's encoder and self
// projector by its pooled purity gap.
func (r *Relearn) AggregateFit(round int, global model.Params, results []Result, failures []Failure) (model.Params, error) {
	next, err := r.Base.AggregateFit(round, global, results, failures)
	if err != nil || next == nil || !r.Diagnoses(round) {
		return next, err
	}
	log := r.Base.logger()
	nm := r.Base.numModalities()
	gaps, n := pooledGaps(results, nm, log, round)
	next = next.Clone()
	r.Alpha = make([]float64, nm)
	for m := range nm {
		r.Alpha[m] = 0
		if n[m] == 0 {
			continue
		}
		a := math.Tanh(r.Lambda * gaps[m])
		r.Alpha[m] = a
		for i, info := range r.Base.Layout {
			if info.Side != m || (info.Part != model.PartEncoder && info.Part != model.PartSelf) {
				continue
			}
			for j, v := range next[i].Data {
				next[i].Data[j] = float32(a*float64(r.init[i].Data[j]) + (1-a)*float64(v))
			}
		}
	}
	log.Info("fedrelearn: re-initialised encoders", "round", round, "gaps", gaps, "alphas", r.Alpha)
	return next, nil
}

// pooledGaps returns, per modality, the sample-weighted mean purity gap
// |After − Before| of the results that measured it, and the rows behind
// it; results with impossible values are left out with a warning.
func pooledGaps(results []Result, nm int, log *slog.Logger, round int) (gaps []float64, rows []int) {
	gaps, rows = make([]float64, nm), make([]int, nm)
	for _, res := range results {
		rep, ok := res.Res.Metrics.Report.(*RelearnReport)
		if !ok {
			continue
		}
		for m, p := range rep.Purity {
			if p.N == 0 {
				continue
			}
			if m >= nm {
				log.Warn("fedrelearn: ignored a purity report of an unknown modality", "round", round, "client", res.ClientID, "modality", m)
				continue
			}
			if p.N < 0 || p.N > res.Res.NumSamples || !(p.Before >= 0 && p.Before <= 1) || !(p.After >= 0 && p.After <= 1) {
				log.Warn("fedrelearn: ignored a purity report", "round", round, "client", res.ClientID, "modality", m, "before", p.Before, "after", p.After, "n", p.N)
				continue
			}
			gaps[m] += float64(p.N) * math.Abs(p.After-p.Before)
			rows[m] += p.N
		}
	}
	for m := range gaps {
		if rows[m] > 0 {
			gaps[m] /= float64(rows[m])
		}
	}
	return gaps, rows
}

// relearnState is what Relearn carries across rounds.
type relearnState struct {
	Base []byte
	Init model.Params
}

// MarshalState implements Stateful: the initial parameters (and Base's
// state).
func (r *Relearn) MarshalState() ([]byte, error) {
	base, err := r.Base.MarshalState()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(relearnState{Base: base, Init: r.init}); err != nil {
		return nil, fmt.Errorf("fl: fedrelearn state: %w", err)
	}
	return buf.Bytes(), nil
}

// UnmarshalState implements Stateful.
func (r *Relearn) UnmarshalState(b []byte) error {
	var st relearnState
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&st); err != nil {
		return fmt.Errorf("fl: fedrelearn state: %w", err)
	}
	if st.Init != nil {
		if len(st.Init) != len(r.Base.Layout) {
			return fmt.Errorf("fl: fedrelearn state: %d initial tensors, layout has %d", len(st.Init), len(r.Base.Layout))
		}
		for i, info := range r.Base.Layout {
			if len(st.Init[i].Data) != info.Size() {
				return fmt.Errorf("fl: fedrelearn state: initial tensor %q has %d values, want %d", info.Name, len(st.Init[i].Data), info.Size())
			}
		}
	}
	if err := r.Base.UnmarshalState(st.Base); err != nil {
		return err
	}
	r.init = st.Init
	return nil
}

var (
	_ Strategy = (*Relearn)(nil)
	_ Stateful = (*Relearn)(nil)
)

// relearnPurity measures, for each modality the client trained, the
// clustering purity of the self embeddings of the training rows that hold
// it (a missing modality's zeros embed alike) under the received model
// start and under the trained model (Relearn).
func (c *LocalClient) relearnPurity(start, trained model.Params, rows []int, has data.Mask, seed uint64) ([]RelearnPurity, error) {
	nm := len(c.set.Modalities)
	out := make([]RelearnPurity, nm)
	b := c.gather(rows)
	x := make([][]float32, nm)
	for m := range nm {
		if has.Has(m) {
			x[m] = b.X[m]
		}
	}
	before, err := c.engine.Embed(start, x, len(rows))
	if err != nil {
		return out, err
	}
	after, err := c.engine.Embed(trained, x, len(rows))
	if err != nil {
		return out, err
	}
	d := c.engine.Arch().EmbedDim
	for m := range nm {
		if x[m] == nil {
			continue
		}
		feats := [2][]float32{before[m], after[m]}
		labels := b.Labels
		if c.partial {
			feats, labels = [2][]float32{}, nil
			for i, row := range rows {
				if c.rowHolds(row, data.Mask(1)<<m) {
					feats[0] = append(feats[0], before[m][i*d:(i+1)*d]...)
					feats[1] = append(feats[1], after[m][i*d:(i+1)*d]...)
					labels = append(labels, b.Labels[i])
				}
			}
			if len(labels) == 0 {
				continue
			}
		}
		k := classesPresent(labels)
		// The same seeds for both clusterings, so that the gap measures
		// how the features moved, not two draws of k-means' restarts.
		rng := func() *rand.Rand { return rand.New(rand.NewPCG(seed, 0x72656c6561726e+uint64(m))) }
		out[m] = RelearnPurity{
			Before: Purity(feats[0], labels, d, k, rng()),
			After:  Purity(feats[1], labels, d, k, rng()),
			N:      len(labels),
		}
	}
	return out, nil
}

// classesPresent is the number of distinct labels: the clusters of a
// client's purity (more clusters than classes would raise the purity of
// any features towards 1).
func classesPresent(labels []int) int {
	seen := map[int]bool{}
	for _, l := range labels {
		seen[l] = true
	}
	return len(seen)
}

// Purity clusters the n = len(labels) rows of feats (row-major [n, d]),
// min-max scaled per dimension to [-1, 1], into min(k, n) clusters with
// k-means (k-means++ seeding from rng, relearnInits restarts, the lowest
// inertia kept) and returns the clustering's purity: the share of rows
// whose label is their cluster's most frequent one.
func Purity(feats []float32, labels []int, d, k int, rng *rand.Rand) float64 {
	n := len(labels)
	if n == 0 {
		return 0
	}
	x := scaleColumns(feats, n, d)
	k = min(k, n)
	var best []int
	bestInertia := math.Inf(1)
	for range relearnInits {
		assign, inertia := kmeans(x, n, d, k, rng)
		if inertia < bestInertia {
			best, bestInertia = assign, inertia
		}
	}
	counts := map[[2]int]int{}
	top := make([]int, k)
	for i, c := range best {
		key := [2]int{c, labels[i]}
		counts[key]++
		top[c] = max(top[c], counts[key])
	}
	sum := 0
	for _, t := range top {
		sum += t
	}
	return float64(sum) / float64(n)
}

// scaleColumns returns feats as float64, each column min-max scaled to
// [-1, 1] (a constant column becomes 0).
func scaleColumns(feats []float32, n, d int) []float64 {
	x := make([]float64, n*d)
	for j := range d {
		lo, hi := math.Inf(1), math.Inf(-1)
		for i := range n {
			v := float64(feats[i*d+j])
			lo, hi = min(lo, v), max(hi, v)
		}
		for i := range n {
			if hi > lo {
				x[i*d+j] = 2*(float64(feats[i*d+j])-lo)/(hi-lo) - 1
			}
		}
	}
	return x
}

// kmeans runs Lloyd's algorithm from a k-means++ seeding and returns each
// row's cluster and the inertia (sum of squared distances to the centres).
func kmeans(x []float64, n, d, k int, rng *rand.Rand) ([]int, float64) {
	dist := func(i int, c []float64, ci int) float64 {
		s := 0.0
		for j := range d {
			e := x[i*d+j] - c[ci*d+j]
			s += e * e
		}
		return s
	}
	centres := make([]float64, k*d)
	copy(centres, x[rng.IntN(n)*d:][:d])
	near := make([]float64, n)
	for i := range n {
		near[i] = dist(i, centres, 0)
	}
	for c := 1; c < k; c++ {
		total := 0.0
		for _, v := range near {
			total += v
		}
		pick := rng.IntN(n)
		if total > 0 {
			u := rng.Float64() * total
			for i, v := range near {
				if u -= v; u < 0 {
					pick = i
					break
				}
			}
		}
		copy(centres[c*d:], x[pick*d:][:d])
		for i := range n {
			near[i] = min(near[i], dist(i, centres, c))
		}
	}
	assign := make([]int, n)
	sizes := make([]int, k)
	var inertia float64
	for it := range relearnIters {
		changed := false
		inertia = 0
		for i := range n {
			bestC, bestD := 0, math.Inf(1)
			for c := range k {
				if e := dist(i, centres, c); e < bestD {
					bestC, bestD = c, e
				}
			}
			if assign[i] != bestC || it == 0 {
				changed = changed || assign[i] != bestC
				assign[i] = bestC
			}
			inertia += bestD
		}
		if !changed && it > 0 {
			break
		}
		clear(centres)
		clear(sizes)
		for i, c := range assign {
			sizes[c]++
			for j := range d {
				centres[c*d+j] += x[i*d+j]
			}
		}
		for c := range k {
			if sizes[c] == 0 { // an empty cluster keeps a row of its own
				copy(centres[c*d:], x[rng.IntN(n)*d:][:d])
				continue
			}
			for j := range d {
				centres[c*d+j] /= float64(sizes[c])
			}
		}
	}
	return assign, inertia
}

// relearnHook is fedrelearn's client side: the purities in diagnosis
// rounds.
type relearnHook struct{}

// finish implements finisher.
func (relearnHook) finish(r *localRound, trained model.Params, res *FitRes) error {
	p, err := r.c.relearnPurity(r.start, trained, r.train, r.has, r.cfg.Seed)
	res.Metrics.Report = &RelearnReport{Purity: p}
	return err
}
