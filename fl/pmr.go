package fl

import (
	"fmt"
	"math"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/model"
)

// PMR (Fan, Xu, Wang, Wang, Guo, "PMR: Prototypical Modal Rebalance for
// Multimodal Learning", CVPR 2023) in local training. Its server side is
// FedAvg's (ModalityAware). On a multimodal client, at the start of every
// local epoch, the class prototypes of each modality are recomputed with
// the current local model from all of the client's samples,
//
//	c^m_k = mean of z^m = S_m(E_m(x^m)) over the client's samples of class k,
//
// blended with the previous epoch's as the authors' code does
// (c <- (1-Momentum) c_new + Momentum c_old, from the second epoch of a
// round on). Each batch then adds the prototype loss of model.Prototypes:
// the prototypical cross-entropy of the slow modality weighted by
// beta = Alpha*max(rho-1, 0) (or Alpha*[rho > 1] with Binary, the authors'
// code), and, in the first EntropyRounds rounds, minus Gamma times the
// prototypical entropy of the fast modality, with rho the batch's ratio of
// the modalities' summed prototype-based true-class probabilities.
// Unimodal clients train as in FedAvg.

// PMROptions are PMR's hyper-parameters.
type PMROptions struct {
	// Alpha scales the slow modality's prototypical cross-entropy.
	Alpha float64
	// Gamma weights the fast modality's prototypical entropy regulariser.
	Gamma float64
	// EntropyRounds is the number of first rounds with the entropy
	// regulariser (the paper's "early training stage").
	EntropyRounds int
	// Binary uses the coefficient Alpha*[rho > 1] of the authors' code
	// instead of the rho-scaled Alpha*max(rho-1, 0).
	Binary bool
	// Momentum blends each epoch's prototypes with the previous epoch's.
	Momentum float64
}

// PMRFit is a client's PMR recipe for one round (FitConfig.Recipe): the
// prototype loss on multimodal clients.
type PMRFit struct {
	// Alpha, Gamma (0 after the entropy rounds), Binary and Momentum as in
	// PMROptions.
	Alpha, Gamma, Momentum float64
	Binary                 bool
}

func (c PMRFit) validate(nm, k, d int) error {
	return finite("PMR alpha", c.Alpha, "PMR gamma", c.Gamma, "PMR momentum", c.Momentum)
}

// hooks implements Recipe: the prototype loss, whose statistics are the
// round's report.
func (c PMRFit) hooks(multi bool) []roundHook {
	rep := &ProtoMetrics{}
	return []roundHook{&protoHook{recipe: c, rep: rep, report: rep}}
}

// protoLoss implements protoRecipe: PMR's loss on multimodal clients.
func (c PMRFit) protoLoss(has data.Mask) *model.ProtoLoss {
	if !(has.Has(0) && has.Has(1)) {
		return nil
	}
	return &model.ProtoLoss{Alpha: c.Alpha, Gamma: c.Gamma, Binary: c.Binary}
}

// setPrototypes implements protoRecipe: PMR recomputes the client's own
// prototypes from the current local model every epoch, blended with the
// previous epoch's (prev) by Momentum.
func (c PMRFit) setPrototypes(cl *LocalClient, local *model.Local, has data.Mask, ep int, prev *model.Prototypes) error {
	params, err := local.Params()
	if err != nil {
		return err
	}
	own, _, err := cl.prototypes(params, has)
	if err != nil {
		return err
	}
	if ep > 0 && c.Momentum > 0 {
		mom := float32(c.Momentum)
		for m := range 2 {
			for i := range own.Centers[m] {
				own.Centers[m][i] = (1-mom)*own.Centers[m][i] + mom*prev.Centers[m][i]
			}
		}
	}
	*prev = own
	return local.SetPrototypes(own)
}

// prototypesWholeSamples is the Method.WholeSamples reason of the
// methods built on class prototypes (PMR, FedMDrop).
const prototypesWholeSamples = "its prototypes assume that every sample of a multimodal client has both modalities"

// pmrMethod registers PMR (methods).
var pmrMethod = Method{Name: "pmr", SumsOnly: true,
	TwoModalities: "PMR weights its prototype losses by the ratio of the two modalities' prototype scores (Fan et al., CVPR 2023, two modalities)",
	Recipe:        PMRFit{},
	Report:        &ProtoMetrics{},
	WholeSamples:  prototypesWholeSamples,
	Server: func(base *ModalityAware, cfg *config.Config) Strategy {
		p := cfg.PMR
		return &PMR{ModalityAware: base, Options: PMROptions{
			Alpha: p.Alpha, Gamma: p.Gamma, EntropyRounds: p.EntropyRounds,
			Binary: p.Coefficient == "binary", Momentum: p.Momentum,
		}}
	},
	Doc: "PMR (Fan et al., CVPR 2023): prototypical cross-entropy on the slow modality, entropy regulariser on the fast one"}

// PMR is PMR's server side: ModalityAware, with the round's PMR recipe
// (the entropy regulariser only in the first EntropyRounds).
type PMR struct {
	*ModalityAware
	Options PMROptions
}

// ConfigureFit implements Strategy.
func (p *PMR) ConfigureFit(round int, global model.Params, clients []ClientInfo) ([]Instruction, error) {
	ins, err := p.ModalityAware.ConfigureFit(round, global, clients)
	for k := range ins {
		ins[k].Ins.Config.Recipe = pmrFit(p.Options, round)
	}
	return ins, err
}

var (
	_ Strategy = (*PMR)(nil)
	_ Stateful = (*PMR)(nil)
)

// pmrFit returns round's PMR recipe.
func pmrFit(o PMROptions, round int) PMRFit {
	f := PMRFit{Alpha: o.Alpha, Binary: o.Binary, Momentum: o.Momentum}
	if round <= o.EntropyRounds {
		f.Gamma = o.Gamma
	}
	return f
}

// ProtoMetrics summarises the prototype loss of a client's local training.
type ProtoMetrics struct {
	// RhoSum sums the batches' prototype imbalance ratios rho (modality 0
	// over modality 1) over Batches multimodal batches; FirstFast counts
	// those with rho > 1, where modality 1 got the prototype loss.
	RhoSum    float64
	Batches   int
	FirstFast int
}

// validate implements Report.
func (p *ProtoMetrics) validate(_ MetricBounds, batches int) error {
	if err := count("prototype batches", p.Batches, batches); err != nil {
		return err
	}
	if err := count("prototype first-fast batches", p.FirstFast, p.Batches); err != nil {
		return err
	}
	return sum("prototype rho sum", p.RhoSum, false)
}

// add records one step's prototype statistics (multimodal steps only).
func (p *ProtoMetrics) add(st model.StepStats, has data.Mask) {
	if !(has.Has(0) && has.Has(1)) || st.Proto.SumV <= 0 {
		return
	}
	rho := st.Proto.SumA / st.Proto.SumV
	p.RhoSum += rho
	p.Batches++
	if rho > 1 {
		p.FirstFast++
	}
}

// protoRecipe is a recipe with a prototype loss (PMR's, FedMDrop's modal
// enhancement loss), run by protoHook.
type protoRecipe interface {
	// protoLoss returns the loss of local training on the modalities has,
	// or nil.
	protoLoss(has data.Mask) *model.ProtoLoss
	// setPrototypes sets the prototypes of local epoch ep; prev holds the
	// previous epoch's.
	setPrototypes(c *LocalClient, local *model.Local, has data.Mask, ep int, prev *model.Prototypes) error
}

// prototypes returns the client's class prototypes of the modalities has
// under params, the class counts, and, per modality, the accuracy of the
// nearest-prototype classifier on the client's samples (NaN for a modality
// not in has).
func (c *LocalClient) prototypes(params model.Params, has data.Mask) (model.Prototypes, [2]float64, error) {
	var p model.Prototypes
	acc := [2]float64{nan(), nan()}
	b := c.gather(c.index)
	for m := range 2 {
		if !has.Has(m) {
			b.X[m] = nil
		}
	}
	emb, err := c.engine.Embed(params, b.X, len(b.Labels))
	if err != nil {
		return p, acc, fmt.Errorf("fl: prototypes: %w", err)
	}
	arch := c.engine.Arch()
	k, d := arch.NumClasses, arch.EmbedDim
	for m := range 2 {
		if emb[m] == nil {
			continue
		}
		centers, count, err := model.ClassPrototypes(emb[m], b.Labels, k, d)
		if err != nil {
			return p, acc, err
		}
		p.Centers[m] = centers
		p.Present[m] = make([]bool, k)
		for cl, n := range count {
			p.Present[m][cl] = n > 0
		}
		acc[m] = nearestPrototypeAccuracy(emb[m], b.Labels, centers, p.Present[m], d)
	}
	return p, acc, nil
}

// nearestPrototypeAccuracy is the share of rows (row-major [n, d] in emb)
// whose nearest present prototype (Euclidean) is their label's.
func nearestPrototypeAccuracy(emb []float32, labels []int, centers []float32, present []bool, d int) float64 {
	if len(labels) == 0 {
		return nan()
	}
	right := 0
	for i, y := range labels {
		best, bestD := -1, 0.0
		for k, ok := range present {
			if !ok {
				continue
			}
			s := 0.0
			for j := range d {
				v := float64(emb[i*d+j] - centers[k*d+j])
				s += v * v
			}
			if best < 0 || s < bestD {
				best, bestD = k, s
			}
		}
		if best == y {
			right++
		}
	}
	return float64(right) / float64(len(labels))
}

func nan() float64 { return math.NaN() }

// protoHook is the prototype loss of PMR and FedMDrop: the loss's settings,
// the prototypes at each epoch's start, and the loss's measurements.
type protoHook struct {
	recipe protoRecipe
	// rep collects the loss's statistics; report, if set, is the round's
	// report (FitMetrics.Report).
	rep    *ProtoMetrics
	report Report
	on     bool
	prev   model.Prototypes // the previous epoch's, for PMR's momentum
}

// prepare implements preparer.
func (h *protoHook) prepare(r *localRound) error {
	if h.report != nil {
		r.metrics.Report = h.report
	}
	p := h.recipe.protoLoss(r.has)
	h.on = p != nil
	if h.on {
		r.tc.Terms = append(r.tc.Terms, model.PrototypeLoss(*p))
	}
	return nil
}

// startEpoch implements epochStarter.
func (h *protoHook) startEpoch(r *localRound, ep int) error {
	if !h.on {
		return nil
	}
	return h.recipe.setPrototypes(r.c, r.local, r.has, ep, &h.prev)
}

// recordStep implements stepRecorder.
func (h *protoHook) recordStep(r *localRound, st model.StepStats) {
	h.rep.add(st, r.has)
}
