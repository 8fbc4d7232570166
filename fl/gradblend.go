package fl

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/model"
)

// gbMethod registers fedgb (methods).
var gbMethod = Method{Name: "fedgb", SumsOnly: true,
	Recipe: GBFit{},
	Report: &GBLosses{},
	Server: func(base *ModalityAware, cfg *config.Config) Strategy {
		return &GradBlend{Base: base, Smoothing: cfg.FedGB.Smoothing, Floor: cfg.FedGB.Floor}
	},
	CheckSettings: func(cfg *config.Config) error {
		if cfg.FedCMI.C1 <= 0 {
			return &config.FieldError{Path: "fedcmi.c1", Err: errors.New("fedgb scales the self heads' losses, and with c1 = 0 they have none to compare: must be > 0")}
		}
		return nil
	},
	CheckData: func(cfg *config.Config, nm int) error {
		if nh := 1 + nm; cfg.FedGB.Floor*float64(nh) > 1 {
			return &config.FieldError{Path: "fedgb.floor", Err: fmt.Errorf("%v: the %d heads of %d modalities cannot each keep that share; at most 1/%d", cfg.FedGB.Floor, nh, nm, nh)}
		}
		return nil
	},
	Doc: "fedgb: gradient blending (Wang et al., CVPR 2020): the fused and self heads' loss weights from their generalisation and overfitting, measured on the clients' data before and after local training and pooled by the server"}

// GradBlend is fedgb, gradient blending (Wang, Tran, Feiszli, "What Makes
// Training Multi-Modal Classification Networks Hard?", CVPR 2020) in
// federated form. The paper weights each head's loss by its
// overfitting-to-generalisation behaviour between two checkpoints n and
// n+N: with G = L_val(n) − L_val(n+N) (how much the validation loss fell)
// and ΔO = O(n+N) − O(n), O = L_val − L_train (how much the gap between
// validation and training loss grew), the weight of head k is
// w_k ∝ G_k / ΔO_k², normalised to sum to 1. A head that keeps
// generalising without overfitting more gets more weight.
//
// The heads are those of a multimodal client's loss: the fused head F and
// the self heads C_m of the M modalities (model.TrainConfig.HeadWeights).
//
// Federated choices (docs/methods.md, fedgb), with no data set aside:
//   - A multimodal client reports, per head, its mean loss on its training
//     rows under the model it received, before training (data that model
//     has not been fitted to this round: the validation loss V of the
//     global model) and after its local training (the training loss T it
//     reached).
//   - The server pools them per round over the clients, weighted by rows:
//     V_r and T_r. Between rounds r−1 and r (the checkpoints are the
//     global models): G = V_{r−1} − V_r, O_r = V_r − T_{r−1} (the
//     validation loss of the model that round r−1's training produced,
//     against the training loss that training reached) and
//     ΔO = O_r − O_{r−1}.
//   - G and ΔO are smoothed across rounds (weight Smoothing on the past),
//     G is floored at 0 (a head whose validation loss rose gets the least
//     weight), ΔO² at gbMinDO2, and every head keeps at least Floor of the
//     total.
//   - The weights scale the shared loss's terms (1, c1, ..., c1) relative to
//     each other, the head of the largest share keeping its shared-loss
//     weight: head k's term is multiplied by w_k / max_j w_j. No head is
//     ever weighted above the shared loss (a fused head at 5 times its
//     weight diverged at lr 0.02), so gradient blending here only takes
//     weight away. Until three rounds have reported, clients train with
//     exactly FedAvg's loss.
//   - Unimodal clients keep their loss (one head); they report nothing, and
//     neither do clients missing some modality (with three or more), whose
//     absent heads have no loss to measure.
type GradBlend struct {
	// Base samples clients, writes their instructions and aggregates.
	Base *ModalityAware
	// Smoothing is the weight of the past in the running G and ΔO, in
	// [0, 1).
	Smoothing float64
	// Floor is the smallest share of the total weight any head keeps, in
	// [0, 1/(1+M)].
	Floor float64

	state gbState
}

// gbMinDO2 bounds ΔO² from below: a head whose overfitting did not change
// at all would otherwise get all the weight.
const gbMinDO2 = 1e-4

// GBFit is fedgb's recipe (FitConfig.Recipe): it asks clients holding
// every modality for the heads' losses.
type GBFit struct {
	// HeadWeights, if not nil, weights the loss's heads
	// (model.TrainConfig.HeadWeights): the fused head, then each self head.
	HeadWeights []float64
}

// hooks implements Recipe: gradient blending weights multimodal steps.
func (c GBFit) hooks(multi bool) []roundHook {
	if !multi {
		return nil
	}
	return []roundHook{&gbHook{weights: c.HeadWeights}}
}

// validate implements Recipe: the head weights of a model of nm
// modalities are none, or 1 + nm finite, non-negative values.
func (c GBFit) validate(nm, k, d int) error {
	if c.HeadWeights != nil && len(c.HeadWeights) != 1+nm {
		return fmt.Errorf("fl: recipe: %d head weights, want %d", len(c.HeadWeights), 1+nm)
	}
	for i, w := range c.HeadWeights {
		if !(w >= 0) || math.IsInf(w, 0) {
			return fmt.Errorf("fl: recipe: head weight %d is %v", i, w)
		}
	}
	return nil
}

// GBLosses is what a client measured for fedgb: per head (fused, then
// each modality's self head), the mean cross-entropy on its N training
// rows under the received model (Before) and after training (After).
// N = 0: not measured.
type GBLosses struct {
	Before, After []float64
	N             int
}

// gbMaxLoss bounds each loss of a GBLosses. A mean cross-entropy is at
// least 0 and, for any model still worth averaging, a few units (log k at
// chance); above 1e6 the logits are a million apart, a diverged model or
// a forged report. The bound also keeps the pooled row-weighted sums far
// from overflowing (rows * 1e6).
const gbMaxLoss = 1e6

// validate implements Report: N in 0..the client's samples and, if
// measured, 1 + nm losses before and after. Their values are checked
// where they are pooled (pooledLosses leaves a report with a loss outside
// [0, gbMaxLoss] out): a diverged global model gives every client such
// losses, which should cost the round its blending estimate, not its
// updates.
func (l *GBLosses) validate(b MetricBounds, _ int) error {
	if err := l.checkShape(1+b.Modalities, b.Samples); err != nil {
		return fmt.Errorf("fl: metrics: %w", err)
	}
	return nil
}

// checkShape returns why l, from a client of n samples, is not a report
// of nh heads' losses: N outside 0..n or, if measured (N > 0), other than
// nh losses before and after.
func (l *GBLosses) checkShape(nh, n int) error {
	if l.N < 0 || l.N > n {
		return fmt.Errorf("fedgb rows %d, want 0..%d", l.N, n)
	}
	if l.N > 0 && (len(l.Before) != nh || len(l.After) != nh) {
		return fmt.Errorf("fedgb losses of %d and %d heads, want %d", len(l.Before), len(l.After), nh)
	}
	return nil
}

// check is checkShape, and each loss in [0, gbMaxLoss].
func (l *GBLosses) check(nh, n int) error {
	if err := l.checkShape(nh, n); err != nil {
		return err
	}
	if l.N == 0 {
		return nil
	}
	for k := range nh {
		for _, x := range [...]struct {
			when string
			v    float64
		}{{"before", l.Before[k]}, {"after", l.After[k]}} {
			if !(x.v >= 0 && x.v <= gbMaxLoss) {
				return fmt.Errorf("fedgb loss of head %d %s training is %v, want 0..%g", k, x.when, x.v, gbMaxLoss)
			}
		}
	}
	return nil
}

// gbState is what GradBlend carries across rounds, per head (1 + M).
type gbState struct {
	// V and T are the last reporting round's pooled losses; O its
	// overfitting gap (HaveO), G and DO the running estimates (HaveGB).
	V, T         []float64
	O, G, DO     []float64
	Have, HaveO  bool
	HaveGB       bool
	Weights      []float64 // shares, sum 1; nil until HaveGB
	RoundsPooled int
}

// ConfigureFit implements Strategy: Base's instructions, asking for the
// losses and carrying the current head weights.
func (g *GradBlend) ConfigureFit(round int, global model.Params, clients []ClientInfo) ([]Instruction, error) {
	ins, err := g.Base.ConfigureFit(round, global, clients)
	w := g.headWeights()
	for k := range ins {
		ins[k].Ins.Config.Recipe = GBFit{HeadWeights: w}
	}
	return ins, err
}

// headWeights returns the factors of the next round's loss terms (fused,
// then each self head, relative to the shared loss's 1, c1, ..., c1): each
// head's share over the largest share. nil (the shared loss) before the
// first estimate.
func (g *GradBlend) headWeights() []float64 {
	if !g.state.HaveGB || len(g.state.Weights) == 0 {
		return nil
	}
	top := slices.Max(g.state.Weights)
	if !(top > 0) {
		return nil
	}
	w := make([]float64, len(g.state.Weights))
	for k, s := range g.state.Weights {
		w[k] = s / top
	}
	return w
}

// AggregateFit implements Strategy: Base's aggregate, and the round's
// pooled losses into the running estimate and the weights.
func (g *GradBlend) AggregateFit(round int, global model.Params, results []Result, failures []Failure) (model.Params, error) {
	next, err := g.Base.AggregateFit(round, global, results, failures)
	if err != nil {
		return next, err
	}
	log := g.Base.logger()
	v, t, rows := pooledLosses(results, 1+g.Base.numModalities(), log, round)
	if rows == 0 {
		return next, nil
	}
	g.state.update(v, t, g.Smoothing, g.Floor)
	if g.state.HaveGB {
		log.Info("fedgb: head weights", "round", round, "shares", g.state.Weights)
	}
	return next, nil
}

// update folds a round's pooled validation-like losses v and training
// losses t into the state.
func (s *gbState) update(v, t []float64, smoothing, floor float64) {
	s.RoundsPooled++
	if s.Have {
		o := make([]float64, len(v))
		for k := range o {
			o[k] = v[k] - s.T[k]
		}
		if s.HaveO {
			g, do := make([]float64, len(o)), make([]float64, len(o))
			for k := range o {
				gk, dk := s.V[k]-v[k], o[k]-s.O[k]
				if s.HaveGB {
					gk = smoothing*s.G[k] + (1-smoothing)*gk
					dk = smoothing*s.DO[k] + (1-smoothing)*dk
				}
				g[k], do[k] = gk, dk
			}
			s.G, s.DO = g, do
			s.HaveGB = true
			s.Weights = blendWeights(s.G, s.DO, floor)
		}
		s.O, s.HaveO = o, true
	}
	s.V, s.T, s.Have = v, t, true
}

// blendWeights returns the shares w_k ∝ max(G_k, 0) / max(ΔO_k², gbMinDO2),
// normalised to 1, each at least floor (then renormalised): all equal when
// no head generalises.
func blendWeights(g, do []float64, floor float64) []float64 {
	raw := make([]float64, len(g))
	sum := 0.0
	for k := range raw {
		raw[k] = max(g[k], 0) / max(do[k]*do[k], gbMinDO2)
		sum += raw[k]
	}
	w := make([]float64, len(g))
	for k := range w {
		if sum > 0 {
			w[k] = raw[k] / sum
		} else {
			w[k] = 1.0 / float64(len(w))
		}
	}
	// Raise the heads below the floor and take what they gain from the
	// others, in proportion to what those have above the floor.
	below, above := 0.0, 0.0
	for _, x := range w {
		if x < floor {
			below += floor - x
		} else {
			above += x - floor
		}
	}
	if below > 0 && above > 0 {
		for k, x := range w {
			if x < floor {
				w[k] = floor
			} else {
				w[k] = x - below*(x-floor)/above
			}
		}
	}
	return w
}

// pooledLosses returns the row-weighted mean losses of the results that
// measured them, and the rows behind them; impossible reports (GBLosses
// check, against the rows trained on) are left out with a warning. The
// check's bound on each loss is what keeps the sums finite: they are
// saved with the state, and JSON has no infinity.
func pooledLosses(results []Result, nh int, log *slog.Logger, round int) (v, t []float64, rows int) {
	v, t = make([]float64, nh), make([]float64, nh)
	for _, res := range results {
		l, ok := res.Res.Metrics.Report.(*GBLosses)
		if !ok || l.N == 0 {
			continue
		}
		if err := l.check(nh, res.Res.NumSamples); err != nil {
			log.Warn("fedgb: ignored a loss report", "round", round, "client", res.ClientID, "err", err)
			continue
		}
		for k := range nh {
			v[k] += float64(l.N) * l.Before[k]
			t[k] += float64(l.N) * l.After[k]
		}
		rows += l.N
	}
	if rows > 0 {
		for k := range nh {
			v[k] /= float64(rows)
			t[k] /= float64(rows)
		}
	}
	return v, t, rows
}

// gbSaved is GradBlend's checkpointed state.
type gbSaved struct {
	Base  json.RawMessage `json:"base"`
	State gbState         `json:"state"`
}

// MarshalState implements Stateful: the running estimate (and Base's
// state).
func (g *GradBlend) MarshalState() ([]byte, error) {
	base, err := g.Base.MarshalState()
	if err != nil {
		return nil, err
	}
	if base == nil {
		base = []byte("null")
	}
	b, err := json.Marshal(gbSaved{Base: base, State: g.state})
	if err != nil {
		return nil, fmt.Errorf("fl: fedgb state: %w", err)
	}
	return b, nil
}

// UnmarshalState implements Stateful.
func (g *GradBlend) UnmarshalState(b []byte) error {
	var saved gbSaved
	if err := json.Unmarshal(b, &saved); err != nil {
		return fmt.Errorf("fl: fedgb state: %w", err)
	}
	for _, w := range saved.State.Weights {
		if !(w >= 0 && w <= 1) {
			return fmt.Errorf("fl: fedgb state: head weight %v outside [0, 1]", w)
		}
	}
	st := saved.State
	nh := 1 + g.Base.numModalities()
	for _, v := range [][]float64{st.V, st.T, st.O, st.G, st.DO, st.Weights} {
		if v != nil && len(v) != nh {
			return fmt.Errorf("fl: fedgb state: %d heads, the model has %d", len(v), nh)
		}
	}
	if err := g.Base.UnmarshalState(saved.Base); err != nil {
		return err
	}
	g.state = saved.State
	return nil
}

var (
	_ Strategy = (*GradBlend)(nil)
	_ Stateful = (*GradBlend)(nil)
)

// gbLosses returns the mean cross-entropy of the fused head and each self
// head on the rows idx under params (fedgb); idx must hold every
// modality, so that every head reads real inputs (gbHook.rows).
func (c *LocalClient) gbLosses(params model.Params, idx []int) ([]float64, error) {
	b := c.gather(idx)
	pred, err := c.engine.Predict(params, b.X, len(idx))
	if err != nil {
		return nil, err
	}
	k := c.set.NumClasses
	heads := append([][]float32{pred.LogitsFused}, pred.Logits...)
	out := make([]float64, len(heads))
	for h, logits := range heads {
		sum := 0.0
		for i, y := range b.Labels {
			sum += crossEntropyRow(logits[i*k:(i+1)*k], y)
		}
		out[h] = sum / float64(len(idx))
	}
	return out, nil
}

// crossEntropyRow is −log softmax(logits)[y], computed stably.
func crossEntropyRow(logits []float32, y int) float64 {
	m := math.Inf(-1)
	for _, l := range logits {
		m = max(m, float64(l))
	}
	s := 0.0
	for _, l := range logits {
		s += math.Exp(float64(l) - m)
	}
	return m + math.Log(s) - float64(logits[y])
}

// gbHook is fedgb's client side: the head weights, and each head's loss
// before and after training on a client holding every modality.
type gbHook struct {
	weights []float64
	rep     *GBLosses // nil: not measured
	rows    []int     // the training rows measured
}

// measures reports whether the client of r measures the heads' losses:
// with every modality, so that every head reads real inputs, on the
// training rows that hold every modality.
func (h *gbHook) measures(r *localRound) bool {
	all := data.Full(len(r.c.set.Modalities))
	if r.has != all {
		return false
	}
	h.rows = r.c.rowsHolding(r.train, all)
	return len(h.rows) > 0
}

// prepare implements preparer.
func (h *gbHook) prepare(r *localRound) error {
	r.tc.HeadWeights = h.weights
	if !h.measures(r) {
		return nil
	}
	h.rep = &GBLosses{}
	r.metrics.Report = h.rep
	var err error
	h.rep.Before, err = r.c.gbLosses(r.start, h.rows)
	return err
}

// finish implements finisher.
func (h *gbHook) finish(r *localRound, trained model.Params, res *FitRes) error {
	if h.rep == nil {
		return nil
	}
	var err error
	h.rep.After, err = r.c.gbLosses(trained, h.rows)
	h.rep.N = len(h.rows)
	return err
}
