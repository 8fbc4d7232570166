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

// FitConfig is the client's recipe for one round of local training: the
// settings every method shares, FedCMI's (the framework's own method,
// whose recipe every method's clients follow in part), and the running
// method's own recipe (Recipe, defined in the method's file).
type FitConfig struct {
	// Round is the 1-based round number.
	Round int
	// Epochs is the number of local passes over the client's data.
	Epochs int
	// LR is this round's learning rate.
	LR float64
	// Seed drives the client's shuffling this round.
	Seed uint64
	// C1 weights the unimodal self-head losses.
	C1 float64
	// Mu is the proximal coefficient of FedProx and FedCMI (0 = off;
	// prox.go); WeightDecay and Momentum configure SGD.
	Mu, WeightDecay, Momentum float64

	// FedCMI is FedCMI's recipe and its variants' (fedcmi.go).
	FedCMI FedCMIFit
	// Recipe is the running method's own part of the round (nil: none):
	// its settings and, through them, its share of the client's round.
	Recipe Recipe
	// DP is the client's share of client-side differential privacy (nil:
	// none): it clips its update and adds its part of the noise
	// (serverside.go).
	DP *DPFit
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

// A Recipe is a method's part of a round's instruction (FitConfig.Recipe),
// chosen by the method's server side. Its concrete type travels by gob
// and is registered with the method (Method.Recipe).
type Recipe interface {
	// hooks returns the method's share of a client's round (round.go),
	// in the order they run; multi says the client trains more than one
	// modality this round.
	hooks(multi bool) []roundHook
	// validate checks a recipe received from a server that may be
	// hostile, for a model of nm modalities, k classes and embeddings of
	// width d.
	validate(nm, k, d int) error
}

// A Report is what a method's client side measured for its server
// (FitMetrics.Report). Its concrete type travels by gob and is registered
// with the method (Method.Report).
type Report interface {
	// validate checks a report received from a client that may be
	// hostile (MetricBounds), of metrics of batches steps.
	validate(b MetricBounds, batches int) error
}

// privateReport is a Report that holds per-client statistics (class
// prototypes, ...), which secure aggregation must not see in the clear.
type privateReport interface {
	// private names them, or returns "" for a report without them.
	private() string
}

// PerClient names what per-client statistics the metrics carry (class
// statistics, the privacy indicator, a method's per-class report), or
// returns "": secure aggregation hides each client's contribution, so
// a masked input must carry none of these in the clear.
func (m *FitMetrics) PerClient() string {
	switch {
	case m.FedCMI.ClassStats != nil:
		return "class statistics"
	case m.DPUnclipped != 0:
		return "the privacy indicator"
	}
	if p, ok := m.Report.(privateReport); ok {
		return p.private()
	}
	return ""
}

// MetricBounds is what a client's metrics are checked against.
type MetricBounds struct {
	// Modalities, Classes and Width are the model's number of
	// modalities, of classes and its embeddings' width.
	Modalities, Classes, Width int
	// Holds is the set of modalities the client holds; Samples the
	// number of samples it holds.
	Holds   data.Mask
	Samples int
	// DP is the client's share of client-side privacy this round, as its
	// instruction said (FitConfig.DP), or nil if the caller does not know
	// it: its unclipped indicator is then only checked against
	// MaxMetricCount, not against its count noise.
	DP *DPFit
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

	// FedCMI is what FedCMI's client side measured (fedcmi.go).
	FedCMI FedCMIReport
	// Report is what the running method's client side measured for its
	// server (nil: nothing), a struct in the method's file.
	Report Report
	// DPUnclipped is, under client-side privacy, 1 if the update was
	// within the clip bound (else 0) plus the client's share of the count
	// noise, for adaptive clipping (serverside.go).
	DPUnclipped float64
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

// Validate checks metrics received from a client that may be hostile,
// before the server uses them: finite sums (RhoSum, a sum of probability
// ratios, also non-negative); counts in 0..MaxMetricCount, with RhoBatches
// at most Batches; FirstDominant in [0, RhoBatches]; DPUnclipped as
// checkUnclipped says; FedCMI's report (Temperatures nil or k finite
// positive values, ClassStats nil or valid for the model's modalities and
// classes, with counts summing to at most the client's samples); and the
// method's Report, if any, as its type says.
func (m *FitMetrics) Validate(b MetricBounds) error {
	if err := count("batches", m.Batches, MaxMetricCount); err != nil {
		return err
	}
	if err := count("rho batches", m.RhoBatches, m.Batches); err != nil {
		return err
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
	if err := checkUnclipped(m.DPUnclipped, b.DP); err != nil {
		return fmt.Errorf("fl: metrics: %w", err)
	}
	if err := m.FedCMI.validate(b); err != nil {
		return err
	}
	if m.Report != nil {
		return m.Report.validate(b, m.Batches)
	}
	return nil
}

// unclippedSigmas is how many standard deviations of its count noise a
// client's unclipped indicator (1 or 0, plus that noise) may lie outside
// [0, 1]: an honest client's lies further with probability below 2e-23.
const unclippedSigmas = 10

// checkUnclipped checks a client's unclipped indicator v (DPUnclipped):
// finite and, under dp (the client's share of privacy), within
// unclippedSigmas of dp.CountStd of [0, 1]; without dp, only within
// ±MaxMetricCount, so that the server's count over many clients stays
// finite. A value in range can bias the adaptive clip (privateMean),
// never make it 0, infinite or NaN.
func checkUnclipped(v float64, dp *DPFit) error {
	lo, hi := -float64(MaxMetricCount), float64(MaxMetricCount)
	if dp != nil {
		lo, hi = 0-unclippedSigmas*dp.CountStd, 1+unclippedSigmas*dp.CountStd // 0-: not -0 in messages
	}
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Errorf("unclipped indicator is %v", v)
	case v < lo || v > hi:
		return fmt.Errorf("unclipped indicator %v outside [%v, %v]", v, lo, hi)
	}
	return nil
}

// count checks that a count of a client's metrics is in 0..max.
func count(name string, v, max int) error {
	if v < 0 || v > max {
		return fmt.Errorf("fl: metrics: %s %d, want 0..%d", name, v, max)
	}
	return nil
}

// sum checks that a sum of a client's metrics is finite, and not negative
// when nonNeg.
func sum(name string, v float64, nonNeg bool) error {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Errorf("fl: metrics: %s is %v", name, v)
	case nonNeg && v < 0:
		return fmt.Errorf("fl: metrics: %s %v is negative", name, v)
	}
	return nil
}

// MaxEpochs bounds FitConfig.Epochs.
const MaxEpochs = 1 << 20

// Validate checks a recipe received from a server, for a model of nm
// modalities, k classes and embeddings of width d, before a client trains
// with it: Round and Epochs (at most MaxEpochs) not negative; finite
// coefficients and a non-negative LR; DP nil or valid (DPFit.validate);
// FedCMI's recipe (Holdout in [0, 1); a known Dominance; Table nil or of
// nm modalities and k classes with means in [0, 1] or NaN, no report
// yet); and the method's Recipe, if any, as its type says.
func (c *FitConfig) Validate(nm, k, d int) error {
	if c.Round < 0 || c.Epochs < 0 || c.Epochs > MaxEpochs {
		return fmt.Errorf("fl: recipe: round %d, epochs %d (want 0..%d)", c.Round, c.Epochs, MaxEpochs)
	}
	if err := finite("lr", c.LR, "c1", c.C1, "mu", c.Mu, "weight decay", c.WeightDecay, "momentum", c.Momentum); err != nil {
		return err
	}
	if c.LR < 0 {
		return fmt.Errorf("fl: recipe: negative lr %v", c.LR)
	}
	if c.DP != nil {
		if err := c.DP.validate(); err != nil {
			return err
		}
	}
	if err := c.FedCMI.validate(nm, k); err != nil {
		return err
	}
	if c.Recipe != nil {
		return c.Recipe.validate(nm, k, d)
	}
	return nil
}

// finite checks that each named value of a recipe (name, value, name,
// value, ...) is finite.
func finite(pairs ...any) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if v := pairs[i+1].(float64); math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("fl: recipe: %s is %v", pairs[i], v)
		}
	}
	return nil
}
