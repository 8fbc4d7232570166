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
}

// FitMetrics is what local training measured.
type FitMetrics struct {
	// LossSum is the sum of the batch losses, over Batches batches.
	LossSum float64
	Batches int
	// RhoSum is the sum of the dominance ratios rho of the RhoBatches
	// multimodal batches; FirstDominant counts those with rho > 1.
	RhoSum        float64
	RhoBatches    int
	FirstDominant int
	// Temperatures holds the class-wise temperatures used (nil if none).
	Temperatures []float64
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
