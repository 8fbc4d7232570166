package fl

import (
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"

	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/model"
)

func serverOptions(opt string) ServerOptions {
	return ServerOptions{Optimizer: opt, LR: 0.1, Momentum: 0.9, Beta1: 0.9, Beta2: 0.99, Tau: 0.1,
		Robust: RobustOptions{Aggregator: AggregatorMean}}
}

// shifted returns p with d added to every value.
func shifted(p model.Params, d float32) model.Params {
	out := p.Clone()
	for i := range out {
		for j := range out[i].Data {
			out[i].Data[j] += d
		}
	}
	return out
}

func TestServerOptimizers(t *testing.T) {
	// Two rounds from 0 in which the one client moves every value by +1,
	// then by -2 from the new global model. Expected values by hand from
	// Reddi et al. 2021, Algorithm 2 (beta1 0.9, beta2 0.99, tau 0.1,
	// v_-1 = tau^2, lr 0.1) and Hsu et al. 2019 (momentum 0.9):
	//   adam:    m = 0.1, v = 0.99*0.01 + 0.01*1 = 0.0199,
	//            x1 = 0.1*0.1/(sqrt(0.0199)+0.1) = 0.0414822;
	//            m = 0.09 - 0.2 = -0.11, v = 0.99*0.0199 + 0.01*4 = 0.059701,
	//            x2 = x1 - 0.011/(sqrt(0.059701)+0.1) = 0.00953681
	//   yogi:    v = 0.01 + 0.01 = 0.02, x1 = 0.0414214;
	//            v = 0.02 + 0.04 = 0.06, x2 = 0.00953258
	//   adagrad: v = 1.01, x1 = 0.00904988; v = 5.01, x2 = 0.00434561
	//   avgm (lr 1): m = 1, x1 = 1; m = 0.9 - 2, x2 = -0.1
	//   sgd (lr 0.5): x1 = 0.5, x2 = -0.5
	for _, tc := range []struct {
		opt    string
		lr     float64
		x1, x2 float64
	}{
		{OptimizerAdam, 0.1, 0.041482181612786696, 0.009536814538909477},
		{OptimizerYogi, 0.1, 0.04142135623730949, 0.00953258189607959},
		{OptimizerAdagrad, 0.1, 0.009049875621120888, 0.004345609178289024},
		{OptimizerAvgM, 1, 1, -0.1},
		{OptimizerSGD, 0.5, 0.5, -0.5},
	} {
		t.Run(tc.opt, func(t *testing.T) {
			o := serverOptions(tc.opt)
			o.LR = tc.lr
			s, err := NewServerSide(o, aggLayout, 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			global := aggParams(0, 0, 0, 0)
			for r, want := range []float64{tc.x1, tc.x2} {
				d := float32(1)
				if r == 1 {
					d = -2
				}
				next, err := s.Aggregate(r+1, global, []Update{{shifted(global, d), 3, data.Mask(3)}}, nil)
				if err != nil {
					t.Fatal(err)
				}
				for i := range next {
					for j, v := range next[i].Data {
						if math.Abs(float64(v)-want) > 1e-6 {
							t.Fatalf("round %d: %s[%d] = %v, want %v", r+1, next[i].Name, j, v, want)
						}
					}
				}
				global = next
			}
		})
	}
}

func TestServerOptimizerSkipsAbsentSide(t *testing.T) {
	// Only modality-0 clients: the modality-1 tensor keeps its value and
	// its moments stay at their start (m 0, v tau^2).
	s, err := NewServerSide(serverOptions(OptimizerAdam), aggLayout, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	global := aggParams(0, 0, 5, 0)
	next, err := s.Aggregate(1, global, []Update{{shifted(global, 1), 1, data.Mask(1)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if next[1].Data[0] != 5 || s.m[1].Data[0] != 0 || math.Abs(float64(s.v[1].Data[0])-0.01) > 1e-9 {
		t.Errorf("absent side moved: value %v, m %v, v %v", next[1].Data[0], s.m[1].Data[0], s.v[1].Data[0])
	}
	if next[0].Data[0] == 0 || next[2].Data[0] == 0 {
		t.Error("held sides did not move")
	}
}

func TestServerSideStateResume(t *testing.T) {
	// Three rounds straight equal one round, a save, a fresh ServerSide
	// restored from it, and two more rounds.
	for _, opt := range []string{OptimizerAdam, OptimizerAvgM} {
		o := serverOptions(opt)
		o.DP = DPOptions{Clip: 0.5, NoiseMultiplier: 0.3, Adaptive: true, TargetQuantile: 0.5, ClipLR: 0.2, CountStd: 1, Delta: 1e-5}
		deltas := []float32{1, -0.2, 0.05}
		run := func(s *ServerSide, global model.Params, from int) model.Params {
			for r := from; r < len(deltas); r++ {
				ups := []Update{{shifted(global, deltas[r]), 1, data.Mask(3)}, {shifted(global, 2*deltas[r]), 2, data.Mask(1)}}
				next, err := s.Aggregate(r+1, global, ups, nil)
				if err != nil {
					t.Fatal(err)
				}
				global = next
			}
			return global
		}
		a, _ := NewServerSide(o, aggLayout, 2, nil)
		straight := run(a, aggParams(0, 0, 0, 0), 0)

		// One round, a save, a fresh ServerSide restored from it.
		c, _ := NewServerSide(o, aggLayout, 2, nil)
		g1 := aggParams(0, 0, 0, 0)
		ups := []Update{{shifted(g1, deltas[0]), 1, data.Mask(3)}, {shifted(g1, 2*deltas[0]), 2, data.Mask(1)}}
		g1, err := c.Aggregate(1, g1, ups, nil)
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.MarshalState()
		if err != nil {
			t.Fatal(err)
		}
		d, _ := NewServerSide(o, aggLayout, 2, nil)
		if err := d.UnmarshalState(st); err != nil {
			t.Fatal(err)
		}
		resumed := run(d, g1, 1)
		for i := range straight {
			for j := range straight[i].Data {
				if straight[i].Data[j] != resumed[i].Data[j] {
					t.Fatalf("%s: resumed %s[%d] = %v, straight %v", opt, straight[i].Name, j, resumed[i].Data[j], straight[i].Data[j])
				}
			}
		}
		if err := d.UnmarshalState([]byte("junk")); err == nil {
			t.Error("junk state accepted")
		}
	}
}

// bigLayout is one fusion tensor of n values and one tensor per modality.
func bigLayout(n int) []model.ParamInfo {
	return []model.ParamInfo{
		{Name: "a/encoder/0/weights", Shape: []int{2}, Side: 0, Part: model.PartEncoder},
		{Name: "v/encoder/0/weights", Shape: []int{2}, Side: 1, Part: model.PartEncoder},
		{Name: "fusion/out/weights", Shape: []int{n}, Side: -1, Part: model.PartFusion},
	}
}

func bigParams(layout []model.ParamInfo, a, v, f float32) model.Params {
	out := make(model.Params, len(layout))
	for i, info := range layout {
		t := model.Tensor{Name: info.Name, Shape: info.Shape, Data: make([]float32, info.Size())}
		for j := range t.Data {
			t.Data[j] = []float32{a, v, f}[i]
		}
		out[i] = t
	}
	return out
}

func stdOf(v []float32) float64 {
	var s, sq float64
	for _, x := range v {
		s += float64(x)
	}
	m := s / float64(len(v))
	for _, x := range v {
		sq += (float64(x) - m) * (float64(x) - m)
	}
	return math.Sqrt(sq / float64(len(v)))
}

func TestServerPrivacyClipAndNoise(t *testing.T) {
	layout := aggLayout
	dp := DPOptions{Clip: 1, Delta: 1e-5}
	o := serverOptions(OptimizerSGD)
	o.LR, o.DP = 1, dp
	s, err := NewServerSide(o, layout, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	global := aggParams(0, 0, 0, 0)
	// Client 0 (a+v, n=1) moves by (3, 4 | 0 | 0): norm 5, clipped to
	// (0.6, 0.8). Client 1 (a only, n=100) moves by (0, 0.5 | - | 0.5):
	// norm sqrt(0.5) < 1, kept. Unweighted means: a = ((0.6, 0.8) + (0,
	// 0.5))/2, v = 0 (client 0 alone), fusion = (0 + 0.5)/2.
	ups := []Update{
		{aggParams(3, 4, 0, 0), 1, data.Mask(3)},
		{aggParams(0, 0.5, 99, 0.5), 100, data.Mask(1)},
	}
	got, err := s.Aggregate(1, global, ups, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{0.3, 0.65, 0, 0.25}
	flat := []float32{got[0].Data[0], got[0].Data[1], got[1].Data[0], got[2].Data[0]}
	for k := range want {
		if math.Abs(float64(flat[k]-want[k])) > 1e-6 {
			t.Errorf("value %d = %v, want %v", k, flat[k], want[k])
		}
	}

	// Noise: z = 2, clip 1, four clients that do not move: the fusion
	// mean carries noise of std z*C/4 = 0.5, the same for any seed.
	big := bigLayout(20000)
	o.DP.NoiseMultiplier = 2
	s, _ = NewServerSide(o, big, 4, nil)
	g := bigParams(big, 0, 0, 0)
	var still []Update
	for range 4 {
		still = append(still, Update{g.Clone(), 1, data.Mask(3)})
	}
	noisy, err := s.Aggregate(1, g, still, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sd := stdOf(noisy[2].Data); math.Abs(sd-0.5) > 0.02 {
		t.Errorf("noise std %v, want 0.5", sd)
	}
	again, _ := s.Aggregate(1, g, still, nil)
	if again[2].Data[7] != noisy[2].Data[7] {
		t.Error("the noise of a round is not reproducible")
	}
}

func TestAdaptiveClip(t *testing.T) {
	// Andrew et al. 2021: C <- C exp(-lr (unclipped fraction - target)).
	// Three of four updates within C = 1 (norm 0.5), one outside (norm 2);
	// no count noise: C = exp(-0.2 (0.75 - 0.5)).
	o := serverOptions(OptimizerSGD)
	o.LR = 1
	o.DP = DPOptions{Clip: 1, Adaptive: true, TargetQuantile: 0.5, ClipLR: 0.2, Delta: 1e-5}
	s, err := NewServerSide(o, aggLayout, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := aggParams(0, 0, 0, 0)
	ups := []Update{
		{aggParams(0.5, 0, 0, 0), 1, data.Mask(1)},
		{aggParams(0, 0.5, 0, 0), 1, data.Mask(1)},
		{aggParams(0, 0, 0, 0.5), 1, data.Mask(1)},
		{aggParams(0, 0, 0, 2), 1, data.Mask(1)},
	}
	if _, err := s.Aggregate(1, g, ups, nil); err != nil {
		t.Fatal(err)
	}
	if want := math.Exp(-0.2 * 0.25); math.Abs(s.Clip()-want) > 1e-12 {
		t.Errorf("clip %v, want %v", s.Clip(), want)
	}
	// The multiplier of the updates leaves room for the count's noise.
	o.DP.NoiseMultiplier, o.DP.CountStd = 1, 1
	if z := o.DP.UpdateMultiplier(); math.Abs(z-1/math.Sqrt(1-0.25)) > 1e-12 {
		t.Errorf("update multiplier %v", z)
	}
}

func TestClientPrivacy(t *testing.T) {
	big := bigLayout(20000)
	global := bigParams(big, 1, 1, 1)
	// A modality-0 client moved every value by 1: norm sqrt(20002).
	params := bigParams(big, 2, 7, 2)
	dp := DPFit{Clip: 1, NoiseStd: [numGroups]float64{}}
	out, bit, err := ClientPrivacy(big, global, params, data.Mask(1), dp, 3)
	if err != nil {
		t.Fatal(err)
	}
	if bit != 0 {
		t.Errorf("clipped update reported unclipped: %v", bit)
	}
	if n := updateNorm(big, global, out, data.Mask(1)); math.Abs(n-1) > 1e-4 {
		t.Errorf("clipped norm %v, want 1", n)
	}
	if out[1].Data[0] != 7 {
		t.Error("a tensor of a modality the client lacks was changed")
	}
	if params[0].Data[0] != 2 {
		t.Error("params were modified")
	}
	dp.NoiseStd = [numGroups]float64{fusionGroup: 0.3}
	noisy, _, _ := ClientPrivacy(big, global, global, data.Mask(1), dp, 3)
	if sd := stdOf(noisy[2].Data); math.Abs(sd-0.3) > 0.01 {
		t.Errorf("client noise std %v, want 0.3", sd)
	}
}

func TestClientDPShares(t *testing.T) {
	// Server-side std z*C on a group's sum; each of a group's n clients
	// adds z*C/sqrt(n), so their sum has the same std.
	o := serverOptions(OptimizerSGD)
	o.LR = 1
	o.DP = DPOptions{Clip: 2, NoiseMultiplier: 1.5, ClientNoise: true, Delta: 1e-5}
	s, err := NewServerSide(o, aggLayout, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	clients := []ClientInfo{{ID: "a", Modalities: 1}, {ID: "b", Modalities: 3}, {ID: "c", Modalities: 3}, {ID: "d", Modalities: 2}}
	var ins []Instruction
	for _, c := range clients {
		ins = append(ins, Instruction{ClientID: c.ID})
	}
	fit := s.clientDP(ins, clients)
	want := [numGroups]float64{0: 3 / math.Sqrt(3), 1: 3 / math.Sqrt(3), fusionGroup: 3 / math.Sqrt(4)}
	for g := range numGroups {
		if math.Abs(fit.NoiseStd[g]-want[g]) > 1e-12 {
			t.Errorf("group %d std %v, want %v", g, fit.NoiseStd[g], want[g])
		}
	}
	if fit.Clip != 2 {
		t.Errorf("clip %v", fit.Clip)
	}
}

func TestServerOptionsValidate(t *testing.T) {
	ok := serverOptions(OptimizerAdam)
	dp := DPOptions{Clip: 1, NoiseMultiplier: 1, Delta: 1e-5}
	for _, tc := range []struct {
		name string
		edit func(o *ServerOptions)
		want string
	}{
		{"valid", func(o *ServerOptions) {}, ""},
		{"optimizer", func(o *ServerOptions) { o.Optimizer = "rmsprop" }, "unknown server optimizer"},
		{"lr", func(o *ServerOptions) { o.LR = 0 }, "learning rate"},
		{"tau", func(o *ServerOptions) { o.Tau = 0 }, "tau"},
		{"aggregator", func(o *ServerOptions) { o.Robust.Aggregator = "avg" }, "unknown aggregator"},
		{"dp median", func(o *ServerOptions) { o.DP = dp; o.Robust.Aggregator = AggregatorMedian }, "needs the mean"},
		{"dp delta", func(o *ServerOptions) { o.DP = dp; o.DP.Delta = 1 }, "delta"},
		{"dp noise", func(o *ServerOptions) { o.DP = dp; o.DP.NoiseMultiplier = -1 }, "noise multiplier"},
		{"dp clip", func(o *ServerOptions) { o.DP.Clip = -1 }, "clip"},
		{"dp adaptive split", func(o *ServerOptions) {
			o.DP = dp
			o.DP.Adaptive, o.DP.TargetQuantile, o.DP.ClipLR, o.DP.CountStd = true, 0.5, 0.2, 0.5
		}, "2 * count noise"},
	} {
		o := ok
		tc.edit(&o)
		err := o.Validate(10)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestClientIndicators: under client-side privacy with adaptive clipping
// the clip moves by the clients' noisy indicators as they are (Andrew et
// al.); a non-finite or implausible indicator is an error, never a NaN
// clip.
func TestClientIndicators(t *testing.T) {
	o := serverOptions(OptimizerSGD)
	o.LR = 1
	o.DP = DPOptions{Clip: 1, NoiseMultiplier: 0.5, ClientNoise: true, Adaptive: true, TargetQuantile: 0.5, ClipLR: 0.2, CountStd: 1, Delta: 1e-5}
	for _, tc := range []struct {
		name      string
		unclipped []float64
		clip      float64 // after the round
		want      string  // in the error
	}{
		{"honest", []float64{1, 0}, 1, ""},
		// Noisy but in range: used as they are (Andrew et al. do not clamp).
		{"noisy above 1", []float64{3, 3}, math.Exp(-0.2 * (3 - 0.5)), ""},
		{"noisy below 0", []float64{-3, -3}, math.Exp(0.2 * (3 + 0.5)), ""},
		{"NaN", []float64{math.NaN(), 1}, 1, "update 0: unclipped indicator is NaN"},
		{"huge", []float64{1, -1e300}, 1, "update 1: unclipped indicator -1e+300 outside [-10, 11]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewServerSide(o, aggLayout, 2, nil)
			if err != nil {
				t.Fatal(err)
			}
			g := aggParams(0, 0, 0, 0)
			ups := []Update{{aggParams(0.1, 0, 0, 0), 1, data.Mask(3)}, {aggParams(0, 0.1, 0, 0), 1, data.Mask(3)}}
			_, err = s.Aggregate(1, g, ups, tc.unclipped)
			wantErr(t, err, tc.want)
			if math.Abs(s.Clip()-tc.clip) > 1e-12 {
				t.Errorf("clip %v, want %v", s.Clip(), tc.clip)
			}
		})
	}
}

// TestStrategyRejectsIndicators: a participant's NaN or huge unclipped
// indicator has its update rejected by the strategy, so the round goes on
// without it and the next clip stays finite.
func TestStrategyRejectsIndicators(t *testing.T) {
	o := serverOptions(OptimizerSGD)
	o.LR = 1
	o.DP = DPOptions{Clip: 1, NoiseMultiplier: 0.5, ClientNoise: true, Adaptive: true, TargetQuantile: 0.5, ClipLR: 0.2, CountStd: 1, Delta: 1e-5}
	side, err := NewServerSide(o, aggLayout, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	method, _ := LookupMethod("fedavg")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := &ModalityAware{Method: method, PerRound: 4, Layout: aggLayout, Logger: quiet, Server: side}
	global := aggParams(0, 0, 0, 0)
	res := func(id string, f, unclipped float64) Result {
		return Result{ClientID: id, Res: FitRes{Params: aggParams(0, 0, 0, float32(f)), NumSamples: 1, Modalities: data.Mask(3),
			Metrics: FitMetrics{DPUnclipped: unclipped}}}
	}
	results := []Result{res("a", 0.2, 1), res("b", 0.4, 1), res("nan", 100, math.NaN()), res("huge", 100, 1e300)}
	next, err := s.AggregateFit(1, global, results, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := next[2].Data[0]; math.Abs(float64(got)-0.3) > 1e-6 {
		t.Errorf("fusion %v, want 0.3 (the two honest updates alone)", got)
	}
	if want := math.Exp(-0.2 * 0.5); math.Abs(side.Clip()-want) > 1e-12 {
		t.Errorf("clip %v, want %v", side.Clip(), want)
	}
}
