package fl

import (
	"fmt"
	"log/slog"

	"github.com/fedcmi/fedcmi/config"
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
		if rep, ok := r.Res.Metrics.Report.(*OGMReport); ok {
			sum[0] += rep.CoefSum[0]
			sum[1] += rep.CoefSum[1]
			n += rep.Batches
		}
	}
	if n > 0 {
		log.Debug("ogm-ge coefficients", "round", round, "mean_k_first", sum[0]/float64(n), "mean_k_second", sum[1]/float64(n), "batches", n)
	}
}

// ogmMethod registers OGM-GE (methods).
var ogmMethod = Method{Name: "ogm-ge", SumsOnly: true,
	CheckSettings: func(cfg *config.Config) error {
		if f := cfg.Model.Fusion; f != "concat" && f != "sum" {
			return &config.FieldError{Path: "model.fusion", Err: fmt.Errorf("%s: ogm-ge needs concat or sum fusion (a head with one additive part per modality, from which it measures each modality's confidence)", f)}
		}
		return nil
	},
	TwoModalities: "OGM-GE slows each encoder by the ratio of its score to the other modality's (Peng et al., CVPR 2022, two modalities)",
	Recipe:        OGMFit{},
	Report:        &OGMReport{},
	WholeSamples:  "its modulation compares the modalities' scores on the same samples",
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
			ins[k].Ins.Config.Recipe = OGMFit{Alpha: o.Options.Alpha}
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

// OGMFit is OGM-GE's recipe (FitConfig.Recipe) in a modulated round:
// gradient modulation with strength Alpha on multimodal clients, the
// noise seeded by FitConfig.Seed.
type OGMFit struct {
	Alpha float64
}

func (c OGMFit) validate(nm, k, d int) error { return finite("OGM alpha", c.Alpha) }

// hooks implements Recipe: OGM-GE modulates multimodal steps only.
func (c OGMFit) hooks(multi bool) []roundHook {
	if !multi {
		return nil
	}
	return []roundHook{&ogmHook{alpha: c.Alpha}}
}

// OGMReport sums OGM-GE's coefficients (k_A, k_V) over the Batches
// modulated batches (FitMetrics.Report).
type OGMReport struct {
	CoefSum [2]float64
	Batches int
}

// validate implements Report.
func (m *OGMReport) validate(_ MetricBounds, batches int) error {
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
type ogmHook struct {
	alpha float64
	rep   *OGMReport
}

// prepare implements preparer.
func (h *ogmHook) prepare(r *localRound) error {
	r.tc.Terms = append(r.tc.Terms, model.OGMGE(model.OGM{Alpha: h.alpha, Seed: r.cfg.Seed}))
	h.rep = &OGMReport{}
	r.metrics.Report = h.rep
	return nil
}

// recordStep implements stepRecorder.
func (h *ogmHook) recordStep(r *localRound, st model.StepStats) {
	h.rep.CoefSum[0] += st.OGMCoef[0]
	h.rep.CoefSum[1] += st.OGMCoef[1]
	h.rep.Batches++
}
