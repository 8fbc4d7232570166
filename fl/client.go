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
// It keeps only its sample indices, plus the parameters it keeps for
// itself when its method has it keep some (personalised branches,
// Harmony's fine-tuned encoders) and SCAFFOLD's control variate, so a
// simulation of many clients stays small.
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
	// rowHas, if not nil, holds each row's modalities (indexed like the
	// set's rows) when samples miss some; partial says some of the
	// client's rows lack one of its modalities.
	rowHas  []data.Mask
	partial bool
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
	if !slices.Equal(set.Modalities, arch.Modalities) {
		return nil, fmt.Errorf("fl: data modalities %v, model %v", set.Modalities, arch.Modalities)
	}
	if len(index) == 0 {
		return nil, errors.New("fl: client without samples")
	}
	if has&data.Full(len(set.Modalities)) == 0 {
		return nil, errors.New("fl: client without modalities")
	}
	if has&^data.Full(len(set.Modalities)) != 0 {
		return nil, fmt.Errorf("fl: client holds modalities %08b, the data has %d", uint8(has), len(set.Modalities))
	}
	for _, i := range index {
		if i < 0 || i >= set.Len() {
			return nil, fmt.Errorf("fl: sample index %d outside 0..%d", i, set.Len()-1)
		}
	}
	return &LocalClient{engine: engine, set: set, index: slices.Clone(index), has: has}, nil
}

// SetRowModalities tells the client which modalities each of its rows has
// (rows indexes the set's rows; a row's mask must be within the client's):
// a missing modality's features are fed as zeros and its loss terms skip
// the row (model.TrainConfig.PartialRows).
func (c *LocalClient) SetRowModalities(rows []data.Mask) error {
	if len(rows) != c.set.Len() {
		return fmt.Errorf("fl: row modalities for %d rows, set has %d", len(rows), c.set.Len())
	}
	c.partial = false
	for _, i := range c.index {
		if rows[i] == 0 || rows[i]&^c.has != 0 {
			return fmt.Errorf("fl: row %d has modalities %v, client holds %v", i, rows[i], c.has)
		}
		c.partial = c.partial || rows[i] != c.has
	}
	c.rowHas = rows
	return nil
}

// NumSamples is the number of local samples.
func (c *LocalClient) NumSamples() int { return len(c.index) }

// Modalities is the set of modalities the client holds.
func (c *LocalClient) Modalities() data.Mask { return c.has }

// rowHolds reports whether the set's row i holds every modality of want
// (each row holds all of the client's unless SetRowModalities said
// otherwise).
func (c *LocalClient) rowHolds(i int, want data.Mask) bool {
	return c.rowHas == nil || c.rowHas[i]&want == want
}

// rowsHolding returns the rows of idx that hold every modality of want:
// the rows whose inputs of those modalities are real, not zeros standing
// for missing ones.
func (c *LocalClient) rowsHolding(idx []int, want data.Mask) []int {
	if !c.partial {
		return idx
	}
	var out []int
	for _, i := range idx {
		if c.rowHolds(i, want) {
			out = append(out, i)
		}
	}
	return out
}

// gather copies the rows idx of the modalities the client holds.
func (c *LocalClient) gather(idx []int) model.Batch {
	nm := len(c.set.Modalities)
	b := model.Batch{X: make([][]float32, nm)}
	for m := range nm {
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
	if c.partial {
		b.Present = make([][]float32, nm)
		for m := range nm {
			if b.X[m] == nil {
				continue
			}
			d := c.set.Dims[m]
			b.Present[m] = make([]float32, len(idx))
			for k, i := range idx {
				if c.rowHas[i].Has(m) {
					b.Present[m][k] = 1
				} else {
					clear(b.X[m][k*d : (k+1)*d])
				}
			}
		}
	}
	return b
}

// startParams returns the model the client starts from: the global model
// with the client's personal parts, if it has any (and reports whether it
// put any in).
func (c *LocalClient) startParams(global model.Params, personalized bool) (model.Params, bool) {
	if !personalized || c.personal == nil {
		return global, false
	}
	p := slices.Clone(global) // tensors are shared read-only; only personal ones are replaced
	for i, t := range c.personal {
		p[i] = t
	}
	return p, true
}

// keepOwn makes the tensors of trained that own selects the parts the
// client keeps for itself until its next round (startParams).
func (c *LocalClient) keepOwn(trained model.Params, own func(model.ParamInfo) bool) {
	c.personal = make(map[int]model.Tensor)
	for i, info := range c.engine.Layout() {
		if own(info) {
			c.personal[i] = trained[i]
		}
	}
}

// KeepsOwn reports whether the client keeps parts of its own model
// (personalised branches, Harmony's fine-tuned encoders).
func (c *LocalClient) KeepsOwn() bool { return c.personal != nil }

// HasState reports whether the client carries state into its next round:
// SCAFFOLD's control variate or parts of its own model (MarshalState
// saves it).
func (c *LocalClient) HasState() bool { return c.control != nil || c.personal != nil }

// EvaluateOwn measures the client's own model on set: the global model
// global with the parts the client keeps for itself (personalised
// branches, Harmony's fine-tuned encoders; KeepsOwn). Heads the client
// cannot compute with the modalities it holds (whose parts it never
// trained) are NaN.
func (c *LocalClient) EvaluateOwn(global model.Params, set *data.Set) (Evaluation, error) {
	own, _ := c.startParams(global, true)
	ev, err := EvaluateSet(c.engine, own, set)
	if err != nil {
		return Evaluation{}, err
	}
	c.maskHeads(&ev)
	return ev, nil
}

// maskHeads sets the heads the client cannot compute with the modalities
// it holds to NaN.
func (c *LocalClient) maskHeads(ev *Evaluation) {
	computable := model.HeadsWith(c.has.Bools(len(c.set.Modalities)))
	for h := range ev.Heads {
		if !slices.Contains(computable, h) {
			ev.Heads[h] = math.NaN()
		}
	}
}

// Discard undoes what the Fit of round did to the client's state
// (SCAFFOLD's control variate, personal parts) when its result never
// reached an aggregate (answered late or rejected): the server's control
// variate, which sums only aggregated changes, stays the mean of the
// clients' ones. It reports whether the latest Fit was of round.
func (c *LocalClient) Discard(round int) bool {
	if round <= 0 || round != c.lastRound {
		return false
	}
	c.control, c.personal = c.before.control, c.before.personal
	c.lastRound = 0
	return true
}

// Fit implements Client: the plain local training loop. What a method or
// option adds (FedCMI's teacher and temperatures, SCAFFOLD's correction,
// prototypes, privacy, ...) comes from the round's hooks (round.go), each
// in its method's file.
func (c *LocalClient) Fit(ctx context.Context, ins FitIns) (FitRes, error) {
	cfg := ins.Config
	if cfg.Epochs < 1 {
		return FitRes{}, fmt.Errorf("fl: %d local epochs", cfg.Epochs)
	}
	switch {
	case cfg.Round > 0 && cfg.Round == c.lastRound:
		// The round runs again (the coordinator resumed from the round
		// before): undo what its first run did to the client's state.
		c.control, c.personal = c.before.control, c.before.personal
	case cfg.Round > 0 && cfg.Round < c.lastRound:
		// A round before the last this client trained: another run (a
		// coordinator started anew, a state file kept from an earlier
		// run), to which the client's state does not belong.
		c.control, c.personal = nil, nil
	}
	c.lastRound, c.before = cfg.Round, clientState{control: c.control, personal: c.personal}
	r := &localRound{c: c, ins: ins, cfg: cfg, train: c.index}
	r.start, r.personal = c.startParams(ins.Params, cfg.FedCMI.Personalized)
	r.has = c.trainedModalities(cfg)
	r.multi = r.has.Count() >= 2
	r.tc = model.TrainConfig{
		Has:         r.has.Bools(len(c.set.Modalities)),
		C1:          cfg.C1,
		WeightDecay: cfg.WeightDecay,
		Momentum:    cfg.Momentum,
		PartialRows: c.partial && r.multi,
	}
	hooks := roundHooks(cfg, r.multi)
	for _, h := range hooks {
		if p, ok := h.(preparer); ok {
			if err := p.prepare(r); err != nil {
				return FitRes{}, err
			}
		}
	}
	local, err := c.engine.NewLocalFrom(r.start, ins.Params, r.tc)
	if err != nil {
		return FitRes{}, err
	}
	defer local.Close()
	r.local = local

	rng := rand.New(rand.NewPCG(cfg.Seed, 0))
	augRNG := rand.New(rand.NewPCG(cfg.Seed, 1)) // its own stream: shuffling does not depend on augmentation
	// order holds positions in r.train, so that hooks find their per-row
	// inputs (shuffling positions permutes exactly as shuffling the rows).
	order := make([]int, len(r.train))
	for i := range order {
		order[i] = i
	}
	rows := make([]int, 0, c.engine.BatchSize())
	bs := c.engine.BatchSize()
	steps, totalSteps := 0, cfg.Epochs*((len(order)+bs-1)/bs)
	for ep := range cfg.Epochs {
		for _, h := range hooks {
			if e, ok := h.(epochStarter); ok {
				if err := e.startEpoch(r, ep); err != nil {
					return FitRes{}, err
				}
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
				rows = append(rows, r.train[i])
			}
			b := c.gather(rows)
			for _, h := range hooks {
				if f, ok := h.(batchFiller); ok {
					f.fillBatch(r, &b, pos)
				}
			}
			if c.augment != nil {
				for m := range b.X {
					if b.X[m] == nil {
						continue
					}
					if err := c.augment(m, b.X[m], len(b.Labels), augRNG); err != nil {
						return FitRes{}, fmt.Errorf("fl: augment %s: %w", c.set.Modalities[m], err)
					}
				}
			}
			st, err := local.Step(b, cfg.LR)
			if err != nil {
				return FitRes{}, err
			}
			r.metrics.LossSum += st.Loss
			r.metrics.Batches++
			if steps++; c.onStep != nil {
				c.onStep(cfg.Round, steps, totalSteps)
			}
			for _, h := range hooks {
				if s, ok := h.(stepRecorder); ok {
					s.recordStep(r, st)
				}
			}
			if r.multi {
				recordDominance(&r.metrics, st, b.Dir)
			}
		}
	}
	params, err := local.Params()
	if err != nil {
		return FitRes{}, err
	}
	res := FitRes{Params: params, NumSamples: len(r.train), Modalities: r.has, Metrics: r.metrics}
	for _, h := range hooks {
		if f, ok := h.(finisher); ok {
			if err := f.finish(r, params, &res); err != nil {
				return FitRes{}, err
			}
		}
	}
	return res, nil
}

// recordDominance adds a multimodal step's dominance to m: the ratio rho
// of modality 0's sum of p(y) to modality 1's, and whether modality 0 was
// the teacher: by the rows' choices (dir, if given) or, without them, by
// the batch's sums (the largest; ties to the later modality).
func recordDominance(m *FitMetrics, st model.StepStats, dir []float32) {
	if len(st.SumP) < 2 || len(st.SumP) > 2 && !(st.SumP[0] > 0 && st.SumP[1] > 0) {
		return // with more modalities, a client without modality 0 or 1 has no ratio
	}
	rho := DominanceRatio(st.SumP[0], st.SumP[1])
	if math.IsNaN(rho) || math.IsInf(rho, 0) {
		return
	}
	m.RhoSum += rho
	m.RhoBatches++
	first := teacherOf(st.SumP) == 0
	switch {
	case dir != nil:
		n := 0
		for _, d := range dir {
			if d == 1 || d == 0 && first {
				n++
			}
		}
		m.FirstDominant += float64(n) / float64(len(dir))
	case first:
		m.FirstDominant++
	}
}

// classStats measures the per-class sums of the true-class probabilities
// of start's self heads over the client's rows idx that hold all of its
// modalities (a missing modality's zeros would skew its P_m(c), and every
// modality's means come from the same rows); it returns the prediction of
// every row of idx too (its logits are the teacher's when idx are the
// train rows and start is the received model, without personal parts).
func (c *LocalClient) classStats(start model.Params, idx []int) (ClassStats, *model.Prediction, error) {
	k := c.set.NumClasses
	stats := NewClassStats(len(c.set.Modalities), k)
	b := c.gather(idx)
	pred, err := c.engine.Predict(start, b.X, len(b.Labels))
	if err != nil {
		return stats, nil, err
	}
	for i, y := range b.Labels {
		if !c.rowHolds(idx[i], c.has) {
			continue
		}
		for m := range stats.Sum {
			if b.X[m] != nil {
				stats.Sum[m][y] += float64(pred.Prob[m][i*k+y])
			}
		}
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

// Evaluate implements Client: the accuracy of the heads the client can
// compute with the modalities it holds (the fused head with all of them;
// a modality's "only" and "both" heads with it; the fused head without m
// with all but m), using its personal parts if it has any. Heads it cannot
// compute are NaN.
func (c *LocalClient) Evaluate(ctx context.Context, params model.Params) (Evaluation, error) {
	if err := ctx.Err(); err != nil {
		return Evaluation{}, err
	}
	b := c.gather(c.index)
	own, _ := c.startParams(params, true)
	ev, err := evaluate(c.engine, own, b.X, b.Labels, c.set.NumClasses)
	if err != nil {
		return Evaluation{}, err
	}
	c.maskHeads(&ev)
	return ev, nil
}
