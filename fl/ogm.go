package fl

import (
	"github.com/fedcmi/fedcmi/config"
	"log/slog"

	"github.com/fedcmi/fedcmi/model"
)

// OGMOptions configure OGM-GE (Peng et al., CVPR 2022; see model.OGM for
// the formula): multimodal clients scale the dominant modality's encoder
// gradients by k = 1 - tanh(alpha * rho) (or alpha / rho) and add Gaussian
// noise with the gradient's own standard deviation, in the rounds
// StartRound..EndRound; outside them, and on unimodal clients, training is
// FedAvg's.
type OGMOptions struct {
	// Alpha is the modulation strength (default 0.8).
	Alpha float64
	// StartRound and EndRound bound the modulated rounds (1-based,
	// inclusive); EndRound 0 means up to the last round.
	StartRound, EndRound int
}

// Active reports whether round is modulated.
func (o OGMOptions) Active(round int) bool {
	return round >= o.StartRound && (o.EndRound == 0 || round <= o.EndRound)
}

// logOGM logs the round's mean OGM-GE coefficients over the modulated
// batches of all results (debug level).
func logOGM(log *slog.Logger, round int, results []Result) {
	var sum [2]float64
	n := 0
	for _, r := range results {
		sum[0] += r.Res.Metrics.OGM.CoefSum[0]
		sum[1] += r.Res.Metrics.OGM.CoefSum[1]
		n += r.Res.Metrics.OGM.Batches
	}
	if n > 0 {
		log.Debug("ogm-ge coefficients", "round", round, "mean_k_first", sum[0]/float64(n), "mean_k_second", sum[1]/float64(n), "batches", n)
	}
}

// ogmMethod registers OGM-GE (methods).
var ogmMethod = Method{Name: "ogm-ge", SumsOnly: true,
	TwoModalities: "OGM-GE slows each encoder by the ratio of its score to the other modality's (Peng et al., CVPR 2022, two modalities)",
	Server: func(base *ModalityAware, cfg *config.Config) Strategy {
		return &OGMGE{ModalityAware: base, Options: OGMOptions{Alpha: cfg.OGM.Alpha, StartRound: cfg.OGM.StartRound, EndRound: cfg.OGM.EndRound}}
	},
	Doc: "OGM-GE: on-the-fly gradient modulation with generalisation enhancement"}

// OGMGE is OGM-GE's server side: ModalityAware, telling clients to
// modulate in the rounds Options makes active and logging the coefficients
// the clients report.
type OGMGE struct {
	*ModalityAware
	Options OGMOptions
}

// ConfigureFit implements Strategy.
func (o *OGMGE) ConfigureFit(round int, global model.Params, clients []ClientInfo) ([]Instruction, error) {
	ins, err := o.ModalityAware.ConfigureFit(round, global, clients)
	if o.Options.Active(round) {
		for k := range ins {
			ins[k].Ins.Config.OGM = OGMFit{On: true, Alpha: o.Options.Alpha}
		}
	}
	return ins, err
}

// AggregateFit implements Strategy: ModalityAware's, after logging the
// round's mean coefficients.
func (o *OGMGE) AggregateFit(round int, global model.Params, results []Result, failures []Failure) (model.Params, error) {
	logOGM(o.logger(), round, results)
	return o.ModalityAware.AggregateFit(round, global, results, failures)
}

var (
	_ Strategy = (*OGMGE)(nil)
	_ Stateful = (*OGMGE)(nil)
)

// OGMFit is OGM-GE's part of a round's recipe (FitConfig.OGM).
type OGMFit struct {
	// On turns on OGM-GE gradient modulation with strength Alpha
	// (multimodal clients only; the noise is seeded by FitConfig.Seed).
	On    bool
	Alpha float64
}

func (c *OGMFit) validate() error { return finite("OGM alpha", c.Alpha) }

// OGMReport sums OGM-GE's coefficients (k_A, k_V) over the Batches
// modulated batches (FitMetrics.OGM).
type OGMReport struct {
	CoefSum [2]float64
	Batches int
}

// validate checks a report of a client that ran batches steps.
func (m *OGMReport) validate(batches int) error {
	if err := count("OGM batches", m.Batches, batches); err != nil {
		return err
	}
	if err := sum("OGM coefficient sum (modality 0)", m.CoefSum[0], true); err != nil {
		return err
	}
	return sum("OGM coefficient sum (modality 1)", m.CoefSum[1], true)
}

// ogmHook is OGM-GE's client side: the modulation's settings and its
// coefficients' sums.
type ogmHook struct{}

// prepare implements preparer.
func (ogmHook) prepare(r *localRound) error {
	r.tc.Terms = append(r.tc.Terms, model.OGMGE(model.OGM{Alpha: r.cfg.OGM.Alpha, Seed: r.cfg.Seed}))
	return nil
}

// recordStep implements stepRecorder.
func (ogmHook) recordStep(r *localRound, st model.StepStats) {
	r.metrics.OGM.CoefSum[0] += st.OGMCoef[0]
	r.metrics.OGM.CoefSum[1] += st.OGMCoef[1]
	r.metrics.OGM.Batches++
}
