package fl

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/model"
)

// scaffoldMethod registers SCAFFOLD (methods).
var scaffoldMethod = Method{Name: "scaffold",
	CheckSettings: func(cfg *config.Config) error {
		if cfg.FedCMI.Personalized {
			// c_i estimates the drift from the global model a client
			// starts from; personal parts start from the client's own.
			return &config.FieldError{Path: "fedcmi.personalized", Err: errors.New("personalised branches start from each client's own parts, where SCAFFOLD's control variates measure the drift from the global model")}
		}
		return nil
	},
	SingleUpdates: "its server averages each participant's control variate change, which travels beside the update in the clear",
	NoDP:          "its control variates reveal the unclipped update",
	ClientState:   true,
	Recipe:        ScaffoldFit{},
	Server:        func(base *ModalityAware, _ *config.Config) Strategy { return &Scaffold{Base: base} },
	Doc:           "SCAFFOLD (option II) with modality-aware control variates"}

// Scaffold is SCAFFOLD (Karimireddy, Kale, Mohri, Reddi, Stich, Suresh,
// "SCAFFOLD: Stochastic Controlled Averaging for Federated Learning", ICML
// 2020), option II, made modality-aware.
//
// Every sampled client receives the global model x and the server control
// variate c, and runs K local steps of
//
//	y <- y - lr (g(y) + c - c_i)
//
// on the parameters it trains (those its loss reaches; see model.Engine),
// where c_i is its own control variate (zero before its first round, kept
// between rounds by LocalClient). After the K steps it updates
//
//	c_i+ = c_i - c + (x - y) / (K lr)
//
// for the parameters it trained and sends y and Δc_i = c_i+ - c_i (zero
// for the others). (x - y)/(K lr) is the average corrected gradient when
// the steps are plain SGD, as in the paper. With SGD momentum beta (the
// framework's default 0.9; buffers restart each round) a constant
// gradient G moves the parameters by lr G K_eff with
//
//	K_eff = sum_{k=1..K} (1 - beta^k) / (1 - beta)
//
// so K_eff replaces K (ScaffoldClientControl); beta = 0 gives K_eff = K,
// the paper's rule exactly (train.momentum: 0). Weight decay is part of
// the local gradient g, so c_i includes it. The server (global learning
// rate 1) sets
//
//	x <- AggregateModalityAware(updates)             (x + the mean of y - x)
//	c <- c + (|S_s| / N_s) * sum_k w_k Δc_k          (ScaffoldServerControl)
//
// per side s of the model (modality 0, modality 1, fusion head): S_s are
// the sampled clients holding s, N_s the registered clients holding s, and
// w_k = n_k / sum n over S_s, the weights AggregateModalityAware gives the
// parameters. So c stays the (sample-weighted) average of the c_i of the
// clients that can train each part, which is the paper's c = (1/N) sum c_i
// restricted to a modality.
type Scaffold struct {
	// Base samples clients, writes their instructions (learning rate,
	// momentum, ...) and aggregates the parameters.
	Base *ModalityAware

	control    model.Params   // c
	population [numGroups]int // registered clients holding modality m; all (fusionGroup)
}

// ConfigureFit implements Strategy: Base's instructions, with the server
// control variate.
func (s *Scaffold) ConfigureFit(round int, global model.Params, clients []ClientInfo) ([]Instruction, error) {
	ins, err := s.Base.ConfigureFit(round, global, clients)
	if err != nil {
		return nil, err
	}
	if s.control == nil {
		s.control = zerosLike(global)
	}
	s.population = [numGroups]int{fusionGroup: len(clients)}
	for _, c := range clients {
		for m := range fusionGroup {
			if c.Modalities.Has(m) {
				s.population[m]++
			}
		}
	}
	for k := range ins {
		ins[k].Ins.Control = s.control
		ins[k].Ins.Config.Recipe = ScaffoldFit{Corrected: true}
	}
	return ins, nil
}

// AggregateFit implements Strategy. A result whose parameters or control
// update do not match the layout is rejected and logged, for both x and c.
func (s *Scaffold) AggregateFit(round int, global model.Params, results []Result, failures []Failure) (model.Params, error) {
	log := s.Base.logger()
	var updates []Update
	var deltas []ControlUpdate
	for _, r := range results {
		err := CheckUpdate(s.Base.Layout, r.Res)
		if err == nil {
			err = checkControl(s.Base.Layout, r.Res.ControlDelta)
		}
		if err != nil {
			log.Warn("rejected update", "round", round, "client", r.ClientID, "err", err)
			continue
		}
		updates = append(updates, Update{Params: r.Res.Params, NumSamples: r.Res.NumSamples, Modalities: r.Res.Modalities})
		deltas = append(deltas, ControlUpdate{Delta: r.Res.ControlDelta, NumSamples: r.Res.NumSamples, Modalities: r.Res.Modalities})
	}
	if len(updates) == 0 {
		return nil, nil
	}
	next, err := s.Base.aggregate(round, global, updates, nil)
	if err != nil {
		return nil, err
	}
	if s.control == nil {
		s.control = zerosLike(global)
	}
	c, err := ScaffoldServerControl(s.Base.Layout, s.control, deltas, s.population)
	if err != nil {
		return nil, err
	}
	s.control = c
	var sq float64
	for _, t := range c {
		for _, v := range t.Data {
			sq += float64(v) * float64(v)
		}
	}
	log.Debug("scaffold server control", "round", round, "norm", math.Sqrt(sq), "updates", len(updates))
	return next, nil
}

// Control returns the server control variate c (nil before the first round).
func (s *Scaffold) Control() model.Params { return s.control }

// ControlUpdate is one client's Δc_i with its averaging weight.
type ControlUpdate struct {
	Delta      model.Params
	NumSamples int
	Modalities data.Mask
}

// ScaffoldServerControl returns c + (|S_s|/N_s) * sum_k w_k Δc_k for every
// parameter of side s (see Scaffold), where S_s are the updates holding s,
// w_k = n_k / sum n over S_s and population[m] = N_m, the registered
// clients holding modality m, population[fusionGroup] = N, all clients. A side no
// update holds keeps its value. c is not modified.
func ScaffoldServerControl(layout []model.ParamInfo, c model.Params, updates []ControlUpdate, population [numGroups]int) (model.Params, error) {
	if err := checkControl(layout, c); err != nil {
		return nil, fmt.Errorf("fl: server control: %w", err)
	}
	var sampled [numGroups]int
	for k, u := range updates {
		if err := checkControl(layout, u.Delta); err != nil {
			return nil, fmt.Errorf("fl: control update %d: %w", k, err)
		}
		if u.NumSamples < 1 {
			return nil, fmt.Errorf("fl: control update %d has %d samples", k, u.NumSamples)
		}
		sampled[fusionGroup]++
		for m := range fusionGroup {
			if u.Modalities.Has(m) {
				sampled[m]++
			}
		}
	}
	for s := range numGroups {
		if sampled[s] > population[s] {
			return nil, fmt.Errorf("fl: %d sampled clients hold side %d, but only %d are registered", sampled[s], s, population[s])
		}
	}
	out := c.Clone()
	for i, info := range layout {
		side := sideOf(info)
		total := 0
		for _, u := range updates {
			if inGroup(u.Modalities, side) {
				total += u.NumSamples
			}
		}
		if total == 0 {
			continue
		}
		frac := float64(sampled[side]) / float64(population[side])
		acc := make([]float64, len(out[i].Data))
		for _, u := range updates {
			if !inGroup(u.Modalities, side) {
				continue
			}
			w := float64(u.NumSamples) / float64(total)
			for j, v := range u.Delta[i].Data {
				acc[j] += w * float64(v)
			}
		}
		for j := range acc {
			out[i].Data[j] = float32(float64(out[i].Data[j]) + frac*acc[j])
		}
	}
	return out, nil
}

// EffectiveSteps returns K_eff = sum_{k=1..steps} (1 - beta^k) / (1 - beta),
// how many plain SGD steps of the same learning rate move the parameters
// as far as steps heavy-ball steps with momentum beta under a constant
// gradient (steps itself for beta = 0).
func EffectiveSteps(steps int, beta float64) float64 {
	if beta == 0 {
		return float64(steps)
	}
	k, pow := 0.0, 1.0
	for range steps {
		pow *= beta
		k += (1 - pow) / (1 - beta)
	}
	return k
}

// ScaffoldClientControl returns a client's new control variate
// c_i+ = c_i - c + (x - y) / (K_eff lr) on the trained parameters (c_i
// elsewhere) and Δc_i = c_i+ - c_i, with K_eff = EffectiveSteps(steps,
// momentum). x is the model the client started from, y the one it ended
// with; ci nil means all zero.
func ScaffoldClientControl(trained []int, x, y, c, ci model.Params, steps int, lr, momentum float64) (next, delta model.Params, err error) {
	if steps < 1 || !(lr > 0) || momentum < 0 || momentum >= 1 {
		return nil, nil, fmt.Errorf("fl: SCAFFOLD control update after %d steps of lr %v, momentum %v", steps, lr, momentum)
	}
	if len(x) != len(c) || len(y) != len(c) || (ci != nil && len(ci) != len(c)) {
		return nil, nil, errors.New("fl: SCAFFOLD control update: parameter sets of different lengths")
	}
	if ci == nil {
		ci = zerosLike(c)
	}
	next, delta = ci.Clone(), zerosLike(c)
	scale := 1 / (EffectiveSteps(steps, momentum) * lr)
	for _, i := range trained {
		if len(x[i].Data) != len(c[i].Data) || len(y[i].Data) != len(c[i].Data) || len(ci[i].Data) != len(c[i].Data) {
			return nil, nil, fmt.Errorf("fl: SCAFFOLD control update: tensor %q sizes differ", c[i].Name)
		}
		for j := range c[i].Data {
			v := float64(ci[i].Data[j]) - float64(c[i].Data[j]) + scale*(float64(x[i].Data[j])-float64(y[i].Data[j]))
			next[i].Data[j] = float32(v)
			delta[i].Data[j] = float32(v - float64(ci[i].Data[j]))
		}
	}
	return next, delta, nil
}

// scaffoldCorrection returns c - c_i for the client's local steps (nil
// when control is nil: not SCAFFOLD).
func (c *LocalClient) scaffoldCorrection(control model.Params) (model.Params, error) {
	if control == nil {
		return nil, nil
	}
	if err := checkControl(c.engine.Layout(), control); err != nil {
		return nil, fmt.Errorf("fl: server control variate: %w", err)
	}
	out := control.Clone()
	if c.control != nil {
		for i := range out {
			for j := range out[i].Data {
				out[i].Data[j] -= c.control[i].Data[j]
			}
		}
	}
	return out, nil
}

// scaffoldUpdate updates the client's control variate after local training
// from x to y in steps steps of lr with momentum, and returns Δc_i.
func (c *LocalClient) scaffoldUpdate(x, y, control model.Params, trained []int, steps int, lr, momentum float64) (model.Params, error) {
	next, delta, err := ScaffoldClientControl(trained, x, y, control, c.control, steps, lr, momentum)
	if err != nil {
		return nil, err
	}
	c.control = next
	return delta, nil
}

// checkControl verifies that p has the layout's names and sizes.
func checkControl(layout []model.ParamInfo, p model.Params) error {
	if len(p) != len(layout) {
		return fmt.Errorf("control variate has %d tensors, want %d", len(p), len(layout))
	}
	for i, info := range layout {
		if p[i].Name != info.Name || !slices.Equal(p[i].Shape, info.Shape) || len(p[i].Data) != info.Size() {
			return fmt.Errorf("control tensor %d is %q %v, want %q %v", i, p[i].Name, p[i].Shape, info.Name, info.Shape)
		}
	}
	return nil
}

func zerosLike(p model.Params) model.Params {
	out := make(model.Params, len(p))
	for i, t := range p {
		out[i] = model.Tensor{Name: t.Name, Shape: slices.Clone(t.Shape), Data: make([]float32, len(t.Data))}
	}
	return out
}

// scaffoldState is the encoding of Scaffold's and LocalClient's state.
type scaffoldState struct {
	Version  int
	Control  model.Params
	Personal map[int]model.Tensor // LocalClient only
	// LocalClient only: the round of its latest Fit and the state that Fit
	// started from (to train a re-run round from it again).
	Round          int
	BeforeControl  model.Params
	BeforePersonal map[int]model.Tensor
}

const stateVersion = 1

func encodeState(st scaffoldState) ([]byte, error) {
	st.Version = stateVersion
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(st); err != nil {
		return nil, fmt.Errorf("fl: encode state: %w", err)
	}
	return buf.Bytes(), nil
}

func decodeState(data []byte, layout []model.ParamInfo) (scaffoldState, error) {
	var st scaffoldState
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&st); err != nil {
		return st, fmt.Errorf("fl: decode state: %w", err)
	}
	if st.Version != stateVersion {
		return st, fmt.Errorf("fl: state version %d, want %d", st.Version, stateVersion)
	}
	for _, control := range []model.Params{st.Control, st.BeforeControl} {
		if control != nil {
			if err := checkControl(layout, control); err != nil {
				return st, fmt.Errorf("fl: state: %w", err)
			}
		}
	}
	for _, personal := range []map[int]model.Tensor{st.Personal, st.BeforePersonal} {
		for i, t := range personal {
			if i < 0 || i >= len(layout) || t.Name != layout[i].Name || len(t.Data) != layout[i].Size() {
				return st, fmt.Errorf("fl: state: personal tensor %d (%q) does not match the layout", i, t.Name)
			}
		}
	}
	if st.Round < 0 {
		return st, fmt.Errorf("fl: state: round %d", st.Round)
	}
	return st, nil
}

// MarshalState implements Stateful: the server control variate.
func (s *Scaffold) MarshalState() ([]byte, error) {
	return encodeState(scaffoldState{Control: s.control})
}

// UnmarshalState implements Stateful.
func (s *Scaffold) UnmarshalState(data []byte) error {
	st, err := decodeState(data, s.Base.Layout)
	if err != nil {
		return err
	}
	s.control = st.Control
	return nil
}

// MarshalState implements ClientStateful: the client's SCAFFOLD control
// variate and the parameters it keeps for itself (personalised branches,
// Harmony's fine-tuned encoders).
func (c *LocalClient) MarshalState() ([]byte, error) {
	return encodeState(scaffoldState{Control: c.control, Personal: c.personal,
		Round: c.lastRound, BeforeControl: c.before.control, BeforePersonal: c.before.personal})
}

// UnmarshalState implements ClientStateful.
func (c *LocalClient) UnmarshalState(data []byte) error {
	st, err := decodeState(data, c.engine.Layout())
	if err != nil {
		return err
	}
	c.control, c.personal = st.Control, st.Personal
	c.lastRound, c.before = st.Round, clientState{control: st.BeforeControl, personal: st.BeforePersonal}
	return nil
}

var (
	_ Stateful       = (*Scaffold)(nil)
	_ ClientStateful = (*LocalClient)(nil)
	_ Strategy       = (*Scaffold)(nil)
)

// ScaffoldFit is SCAFFOLD's recipe (FitConfig.Recipe): corrected steps
// with the server control variate, which travels beside the model as
// tensors (FitIns.Control; the answer's FitRes.ControlDelta).
type ScaffoldFit struct {
	// Corrected is always true (gob sends no struct without a field).
	Corrected bool
}

// hooks implements Recipe.
func (c ScaffoldFit) hooks(multi bool) []roundHook {
	if !c.Corrected {
		return nil
	}
	return []roundHook{scaffoldHook{}}
}

// validate implements Recipe: a flag, nothing to check (the control
// variate is checked against the model's layout when used).
func (c ScaffoldFit) validate(nm, k, d int) error { return nil }

// scaffoldHook is SCAFFOLD's client side: the correction c − c_i added to
// every step's gradient, and the control variate's change after training.
type scaffoldHook struct{}

// prepare implements preparer.
func (scaffoldHook) prepare(r *localRound) error {
	if r.ins.Control == nil {
		return errors.New("fl: SCAFFOLD's recipe without the server control variate")
	}
	corr, err := r.c.scaffoldCorrection(r.ins.Control)
	if err != nil {
		return err
	}
	r.tc.Terms = append(r.tc.Terms, model.ScaffoldCorrection(corr))
	return nil
}

// finish implements finisher.
func (scaffoldHook) finish(r *localRound, trained model.Params, res *FitRes) error {
	var err error
	res.ControlDelta, err = r.c.scaffoldUpdate(r.start, trained, r.ins.Control, r.local.Trainable(), res.Metrics.Batches, r.cfg.LR, r.cfg.Momentum)
	return err
}
