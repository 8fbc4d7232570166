package fl

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/model"
)

// Client trains a received model on its own data. Implementations run
// in-process (LocalClient) or behind a network transport.
type Client interface {
	// Fit trains locally as ins says and returns the result.
	Fit(ctx context.Context, ins FitIns) (FitRes, error)
	// Evaluate measures the accuracy of params on the client's own data.
	Evaluate(ctx context.Context, params model.Params) (Evaluation, error)
}

// Augmenter transforms, in place, the n rows of one modality of a training
// batch (row-major), drawing from rng: random crops and flips of images,
// say. It must keep every row's size.
type Augmenter func(modality int, rows []float32, n int, rng *rand.Rand) error

// LocalClient is a client whose data is a subset of a data.Set in memory.
// It keeps only its sample indices, plus its personal parameters when
// personalised branches are on, so a simulation of many clients stays small.
type LocalClient struct {
	engine *model.Engine
	set    *data.Set
	index  []int
	has    data.Mask
	// personal holds the personal tensors (by layout index) kept between
	// rounds; nil before the client's first personalised round.
	personal map[int]model.Tensor
	// augment, if set, transforms training batches (never evaluation data).
	augment Augmenter
	// onStep, if set, is told of every local training step (SetOnStep).
	onStep func(round, done, total int)
	// control is SCAFFOLD's client control variate c_i (Layout order), kept
	// between rounds; nil (all zero) before the client's first SCAFFOLD round.
	control model.Params
	// lastRound is the round of the latest Fit and before the state it
	// started from: a coordinator that crashed before saving a round runs
	// that round again after resuming, and the client must then train it
	// from the same state as the first time.
	lastRound int
	before    clientState
}

// clientState is what a LocalClient carries from round to round. Fit
// replaces its members, never mutates them, so copies may share them.
type clientState struct {
	control  model.Params
	personal map[int]model.Tensor
}

// SetAugmenter makes the client transform its training batches with a
// (nil: no augmentation).
func (c *LocalClient) SetAugmenter(a Augmenter) { c.augment = a }

// SetOnStep makes the client call f after every local training step of a
// Fit with the round, the steps done so far in that Fit and the steps it
// takes in all (epochs x batches), for progress displays. f must be quick
// and safe for concurrent use; nil removes it.
func (c *LocalClient) SetOnStep(f func(round, done, total int)) { c.onStep = f }

// NewLocalClient returns a client owning the rows index of set (whose
// modalities must be in the engine's order) and holding the modalities has.
func NewLocalClient(engine *model.Engine, set *data.Set, index []int, has data.Mask) (*LocalClient, error) {
	arch := engine.Arch()
	if len(set.Modalities) != 2 || set.Modalities[0] != arch.Modalities[0] || set.Modalities[1] != arch.Modalities[1] {
		return nil, fmt.Errorf("fl: data modalities %v, model %v", set.Modalities, arch.Modalities)
	}
	if len(index) == 0 {
		return nil, errors.New("fl: client without samples")
	}
	if !has.Has(0) && !has.Has(1) {
		return nil, errors.New("fl: client without modalities")
	}
	for _, i := range index {
		if i < 0 || i >= set.Len() {
			return nil, fmt.Errorf("fl: sample index %d outside 0..%d", i, set.Len()-1)
		}
	}
	return &LocalClient{engine: engine, set: set, index: slices.Clone(index), has: has}, nil
}

// NumSamples is the number of local samples.
func (c *LocalClient) NumSamples() int { return len(c.index) }

// Modalities is the set of modalities the client holds.
func (c *LocalClient) Modalities() data.Mask { return c.has }

// gather copies the rows idx of the modalities the client holds.
func (c *LocalClient) gather(idx []int) model.Batch {
	var b model.Batch
	for m := range 2 {
		if !c.has.Has(m) {
			continue
		}
		d := c.set.Dims[m]
		b.X[m] = make([]float32, 0, len(idx)*d)
		for _, i := range idx {
			b.X[m] = append(b.X[m], c.set.Row(m, i)...)
		}
	}
	b.Labels = make([]int, len(idx))
	for k, i := range idx {
		b.Labels[k] = c.set.Labels[i]
	}
	return b
}

// startParams returns the model the client starts from: the global model
// with the client's personal parts, if it has any.
func (c *LocalClient) startParams(global model.Params, personalized bool) model.Params {
	if !personalized || c.personal == nil {
		return global
	}
	p := slices.Clone(global) // tensors are shared read-only; only personal ones are replaced
	for i, t := range c.personal {
		p[i] = t
	}
	return p
}

// Fit implements Client.
func (c *LocalClient) Fit(ctx context.Context, ins FitIns) (FitRes, error) {
	cfg := ins.Config
	if cfg.Epochs < 1 {
		return FitRes{}, fmt.Errorf("fl: %d local epochs", cfg.Epochs)
	}
	if cfg.Round > 0 && cfg.Round == c.lastRound {
		// The round runs again (the coordinator resumed from the round
		// before): undo what its first run did to the client's state.
		c.control, c.personal = c.before.control, c.before.personal
	}
	c.lastRound, c.before = cfg.Round, clientState{control: c.control, personal: c.personal}
	start := c.startParams(ins.Params, cfg.Personalized)
	has := c.trainedModalities(cfg)
	multi := has.Has(0) && has.Has(1)
	infil := cfg.Infiltration && multi
	train, held := c.index, []int(nil)
	if multi && cfg.Holdout > 0 && (cfg.Dominance == DominanceHoldout || cfg.Dominance == DominanceFederated) {
		train, held = HoldoutSplit(c.index, c.labels(c.index), cfg.Holdout, cfg.HoldoutSeed)
		if len(held) == 0 || len(train) == 0 {
			train, held = c.index, nil // too few samples of every class to set any aside
		}
	}
	var metrics FitMetrics
	// stats are the per-class statistics the direction and temperatures
	// come from; measured only where something uses them.
	var stats ClassStats
	// teacher holds the frozen teacher's self-head logits of every train
	// row (in train's order): without augmentation a row's inputs are the
	// same in every epoch, so the teacher runs once per round, not in every
	// step (model.TrainConfig.TeacherLogits).
	var teacher [2][]float32
	useTeacher := infil && c.augment == nil
	if multi && (cfg.Dominance == DominanceFederated || infil && (cfg.ClassTemperature || cfg.Dominance != DominanceBatch)) {
		measure := train
		if held != nil {
			measure = held
		}
		measured, pred, err := c.classStats(start, measure)
		if err != nil {
			return FitRes{}, err
		}
		if useTeacher && held == nil { // measured on the train rows: the same pass gives the teacher
			teacher = [2][]float32{pred.LogitsFirst, pred.LogitsSecond}
		}
		metrics.ClassStats = &measured
		stats = measured
		if cfg.Dominance == DominanceFederated && cfg.Table != nil {
			if len(cfg.Table.PA) != stats.Len() || len(cfg.Table.PV) != stats.Len() {
				return FitRes{}, fmt.Errorf("fl: dominance table for %d classes, data has %d", len(cfg.Table.PA), stats.Len())
			}
			stats = cfg.Table.Stats()
		}
	}
	if useTeacher && teacher[0] == nil {
		b := c.gather(train)
		pred, err := c.engine.Predict(start, b.X, len(train))
		if err != nil {
			return FitRes{}, err
		}
		teacher = [2][]float32{pred.LogitsFirst, pred.LogitsSecond}
	}
	var classTemp, classDir []float32
	if infil {
		temps := make([]float64, c.set.NumClasses)
		if cfg.ClassTemperature {
			pa, pv := stats.Means()
			temps = ClassTemperatures(pa, pv, cfg.C3)
		} else {
			for k := range temps {
				temps[k] = GuardTemperature(cfg.Temperature)
			}
		}
		metrics.Temperatures = temps
		classTemp = make([]float32, len(temps))
		for k, t := range temps {
			classTemp[k] = float32(t)
		}
		if cfg.Dominance != DominanceBatch {
			classDir = Directions(stats, cfg.ClassDirection)
		}
	}
	corr, err := c.scaffoldCorrection(ins.Control)
	if err != nil {
		return FitRes{}, err
	}
	tc := withBaselines(model.TrainConfig{
		Has:          [2]bool{has.Has(0), has.Has(1)},
		Infiltration: infil,
		Alpha:        cfg.Alpha,
		C1:           cfg.C1,
		Mu:           cfg.Mu,
		WeightDecay:  cfg.WeightDecay,
		Momentum:     cfg.Momentum,
		Proto:        protoLoss(cfg, has),
		HeadWeights:  cfg.HeadWeights,

		TeacherLogits: useTeacher,
	}, cfg, multi, corr)
	if cfg.GB && multi {
		if metrics.GB.Before, err = c.gbLosses(start, train); err != nil {
			return FitRes{}, err
		}
	}
	local, err := c.engine.NewLocal(start, tc)
	if err != nil {
		return FitRes{}, err
	}
	defer local.Close()

	rng := rand.New(rand.NewPCG(cfg.Seed, 0))
	augRNG := rand.New(rand.NewPCG(cfg.Seed, 1)) // its own stream: shuffling does not depend on augmentation
	// order holds positions in train, so that a batch finds its teacher
	// logits (shuffling positions permutes exactly as shuffling the rows).
	order := make([]int, len(train))
	for i := range order {
		order[i] = i
	}
	rows := make([]int, 0, c.engine.BatchSize())
	bs := c.engine.BatchSize()
	k := c.set.NumClasses
	var protos model.Prototypes // the previous epoch's, for PMR's momentum
	steps, totalSteps := 0, cfg.Epochs*((len(order)+bs-1)/bs)
	for ep := range cfg.Epochs {
		if tc.Proto != nil {
			if err := c.epochPrototypes(local, cfg, has, ep, &protos); err != nil {
				return FitRes{}, err
			}
		}
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for lo := 0; lo < len(order); lo += bs {
			if err := ctx.Err(); err != nil {
				return FitRes{}, err
			}
			pos := order[lo:min(lo+bs, len(order))]
			rows = rows[:0]
			for _, i := range pos {
				rows = append(rows, train[i])
			}
			b := c.gather(rows)
			if useTeacher {
				for m := range 2 {
					b.Teacher[m] = make([]float32, 0, len(pos)*k)
					for _, i := range pos {
						b.Teacher[m] = append(b.Teacher[m], teacher[m][i*k:(i+1)*k]...)
					}
				}
			}
			if c.augment != nil {
				for m := range 2 {
					if b.X[m] == nil {
						continue
					}
					if err := c.augment(m, b.X[m], len(b.Labels), augRNG); err != nil {
						return FitRes{}, fmt.Errorf("fl: augment %s: %w", c.set.Modalities[m], err)
					}
				}
			}
			if infil {
				b.Temp = make([]float32, len(b.Labels))
				for k, y := range b.Labels {
					b.Temp[k] = classTemp[y]
				}
				if classDir != nil {
					b.Dir = make([]float32, len(b.Labels))
					for k, y := range b.Labels {
						b.Dir[k] = classDir[y]
					}
				}
			}
			st, err := local.Step(b, cfg.LR)
			if err != nil {
				return FitRes{}, err
			}
			metrics.LossSum += st.Loss
			metrics.Batches++
			if steps++; c.onStep != nil {
				c.onStep(cfg.Round, steps, totalSteps)
			}
			if tc.OGM != nil {
				metrics.OGMCoefSum[0] += st.OGMCoef[0]
				metrics.OGMCoefSum[1] += st.OGMCoef[1]
				metrics.OGMBatches++
			}
			metrics.Proto.add(st, has)
			if multi {
				rho := DominanceRatio(st.SumPA, st.SumPV)
				if !math.IsNaN(rho) && !math.IsInf(rho, 0) {
					metrics.RhoSum += rho
					metrics.RhoBatches++
					switch {
					case b.Dir != nil:
						metrics.FirstDominant += float64(countPositive(b.Dir)) / float64(len(b.Dir))
					case rho > 1:
						metrics.FirstDominant++
					}
				}
			}
		}
	}
	params, err := local.Params()
	if err != nil {
		return FitRes{}, err
	}
	report, err := c.mdropReport(cfg, params)
	if err != nil {
		return FitRes{}, err
	}
	if cfg.Personalized {
		c.personal = make(map[int]model.Tensor)
		for i, info := range c.engine.Layout() {
			if info.Personal() {
				c.personal[i] = params[i]
			}
		}
	}
	if cfg.GB && multi {
		if metrics.GB.After, err = c.gbLosses(params, train); err != nil {
			return FitRes{}, err
		}
		metrics.GB.N = len(train)
	}
	if cfg.Relearn {
		if metrics.Relearn, err = c.relearnPurity(start, params, train, has, cfg.Seed); err != nil {
			return FitRes{}, err
		}
	}
	res := FitRes{Params: params, NumSamples: len(train), Modalities: has, Metrics: metrics, Report: report}
	if ins.Control != nil {
		if res.ControlDelta, err = c.scaffoldUpdate(start, params, ins.Control, local.Trainable(), metrics.Batches, cfg.LR, cfg.Momentum); err != nil {
			return FitRes{}, err
		}
	}
	if cfg.DP != nil {
		// Personal copies keep the unclipped values: they never leave
		// the client.
		if res.Params, res.Metrics.DPUnclipped, err = ClientPrivacy(c.engine.Layout(), ins.Params, params, has, *cfg.DP, cfg.Seed); err != nil {
			return FitRes{}, err
		}
	}
	return res, nil
}

// classStats measures the per-class sums of the true-class probabilities
// of start's self heads over the client's rows idx; it returns the
// prediction too (its logits are the teacher's when idx are the train rows).
func (c *LocalClient) classStats(start model.Params, idx []int) (ClassStats, *model.Prediction, error) {
	k := c.set.NumClasses
	stats := NewClassStats(k)
	b := c.gather(idx)
	pred, err := c.engine.Predict(start, b.X, len(b.Labels))
	if err != nil {
		return stats, nil, err
	}
	for i, y := range b.Labels {
		stats.SumPA[y] += float64(pred.ProbFirst[i*k+y])
		stats.SumPV[y] += float64(pred.ProbSecond[i*k+y])
		stats.Count[y]++
	}
	return stats, pred, nil
}

// labels returns the labels of the rows idx.
func (c *LocalClient) labels(idx []int) []int {
	out := make([]int, len(idx))
	for k, i := range idx {
		out[k] = c.set.Labels[i]
	}
	return out
}

func countPositive(v []float32) int {
	n := 0
	for _, x := range v {
		if x > 0 {
			n++
		}
	}
	return n
}

// Evaluate implements Client: the accuracy of the heads the client can
// compute with the modalities it holds (fused and both "only" heads for
// multimodal clients; its modality's "only" and "both" heads otherwise),
// using its personal parts if it has any. Heads it cannot compute are NaN.
func (c *LocalClient) Evaluate(ctx context.Context, params model.Params) (Evaluation, error) {
	if err := ctx.Err(); err != nil {
		return Evaluation{}, err
	}
	b := c.gather(c.index)
	ev, err := evaluate(c.engine, c.startParams(params, c.personal != nil), b.X, b.Labels, c.set.NumClasses)
	if err != nil {
		return Evaluation{}, err
	}
	for h := range model.NumHeads {
		if !c.canCompute(h) {
			ev.Heads[h] = math.NaN()
		}
	}
	return ev, nil
}

func (c *LocalClient) canCompute(head int) bool {
	switch head {
	case model.HeadFirstOnly, model.HeadFirstBoth:
		return c.has.Has(0)
	case model.HeadSecondOnly, model.HeadSecondBoth:
		return c.has.Has(1)
	}
	return c.has.Has(0) && c.has.Has(1)
}
