package fl

import (
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
