package fl

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/model"
)

// mdropMethod registers FedMDrop (methods).
var mdropMethod = Method{Name: "fedmdrop",
	SingleUpdates: "its server selects participants and modalities from each participant's reported prototypes and modality ratio",
	NoDP:          "its clients send prototypes and its server selects clients by their statistics",
	TwoModalities: "fedcmi's FedMDrop keeps prototypes, modality-pair distances and drop masks for two modalities; not generalised yet",
	Recipe:        MDropFit{},
	Report:        &MDropReport{},
	WholeSamples:  prototypesWholeSamples,
	Server: func(base *ModalityAware, cfg *config.Config) Strategy {
		o := cfg.FedMDrop
		return &FedMDrop{ModalityAware: *base, Options: FedMDropOptions{Alpha: o.Alpha, Threshold: o.Threshold, Subsample: o.Subsample}}
	},
	Doc: "FedMDrop / balanced modality selection (Fan et al., ECCV 2024): global prototypes, modal enhancement loss, submodular client selection dropping dominant modalities"}

// FedMDrop is balanced modality selection for multimodal FL (Fan, Xu, Wang,
// Huo, Chen, Guo, "Overcome Modal Bias in Multi-modal Federated Learning via
// Balanced Modality Selection", ECCV 2024, arXiv:2401.00403; the authors'
// code calls it FedMDrop, fanyunfeng-bit/Balanced-Modality-Selection-in-MFL,
// server/mmdrop.py, client/mmdrop.py, server/base.py). Per round:
//
//  1. Clients (all of them in round 1, a probe; then the selected ones)
//     train locally with the modal enhancement loss on the global
//     prototypes (model.ProtoLoss, binary form, weight Alpha): a
//     multimodal client adds Alpha*PCE of the batch's slow modality, a
//     unimodal client (or one told to drop a modality) Alpha*PCE of the
//     modality it trains. After training each reports, per modality it
//     holds, its class prototypes and class counts (ModalityReport) and the
//     accuracy of the nearest-prototype classifier on its own data;
//     r_k = acc_A/acc_V is its imbalance ratio.
//  2. The server averages the trained modalities' parameters
//     (AggregateModalityAware: a client that dropped A counts for V and the
//     fusion head only) and the prototypes by class counts
//     (AggregatePrototypes).
//  3. It keeps each client's last encoder update g^m_k = w^m_global -
//     w^m_k per modality (zero for a modality the client never trained) and
//     selects the next round's clients with SelectModalities: a greedy
//     facility-location (submodular) selection over update distances that,
//     when the globally dominant modality's candidate is strongly
//     imbalanced (r > Threshold, or r < 1/Threshold), picks it with its
//     dominant modality dropped.
type FedMDrop struct {
	// ModalityAware provides the schedule, K, the seed, the layout and the
	// parameter averaging.
	ModalityAware
	// Options are FedMDrop's hyper-parameters.
	Options FedMDropOptions

	state mdropState
	// dist caches squared update distances by side, keyed by client ID pair.
	dist [2]map[[2]string]float64
}

// FedMDropOptions are FedMDrop's hyper-parameters.
type FedMDropOptions struct {
	// Alpha weights the modal enhancement loss (authors' code: MI_alpha,
	// default 1; their run scripts use 2).
	Alpha float64
	// Threshold is tau: a candidate of the weak modality's objective is
	// selected without its dominant modality when its ratio exceeds tau
	// (A dominant) or is below 1/tau (authors' runs: 1.5 or 2).
	Threshold float64
	// Subsample is the stochastic greedy's candidate share: each step
	// scores max(K, Subsample*N) random remaining clients (authors' code:
	// 0.1); 1 scores all of them.
	Subsample float64
}

// MDropFit is a client's FedMDrop recipe for one round
// (FitConfig.Recipe): the modal enhancement loss, the modalities left out,
// and the report of the client's prototypes and modality accuracies.
type MDropFit struct {
	// Alpha weights the modal enhancement loss.
	Alpha float64
	// Global holds the global prototypes (nil before the first
	// aggregation: no enhancement loss yet).
	Global *PrototypeSet
	// Drop lists the modalities the client leaves out this round.
	Drop data.Mask
}

// validate checks the recipe for a model of nm modalities, k classes and
// embeddings of width d: a finite alpha, a drop mask of the model's
// modalities, and Global nil or valid (PrototypeSet.Validate).
func (c MDropFit) validate(nm, k, d int) error {
	if err := finite("FedMDrop alpha", c.Alpha); err != nil {
		return err
	}
	if c.Drop&^data.Full(nm) != 0 {
		return fmt.Errorf("fl: recipe: drop mask %b names no modality of the model", c.Drop)
	}
	if g := c.Global; g != nil {
		if err := g.Validate(k, d, data.Full(nm), MaxMetricCount); err != nil {
			return fmt.Errorf("fl: recipe: global prototypes: %w", err)
		}
	}
	return nil
}

// hooks implements Recipe: the modal enhancement loss, then the report.
func (c MDropFit) hooks(multi bool) []roundHook {
	rep := &MDropReport{}
	return []roundHook{&protoHook{recipe: c, rep: &rep.Proto}, &mdropHook{rep: rep}}
}

// dropped implements modalityDropper.
func (c MDropFit) dropped() data.Mask { return c.Drop }

// protoLoss implements protoRecipe: the modal enhancement loss (binary
// coefficient, no entropy term) on every client once there are global
// prototypes of the modalities it trains.
func (c MDropFit) protoLoss(has data.Mask) *model.ProtoLoss {
	g := c.Global
	if g == nil {
		return nil
	}
	for m := range 2 {
		if has.Has(m) && g.Centers[m] == nil {
			return nil
		}
	}
	return &model.ProtoLoss{Alpha: c.Alpha, Binary: true}
}

// setPrototypes implements protoRecipe: the global prototypes, set once.
func (c MDropFit) setPrototypes(_ *LocalClient, local *model.Local, _ data.Mask, ep int, _ *model.Prototypes) error {
	if ep > 0 {
		return nil
	}
	return local.SetPrototypes(c.Global.model())
}

// MDropReport is a FedMDrop client's report (FitMetrics.Report): its
// modal enhancement loss's statistics, and what the server selects
// clients and modalities by (nil only from a client that failed to
// measure it, which the server rejects).
type MDropReport struct {
	Proto     ProtoMetrics
	Selection *ModalityReport
}

// private implements privateReport.
func (r *MDropReport) private() string {
	if r.Selection == nil {
		return ""
	}
	return "FedMDrop's prototypes and modality accuracies"
}

// validate implements Report.
func (r *MDropReport) validate(b MetricBounds, batches int) error {
	if err := r.Proto.validate(b, batches); err != nil {
		return err
	}
	if r.Selection == nil {
		return nil
	}
	return r.Selection.Validate(b.Classes, b.Width, b.Holds, b.Samples)
}

// PrototypeSet is a set of class prototypes of both modalities with the
// number of samples behind each (global ones, or one client's).
type PrototypeSet struct {
	// Centers[m] is row-major [K, D]; nil if modality m has none.
	Centers [2][]float32
	// Counts[m][k] is the number of samples behind class k's prototype of
	// modality m (0: no prototype).
	Counts [2][]int
}

// model converts p to the model's form.
func (p *PrototypeSet) model() model.Prototypes {
	var out model.Prototypes
	for m := range 2 {
		out.Centers[m] = p.Centers[m]
		if p.Counts[m] != nil {
			out.Present[m] = make([]bool, len(p.Counts[m]))
			for k, n := range p.Counts[m] {
				out.Present[m][k] = n > 0
			}
		}
	}
	return out
}

// ModalityReport is what a FedMDrop client reports with its update.
type ModalityReport struct {
	// Prototypes are the client's class prototypes, under its trained
	// model, of every modality it holds.
	Prototypes PrototypeSet
	// Accuracy[m] is the accuracy of the nearest-prototype classifier of
	// modality m on the client's samples (NaN if it does not hold m).
	Accuracy [2]float64
}

// Ratio returns the client's imbalance ratio acc_A/acc_V, smoothed by 1e-3
// so that a modality at zero accuracy keeps it finite; NaN unless the client
// holds both modalities.
func (r *ModalityReport) Ratio() float64 {
	a, v := r.Accuracy[0], r.Accuracy[1]
	if math.IsNaN(a) || math.IsNaN(v) {
		return math.NaN()
	}
	return (a + 1e-3) / (v + 1e-3)
}

// Validate checks a report received from a client that may be hostile,
// for k classes, embeddings of width d and a client holding the modalities
// holds with n samples, before the server uses it: prototypes valid as
// PrototypeSet.Validate says, and accuracies in [0, 1], NaN allowed (as
// documented) only for a modality without prototypes, which the client
// does not hold.
func (r *ModalityReport) Validate(k, d int, holds data.Mask, n int) error {
	if err := r.Prototypes.Validate(k, d, holds, n); err != nil {
		return fmt.Errorf("fl: report: %w", err)
	}
	for m, acc := range r.Accuracy {
		if math.IsNaN(acc) && r.Prototypes.Centers[m] == nil {
			continue
		}
		if !(acc >= 0 && acc <= 1) {
			return fmt.Errorf("fl: report: modality %d accuracy %v outside [0, 1]", m, acc)
		}
	}
	return nil
}

// Validate checks a prototype set received from a peer that may be
// hostile, for k classes and embeddings of width d: prototypes only of the
// modalities in holds, each of k*d finite values with k counts in 0..n
// summing to at most n (counts without prototypes are refused too).
func (p *PrototypeSet) Validate(k, d int, holds data.Mask, n int) error {
	for m := range 2 {
		centers, counts := p.Centers[m], p.Counts[m]
		if centers == nil && counts == nil {
			continue
		}
		if !holds.Has(m) {
			return fmt.Errorf("prototypes of modality %d, which is not held", m)
		}
		if len(centers) != k*d || len(counts) != k {
			return fmt.Errorf("modality %d: %d prototype values and %d counts, want %d x %d and %d", m, len(centers), len(counts), k, d, k)
		}
		for j, v := range centers {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("modality %d: prototype value %d is %v", m, j, v)
			}
		}
		total := 0
		for c, cnt := range counts {
			if cnt < 0 || cnt > n {
				return fmt.Errorf("modality %d: class %d count %d, want 0..%d", m, c, cnt, n)
			}
			total += cnt
		}
		if total > n {
			return fmt.Errorf("modality %d: counts sum to %d, more than %d samples", m, total, n)
		}
	}
	return nil
}

// PrototypeShape returns the number of classes K and the embedding width D
// of a model of the given layout (from modality 0's classifier); 0, 0 if
// the layout has none.
func PrototypeShape(layout []model.ParamInfo) (k, d int) {
	for _, info := range layout {
		if info.Side == 0 && info.Part == model.PartClassifier && len(info.Shape) == 2 {
			return info.Shape[1], info.Shape[0]
		}
	}
	return 0, 0
}

// mdropReport measures the client's ModalityReport under params.
func (c *LocalClient) mdropReport(params model.Params) (*ModalityReport, error) {
	p, acc, err := c.prototypes(params, c.has)
	if err != nil {
		return nil, err
	}
	r := &ModalityReport{Accuracy: acc}
	k := c.engine.Arch().NumClasses
	counts := make([]int, k)
	for _, i := range c.index {
		counts[c.set.Labels[i]]++
	}
	for m := range 2 {
		if p.Centers[m] != nil {
			r.Prototypes.Centers[m] = p.Centers[m]
			r.Prototypes.Counts[m] = slices.Clone(counts)
		}
	}
	return r, nil
}

// AggregatePrototypes averages clients' prototypes by class counts: for
// modality m and class k, c^m_k = sum_i n^m_ik c^m_ik / sum_i n^m_ik over
// the sets holding m (as the authors' aggregate_global_proto). A class no
// set has keeps prev's prototype, if any (the authors' code sets it to
// zero, which then acts as a real prototype). k and d are the number of
// classes and the embedding width.
func AggregatePrototypes(sets []PrototypeSet, prev *PrototypeSet, k, d int) (*PrototypeSet, error) {
	out := &PrototypeSet{}
	for m := range 2 {
		acc := make([]float64, k*d)
		total := make([]int, k)
		for i, s := range sets {
			if s.Centers[m] == nil {
				continue
			}
			if len(s.Centers[m]) != k*d || len(s.Counts[m]) != k {
				return nil, fmt.Errorf("fl: prototypes of set %d, modality %d: %d values and %d counts, want %d x %d and %d", i, m, len(s.Centers[m]), len(s.Counts[m]), k, d, k)
			}
			for c, n := range s.Counts[m] {
				if n < 0 {
					return nil, fmt.Errorf("fl: prototypes of set %d: negative count %d", i, n)
				}
				total[c] += n
				for j := range d {
					acc[c*d+j] += float64(n) * float64(s.Centers[m][c*d+j])
				}
			}
		}
		centers := make([]float32, k*d)
		counts := make([]int, k)
		found := false
		for c := range k {
			switch {
			case total[c] > 0:
				for j := range d {
					centers[c*d+j] = float32(acc[c*d+j] / float64(total[c]))
				}
				counts[c] = total[c]
			case prev != nil && prev.Counts[m] != nil && prev.Counts[m][c] > 0:
				copy(centers[c*d:(c+1)*d], prev.Centers[m][c*d:(c+1)*d])
				counts[c] = prev.Counts[m][c]
			default:
				continue
			}
			found = true
		}
		if found {
			out.Centers[m], out.Counts[m] = centers, counts
		}
	}
	return out, nil
}

// Selection is one client chosen by SelectModalities.
type Selection struct {
	// Client indexes the candidates.
	Client int
	// Drop is the set of modalities the client leaves out (0: none).
	Drop data.Mask
}

// SelectionInput is what SelectModalities chooses from, for N clients.
type SelectionInput struct {
	// DistMulti, DistA and DistV are N x N distances between the clients'
	// last encoder updates: of both modalities concatenated, of modality 0
	// (A) and of modality 1 (V).
	DistMulti, DistA, DistV [][]float64
	// Ratio[k] is client k's imbalance ratio acc_A/acc_V (NaN if unknown
	// or unimodal); Samples[k] its number of samples.
	Ratio   []float64
	Samples []int
	// Has[k] is the set of modalities client k holds (nil: every client
	// holds both).
	Has []data.Mask
	// K is the number of clients to select; Threshold is tau.
	K         int
	Threshold float64
	// Candidates returns the clients a greedy step scores among the
	// remaining ones (nil: all of them; the stochastic greedy draws a
	// random subset).
	Candidates func(remaining []int) []int
}

// SelectModalities is FedMDrop's balanced modality selection, the greedy of
// the authors' server/base.py (stochastic_greedy, "PMRsub"). With the
// global ratio rbar = sum_k n_k r_k / sum_k n_k over the clients with a
// known ratio, it grows two facility-location solutions: S (clients
// training all their modalities) for the objective
// F(S) = sum_{j in V} min_{i in S} DistMulti(j, i) over all clients V, and
// U (multimodal clients training only the weak modality W: V if rbar > 1,
// else A) for G(U) = sum_{j in V_W} min_{i in U} Dist_W(j, i) over the
// clients V_W holding W, both minimised (the submodular maximisation of
// sum_j (C - min ...)). Each step scores the candidates C:
//
//	i* = argmin_{i in C} sum_{j in V} min(m_S(j), DistMulti(j, i))
//	u* = argmin_{i in C, r_i known} sum_{j in V_W} min(m_U(j), Dist_W(j, i))
//
// (m_S, m_U: each client's distance to its nearest member so far, +Inf
// for an empty set; ties go to the lowest index). If u* is strongly
// imbalanced towards the dominant modality (r_u* > tau when rbar > 1,
// r_u* < 1/tau otherwise), u* joins U with the dominant modality dropped;
// else i* joins S with all its modalities. Without any known ratio the
// selection is the plain facility-location greedy on DistMulti.
//
// Deviation from the authors' code: there G's ground set and candidates are
// all clients. With unimodal clients, whose update of the modality they lack
// is zero, the zero vectors form a tight cluster whose members win u*
// almost always (109 of 110 steps in a synthetic run with half the clients
// unimodal), and they cannot drop anything, so no client was ever dropped.
// Restricting u* to clients that can drop (multimodal ones, with a known
// ratio) and G to the clients holding W changes nothing when every client
// is multimodal, as in the authors' runs.
func SelectModalities(in SelectionInput) ([]Selection, error) {
	n := len(in.DistMulti)
	if len(in.DistA) != n || len(in.DistV) != n || len(in.Ratio) != n || len(in.Samples) != n {
		return nil, fmt.Errorf("fl: select: %d, %d, %d distance rows, %d ratios and %d sample counts", n, len(in.DistA), len(in.DistV), len(in.Ratio), len(in.Samples))
	}
	num, den := 0.0, 0.0
	for k, r := range in.Ratio {
		if !math.IsNaN(r) && !math.IsInf(r, 0) {
			num += float64(in.Samples[k]) * r
			den += float64(in.Samples[k])
		}
	}
	rbar := math.NaN()
	if den > 0 {
		rbar = num / den
	}
	firstDominant := rbar > 1
	weak, drop, w := in.DistA, data.Mask(2), 0 // V dominant: train A only
	if firstDominant {
		weak, drop, w = in.DistV, data.Mask(1), 1 // A dominant: train V only
	}
	all, holdsW := make([]bool, n), make([]bool, n)
	for j := range n {
		all[j] = true
		holdsW[j] = in.Has == nil || in.Has[j].Has(w)
	}
	inf := math.Inf(1)
	mS, mU := make([]float64, n), make([]float64, n)
	for j := range n {
		mS[j], mU[j] = inf, inf
	}
	remaining := make([]int, n)
	for i := range remaining {
		remaining[i] = i
	}
	score := func(m []float64, dist [][]float64, cand []int, ground []bool) int {
		best, bestU := -1, inf
		for _, i := range cand {
			u := 0.0
			for j := range n {
				if ground[j] {
					u += math.Min(m[j], dist[j][i])
				}
			}
			if best < 0 || u < bestU || (u == bestU && i < best) {
				best, bestU = i, u
			}
		}
		return best
	}
	var out []Selection
	for len(out) < in.K && len(remaining) > 0 {
		cand := remaining
		if in.Candidates != nil {
			cand = in.Candidates(remaining)
		}
		pick, sel := score(mS, in.DistMulti, cand, all), Selection{}
		known := slices.DeleteFunc(slices.Clone(cand), func(i int) bool { return math.IsNaN(in.Ratio[i]) })
		if !math.IsNaN(rbar) && len(known) > 0 {
			u := score(mU, weak, known, holdsW)
			r := in.Ratio[u]
			if (firstDominant && r > in.Threshold) || (!firstDominant && r < 1/in.Threshold) {
				pick, sel.Drop = u, drop
			}
		}
		m, dist := mS, in.DistMulti
		if sel.Drop != 0 {
			m, dist = mU, weak
		}
		for j := range n {
			m[j] = math.Min(m[j], dist[j][pick])
		}
		sel.Client = pick
		out = append(out, sel)
		remaining = slices.DeleteFunc(remaining, func(i int) bool { return i == pick })
	}
	return out, nil
}

// mdropClient is what the server remembers of a client.
type mdropClient struct {
	// Update[m] is the client's last encoder update of modality m (nil: never trained).
	Update [2][]float32
	// Ratio is the last reported imbalance ratio, if Known (multimodal
	// clients).
	Ratio   float64
	Known   bool
	Samples int
}

// mdropState is FedMDrop's state across rounds (saved by MarshalState).
type mdropState struct {
	Global  *PrototypeSet           `json:"global"`
	Clients map[string]*mdropClient `json:"clients"`
}

// encoderIndex lists the layout indices of modality m's encoder.
func encoderIndex(layout []model.ParamInfo, m int) []int {
	var idx []int
	for i, info := range layout {
		if info.Side == m && info.Part == model.PartEncoder {
			idx = append(idx, i)
		}
	}
	return idx
}

// ConfigureFit implements Strategy: every client while some client has
// not reported yet (round 1), then SelectModalities' choice.
func (s *FedMDrop) ConfigureFit(round int, global model.Params, clients []ClientInfo) ([]Instruction, error) {
	if len(clients) == 0 {
		return nil, errors.New("fl: no clients available")
	}
	cfg := s.fitConfig(round)
	recipe := MDropFit{Alpha: s.Options.Alpha, Global: s.state.Global}
	probe := false
	for _, c := range clients {
		if s.state.Clients[c.ID] == nil {
			probe = true
		}
	}
	var sel []Selection
	rbar, rmax := math.NaN(), math.NaN() // for the log
	if probe {
		for i := range clients {
			sel = append(sel, Selection{Client: i})
		}
	} else {
		in := s.selectionInput(clients)
		k := min(s.PerRound, len(clients))
		in.K, in.Threshold = k, s.Options.Threshold
		size := max(k, int(s.Options.Subsample*float64(len(clients))))
		rng := rand.New(rand.NewPCG(s.Seed^0x6d64726f70, uint64(round)))
		in.Candidates = func(remaining []int) []int {
			if size >= len(remaining) {
				return remaining
			}
			perm := rng.Perm(len(remaining))[:size]
			cand := make([]int, size)
			for j, p := range perm {
				cand[j] = remaining[p]
			}
			return cand
		}
		rbar, rmax = ratioSummary(in.Ratio, in.Samples)
		var err error
		if sel, err = SelectModalities(in); err != nil {
			return nil, err
		}
	}
	dropped := 0
	out := make([]Instruction, 0, len(sel))
	for _, x := range sel {
		c := cfg
		c.Seed = clientSeed(s.Seed, round, x.Client)
		rc := recipe
		rc.Drop = x.Drop
		c.Recipe = rc
		if x.Drop != 0 {
			dropped++
		}
		out = append(out, Instruction{ClientID: clients[x.Client].ID, Ins: FitIns{Params: global, Config: c}})
	}
	s.logger().Info("fedmdrop selection", "round", round, "probe", probe, "clients", len(out), "dropped", dropped,
		"global_ratio", rbar, "max_ratio", rmax)
	return out, nil
}

func (s *FedMDrop) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

// selectionInput computes the distances between the clients' last updates
// (squared distances per modality are cached and recomputed only for
// clients whose update changed).
func (s *FedMDrop) selectionInput(clients []ClientInfo) SelectionInput {
	n := len(clients)
	in := SelectionInput{Ratio: make([]float64, n), Samples: make([]int, n), Has: make([]data.Mask, n)}
	mk := func() [][]float64 {
		d := make([][]float64, n)
		for i := range d {
			d[i] = make([]float64, n)
		}
		return d
	}
	in.DistMulti, in.DistA, in.DistV = mk(), mk(), mk()
	for i, ci := range clients {
		st := s.state.Clients[ci.ID]
		in.Ratio[i], in.Samples[i], in.Has[i] = math.NaN(), st.Samples, ci.Modalities
		if st.Known {
			in.Ratio[i] = st.Ratio
		}
		for j := i + 1; j < n; j++ {
			var sq [2]float64
			for m := range 2 {
				sq[m] = s.sqDist(m, ci.ID, clients[j].ID)
			}
			in.DistA[i][j], in.DistV[i][j] = math.Sqrt(sq[0]), math.Sqrt(sq[1])
			in.DistMulti[i][j] = math.Sqrt(sq[0] + sq[1])
			in.DistA[j][i], in.DistV[j][i], in.DistMulti[j][i] = in.DistA[i][j], in.DistV[i][j], in.DistMulti[i][j]
		}
	}
	return in
}

// sqDist returns the squared distance of two clients' modality-m updates
// (a missing update counts as zero), cached.
func (s *FedMDrop) sqDist(m int, a, b string) float64 {
	if a > b {
		a, b = b, a
	}
	if s.dist[m] == nil {
		s.dist[m] = map[[2]string]float64{}
	}
	key := [2]string{a, b}
	if d, ok := s.dist[m][key]; ok {
		return d
	}
	ua, ub := s.state.Clients[a].Update[m], s.state.Clients[b].Update[m]
	d := 0.0
	for i := range max(len(ua), len(ub)) {
		var x, y float64
		if i < len(ua) {
			x = float64(ua[i])
		}
		if i < len(ub) {
			y = float64(ub[i])
		}
		d += (x - y) * (x - y)
	}
	s.dist[m][key] = d
	return d
}

// forget drops the cached distances of client id for modality m.
func (s *FedMDrop) forget(m int, id string) {
	for key := range s.dist[m] {
		if key[0] == id || key[1] == id {
			delete(s.dist[m], key)
		}
	}
}

// AggregateFit implements Strategy: modality-aware averaging of the
// trained modalities, then the clients' updates, ratios and prototypes are
// recorded and the global prototypes re-aggregated.
func (s *FedMDrop) AggregateFit(round int, global model.Params, results []Result, failures []Failure) (model.Params, error) {
	k, d := s.prototypeShape()
	var ok []Result
	for _, r := range results {
		if err := CheckUpdate(s.Layout, r.Res); err != nil {
			s.logger().Warn("rejected update", "round", round, "client", r.ClientID, "err", err)
			continue
		}
		sel := selection(r)
		if sel == nil {
			s.logger().Warn("rejected update", "round", round, "client", r.ClientID, "err", "no modality report")
			continue
		}
		if err := sel.Validate(k, d, data.Full(2), MaxMetricCount); err != nil {
			s.logger().Warn("rejected update", "round", round, "client", r.ClientID, "err", err)
			continue
		}
		ok = append(ok, r)
	}
	next, err := s.ModalityAware.AggregateFit(round, global, ok, failures)
	if err != nil || next == nil {
		return next, err
	}
	if s.state.Clients == nil {
		s.state.Clients = map[string]*mdropClient{}
	}
	var sets []PrototypeSet
	for _, r := range ok {
		st := s.state.Clients[r.ClientID]
		if st == nil {
			st = &mdropClient{}
			s.state.Clients[r.ClientID] = st
		}
		for m := range 2 {
			if !r.Res.Modalities.Has(m) {
				continue
			}
			idx := encoderIndex(s.Layout, m)
			var u []float32
			for _, i := range idx {
				for j, v := range global[i].Data {
					u = append(u, v-r.Res.Params[i].Data[j])
				}
			}
			st.Update[m] = u
			s.forget(m, r.ClientID)
		}
		st.Ratio, st.Samples = selection(r).Ratio(), r.Res.NumSamples
		st.Known = !math.IsNaN(st.Ratio)
		if !st.Known {
			st.Ratio = 0
		}
		sets = append(sets, selection(r).Prototypes)
	}
	g, err := AggregatePrototypes(sets, s.state.Global, k, d)
	if err != nil {
		return nil, err
	}
	s.state.Global = g
	return next, nil
}

// prototypeShape returns K and D from the layout (a self projector's last
// layer and the classifier of modality 0).
func (s *FedMDrop) prototypeShape() (k, d int) { return PrototypeShape(s.Layout) }

// MarshalState implements Stateful: the global prototypes and, per
// client, its last updates, ratio and sample count.
func (s *FedMDrop) MarshalState() ([]byte, error) {
	b, err := json.Marshal(&s.state)
	if err != nil {
		return nil, fmt.Errorf("fl: fedmdrop state: %w", err)
	}
	return b, nil
}

// UnmarshalState implements Stateful.
func (s *FedMDrop) UnmarshalState(b []byte) error {
	var st mdropState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("fl: fedmdrop state: %w", err)
	}
	k, d := s.prototypeShape()
	if g := st.Global; g != nil {
		for m := range 2 {
			if g.Centers[m] != nil && (len(g.Centers[m]) != k*d || len(g.Counts[m]) != k) {
				return fmt.Errorf("fl: fedmdrop state: prototypes of modality %d do not match %d classes x %d", m, k, d)
			}
		}
	}
	for id, c := range st.Clients {
		if c == nil {
			return fmt.Errorf("fl: fedmdrop state: client %q without data", id)
		}
		for m := range 2 {
			if n := len(c.Update[m]); n != 0 && n != s.encoderSize(m) {
				return fmt.Errorf("fl: fedmdrop state: client %q update of modality %d has %d values, want %d", id, m, n, s.encoderSize(m))
			}
		}
	}
	s.state = st
	s.dist = [2]map[[2]string]float64{}
	return nil
}

func (s *FedMDrop) encoderSize(m int) int {
	n := 0
	for _, i := range encoderIndex(s.Layout, m) {
		n += s.Layout[i].Size()
	}
	return n
}

// ratioSummary returns the sample-weighted mean and the largest of the
// known (non-NaN) ratios, NaN if none.
func ratioSummary(ratio []float64, samples []int) (mean, largest float64) {
	num, den := 0.0, 0.0
	largest = math.NaN()
	for k, r := range ratio {
		if math.IsNaN(r) {
			continue
		}
		num += float64(samples[k]) * r
		den += float64(samples[k])
		if math.IsNaN(largest) || r > largest {
			largest = r
		}
	}
	if den == 0 {
		return math.NaN(), largest
	}
	return num / den, largest
}

var (
	_ Strategy = (*FedMDrop)(nil)
	_ Stateful = (*FedMDrop)(nil)
)

// selection returns the ModalityReport of a FedMDrop client's result, or
// nil.
func selection(r Result) *ModalityReport {
	if rep, ok := r.Res.Metrics.Report.(*MDropReport); ok {
		return rep.Selection
	}
	return nil
}

// mdropHook is FedMDrop's client report (prototypes and per-modality
// accuracy under the trained model).
type mdropHook struct {
	rep *MDropReport
}

// prepare implements preparer.
func (h *mdropHook) prepare(r *localRound) error {
	r.metrics.Report = h.rep
	return nil
}

// finish implements finisher.
func (h *mdropHook) finish(r *localRound, trained model.Params, res *FitRes) error {
	var err error
	h.rep.Selection, err = r.c.mdropReport(trained)
	return err
}
