package fl

import (
	"math"
	"strings"
	"testing"

	"github.com/fedcmi/fedcmi/data"
)

// wantErr fails t unless err is nil where want is empty, or says want.
func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("refused: %v", err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Fatalf("err %v, want one saying %q", err, want)
	}
}

// TestFitMetricsValidate: metrics a hostile client could send (NaN or
// infinite sums, negative or inconsistent counts, temperatures or class
// statistics of the wrong number of classes) are refused with a reason;
// honest ones pass.
func TestFitMetricsValidate(t *testing.T) {
	const k = 3
	honest := func() FitMetrics {
		cs := NewClassStats(2, k)
		cs.Sum[0][0], cs.Sum[1][0], cs.Count[0] = 1.5, 0.5, 2
		return FitMetrics{LossSum: 4.2, Batches: 6, RhoSum: 3, RhoBatches: 3, FirstDominant: 2.5,
			FedCMI: FedCMIReport{Temperatures: []float64{1, 0.5, 1}, ClassStats: &cs}, Report: &OGMReport{CoefSum: [2]float64{1, 2}, Batches: 4}}
	}
	proto := func(m *FitMetrics) *ProtoMetrics {
		p := &ProtoMetrics{RhoSum: 2, Batches: 2, FirstFast: 1}
		m.Report = p
		return p
	}
	selection := func(m *FitMetrics) *ModalityReport {
		r := &ModalityReport{Prototypes: PrototypeSet{Centers: [2][]float32{make([]float32, k*2)}, Counts: [2][]int{make([]int, k)}}, Accuracy: [2]float64{0.5, math.NaN()}}
		m.Report = &MDropReport{Selection: r}
		return r
	}
	for _, tc := range []struct {
		name    string
		corrupt func(*FitMetrics)
		want    string // in the error; "" for valid metrics
	}{
		{"honest", func(*FitMetrics) {}, ""},
		{"zero", func(m *FitMetrics) { *m = FitMetrics{} }, ""},
		{"negative loss", func(m *FitMetrics) { m.LossSum = -1 }, ""},
		{"NaN loss", func(m *FitMetrics) { m.LossSum = math.NaN() }, "loss sum is NaN"},
		{"infinite rho", func(m *FitMetrics) { m.RhoSum = math.Inf(1) }, "rho sum is +Inf"},
		{"negative rho", func(m *FitMetrics) { m.RhoSum = -1 }, "negative"},
		{"negative batches", func(m *FitMetrics) { m.Batches = -1 }, "batches -1"},
		{"huge batches", func(m *FitMetrics) { m.Batches = MaxMetricCount + 1 }, "batches"},
		{"rho batches beyond batches", func(m *FitMetrics) { m.RhoBatches = 7 }, "rho batches 7"},
		{"first dominant beyond rho batches", func(m *FitMetrics) { m.FirstDominant = 3.5 }, "exceeds the 3 rho batches"},
		{"negative OGM batches", func(m *FitMetrics) { m.Report.(*OGMReport).Batches = -2 }, "OGM batches"},
		{"OGM batches beyond batches", func(m *FitMetrics) { m.Report.(*OGMReport).Batches = 7 }, "OGM batches"},
		{"NaN OGM", func(m *FitMetrics) { m.Report.(*OGMReport).CoefSum[1] = math.NaN() }, "OGM coefficient"},
		{"prototype metrics", func(m *FitMetrics) { proto(m) }, ""},
		{"first fast beyond batches", func(m *FitMetrics) { proto(m).FirstFast = 3 }, "first-fast"},
		{"infinite prototype rho", func(m *FitMetrics) { proto(m).RhoSum = math.Inf(-1) }, "prototype rho sum"},
		{"fedgb losses", func(m *FitMetrics) {
			m.Report = &GBLosses{Before: []float64{1, 1, 1}, After: []float64{1, 1, 1}, N: 10}
		}, ""},
		{"fedgb losses of other heads", func(m *FitMetrics) { m.Report = &GBLosses{Before: []float64{1, 1}, After: []float64{1, 1}, N: 10} }, "fedgb losses of 2 and 2 heads, want 3"},
		{"fedgb rows beyond samples", func(m *FitMetrics) {
			m.Report = &GBLosses{Before: []float64{1, 1, 1}, After: []float64{1, 1, 1}, N: 11}
		}, "fedgb rows 11"},
		{"fedrelearn purities", func(m *FitMetrics) {
			m.Report = &RelearnReport{Purity: []RelearnPurity{{0.5, 0.6, 10}, {0.4, 0.4, 10}}}
		}, ""},
		{"fedrelearn purities of 3 modalities", func(m *FitMetrics) { m.Report = &RelearnReport{Purity: make([]RelearnPurity, 3)} }, "purities of 3 modalities"},
		{"fedrelearn rows beyond samples", func(m *FitMetrics) { m.Report = &RelearnReport{Purity: []RelearnPurity{{0.5, 0.6, 12}}} }, "rows of modality 0 12"},
		{"FedMDrop report", func(m *FitMetrics) { selection(m) }, ""},
		{"FedMDrop NaN prototype", func(m *FitMetrics) { selection(m).Prototypes.Centers[0][1] = float32(math.NaN()) }, "prototype value 1"},
		{"FedMDrop counts beyond samples", func(m *FitMetrics) { selection(m).Prototypes.Counts[0][0] = 11 }, "report"},
		{"FedMDrop prototypes of a modality not held", func(m *FitMetrics) { selection(m).Prototypes.Centers[1] = make([]float32, k*2) }, "not held"},
		{"temperatures of more classes", func(m *FitMetrics) { m.FedCMI.Temperatures = make([]float64, 1000) }, "1000 temperatures for 3 classes"},
		{"NaN temperature", func(m *FitMetrics) { m.FedCMI.Temperatures[1] = math.NaN() }, "temperature of class 1"},
		{"zero temperature", func(m *FitMetrics) { m.FedCMI.Temperatures[2] = 0 }, "temperature of class 2"},
		{"class stats of other classes", func(m *FitMetrics) { cs := NewClassStats(2, k+1); m.FedCMI.ClassStats = &cs }, "want 2 and 3"},
		{"negative class count", func(m *FitMetrics) { m.FedCMI.ClassStats.Count[1] = -1 }, "class 1"},
		{"NaN class sum", func(m *FitMetrics) { m.FedCMI.ClassStats.Sum[1][0] = math.NaN() }, "class 0"},
		// Counts beyond the samples would outweigh every other client in
		// the pooled table, and rounding of their sums push its means
		// above 1, which every participant refuses.
		{"class counts beyond samples", func(m *FitMetrics) {
			m.FedCMI.ClassStats.Count[0], m.FedCMI.ClassStats.Sum[0][0] = 1e12, 1e12*(1+5e-7)
		}, "class statistics of 1e+12 samples, more than the client's 10"},
		{"class counts summing beyond samples", func(m *FitMetrics) { m.FedCMI.ClassStats.Count[1] = 9 }, "of 11 samples"},
		{"class counts of all samples", func(m *FitMetrics) { m.FedCMI.ClassStats.Count[1] = 8 }, ""},
		// fedgb loss values are checked where they are pooled
		// (TestPooledLossesBounds): out-of-range ones cost the report,
		// not the update, as a diverged model gives every client such.
		{"huge fedgb loss", func(m *FitMetrics) {
			m.Report = &GBLosses{Before: []float64{1e308, 1, 1}, After: []float64{1, 1, 1}, N: 10}
		}, ""},
		{"NaN fedgb loss", func(m *FitMetrics) {
			m.Report = &GBLosses{Before: []float64{1, 1, 1}, After: []float64{1, 1, math.NaN()}, N: 10}
		}, ""},
		// The unclipped indicator: 1 or 0 plus count noise.
		{"NaN unclipped", func(m *FitMetrics) { m.DPUnclipped = math.NaN() }, "unclipped indicator is NaN"},
		{"infinite unclipped", func(m *FitMetrics) { m.DPUnclipped = math.Inf(-1) }, "unclipped indicator is -Inf"},
		{"huge unclipped, share unknown", func(m *FitMetrics) { m.DPUnclipped = -1e300 }, "unclipped indicator -1e+300 outside"},
		{"noisy unclipped, share unknown", func(m *FitMetrics) { m.DPUnclipped = 1e6 }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := honest()
			tc.corrupt(&m)
			wantErr(t, m.Validate(MetricBounds{Modalities: 2, Classes: k, Width: 2, Holds: 1, Samples: 10}), tc.want)
		})
	}
}

// TestUnclippedAgainstShare: with the client's share of privacy known
// (MetricBounds.DP), its unclipped indicator may lie at most
// unclippedSigmas count-noise deviations outside [0, 1].
func TestUnclippedAgainstShare(t *testing.T) {
	noisy, exact := &DPFit{Clip: 1, CountStd: 0.5}, &DPFit{Clip: 1}
	for _, tc := range []struct {
		name string
		dp   *DPFit
		v    float64
		want string
	}{
		{"noisy", noisy, -4.9, ""},
		{"beyond its count noise", noisy, 6.5, "unclipped indicator 6.5 outside [-5, 6]"},
		{"NaN", noisy, math.NaN(), "unclipped indicator is NaN"},
		{"without count noise", exact, 1, ""},
		{"2 without count noise", exact, 2, "unclipped indicator 2 outside [0, 1]"},
		{"negative without count noise", exact, -0.1, "unclipped indicator -0.1 outside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := FitMetrics{DPUnclipped: tc.v}
			wantErr(t, m.Validate(MetricBounds{Modalities: 2, Classes: 3, Width: 2, Holds: 1, Samples: 10, DP: tc.dp}), tc.want)
		})
	}
}

// TestModalityReportValidate: reports with prototypes of the wrong shape,
// of a modality the client does not hold, with NaN values, negative or
// too many counts, or accuracies outside [0, 1] are refused; NaN accuracy
// is allowed for a modality without prototypes, as documented.
func TestModalityReportValidate(t *testing.T) {
	const k, d, n = 3, 2, 10
	honest := func() *ModalityReport {
		return &ModalityReport{
			Prototypes: PrototypeSet{
				Centers: [2][]float32{{1, 2, 3, 4, 5, 6}, {0, 0, 1, 1, 2, 2}},
				Counts:  [2][]int{{3, 3, 4}, {3, 3, 4}},
			},
			Accuracy: [2]float64{0.9, 0.4},
		}
	}
	unimodal := func(r *ModalityReport) {
		r.Prototypes.Centers[1], r.Prototypes.Counts[1] = nil, nil
		r.Accuracy[1] = math.NaN()
	}
	for _, tc := range []struct {
		name    string
		holds   data.Mask
		corrupt func(*ModalityReport)
		want    string
	}{
		{"honest", data.Full(2), func(*ModalityReport) {}, ""},
		{"unimodal, NaN accuracy", 1, unimodal, ""},
		{"prototypes of a modality not held", 1, func(*ModalityReport) {}, "not held"},
		{"NaN accuracy with prototypes", data.Full(2), func(r *ModalityReport) { r.Accuracy[0] = math.NaN() }, "accuracy NaN"},
		{"accuracy above 1", data.Full(2), func(r *ModalityReport) { r.Accuracy[1] = 2 }, "accuracy 2"},
		{"negative accuracy without prototypes", 1, func(r *ModalityReport) { unimodal(r); r.Accuracy[1] = -1 }, "accuracy -1"},
		{"infinite prototype", data.Full(2), func(r *ModalityReport) { r.Prototypes.Centers[0][4] = float32(math.Inf(1)) }, "value 4 is +Inf"},
		{"prototypes of more classes", data.Full(2), func(r *ModalityReport) {
			r.Prototypes.Centers[0] = make([]float32, (k+1)*d)
			r.Prototypes.Counts[0] = make([]int, k+1)
		}, "want 3 x 2"},
		{"huge prototypes", data.Full(2), func(r *ModalityReport) { r.Prototypes.Centers[1] = make([]float32, 1<<20) }, "1048576 prototype values"},
		{"counts without prototypes", data.Full(2), func(r *ModalityReport) { r.Prototypes.Centers[1] = nil }, "0 prototype values"},
		{"negative count", data.Full(2), func(r *ModalityReport) { r.Prototypes.Counts[0][2] = -4 }, "count -4"},
		{"counts beyond the samples", data.Full(2), func(r *ModalityReport) { r.Prototypes.Counts[1] = []int{5, 5, 5} }, "sum to 15"},
		{"huge count", data.Full(2), func(r *ModalityReport) { r.Prototypes.Counts[1][0] = math.MaxInt }, "count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := honest()
			tc.corrupt(r)
			wantErr(t, r.Validate(k, d, tc.holds, n), tc.want)
		})
	}
}

// TestFitConfigValidate: a recipe a participant would refuse.
func TestFitConfigValidate(t *testing.T) {
	const k, d = 3, 2
	for _, tc := range []struct {
		name    string
		corrupt func(*FitConfig)
		want    string
	}{
		{"honest", func(*FitConfig) {}, ""},
		{"negative epochs", func(c *FitConfig) { c.Epochs = -1 }, "epochs -1"},
		{"endless epochs", func(c *FitConfig) { c.Epochs = MaxEpochs + 1 }, "epochs"},
		{"NaN lr", func(c *FitConfig) { c.LR = math.NaN() }, "lr is NaN"},
		{"negative lr", func(c *FitConfig) { c.LR = -0.1 }, "negative lr"},
		{"infinite temperature", func(c *FitConfig) { c.FedCMI.Temperature = math.Inf(1) }, "temperature is +Inf"},
		{"holdout 1", func(c *FitConfig) { c.FedCMI.Holdout = 1 }, "holdout"},
		{"unknown dominance", func(c *FitConfig) { c.FedCMI.Dominance = 9 }, "dominance"},
		{"drop of a third modality", func(c *FitConfig) { c.Recipe = MDropFit{Drop: 4} }, "drop mask"},
		{"NaN OGM alpha", func(c *FitConfig) { c.Recipe = OGMFit{Alpha: math.NaN()} }, "OGM alpha"},
		{"head weights of other heads", func(c *FitConfig) { c.Recipe = GBFit{HeadWeights: []float64{1, 1}} }, "2 head weights, want 3"},
		{"table of other classes", func(c *FitConfig) {
			c.FedCMI.Table = &DominanceTable{P: [][]float64{make([]float64, 5), make([]float64, 5)}}
		}, "of 5 classes for modality 0, want 3"},
		{"table above 1", func(c *FitConfig) {
			c.FedCMI.Table = &DominanceTable{P: [][]float64{[]float64{0.5, math.NaN(), 3}, []float64{0.5, math.NaN(), 0.5}}}
		}, "class 2 holds 3"},
		{"table with NaN (no report yet)", func(c *FitConfig) {
			c.FedCMI.Table = &DominanceTable{P: [][]float64{[]float64{0.5, math.NaN(), 1}, []float64{0.5, math.NaN(), 0}}}
		}, ""},
		{"dp", func(c *FitConfig) { c.DP = &DPFit{Clip: 1, NoiseStd: [numGroups]float64{0.1, 0, 0.2}, CountStd: 0.5} }, ""},
		{"dp without noise", func(c *FitConfig) { c.DP = &DPFit{Clip: 1} }, ""},
		{"dp NaN noise", func(c *FitConfig) { c.DP = &DPFit{Clip: 1, NoiseStd: [numGroups]float64{fusionGroup: math.NaN()}} }, "dp noise std of the fusion group is NaN"},
		{"dp negative noise", func(c *FitConfig) { c.DP = &DPFit{Clip: 1, NoiseStd: [numGroups]float64{1: -0.1}} }, "modality 1 group is -0.1"},
		{"dp infinite noise", func(c *FitConfig) { c.DP = &DPFit{Clip: 1, NoiseStd: [numGroups]float64{math.Inf(1)}} }, "modality 0 group is +Inf"},
		{"dp infinite count noise", func(c *FitConfig) { c.DP = &DPFit{Clip: 1, CountStd: math.Inf(1)} }, "dp count noise std +Inf"},
		{"dp NaN count noise", func(c *FitConfig) { c.DP = &DPFit{Clip: 1, CountStd: math.NaN()} }, "dp count noise std NaN"},
		{"dp zero clip", func(c *FitConfig) { c.DP = &DPFit{} }, "dp clip 0"},
		{"dp NaN clip", func(c *FitConfig) { c.DP = &DPFit{Clip: math.NaN()} }, "dp clip NaN"},
		{"dp infinite clip", func(c *FitConfig) { c.DP = &DPFit{Clip: math.Inf(1)} }, "dp clip +Inf"},
		{"global prototypes of NaN", func(c *FitConfig) {
			g := &PrototypeSet{Centers: [2][]float32{make([]float32, k*d)}, Counts: [2][]int{make([]int, k)}}
			g.Centers[0][0] = float32(math.NaN())
			c.Recipe = MDropFit{Global: g}
		}, "global prototypes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := FitConfig{Round: 2, Epochs: 1, LR: 0.01, C1: 2, FedCMI: FedCMIFit{Alpha: 1, C3: 2, Temperature: 1, Holdout: 0.2, Dominance: DominanceFederated}}
			tc.corrupt(&c)
			wantErr(t, c.Validate(2, k, d), tc.want)
		})
	}
}
