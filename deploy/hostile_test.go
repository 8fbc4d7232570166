package deploy

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/internal/fedcmipb"
	"github.com/fedcmi/fedcmi/model"
	"github.com/fedcmi/fedcmi/rundir"
	"github.com/fedcmi/fedcmi/sim"
)

// mustGob encodes v for a test.
func mustGob(t *testing.T, v any) []byte {
	t.Helper()
	b, err := gobEncode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHostileResultBlobs: result extras that do not decode as
// resultExtras (garbage, other types, a slice length beyond the data),
// exceed the size limit, or decode to metrics or a report that do not
// validate are each rejected for that participant (status, Fit's error
// naming it, the rejections metric by reason), without a panic; an honest
// blob, with NaN accuracy for a modality without prototypes, is accepted.
func TestHostileResultBlobs(t *testing.T) {
	met := NewMetrics()
	coord, addr := testCoordinator(t, CoordinatorConfig{RoundTimeout: 30 * time.Second, Metrics: met}, nil)
	layout := coord.cfg.Layout
	k, d := fl.PrototypeShape(layout)
	global := zeroParams(layout)
	honest := func() resultExtras {
		cs := fl.NewClassStats(2, k)
		cs.Sum[0][0], cs.Sum[1][0], cs.Count[0] = 1, 0.5, 2
		return resultExtras{
			Metrics: fl.FitMetrics{LossSum: 2, Batches: 2, RhoSum: 1, RhoBatches: 1, FirstDominant: 1,
				FedCMI: fl.FedCMIReport{Temperatures: make([]float64, k), ClassStats: &cs},
				Report: &fl.MDropReport{Selection: &fl.ModalityReport{
					Prototypes: fl.PrototypeSet{Centers: [2][]float32{make([]float32, k*d)}, Counts: [2][]int{make([]int, k)}},
					Accuracy:   [2]float64{0.5, math.NaN()},
				}}},
		}
	}
	// sel is the FedMDrop report of the extras.
	sel := func(ex *resultExtras) *fl.ModalityReport { return ex.Metrics.Report.(*fl.MDropReport).Selection }
	with := func(edit func(*resultExtras)) []byte {
		ex := honest()
		for i := range ex.Metrics.FedCMI.Temperatures {
			ex.Metrics.FedCMI.Temperatures[i] = 1
		}
		edit(&ex)
		return mustGob(t, ex)
	}
	// A slice length beyond the data: 256 temperatures (gob: FE 01 00)
	// claimed as 65535 (FE FF FF), the blob's size unchanged.
	long := with(func(ex *resultExtras) {
		ex.Metrics.FedCMI.Temperatures = make([]float64, 256)
		for i := range ex.Metrics.FedCMI.Temperatures {
			ex.Metrics.FedCMI.Temperatures[i] = 1
		}
	})
	if bytes.Count(long, []byte{0xfe, 0x01, 0x00}) != 1 {
		t.Fatal("the temperatures' length is not where the test expects it")
	}
	long = bytes.Replace(long, []byte{0xfe, 0x01, 0x00}, []byte{0xfe, 0xff, 0xff}, 1)

	for i, tc := range []struct {
		name   string
		blob   []byte
		reason string // "" for accepted
	}{
		{"honest", with(func(*resultExtras) {}), ""},
		{"garbage", []byte("not a gob stream at all"), "format"},
		{"an int", mustGob(t, 42), "format"},
		{"another struct", mustGob(t, struct{ Metrics string }{"x"}), "format"},
		{"metrics of another type", mustGob(t, struct{ Metrics []string }{[]string{"x"}}), "format"},
		{"a length beyond the data", long, "format"},
		{"over the size limit", with(func(ex *resultExtras) { // about 150 KB
			ex.Metrics.FedCMI.Temperatures = make([]float64, 1<<14)
			for i := range ex.Metrics.FedCMI.Temperatures {
				ex.Metrics.FedCMI.Temperatures[i] = float64(i) + 0.1
			}
		}), "size"},
		{"NaN loss", with(func(ex *resultExtras) { ex.Metrics.LossSum = math.NaN() }), "metrics"},
		{"infinite rho", with(func(ex *resultExtras) { ex.Metrics.RhoSum = math.Inf(1) }), "metrics"},
		{"negative batches", with(func(ex *resultExtras) { ex.Metrics.Batches = -5 }), "metrics"},
		{"temperatures of other classes", with(func(ex *resultExtras) { ex.Metrics.FedCMI.Temperatures = []float64{1} }), "metrics"},
		{"class stats of other classes", with(func(ex *resultExtras) { cs := fl.NewClassStats(2, k+2); ex.Metrics.FedCMI.ClassStats = &cs }), "metrics"},
		{"negative class count", with(func(ex *resultExtras) { ex.Metrics.FedCMI.ClassStats.Count[1] = -1 }), "metrics"},
		{"prototypes of other classes", with(func(ex *resultExtras) {
			sel(ex).Prototypes.Centers[0] = make([]float32, (k+1)*d)
			sel(ex).Prototypes.Counts[0] = make([]int, k+1)
		}), "metrics"},
		{"NaN prototype", with(func(ex *resultExtras) { sel(ex).Prototypes.Centers[0][1] = float32(math.NaN()) }), "metrics"},
		{"negative prototype count", with(func(ex *resultExtras) { sel(ex).Prototypes.Counts[0][0] = -3 }), "metrics"},
		{"more counts than samples", with(func(ex *resultExtras) { sel(ex).Prototypes.Counts[0][0] = 11 }), "metrics"},
		{"accuracy above 1", with(func(ex *resultExtras) { sel(ex).Accuracy[0] = 1.5 }), "metrics"},
		{"NaN accuracy with prototypes", with(func(ex *resultExtras) { sel(ex).Accuracy[0] = math.NaN() }), "metrics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "hostile-" + strings.ReplaceAll(tc.name, " ", "-")
			raw := registerRaw(t, addr, name, layout)
			before := counterValue(t, met, "fedcmi_update_rejections_total", tc.reason)
			coord.BeginRound(i + 1)
			type fit struct {
				res fl.FitRes
				err error
			}
			done := make(chan fit, 1)
			go func() {
				res, err := coord.Fit(context.Background(), name, fl.FitIns{Params: global, Config: fl.FitConfig{Round: i + 1, Epochs: 1}})
				done <- fit{res, err}
			}()
			h, p := raw.pull(t, layout)
			resp := raw.upload(t, h, p, func(rh *fedcmipb.ResultHeader) { rh.ResultGob = tc.blob })
			r := <-done
			if tc.reason == "" {
				if resp.GetStatus() != fedcmipb.UploadStatus_UPLOAD_STATUS_ACCEPTED || r.err != nil {
					t.Fatalf("honest blob: %v %q, fit error %v", resp.GetStatus(), resp.GetReason(), r.err)
				}
				if r.res.Metrics.Report == nil || r.res.Metrics.FedCMI.ClassStats == nil {
					t.Fatalf("the extras were not delivered: %+v", r.res)
				}
				return
			}
			if resp.GetStatus() != fedcmipb.UploadStatus_UPLOAD_STATUS_REJECTED {
				t.Fatalf("status %v, want rejected", resp.GetStatus())
			}
			if !errors.Is(r.err, ErrRejected) || !strings.Contains(r.err.Error(), name) {
				t.Fatalf("fit error %v, want a rejection naming %s", r.err, name)
			}
			if got := counterValue(t, met, "fedcmi_update_rejections_total", tc.reason); got != before+1 {
				t.Fatalf("%s rejections %v, want %v (reason: %s)", tc.reason, got, before+1, resp.GetReason())
			}
			t.Logf("rejected: %s", resp.GetReason())
		})
	}
}

// TestParticipantRefusesBadRecipe: a recipe that does not validate fails
// its task, reported to the coordinator with the reason, without training
// and without ending the participant's session: its next task succeeds.
func TestParticipantRefusesBadRecipe(t *testing.T) {
	coord, addr := testCoordinator(t, CoordinatorConfig{RoundTimeout: 30 * time.Second}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := smallConfig(t, 4, 4, 1)
	parts := shardParticipant(ctx, t, cfg, 0, addr, nil, "", nil)
	if err := coord.WaitParticipants(ctx, 1); err != nil {
		t.Fatal(err)
	}
	name := coord.Available()[0].ID
	layout := coord.cfg.Layout
	global := zeroParams(layout)
	good := fl.FitConfig{Round: 1, Epochs: 1, LR: 0.01, FedCMI: fl.FedCMIFit{Temperature: 1}}
	for i, tc := range []struct {
		name string
		edit func(*fl.FitConfig)
		want string // in Fit's error; "" for success
	}{
		{"NaN lr", func(c *fl.FitConfig) { c.LR = math.NaN() }, "lr is NaN"},
		{"table of other classes", func(c *fl.FitConfig) { c.FedCMI.Table = &fl.DominanceTable{P: [][]float64{[]float64{1}, []float64{1}}} }, "dominance table"},
		{"endless epochs", func(c *fl.FitConfig) { c.Epochs = math.MaxInt32 }, "epochs"},
		{"good", func(*fl.FitConfig) {}, ""},
	} {
		coord.BeginRound(i + 1)
		c := good
		c.Round = i + 1
		tc.edit(&c)
		res, err := coord.Fit(ctx, name, fl.FitIns{Params: global, Config: c})
		switch {
		case tc.want == "" && (err != nil || res.NumSamples == 0):
			t.Errorf("%s: %v, %d samples", tc.name, err, res.NumSamples)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), "recipe") || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want the participant's refusal saying %q", tc.name, err, tc.want)
		}
	}
	cancel()
	<-parts
}

// TestHostileEvaluation: a participant's evaluation with the wrong number
// of heads or classes, accuracies outside [0, 1] or a negative sample
// count is refused; NaN (nothing to measure) is allowed.
func TestHostileEvaluation(t *testing.T) {
	const k = 3
	nan := math.NaN()
	for _, tc := range []struct {
		name string
		ev   *fedcmipb.Evaluation
		ok   bool
	}{
		{"honest", &fedcmipb.Evaluation{Heads: []float64{0.5, 0.4, nan, 1, 0}, PerClass: []float64{0.5, nan, 1}, N: 9}, true},
		{"no per-class", &fedcmipb.Evaluation{Heads: []float64{0.5, 0.4, 0.3, 1, 0}, N: 9}, true},
		{"too few heads", &fedcmipb.Evaluation{Heads: []float64{0.5}, N: 9}, false},
		{"other classes", &fedcmipb.Evaluation{Heads: []float64{0.5, 0.4, 0.3, 1, 0}, PerClass: make([]float64, 1000), N: 9}, false},
		{"accuracy above 1", &fedcmipb.Evaluation{Heads: []float64{0.5, 7, 0.3, 1, 0}, N: 9}, false},
		{"infinite class accuracy", &fedcmipb.Evaluation{Heads: []float64{0.5, 0.4, 0.3, 1, 0}, PerClass: []float64{0, math.Inf(1), 0}, N: 9}, false},
		{"negative samples", &fedcmipb.Evaluation{Heads: []float64{0.5, 0.4, 0.3, 1, 0}, N: -1}, false},
	} {
		_, err := fromPBEvaluation(tc.ev, 2, k)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

// liarClient trains honestly, for plausible metrics, then answers with
// an all-zero model that claims samples training samples.
type liarClient struct {
	fl.Client
	samples int
}

func (l liarClient) Fit(ctx context.Context, ins fl.FitIns) (fl.FitRes, error) {
	res, err := l.Client.Fit(ctx, ins)
	if err != nil {
		return res, err
	}
	for i := range res.Params {
		clear(res.Params[i].Data)
	}
	res.NumSamples = l.samples
	return res, nil
}

// TestLiarCannotTakeOverTheAverage: a participant that declares 2e9
// samples at registration and uploads a zero model takes the average over
// when weights are not capped (the global model becomes its zero model,
// accuracy drops to chance: the attack is real), but with the default cap
// it weighs exactly half of the round, as much as the three honest
// participants together: the global model is half the honest average.
// (A zero model at half the weight still hurts: against a poisoned model,
// -norm-bound is the defence; see the README's threat model.)
func TestLiarCannotTakeOverTheAverage(t *testing.T) {
	cfg := smallConfig(t, 3, 4, 1)
	cfg.Data.MultiRatio = 1 // every participant, the liar too, holds both modalities
	cfg.Train.Epochs, cfg.Train.LR, cfg.Data.Synthetic.TrainPerClass = 2, 0.1, 40
	fed, err := sim.Prepare(context.Background(), &cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	honest := readModel(t, simulate(t, cfg).Dir, &fed.Arch)
	const lie = 2_000_000_000
	run := func(opt ServeOptions) (model.Params, *Metrics) {
		t.Helper()
		cfg := cfg
		cfg.OutDir = t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		l := listen(t)
		met := NewMetrics()
		opt.Listener, opt.Insecure, opt.Metrics, opt.WaitFor = l, true, met, cfg.Clients+1
		opt.HeartbeatInterval, opt.PollTimeout = 200*time.Millisecond, time.Second
		done := serve(ctx, cfg, opt)
		var parts []<-chan error
		for i := range cfg.Clients {
			parts = append(parts, shardParticipant(ctx, t, cfg, i, l.Addr().String(), nil, "", nil))
		}
		loc, err := ShardLocal(ctx, &cfg, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		liar := loc.Participant(dial(t, l.Addr().String(), nil))
		liar.Name, liar.Client, liar.NumSamples = "liar", liarClient{loc.Client, lie}, lie
		liar.MinBackoff, liar.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
		liarDone := make(chan error, 1)
		go func() { liarDone <- liar.Run(ctx) }()
		parts = append(parts, liarDone)
		res := federated(t, done, parts)
		if r := res.Rounds[0]; r.Clients != cfg.Clients+1 {
			t.Fatalf("%d results in round 1, want %d: the liar was not aggregated", r.Clients, cfg.Clients+1)
		}
		t.Logf("max share %v: fused accuracy %.3f (chance %.3f)", opt.MaxWeightShare,
			res.Rounds[0].Heads[0], 1/float64(cfg.Data.Synthetic.NumClasses))
		return readModel(t, res.Dir, &fed.Arch), met
	}
	// dist returns |a - f*b| / |b| over all parameters.
	dist := func(a model.Params, f float64, b model.Params) float64 {
		var d, n float64
		for i := range a {
			for j, v := range a[i].Data {
				w := float64(b[i].Data[j])
				d += (float64(v) - f*w) * (float64(v) - f*w)
				n += w * w
			}
		}
		return math.Sqrt(d / n)
	}

	uncapped, _ := run(ServeOptions{MaxWeightShare: 1})
	if d := dist(uncapped, 0, honest); d > 1e-5 {
		t.Errorf("uncapped, the global model is %.3g of the honest one, not the liar's zero model: the test shows nothing", d)
	}
	capped, met := run(ServeOptions{})
	if d := dist(capped, 0.5, honest); d > 1e-5 {
		t.Errorf("capped, the global model is %.3g away from half the honest average: the liar's share is not 1/2", d)
	}
	if n := value(met.WeightCapped); n != 1 {
		t.Errorf("%v capped results, want 1", n)
	}
}

// readModel reads the model.safetensors of a run directory.
func readModel(t *testing.T, dir string, arch *model.Arch) model.Params {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, rundir.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, _, err := model.ReadParams(f, arch)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMaxSamples: a registration declaring more samples than the
// coordinator's MaxSamples, or than the roster's max_samples for that
// participant, is refused with both numbers and counted; one within the
// bounds is accepted.
func TestMaxSamples(t *testing.T) {
	roster, err := ParseRoster(strings.NewReader("big - max_samples=5000\nsmall - max_samples=50\nplain -\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	met := NewMetrics()
	coord, addr := testCoordinator(t, CoordinatorConfig{MaxSamples: 1000, Roster: roster, Metrics: met}, nil)
	rpc := fedcmipb.NewFederationClient(dial(t, addr, nil))
	for _, tc := range []struct {
		name    string
		samples int64
		want    string // "" for accepted
	}{
		{"plain", 2_000_000_000, "participant \"plain\" declares 2000000000 samples, more than the 1000 coordinator's -max_samples allows"},
		{"plain", 1000, ""},
		{"big", 1001, "more than the 1000 coordinator's -max_samples allows"},
		{"small", 51, "declares 51 samples, more than the 50 roster's max_samples allows"},
		{"small", 50, ""},
	} {
		before := counterValue(t, met, "fedcmi_update_rejections_total", "samples")
		_, err := rpc.Register(context.Background(), &fedcmipb.RegisterRequest{ProtocolVersion: ProtocolVersion, Name: tc.name,
			Modalities: coord.cfg.Modalities[:], NumSamples: tc.samples, LayoutDigest: coord.digest})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s with %d samples: %v", tc.name, tc.samples, err)
		case tc.want != "" && (status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s with %d samples: %v, want a refusal saying %q", tc.name, tc.samples, err, tc.want)
		case tc.want != "" && counterValue(t, met, "fedcmi_update_rejections_total", "samples") != before+1:
			t.Errorf("%s with %d samples: the refusal was not counted", tc.name, tc.samples)
		}
	}
}

// TestStalledUploads: a participant that opens many uploads of its open
// task, each sending only its header and never closing, gets one upload
// at a time: the others are refused at once (and counted), and the one
// ends when the task closes at the round's deadline, answered late,
// instead of holding its handler and buffers for ever.
func TestStalledUploads(t *testing.T) {
	met := NewMetrics()
	// The deadline leaves time to open every upload before it.
	coord, addr := testCoordinator(t, CoordinatorConfig{RoundTimeout: 5 * time.Second, Metrics: met}, nil)
	layout := coord.cfg.Layout
	raw := registerRaw(t, addr, "staller", layout)
	coord.BeginRound(1)
	fit := make(chan error, 1)
	go func() {
		_, err := coord.Fit(context.Background(), "staller", fl.FitIns{Params: zeroParams(layout), Config: fl.FitConfig{Round: 1, Epochs: 1}})
		fit <- err
	}()
	h, _ := raw.pull(t, layout)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // ends streams left blocked
	defer cancel()
	const n = 20
	type answer struct {
		resp *fedcmipb.UploadResponse
		err  error
	}
	answers := make(chan answer, n)
	for range n {
		stream, err := raw.rpc.Upload(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rh := &fedcmipb.ResultHeader{ProtocolVersion: ProtocolVersion, Session: raw.session, TaskId: h.GetTaskId(), Round: h.GetRound(),
			NumSamples: 10, Modalities: []string{"audio", "visual"}, NumTensors: int32(len(layout))}
		if err := stream.Send(&fedcmipb.UploadChunk{Part: &fedcmipb.UploadChunk_Header{Header: rh}}); err != nil {
			t.Fatal(err)
		}
		go func() {
			var resp fedcmipb.UploadResponse
			err := stream.RecvMsg(&resp) // the coordinator's answer, the stream left open
			answers <- answer{&resp, err}
		}()
	}
	refused, late := 0, 0
	for range n {
		switch a := <-answers; {
		case status.Code(a.err) == codes.Aborted && strings.Contains(a.err.Error(), "another upload of its result is in progress"):
			refused++
		case a.err == nil && a.resp.GetStatus() == fedcmipb.UploadStatus_UPLOAD_STATUS_LATE:
			late++
		default:
			t.Errorf("an upload ended with %v, %v", a.resp, a.err)
		}
	}
	if refused != n-1 || late != 1 {
		t.Errorf("%d uploads refused and %d answered late, want %d and 1", refused, late, n-1)
	}
	if got := counterValue(t, met, "fedcmi_update_rejections_total", "concurrent"); got != n-1 {
		t.Errorf("%v concurrent uploads counted, want %d", got, n-1)
	}
	if err := <-fit; !errors.Is(err, ErrDeadline) {
		t.Errorf("fit: %v, want the deadline", err)
	}
}

// TestHeaderlessUpload: an upload that never sends its header is ended
// after uploadHeaderTimeout, where it used to stay open for as long as its
// connection answered keepalives.
func TestHeaderlessUpload(t *testing.T) {
	defer func(d time.Duration) { uploadHeaderTimeout = d }(uploadHeaderTimeout)
	uploadHeaderTimeout = 200 * time.Millisecond
	coord, addr := testCoordinator(t, CoordinatorConfig{}, nil)
	raw := registerRaw(t, addr, "silent", coord.cfg.Layout)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a bound for the test if the coordinator never ends it
	defer cancel()
	stream, err := raw.rpc.Upload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var resp fedcmipb.UploadResponse
	err = stream.RecvMsg(&resp)
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "no result header") {
		t.Errorf("a header-less upload ended with %v, want the coordinator's deadline on its header", err)
	}
}

// forgedIndicator trains honestly and then reports unclipped as its
// client-side privacy indicator.
type forgedIndicator struct {
	fl.Client
	unclipped float64
}

func (f forgedIndicator) Fit(ctx context.Context, ins fl.FitIns) (fl.FitRes, error) {
	res, err := f.Client.Fit(ctx, ins)
	res.Metrics.DPUnclipped = f.unclipped
	return res, err
}

// TestForgedPrivacyIndicator: under client-side privacy with an adaptive
// clip, a participant's unclipped indicator (0 or 1 plus count noise of
// std 1) far outside that range is refused by the coordinator, which
// checks it against the share of privacy its task gave: the run goes on
// with the honest participants and a finite clip, where a forged 50 in
// every round would have moved the clip by the participant's wish.
func TestForgedPrivacyIndicator(t *testing.T) {
	cfg := smallConfig(t, 4, 4, 2)
	cfg.DP.Clip, cfg.DP.NoiseMultiplier, cfg.DP.Noise = 0.5, 0.5, "client"
	cfg.DP.Adaptive, cfg.DP.CountStd = true, 1
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := listen(t)
	met := NewMetrics()
	done := serve(ctx, cfg, ServeOptions{Listener: l, Insecure: true, Metrics: met, HeartbeatInterval: 200 * time.Millisecond, PollTimeout: time.Second})
	var parts []<-chan error
	for i := range cfg.Clients {
		var wrap func(fl.Client) fl.Client
		if i == 0 {
			wrap = func(c fl.Client) fl.Client { return forgedIndicator{c, 50} }
		}
		parts = append(parts, shardParticipant(ctx, t, cfg, i, l.Addr().String(), nil, "", wrap))
	}
	res := federated(t, done, parts)
	for _, r := range res.Rounds {
		if r.Clients != cfg.Clients-1 {
			t.Errorf("round %d aggregated %d results, want the %d honest ones", r.Round, r.Clients, cfg.Clients-1)
		}
	}
	if n := value(met.Rejections.WithLabelValues("metrics")); n != float64(cfg.Rounds) {
		t.Errorf("%v results refused for their metrics, want %d", n, cfg.Rounds)
	}
}
