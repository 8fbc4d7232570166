package deploy

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/internal/fedcmipb"
	"github.com/fedcmi/fedcmi/model"
)

func toPBConfig(c fl.FitConfig) *fedcmipb.FitConfig {
	f := c.FedCMI
	return &fedcmipb.FitConfig{
		Round: int64(c.Round), Epochs: int64(c.Epochs), Lr: c.LR, Seed: c.Seed,
		Infiltration: f.Infiltration, ClassTemperature: f.ClassTemperature,
		Alpha: f.Alpha, C1: c.C1, C3: f.C3, Temperature: f.Temperature,
		Mu: c.Mu, WeightDecay: c.WeightDecay, Momentum: c.Momentum, Personalized: f.Personalized,
	}
}

func fromPBConfig(c *fedcmipb.FitConfig) fl.FitConfig {
	return fl.FitConfig{
		Round: int(c.GetRound()), Epochs: int(c.GetEpochs()), LR: c.GetLr(), Seed: c.GetSeed(),
		C1: c.GetC1(), Mu: c.GetMu(), WeightDecay: c.GetWeightDecay(), Momentum: c.GetMomentum(),
		FedCMI: fl.FedCMIFit{
			Infiltration: c.GetInfiltration(), ClassTemperature: c.GetClassTemperature(),
			Alpha: c.GetAlpha(), C3: c.GetC3(), Temperature: c.GetTemperature(), Personalized: c.GetPersonalized(),
		},
	}
}

func toPBMetrics(m fl.FitMetrics) *fedcmipb.FitMetrics {
	return &fedcmipb.FitMetrics{
		LossSum: m.LossSum, Batches: int64(m.Batches), RhoSum: m.RhoSum, RhoBatches: int64(m.RhoBatches),
		FirstDominant: m.FirstDominant, Temperatures: m.FedCMI.Temperatures,
	}
}

func fromPBMetrics(m *fedcmipb.FitMetrics) fl.FitMetrics {
	return fl.FitMetrics{
		LossSum: m.GetLossSum(), Batches: int(m.GetBatches()), RhoSum: m.GetRhoSum(), RhoBatches: int(m.GetRhoBatches()),
		FirstDominant: m.GetFirstDominant(), FedCMI: fl.FedCMIReport{Temperatures: m.GetTemperatures()},
	}
}

func toPBEvaluation(e fl.Evaluation) *fedcmipb.Evaluation {
	return &fedcmipb.Evaluation{Heads: e.Heads, PerClass: e.PerClass, N: int64(e.N)}
}

// fromPBEvaluation converts a participant's evaluation of a model of nm
// modalities and k classes, checking it: model.NumHeads(nm) accuracies and
// k per-class ones (or none), each in [0, 1] or NaN (nothing to measure),
// over 0..MaxMetricCount samples.
func fromPBEvaluation(e *fedcmipb.Evaluation, nm, k int) (fl.Evaluation, error) {
	var out fl.Evaluation
	if len(e.GetHeads()) != model.NumHeads(nm) {
		return out, fmt.Errorf("evaluation has %d heads, want %d", len(e.GetHeads()), model.NumHeads(nm))
	}
	if n := len(e.GetPerClass()); n != 0 && n != k {
		return out, fmt.Errorf("evaluation has %d per-class accuracies, want %d", n, k)
	}
	for _, accs := range [][]float64{e.GetHeads(), e.GetPerClass()} {
		for _, a := range accs {
			if !math.IsNaN(a) && !(a >= 0 && a <= 1) {
				return out, fmt.Errorf("evaluation holds accuracy %v", a)
			}
		}
	}
	if n := e.GetN(); n < 0 || n > fl.MaxMetricCount {
		return out, fmt.Errorf("evaluation over %d samples", n)
	}
	out.Heads = slices.Clone(e.GetHeads())
	out.PerClass = e.GetPerClass()
	out.N = int(e.GetN())
	return out, nil
}

// maskOf maps modality names to a mask over the model's modalities.
func maskOf(names []string, modalities []string) (data.Mask, error) {
	var m data.Mask
	for _, n := range names {
		i := slices.Index(modalities, n)
		if i < 0 {
			return 0, fmt.Errorf("modality %q is not one of the model's %v", n, modalities)
		}
		m |= 1 << i
	}
	if m == 0 {
		return 0, fmt.Errorf("no modality (the model's are %v)", modalities)
	}
	return m, nil
}

// namesOf lists the modalities of a mask.
func namesOf(m data.Mask, modalities []string) []string {
	var out []string
	for i, n := range modalities {
		if m.Has(i) {
			out = append(out, n)
		}
	}
	return out
}

// resultExtras is what a result carries beyond the protobuf fields, in
// Go's gob encoding: the complete metrics, with the method's report.
type resultExtras struct {
	Metrics fl.FitMetrics
}

func gobEncode(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(v); err != nil {
		return nil, fmt.Errorf("deploy: encode %T: %w", v, err)
	}
	return buf.Bytes(), nil
}

// gobLimit is the largest gob blob (a FitConfig or resultExtras) a peer
// may send for a model of k classes and embeddings of width d: 64 KiB for
// type descriptions and scalars, plus 9 bytes (gob's largest number) for
// each of two modalities' k*d prototype values and k counts and the 4k
// per-class statistics (dominance table or class statistics and
// temperatures). A blob is also bounded by the gRPC message size
// (ServeOptions.MaxMessageBytes, DefaultMaxMessageBytes on participants);
// encoding/gob itself allocates no more than the bytes it decodes justify.
func gobLimit(k, d int) int {
	return 64<<10 + 9*(2*k*d+2*k+4*k)
}

// errGobSize marks a gob blob over its limit.
var errGobSize = errors.New("over the size limit")

// gobDecode decodes b, at most limit bytes (errGobSize), into v.
func gobDecode(b []byte, v any, limit int) error {
	if len(b) > limit {
		return fmt.Errorf("encoded %T of %d bytes: %w of %d", v, len(b), errGobSize, limit)
	}
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(v); err != nil {
		return fmt.Errorf("decode %T: %w", v, err)
	}
	return nil
}
