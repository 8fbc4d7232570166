package fl

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/model"
)

// Server optimizers (ServerOptions.Optimizer).
const (
	OptimizerSGD     = "sgd"
	OptimizerAvgM    = "avgm"
	OptimizerAdam    = "adam"
	OptimizerYogi    = "yogi"
	OptimizerAdagrad = "adagrad"
)

// OptimizerNames lists the known server optimizers.
var OptimizerNames = []string{OptimizerSGD, OptimizerAvgM, OptimizerAdam, OptimizerYogi, OptimizerAdagrad}

// ServerOptions configure what the server makes of a round's updates
// beyond plain modality-aware averaging: a robust aggregator or
// client-level differential privacy, then a server optimizer. The zero
// aggregator and optimizer are not valid; see Plain.
type ServerOptions struct {
	// Optimizer is one of OptimizerNames; LR its learning rate, Momentum
	// FedAvgM's, Beta1, Beta2 and Tau those of the adaptive optimizers
	// (Reddi et al. 2021, Algorithm 2).
	Optimizer                       string
	LR, Momentum, Beta1, Beta2, Tau float64
	// Robust is the aggregator.
	Robust RobustOptions
	// DP is client-level differential privacy (off if DP.Clip is 0).
	DP DPOptions
	// Seed drives the server's privacy noise.
	Seed uint64
}

// Plain reports whether the options are FedAvg's: SGD with learning rate
// 1 on the plain mean without privacy, which is AggregateModalityAware
// itself (no ServerSide is needed).
func (o ServerOptions) Plain() bool {
	return o.Optimizer == OptimizerSGD && o.LR == 1 && o.Robust.Aggregator == AggregatorMean && !o.DP.Enabled()
}

// Validate checks the options for rounds of up to perRound clients.
func (o ServerOptions) Validate(perRound int) error {
	if !slices.Contains(OptimizerNames, o.Optimizer) {
		return fmt.Errorf("fl: unknown server optimizer %q (known: %v)", o.Optimizer, OptimizerNames)
	}
	switch {
	case !(o.LR > 0):
		return fmt.Errorf("fl: server learning rate %v must be > 0", o.LR)
	case !(o.Momentum >= 0 && o.Momentum < 1):
		return fmt.Errorf("fl: server momentum %v outside [0, 1)", o.Momentum)
	case !(o.Beta1 >= 0 && o.Beta1 < 1), !(o.Beta2 >= 0 && o.Beta2 < 1):
		return fmt.Errorf("fl: server betas %v, %v outside [0, 1)", o.Beta1, o.Beta2)
	case !(o.Tau > 0):
		return fmt.Errorf("fl: server tau %v must be > 0", o.Tau)
	}
	if err := o.Robust.Validate(perRound); err != nil {
		return err
	}
	if o.DP.Enabled() && o.Robust.Aggregator != AggregatorMean {
		return fmt.Errorf("fl: differential privacy needs the mean aggregator, not %s (its sensitivity analysis is the mean's)", o.Robust.Aggregator)
	}
	return o.DP.Validate()
}

// DPOptions configure client-level DP-FedAvg (McMahan, Ramage, Talwar,
// Zhang 2018): every client's update (its trained model minus the global
// one, over the tensors it holds) is clipped to L2 norm Clip, the clipped
// updates of each modality group are summed with Gaussian noise of
// standard deviation NoiseMultiplier * Clip, and the sum is divided by the
// group's number of clients. With adaptive clipping (Andrew, Thakkar,
// McMahan, Ramaswamy 2021) Clip is only the initial bound.
type DPOptions struct {
	// Clip is the L2 bound (0: no differential privacy).
	Clip float64
	// NoiseMultiplier is z, the noise's standard deviation over the clip.
	NoiseMultiplier float64
	// ClientNoise has every client clip its own update and add its share
	// of the noise (standard deviation z*Clip/sqrt(n) for a group of n, so
	// that the sum carries z*Clip); otherwise the server clips and adds.
	ClientNoise bool
	// Adaptive moves the bound geometrically towards the TargetQuantile of
	// the update norms with rate ClipLR, from the count of unclipped
	// updates noised with standard deviation CountStd.
	Adaptive                         bool
	TargetQuantile, ClipLR, CountStd float64
	// Delta is the accountant's delta.
	Delta float64
}

// Enabled reports whether differential privacy is on.
func (o DPOptions) Enabled() bool { return o.Clip > 0 }

// Validate checks the options (all of them only when enabled).
func (o DPOptions) Validate() error {
	if !(o.Clip >= 0) {
		return fmt.Errorf("fl: dp clip %v must be >= 0", o.Clip)
	}
	if !(o.NoiseMultiplier >= 0) {
		return fmt.Errorf("fl: dp noise multiplier %v must be >= 0", o.NoiseMultiplier)
	}
	if !o.Enabled() {
		return nil
	}
	if !(o.Delta > 0 && o.Delta < 1) {
		return fmt.Errorf("fl: dp delta %v outside (0, 1)", o.Delta)
	}
	if o.Adaptive {
		switch {
		case !(o.TargetQuantile >= 0 && o.TargetQuantile <= 1):
			return fmt.Errorf("fl: dp target quantile %v outside [0, 1]", o.TargetQuantile)
		case !(o.ClipLR > 0):
			return fmt.Errorf("fl: dp clip learning rate %v must be > 0", o.ClipLR)
		case !(o.CountStd >= 0):
			return fmt.Errorf("fl: dp count noise %v must be >= 0", o.CountStd)
		case o.NoiseMultiplier > 0 && !(o.NoiseMultiplier < 2*o.CountStd):
			return fmt.Errorf("fl: dp noise multiplier %v must be < 2 * count noise %v with adaptive clipping (Andrew et al. 2021 split the noise between the update and the count)", o.NoiseMultiplier, o.CountStd)
		}
	}
	return nil
}

// UpdateMultiplier returns the noise multiplier of the updates: z, or
// with adaptive clipping (z^-2 - (2 CountStd)^-2)^(-1/2), so that updates
// and count together are the Gaussian mechanism of multiplier z (Andrew et
// al. 2021, Theorem 1).
func (o DPOptions) UpdateMultiplier() float64 {
	z := o.NoiseMultiplier
	if !o.Adaptive || z == 0 {
		return z
	}
	return 1 / math.Sqrt(1/(z*z)-1/(4*o.CountStd*o.CountStd))
}

// DPFit is a client's share of client-side differential privacy in a
// round (FitConfig.DP).
type DPFit struct {
	// Clip is the round's L2 bound of the client's update.
	Clip float64
	// NoiseStd is the standard deviation of the noise the client adds to
	// each value of a tensor of each group: NoiseStd[m] for modality m's,
	// NoiseStd[fusionGroup] (the last) for the fusion head's.
	NoiseStd [numGroups]float64
	// CountStd is the standard deviation of the noise the client adds to
	// its unclipped indicator (FitMetrics.DPUnclipped).
	CountStd float64
}

// validate checks a share received from a server that may be hostile:
// a finite positive Clip and finite non-negative standard deviations (0:
// no noise). A NaN there would have the client send a NaN model, for
// which the server would then blame the client.
func (dp *DPFit) validate() error {
	if !(dp.Clip > 0) || math.IsInf(dp.Clip, 0) {
		return fmt.Errorf("fl: recipe: dp clip %v, want finite and > 0", dp.Clip)
	}
	for g, std := range dp.NoiseStd {
		if !(std >= 0) || math.IsInf(std, 0) {
			return fmt.Errorf("fl: recipe: dp noise std of the %s group is %v, want finite and >= 0", groupName(g), std)
		}
	}
	if !(dp.CountStd >= 0) || math.IsInf(dp.CountStd, 0) {
		return fmt.Errorf("fl: recipe: dp count noise std %v, want finite and >= 0", dp.CountStd)
	}
	return nil
}

// ServerSide applies ServerOptions to a round's updates. A strategy with
// a ServerSide (ModalityAware.Server) aggregates through it; the strategy
// returned by WithServerSide carries its state and the clients' share of
// privacy. It keeps the optimizer's moments and the adaptive clip between
// rounds.
type ServerSide struct {
	Options ServerOptions
	Layout  []model.ParamInfo
	// Logger receives the privacy measurements; nil uses slog.Default().
	Logger *slog.Logger

	m, v model.Params // optimizer moments (nil before the first step)
	clip float64      // the current clip bound (0: Options.DP.Clip)
}

// NewServerSide validates the options for rounds of up to perRound
// clients and returns a ServerSide for a model of the layout.
func NewServerSide(o ServerOptions, layout []model.ParamInfo, perRound int, log *slog.Logger) (*ServerSide, error) {
	if err := o.Validate(perRound); err != nil {
		return nil, err
	}
	return &ServerSide{Options: o, Layout: layout, Logger: log}, nil
}

func (s *ServerSide) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

// Clip returns the current clip bound.
func (s *ServerSide) Clip() float64 {
	if s.clip == 0 {
		return s.Options.DP.Clip
	}
	return s.clip
}

// Aggregate returns the next global model from the updates of round: the
// robust or private aggregate, whose difference to global, per tensor of
// a side some update holds, is the pseudo-gradient of one optimizer step.
// unclipped holds the clients' (noisy) unclipped indicators under
// client-side privacy (ignored otherwise).
func (s *ServerSide) Aggregate(round int, global model.Params, updates []Update, unclipped []float64) (model.Params, error) {
	var agg model.Params
	var err error
	if s.Options.DP.Enabled() {
		agg, err = s.privateMean(round, global, updates, unclipped)
	} else {
		agg, err = AggregateRobust(s.Layout, global, updates, s.Options.Robust, s.logger())
	}
	if err != nil {
		return nil, err
	}
	return s.step(global, agg, updates)
}

// groupsHeld reports how many updates hold each group (modality m, the
// fusion head).
func groupsHeld(updates []Update) [numGroups]int {
	var n [numGroups]int
	for _, u := range updates {
		for g := range numGroups {
			if holds(u, g) {
				n[g]++
			}
		}
	}
	return n
}

// updateNorm returns the L2 norm of p - global over the tensors of the
// groups mask holds.
func updateNorm(layout []model.ParamInfo, global, p model.Params, mask data.Mask) float64 {
	var sq float64
	for i, info := range layout {
		if inGroup(mask, sideOf(info)) {
			for j, v := range p[i].Data {
				d := float64(v) - float64(global[i].Data[j])
				sq += d * d
			}
		}
	}
	return math.Sqrt(sq)
}

// privateMean is DP-FedAvg's aggregate: per group, the unweighted mean of
// the clipped updates with Gaussian noise on their sum (server-side
// privacy), or of the updates the clients clipped and noised themselves.
// It also moves the adaptive clip.
func (s *ServerSide) privateMean(round int, global model.Params, updates []Update, unclipped []float64) (model.Params, error) {
	o := s.Options.DP
	if len(updates) == 0 {
		return nil, fmt.Errorf("fl: aggregate: no updates")
	}
	if o.ClientNoise && len(unclipped) != len(updates) {
		return nil, fmt.Errorf("fl: client-side privacy: %d unclipped indicators for %d updates", len(unclipped), len(updates))
	}
	clip := s.Clip()
	rng := rand.New(rand.NewPCG(s.Options.Seed^0x64702d6e6f697365, uint64(round)))
	sums := make([][]float64, len(s.Layout))
	for i, info := range s.Layout {
		sums[i] = make([]float64, info.Size())
	}
	count := 0.0
	for k, u := range updates {
		if len(u.Params) != len(s.Layout) {
			return nil, fmt.Errorf("fl: aggregate: update %d has %d tensors, want %d", k, len(u.Params), len(s.Layout))
		}
		factor := 1.0
		if o.ClientNoise {
			if err := s.checkUnclipped(unclipped[k]); err != nil {
				return nil, fmt.Errorf("fl: client-side privacy: update %d: %w", k, err)
			}
			count += unclipped[k]
		} else {
			norm := updateNorm(s.Layout, global, u.Params, u.Modalities)
			if norm <= clip {
				count++
			} else {
				factor = clip / norm
			}
		}
		for i, info := range s.Layout {
			if !holds(u, sideOf(info)) {
				continue
			}
			for j, v := range u.Params[i].Data {
				sums[i][j] += factor * (float64(v) - float64(global[i].Data[j]))
			}
		}
	}
	n := groupsHeld(updates)
	std := 0.0
	if !o.ClientNoise {
		std = o.UpdateMultiplier() * clip
	}
	out := global.Clone()
	for i, info := range s.Layout {
		g := sideOf(info)
		if n[g] == 0 {
			continue
		}
		for j := range sums[i] {
			v := sums[i][j]
			if std > 0 {
				v += std * rng.NormFloat64()
			}
			out[i].Data[j] = float32(float64(global[i].Data[j]) + v/float64(n[g]))
		}
	}
	frac := count / float64(len(updates))
	if o.Adaptive {
		if !o.ClientNoise && o.CountStd > 0 {
			frac = (count + o.CountStd*rng.NormFloat64()) / float64(len(updates))
		}
		// Not clamped to [0, 1], as in Andrew et al. (the count noise may
		// take it outside): the indicators were bounded (checkUnclipped),
		// which keeps the clip finite and positive.
		s.clip = clip * math.Exp(-o.ClipLR*(frac-o.TargetQuantile))
	}
	s.logger().Info("dp", "round", round, "clip", clip, "next_clip", s.Clip(), "unclipped", frac, "updates", len(updates))
	return out, nil
}

// checkUnclipped checks a client's unclipped indicator under client-side
// privacy (FitMetrics.DPUnclipped) against the count noise of its share,
// which is at most the whole CountStd (clientDP); nil without client-side
// privacy, where the server counts by itself and ignores it.
func (s *ServerSide) checkUnclipped(v float64) error {
	o := s.Options.DP
	if !o.Enabled() || !o.ClientNoise {
		return nil
	}
	dp := &DPFit{}
	if o.Adaptive {
		dp.CountStd = o.CountStd
	}
	return checkUnclipped(v, dp)
}

// step applies the server optimizer with pseudo-gradient agg - global on
// the tensors of the groups some update holds; the others keep their
// values and moments.
func (s *ServerSide) step(global, agg model.Params, updates []Update) (model.Params, error) {
	o := s.Options
	n := groupsHeld(updates)
	if o.Optimizer != OptimizerSGD && s.m == nil {
		s.m = zerosLike(global)
		if o.Optimizer != OptimizerAvgM {
			// Reddi et al. 2021, Algorithm 2: v_{-1} >= tau^2.
			s.v = zerosLike(global)
			for i := range s.v {
				for j := range s.v[i].Data {
					s.v[i].Data[j] = float32(o.Tau * o.Tau)
				}
			}
		}
	}
	out := global.Clone()
	for i, info := range s.Layout {
		if n[sideOf(info)] == 0 {
			continue
		}
		for j, a := range agg[i].Data {
			x := float64(global[i].Data[j])
			d := float64(a) - x
			switch o.Optimizer {
			case OptimizerSGD:
				x += o.LR * d
			case OptimizerAvgM:
				// Hsu, Qi, Brown 2019: v <- beta v + Δ; x <- x + lr v.
				m := o.Momentum*float64(s.m[i].Data[j]) + d
				s.m[i].Data[j] = float32(m)
				x += o.LR * m
			default:
				m := o.Beta1*float64(s.m[i].Data[j]) + (1-o.Beta1)*d
				v := float64(s.v[i].Data[j])
				d2 := d * d
				switch o.Optimizer {
				case OptimizerAdam:
					v = o.Beta2*v + (1-o.Beta2)*d2
				case OptimizerYogi:
					v -= (1 - o.Beta2) * d2 * sign(v-d2)
				case OptimizerAdagrad:
					v += d2
				}
				s.m[i].Data[j], s.v[i].Data[j] = float32(m), float32(v)
				x += o.LR * m / (math.Sqrt(v) + o.Tau)
			}
			out[i].Data[j] = float32(x)
		}
	}
	return out, nil
}

func sign(x float64) float64 {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

// clientDP returns the round's client-side privacy instructions for the
// sampled clients (nil without client-side privacy).
func (s *ServerSide) clientDP(ins []Instruction, clients []ClientInfo) *DPFit {
	o := s.Options.DP
	if !o.Enabled() || !o.ClientNoise {
		return nil
	}
	mask := make(map[string]data.Mask, len(clients))
	for _, c := range clients {
		mask[c.ID] = c.Modalities
	}
	var n [numGroups]int
	for _, in := range ins {
		for g := range numGroups {
			if inGroup(mask[in.ClientID], g) {
				n[g]++
			}
		}
	}
	clip := s.Clip()
	fit := &DPFit{Clip: clip}
	for g := range numGroups {
		if n[g] > 0 {
			fit.NoiseStd[g] = o.UpdateMultiplier() * clip / math.Sqrt(float64(n[g]))
		}
	}
	if o.Adaptive && len(ins) > 0 {
		fit.CountStd = o.CountStd / math.Sqrt(float64(len(ins)))
	}
	return fit
}

// ClientPrivacy clips a client's trained params to within dp.Clip of
// global (L2, over the tensors of the groups has holds) and adds Gaussian
// noise of dp.NoiseStd to each of their values, drawing from a generator
// seeded by seed. It returns the new params and the client's unclipped
// indicator (1 if the update was within the bound) plus noise of
// dp.CountStd. params is not modified.
func ClientPrivacy(layout []model.ParamInfo, global, params model.Params, has data.Mask, dp DPFit, seed uint64) (model.Params, float64, error) {
	if len(global) != len(layout) || len(params) != len(layout) {
		return nil, 0, fmt.Errorf("fl: client privacy: %d and %d tensors for a layout of %d", len(global), len(params), len(layout))
	}
	if err := dp.validate(); err != nil {
		return nil, 0, fmt.Errorf("fl: client privacy: %w", err)
	}
	rng := rand.New(rand.NewPCG(seed, 0x64702d636c69656e))
	norm := updateNorm(layout, global, params, has)
	factor, bit := 1.0, 1.0
	if norm > dp.Clip {
		factor, bit = dp.Clip/norm, 0
	}
	out := params.Clone()
	for i, info := range layout {
		g := sideOf(info)
		if !inGroup(has, g) {
			continue
		}
		for j, v := range params[i].Data {
			x := float64(global[i].Data[j])
			u := factor*(float64(v)-x) + dp.NoiseStd[g]*rng.NormFloat64()
			out[i].Data[j] = float32(x + u)
		}
	}
	return out, bit + dp.CountStd*rng.NormFloat64(), nil
}

// serverSideState is the encoding of ServerSide's state.
type serverSideState struct {
	Version int
	M, V    model.Params
	Clip    float64
}

// MarshalState encodes the optimizer's moments and the clip bound.
func (s *ServerSide) MarshalState() ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(serverSideState{Version: 1, M: s.m, V: s.v, Clip: s.clip}); err != nil {
		return nil, fmt.Errorf("fl: encode server state: %w", err)
	}
	return buf.Bytes(), nil
}

// UnmarshalState restores a state written by MarshalState.
func (s *ServerSide) UnmarshalState(b []byte) error {
	var st serverSideState
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&st); err != nil {
		return fmt.Errorf("fl: decode server state: %w", err)
	}
	if st.Version != 1 {
		return fmt.Errorf("fl: server state version %d, want 1", st.Version)
	}
	for _, p := range []model.Params{st.M, st.V} {
		if p != nil {
			if err := checkControl(s.Layout, p); err != nil {
				return fmt.Errorf("fl: server state: %w", err)
			}
		}
	}
	if !(st.Clip >= 0) {
		return fmt.Errorf("fl: server state: clip %v", st.Clip)
	}
	s.m, s.v, s.clip = st.M, st.V, st.Clip
	return nil
}

// WithServerSide returns inner (whose aggregation goes through side)
// with side's state added to its own (Stateful) and, under client-side
// privacy, each instruction's DPFit.
func WithServerSide(inner Strategy, side *ServerSide) Strategy {
	return &serverSided{inner: inner, side: side}
}

type serverSided struct {
	inner Strategy
	side  *ServerSide
}

// ConfigureFit implements Strategy.
func (s *serverSided) ConfigureFit(round int, global model.Params, clients []ClientInfo) ([]Instruction, error) {
	ins, err := s.inner.ConfigureFit(round, global, clients)
	if err != nil {
		return nil, err
	}
	if fit := s.side.clientDP(ins, clients); fit != nil {
		for k := range ins {
			ins[k].Ins.Config.DP = fit
		}
	}
	return ins, nil
}

// AggregateFit implements Strategy.
func (s *serverSided) AggregateFit(round int, global model.Params, results []Result, failures []Failure) (model.Params, error) {
	return s.inner.AggregateFit(round, global, results, failures)
}

// combinedState is the encoding of serverSided's state.
type combinedState struct {
	Inner    []byte
	HasInner bool
	Side     []byte
}

// MarshalState implements Stateful: the inner strategy's state and the
// ServerSide's.
func (s *serverSided) MarshalState() ([]byte, error) {
	var st combinedState
	if in, ok := s.inner.(Stateful); ok {
		b, err := in.MarshalState()
		if err != nil {
			return nil, err
		}
		st.Inner, st.HasInner = b, true
	}
	b, err := s.side.MarshalState()
	if err != nil {
		return nil, err
	}
	st.Side = b
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(st); err != nil {
		return nil, fmt.Errorf("fl: encode state: %w", err)
	}
	return buf.Bytes(), nil
}

// UnmarshalState implements Stateful.
func (s *serverSided) UnmarshalState(b []byte) error {
	var st combinedState
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&st); err != nil {
		return fmt.Errorf("fl: decode state: %w", err)
	}
	in, ok := s.inner.(Stateful)
	if ok != st.HasInner {
		return fmt.Errorf("fl: state: the strategy keeps state: %v, the saved state has one: %v", ok, st.HasInner)
	}
	if ok {
		if err := in.UnmarshalState(st.Inner); err != nil {
			return err
		}
	}
	return s.side.UnmarshalState(st.Side)
}

var (
	_ Strategy = (*serverSided)(nil)
	_ Stateful = (*serverSided)(nil)
)

// privacyHook is client-side differential privacy: the update clipped and
// noised before it leaves the client (personal copies keep the unclipped
// values: they never leave it).
type privacyHook struct{}

// finish implements finisher.
func (privacyHook) finish(r *localRound, trained model.Params, res *FitRes) error {
	var err error
	res.Params, res.Metrics.DPUnclipped, err = ClientPrivacy(r.c.engine.Layout(), r.ins.Params, trained, r.has, *r.cfg.DP, r.cfg.Seed)
	return err
}
