package fl

import (
	"fmt"
	"math"

	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/model"
)

// ClientInfo is what the server knows of a registered client.
type ClientInfo struct {
	// ID names the client uniquely.
	ID string
	// Modalities is the set of modalities the client holds.
	Modalities data.Mask
	// NumSamples is the client's number of training samples.
	NumSamples int
}

// FitConfig is the client's recipe for one round of local training.
type FitConfig struct {
	// Round is the 1-based round number.
	Round int
	// Epochs is the number of local passes over the client's data.
	Epochs int
	// LR is this round's learning rate.
	LR float64
	// Seed drives the client's shuffling this round.
	Seed uint64
	// Infiltration turns on FedCMI's cross-modal infiltration (multimodal
	// clients only).
	Infiltration bool
	// ClassTemperature uses class-wise temperatures (needs Infiltration);
	// otherwise every sample uses Temperature.
	ClassTemperature bool
	// Alpha weights the infiltration loss; C1 the unimodal self-head
	// losses; C3 the class-wise temperature formula; Temperature is the
	// global distillation temperature.
	Alpha, C1, C3, Temperature float64
	// Mu is the proximal coefficient (0 = off); WeightDecay and Momentum
	// configure SGD.
	Mu, WeightDecay, Momentum float64
	// Personalized keeps the infiltration projectors and classifiers on the
	// client between rounds.
	Personalized bool
	// Dominance says where the infiltration direction and the class-wise
	// temperatures come from (DominanceBatch: the method's own rule).
	Dominance Dominance
	// Holdout is the fraction of each class a multimodal client sets aside
	// (never trained on) to measure dominance, for DominanceHoldout and
	// optionally DominanceFederated; HoldoutSeed picks the slice and stays
	// the same every round.
	Holdout     float64
	HoldoutSeed uint64
	// ClassDirection gives every class its own infiltration direction
	// (from its own ratio) instead of one per round; not for DominanceBatch.
	ClassDirection bool
	// Table is the server's pooled dominance table (DominanceFederated;
	// nil until the first round has been pooled).
	Table *DominanceTable
	// OGM turns on OGM-GE gradient modulation with strength OGMAlpha
	// (multimodal clients only; the noise is seeded by Seed).
	OGM      bool
	OGMAlpha float64
	// HarmonyUnimodal trains Harmony's first stage: each held modality's
	// encoder, self projector and classifier on its unimodal loss only.
	HarmonyUnimodal bool
	// PMR is the round's PMR recipe (pmr.go).
	PMR PMRFit
	// MDrop is the round's FedMDrop recipe (fedmdrop.go).
	MDrop MDropFit
	// DP is the client's share of client-side differential privacy (nil:
	// none): it clips its update and adds its part of the noise.
	DP *DPFit
	// Relearn asks for the clustering purities of fedrelearn (relearn.go).
	Relearn bool
	// GB asks multimodal clients for fedgb's losses (gradblend.go);
	// HeadWeights, if not nil, weights their loss's heads
	// (model.TrainConfig.HeadWeights).
	GB          bool
	HeadWeights []float64
}

// FitIns is a client's instruction for one round.
type FitIns struct {
	// Params is the global model.
	Params model.Params
	// Config says how to train.
	Config FitConfig
	// Control is SCAFFOLD's server control variate c (Layout order); nil
	// for every other method.
	Control model.Params
}

// FitMetrics is what local training measured.
type FitMetrics struct {
	// LossSum is the sum of the batch losses, over Batches batches.
	LossSum float64
	Batches int
	// RhoSum is the sum of the dominance ratios rho of the RhoBatches
	// multimodal batches. FirstDominant sums, over those batches, the
	// share of rows treated as modality 0 dominant: the infiltration
	// direction used (1 or 0 per batch under the method's rule, which
	// is also what is counted without infiltration: rho > 1).
	RhoSum        float64
	RhoBatches    int
	FirstDominant float64
	// Temperatures holds the class-wise temperatures used (nil if none).
	Temperatures []float64
	// ClassStats are the per-class self-head statistics the client
	// measured before training (nil if none); DominanceFederated pools them.
	ClassStats *ClassStats
	// OGMCoefSum sums OGM-GE's coefficients (k_A, k_V) over the OGMBatches
	// modulated batches.
	OGMCoefSum [2]float64
	OGMBatches int
	// Proto summarises the prototype loss (PMR, FedMDrop).
	Proto ProtoMetrics
	// DPUnclipped is, under client-side privacy, 1 if the update was
	// within the clip bound (else 0) plus the client's share of the count
	// noise, for adaptive clipping.
	DPUnclipped float64
	// Relearn holds fedrelearn's purities per modality (N = 0: not
	// measured).
	Relearn []RelearnPurity
	// GB holds fedgb's losses (N = 0: not measured).
	GB GBLosses
}

// FitRes is a client's answer to FitIns.
type FitRes struct {
	// Params is the locally trained model (all tensors; the strategy
	// decides which to use).
	Params model.Params
	// NumSamples is the number of samples trained on (the averaging weight).
	NumSamples int
	// Modalities is the set of modalities the client trained.
	Modalities data.Mask
	Metrics    FitMetrics
	// ControlDelta is SCAFFOLD's c_i+ - c_i (Layout order; zero for the
	// parameters the client did not train), answering a FitIns with a
	// Control; nil otherwise.
	ControlDelta model.Params
	// Report holds FedMDrop's client statistics (nil for other methods).
	Report *ModalityReport
}

// Instruction pairs a client with its FitIns.
type Instruction struct {
	ClientID string
	Ins      FitIns
}

// Result is one client's answer in a round.
type Result struct {
	ClientID string
	Res      FitRes
}

// Failure is a client that did not deliver a usable result.
type Failure struct {
	ClientID string
	Err      error
}

// MaxMetricCount bounds every count a FitMetrics may hold, so that the
// server's sums over many clients cannot overflow.
const MaxMetricCount = 1 << 40

// Validate checks metrics received from a client that may be hostile, for
// a model of nm modalities and k classes, before the server uses them: finite sums (RhoSum,
// a sum of probability ratios, and OGMCoefSum also non-negative); counts in
// 0..MaxMetricCount, with RhoBatches, OGMBatches and Proto.Batches at most
// Batches; FirstDominant in [0, RhoBatches] and Proto.FirstFast in
// [0, Proto.Batches]; Temperatures nil or k finite positive values; and
// ClassStats nil or valid for nm modalities and k classes
// (ClassStats.Validate).
func (m *FitMetrics) Validate(nm, k int) error {
	for _, c := range []struct {
		name string
		v    int
		max  int
	}{
		{"batches", m.Batches, MaxMetricCount},
		{"rho batches", m.RhoBatches, m.Batches},
		{"OGM batches", m.OGMBatches, m.Batches},
		{"prototype batches", m.Proto.Batches, m.Batches},
		{"prototype first-fast batches", m.Proto.FirstFast, m.Proto.Batches},
	} {
		if c.v < 0 || c.v > c.max {
			return fmt.Errorf("fl: metrics: %s %d, want 0..%d", c.name, c.v, c.max)
		}
	}
	for _, s := range []struct {
		name     string
		v        float64
		nonNeg   bool
		atMostRB bool
	}{
		{"loss sum", m.LossSum, false, false},
		{"rho sum", m.RhoSum, true, false},
		{"first-dominant sum", m.FirstDominant, true, true},
		{"OGM coefficient sum (modality 0)", m.OGMCoefSum[0], true, false},
		{"OGM coefficient sum (modality 1)", m.OGMCoefSum[1], true, false},
		{"prototype rho sum", m.Proto.RhoSum, false, false},
	} {
		switch {
		case math.IsNaN(s.v) || math.IsInf(s.v, 0):
			return fmt.Errorf("fl: metrics: %s is %v", s.name, s.v)
		case s.nonNeg && s.v < 0:
			return fmt.Errorf("fl: metrics: %s %v is negative", s.name, s.v)
		case s.atMostRB && s.v > float64(m.RhoBatches):
			return fmt.Errorf("fl: metrics: %s %v exceeds the %d rho batches", s.name, s.v, m.RhoBatches)
		}
	}
	if m.Temperatures != nil {
		if len(m.Temperatures) != k {
			return fmt.Errorf("fl: metrics: %d temperatures for %d classes", len(m.Temperatures), k)
		}
		for c, t := range m.Temperatures {
			if math.IsNaN(t) || math.IsInf(t, 0) || t <= 0 {
				return fmt.Errorf("fl: metrics: temperature of class %d is %v", c, t)
			}
		}
	}
	if m.ClassStats != nil {
		if err := m.ClassStats.Validate(nm, k); err != nil {
			return err
		}
	}
	return nil
}

// MaxEpochs bounds FitConfig.Epochs.
const MaxEpochs = 1 << 20

// Validate checks a recipe received from a server, for a model of nm
// modalities, k classes and embeddings of width d, before a client trains
// with it: Round and Epochs (at most MaxEpochs) not negative; finite
// coefficients and a non-negative LR; Holdout in [0, 1); a known
// Dominance; Table nil or of nm modalities and k classes with means in
// [0, 1] or NaN (no report yet); HeadWeights nil or 1 + nm finite,
// non-negative values; a Drop mask of the model's modalities; and
// MDrop.Global nil or valid (PrototypeSet.Validate).
func (c *FitConfig) Validate(nm, k, d int) error {
	if c.Round < 0 || c.Epochs < 0 || c.Epochs > MaxEpochs {
		return fmt.Errorf("fl: recipe: round %d, epochs %d (want 0..%d)", c.Round, c.Epochs, MaxEpochs)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"lr", c.LR}, {"alpha", c.Alpha}, {"c1", c.C1}, {"c3", c.C3}, {"temperature", c.Temperature},
		{"mu", c.Mu}, {"weight decay", c.WeightDecay}, {"momentum", c.Momentum}, {"holdout", c.Holdout},
		{"OGM alpha", c.OGMAlpha}, {"PMR alpha", c.PMR.Alpha}, {"PMR gamma", c.PMR.Gamma},
		{"PMR momentum", c.PMR.Momentum}, {"FedMDrop alpha", c.MDrop.Alpha},
	} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fmt.Errorf("fl: recipe: %s is %v", f.name, f.v)
		}
	}
	switch {
	case c.LR < 0:
		return fmt.Errorf("fl: recipe: negative lr %v", c.LR)
	case c.Holdout < 0 || c.Holdout >= 1:
		return fmt.Errorf("fl: recipe: holdout %v outside [0, 1)", c.Holdout)
	case c.Dominance < DominanceBatch || c.Dominance > DominanceFederated:
		return fmt.Errorf("fl: recipe: unknown dominance source %v", c.Dominance)
	case c.MDrop.Drop&^data.Full(nm) != 0:
		return fmt.Errorf("fl: recipe: drop mask %b names no modality of the model", c.MDrop.Drop)
	case c.HeadWeights != nil && len(c.HeadWeights) != 1+nm:
		return fmt.Errorf("fl: recipe: %d head weights, want %d", len(c.HeadWeights), 1+nm)
	}
	for i, w := range c.HeadWeights {
		if !(w >= 0) || math.IsInf(w, 0) {
			return fmt.Errorf("fl: recipe: head weight %d is %v", i, w)
		}
	}
	if t := c.Table; t != nil {
		if len(t.P) != nm || t.Rounds < 0 {
			return fmt.Errorf("fl: recipe: dominance table of %d modalities after %d rounds, want %d modalities", len(t.P), t.Rounds, nm)
		}
		for m := range t.P {
			if len(t.P[m]) != k {
				return fmt.Errorf("fl: recipe: dominance table of %d classes for modality %d, want %d", len(t.P[m]), m, k)
			}
			for cl, v := range t.P[m] {
				if !math.IsNaN(v) && !(v >= 0 && v <= 1) {
					return fmt.Errorf("fl: recipe: dominance table class %d holds %v", cl, v)
				}
			}
		}
	}
	if g := c.MDrop.Global; g != nil {
		if err := g.Validate(k, d, data.Full(nm), MaxMetricCount); err != nil {
			return fmt.Errorf("fl: recipe: global prototypes: %w", err)
		}
	}
	return nil
}
