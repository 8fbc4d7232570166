package deploy

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fedcmi/fedcmi/config"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/internal/fedcmipb"
	"github.com/fedcmi/fedcmi/internal/secagg"
	"github.com/fedcmi/fedcmi/model"
	"github.com/fedcmi/fedcmi/sim"
)

// maxDiff returns the largest absolute difference between two models.
func maxDiff(t *testing.T, a, b model.Params) float64 {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("models of %d and %d tensors", len(a), len(b))
	}
	d := 0.0
	for i := range a {
		for j := range a[i].Data {
			d = max(d, math.Abs(float64(a[i].Data[j])-float64(b[i].Data[j])))
		}
	}
	return d
}

// serveSecAgg runs cfg as a federation under secure aggregation sc, with
// the participants' clients wrapped by wrap (nil: as they are), and
// returns the coordinator's result.
func serveSecAgg(t *testing.T, cfg config.Config, sc SecAggConfig, wrap func(i int, c fl.Client) fl.Client) (*sim.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := listen(t)
	done := serve(ctx, cfg, ServeOptions{Listener: l, Insecure: true, HeartbeatInterval: 200 * time.Millisecond, PollTimeout: time.Second,
		RoundTimeout: 30 * time.Second, SecAgg: &sc})
	for i := range cfg.Clients {
		var w func(fl.Client) fl.Client
		if wrap != nil {
			w = func(c fl.Client) fl.Client { return wrap(i, c) }
		}
		shardParticipant(ctx, t, cfg, i, l.Addr().String(), nil, "", w)
	}
	s := <-done
	return s.res, s.err
}

// TestSecAggEqualsPlainAggregation: a federation under secure aggregation
// ends with the model of the same run without it (the simulation), to
// float tolerance, with the same training metrics: the unmasked sums are
// the plain weighted means, under plain FedAvg, a server optimizer, mixed
// modality holdings and client-side privacy (unweighted means and the
// summed unclipped indicator).
func TestSecAggEqualsPlainAggregation(t *testing.T) {
	for _, tc := range []struct {
		name string
		mut  func(c *config.Config)
	}{
		{"fedavg", func(c *config.Config) {}},
		{"fedcmi adam", func(c *config.Config) { c.Method, c.Server.Optimizer, c.Server.LR = "fedcmi", "adam", 0.01 }},
		{"harmony", func(c *config.Config) { c.Method, c.Harmony.UnimodalRounds = "harmony", 1 }},
		{"fedcmi three modalities", func(c *config.Config) { c.Method = "fedcmi"; threeModalities(c) }},
		{"client dp", func(c *config.Config) {
			c.DP.Clip, c.DP.NoiseMultiplier, c.DP.Noise = 0.5, 0.5, "client"
			c.DP.Adaptive, c.DP.CountStd = true, 1
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := smallConfig(t, 5, 4, 2)
			tc.mut(&cfg)
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			want := simulate(t, cfg)
			got, err := serveSecAgg(t, cfg, SecAggConfig{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			fed, err := sim.Prepare(context.Background(), &cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(t, readModel(t, got.Dir, &fed.Arch), readModel(t, want.Dir, &fed.Arch)); d > 1e-4 {
				t.Errorf("final models differ by up to %g", d)
			}
			if len(got.Rounds) != len(want.Rounds) {
				t.Fatalf("%d rounds, want %d", len(got.Rounds), len(want.Rounds))
			}
			for i, w := range want.Rounds {
				g := got.Rounds[i]
				if g.Clients != w.Clients || g.Failures != 0 || math.Abs(g.TrainLoss-w.TrainLoss) > 1e-3*math.Abs(w.TrainLoss) {
					t.Errorf("round %d: clients %d failures %d loss %v, want %d, 0, %v", w.Round, g.Clients, g.Failures, g.TrainLoss, w.Clients, w.TrainLoss)
				}
			}
		})
	}
}

// recorder keeps a client's first result and fails it if fail is set, after
// training (so the participant drops out after sharing its keys: its
// masks must be removed with the survivors' shares).
type recorder struct {
	fl.Client
	fail bool
	mu   *sync.Mutex
	got  map[string]fl.FitRes
	name string
}

func (r recorder) Fit(ctx context.Context, ins fl.FitIns) (fl.FitRes, error) {
	res, err := r.Client.Fit(ctx, ins)
	if err != nil {
		return res, err
	}
	if r.fail {
		return fl.FitRes{}, errors.New("test: dropped out after training")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.got[r.name]; !ok {
		r.got[r.name] = res
	}
	return res, nil
}

// TestSecAggDropouts: participants that drop out after sharing their
// keys, up to n - t, are recovered (the round's model is the plain
// average of the survivors' updates); one more and the round fails
// cleanly: the previous global model is kept, the run goes on and its
// state is saved.
func TestSecAggDropouts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		drop   []int
		failed bool
	}{
		{"none", nil, false},
		{"n-t", []int{1, 3}, false},
		{"n-t+1", []int{0, 2, 4}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := smallConfig(t, 5, 5, 1)
			var mu sync.Mutex
			got := map[string]fl.FitRes{}
			res, err := serveSecAgg(t, cfg, SecAggConfig{Threshold: 3}, func(i int, c fl.Client) fl.Client {
				return recorder{Client: c, fail: slices.Contains(tc.drop, i), mu: &mu, got: got, name: sim.ClientID(i)}
			})
			if err != nil {
				t.Fatal(err)
			}
			fed, err := sim.Prepare(context.Background(), &cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			final := readModel(t, res.Dir, &fed.Arch)
			r := res.Rounds[0]
			if tc.failed {
				if r.Clients != 0 || r.Failures != cfg.Clients {
					t.Errorf("clients %d failures %d, want 0 and %d", r.Clients, r.Failures, cfg.Clients)
				}
				if d := maxDiff(t, final, fed.Global); d != 0 {
					t.Errorf("a failed round changed the model by %g", d)
				}
				return
			}
			var updates []fl.Update
			for _, res := range got {
				updates = append(updates, fl.Update{Params: res.Params, NumSamples: res.NumSamples, Modalities: res.Modalities})
			}
			if len(updates) != cfg.Clients-len(tc.drop) || r.Clients != len(updates) || r.Failures != len(tc.drop) {
				t.Fatalf("%d updates, round clients %d failures %d; want %d survivors", len(updates), r.Clients, r.Failures, cfg.Clients-len(tc.drop))
			}
			want, err := fl.AggregateModalityAware(fed.Engine.Layout(), fed.Global, updates)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(t, final, want); d > 1e-6 {
				t.Errorf("model differs from the survivors' average by %g", d)
			}
			if d := maxDiff(t, final, fed.Global); d < 1e-4 {
				t.Errorf("the model moved only %g: the test shows nothing", d)
			}
		})
	}
}

// TestSecAggRefusesSingleUpdateSettings: what needs single updates is
// refused with an error naming the field or flag.
func TestSecAggRefusesSingleUpdateSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		mut  func(c *config.Config, o *ServeOptions)
		want string
	}{
		{"scaffold", func(c *config.Config, o *ServeOptions) { c.Method = "scaffold" }, "method: scaffold cannot run under secure aggregation"},
		{"fedmdrop", func(c *config.Config, o *ServeOptions) { c.Method = "fedmdrop" }, "method: fedmdrop cannot run"},
		{"fedstats", func(c *config.Config, o *ServeOptions) { c.Method = "fedcmi-fedstats" }, "per-class statistics"},
		{"median", func(c *config.Config, o *ServeOptions) { c.Server.Aggregator = "median" }, "server.aggregator: median needs single updates"},
		{"server noise", func(c *config.Config, o *ServeOptions) { c.DP.Clip, c.DP.NoiseMultiplier = 1, 1 }, "dp.noise: server"},
		{"norm bound", func(c *config.Config, o *ServeOptions) { o.NormBound = 3 }, "-norm_bound 3"},
		{"weight share", func(c *config.Config, o *ServeOptions) { o.MaxWeightShare = 0.5 }, "-max_weight_share 0.5"},
		{"threshold above participants", func(c *config.Config, o *ServeOptions) { o.SecAgg.Threshold = 4 },
			"threshold 4 (-secagg_threshold) is larger than the 3 participants of a round"},
		{"threshold 1", func(c *config.Config, o *ServeOptions) { o.SecAgg.Threshold = 1 }, "threshold 1 (-secagg_threshold): want at least 2"},
		{"one per round", func(c *config.Config, o *ServeOptions) { c.ClientsPerRound = 1 }, "clients_per_round: 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := smallConfig(t, 4, 3, 1)
			opt := ServeOptions{Listener: listen(t), Insecure: true, SecAgg: &SecAggConfig{}}
			tc.mut(&cfg, &opt)
			_, err := Serve(context.Background(), cfg, opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestSecAggHostile: bad input at each step over the wire is refused
// with a clear error, takes the sender out of the round, and a round left
// with fewer than the threshold fails for everyone.
func TestSecAggHostile(t *testing.T) {
	coord, addr := testCoordinator(t, CoordinatorConfig{SecAgg: &SecAggConfig{Threshold: 2, PhaseTimeout: 5 * time.Second}, RoundTimeout: 10 * time.Second}, nil)
	layout := coord.cfg.Layout
	names := []string{"alpha", "beta", "gamma"}
	raw := map[string]*rawParticipant{}
	for _, n := range names {
		raw[n] = registerRaw(t, addr, n, layout)
	}
	global := zeroParams(layout)
	coord.BeginRound(1)
	if err := coord.openSecAgg(1, global, names); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, len(names))
	for _, n := range names {
		go func() {
			_, err := coord.Fit(context.Background(), n, fl.FitIns{Params: global, Config: fl.FitConfig{Round: 1, Epochs: 1}})
			errs <- err
		}()
	}
	hs := map[string]*fedcmipb.TaskHeader{}
	for _, n := range names {
		h, _ := raw[n].pull(t, layout)
		if h.GetSecagg() == nil || h.GetSecagg().GetYou() != n || h.GetSecagg().GetThreshold() != 2 {
			t.Fatalf("%s's task has secure aggregation setup %v", n, h.GetSecagg())
		}
		hs[n] = h
	}
	call := func(n string, req *fedcmipb.SecAggRequest) (*fedcmipb.SecAggResponse, error) {
		req.ProtocolVersion, req.Session, req.TaskId = ProtocolVersion, raw[n].session, hs[n].GetTaskId()
		for {
			resp, err := raw[n].rpc.SecAgg(context.Background(), req)
			if err != nil || resp.GetReady() {
				return resp, err
			}
		}
	}
	wantAborted := func(err error, want string) {
		t.Helper()
		if status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want ABORTED with %q", err, want)
		}
	}
	// alpha's mask key has the wrong size.
	ck, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, err = call("alpha", &fedcmipb.SecAggRequest{Step: fedcmipb.SecAggStep_SECAGG_STEP_ADVERTISE, CipherKey: ck.PublicKey().Bytes(), MaskKey: make([]byte, 5)})
	wantAborted(err, "public key of 5 bytes, want 32")
	clients := map[string]*secagg.Client{}
	var wg sync.WaitGroup
	resps := map[string]*fedcmipb.SecAggResponse{}
	var mu sync.Mutex
	for _, n := range names[1:] {
		r, err := saRoundOf(hs[n].GetSecagg(), layout, 0b111)
		if err != nil {
			t.Fatal(err)
		}
		c, err := secagg.NewClient(r, n, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		clients[n] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := c.Keys()
			resp, err := call(n, &fedcmipb.SecAggRequest{Step: fedcmipb.SecAggStep_SECAGG_STEP_ADVERTISE, CipherKey: k.Cipher, MaskKey: k.Mask})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			resps[n] = resp
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(resps["beta"].GetKeys()) != 2 {
		t.Fatalf("key set %v, want beta and gamma", resps["beta"].GetKeys())
	}
	// beta sends no share for gamma: it is dropped, the round is left
	// with one participant and fails.
	_, err = call("beta", &fedcmipb.SecAggRequest{Step: fedcmipb.SecAggStep_SECAGG_STEP_SHARE, Commitments: [][]byte{make([]byte, 32), make([]byte, 32), make([]byte, 32)}})
	wantAborted(err, "sent 0 shares, want 1")
	keys := []secagg.Keys{}
	for _, k := range resps["gamma"].GetKeys() {
		keys = append(keys, secagg.Keys{Name: k.GetName(), Cipher: k.GetCipherKey(), Mask: k.GetMaskKey()})
	}
	cts, commits, err := clients["gamma"].ShareKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	req := &fedcmipb.SecAggRequest{Step: fedcmipb.SecAggStep_SECAGG_STEP_SHARE, Commitments: commits}
	for _, ct := range cts {
		req.Shares = append(req.Shares, &fedcmipb.SecAggCiphertext{Peer: ct.Peer, Data: ct.Data})
	}
	_, err = call("gamma", req)
	wantAborted(err, "1 of 2 participants sent their shares, threshold 2")
	// A plain update cannot answer a secure aggregation task.
	if resp := raw["gamma"].upload(t, hs["gamma"], global); resp.GetStatus() != fedcmipb.UploadStatus_UPLOAD_STATUS_REJECTED &&
		resp.GetStatus() != fedcmipb.UploadStatus_UPLOAD_STATUS_LATE {
		t.Errorf("plain upload to a secure aggregation task: %v", resp)
	}
	for range names {
		if err := <-errs; err == nil {
			t.Error("a Fit of a failed round succeeded")
		}
	}
	if n := counterValue(t, coord.met, "fedcmi_update_rejections_total", "secagg"); n != 2 {
		t.Errorf("%v secure aggregation refusals counted, want 2", n)
	}
}

// TestSecAggUploadMismatch: a masked input answers only a secure
// aggregation task, a plain update only a plain one.
func TestSecAggUploadMismatch(t *testing.T) {
	coord, addr := testCoordinator(t, CoordinatorConfig{RoundTimeout: 10 * time.Second}, nil)
	layout := coord.cfg.Layout
	a := registerRaw(t, addr, "alpha", layout)
	global := zeroParams(layout)
	coord.BeginRound(1)
	errs := make(chan error, 1)
	go func() {
		_, err := coord.Fit(context.Background(), "alpha", fl.FitIns{Params: global, Config: fl.FitConfig{Round: 1, Epochs: 1}})
		errs <- err
	}()
	h, _ := a.pull(t, layout)
	resp := a.upload(t, h, nil, func(rh *fedcmipb.ResultHeader) { rh.Secagg = true })
	if resp.GetStatus() != fedcmipb.UploadStatus_UPLOAD_STATUS_REJECTED || !strings.Contains(resp.GetReason(), "a masked input answers a secure aggregation task") {
		t.Errorf("masked upload to a plain task: %v", resp)
	}
	if err := <-errs; !errors.Is(err, ErrRejected) {
		t.Errorf("Fit: %v", err)
	}

	sc, saddr := testCoordinator(t, CoordinatorConfig{RoundTimeout: 10 * time.Second, SecAgg: &SecAggConfig{}}, nil)
	b := registerRaw(t, saddr, "beta", layout)
	registerRaw(t, saddr, "gamma", layout)
	sc.BeginRound(1)
	if err := sc.openSecAgg(1, global, []string{"beta", "gamma"}); err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := sc.Fit(context.Background(), "beta", fl.FitIns{Params: global, Config: fl.FitConfig{Round: 1, Epochs: 1}})
		errs <- err
	}()
	h, _ = b.pull(t, layout)
	resp = b.upload(t, h, global)
	if resp.GetStatus() != fedcmipb.UploadStatus_UPLOAD_STATUS_REJECTED || !strings.Contains(resp.GetReason(), "a masked input answers a secure aggregation task") {
		t.Errorf("plain upload to a secure aggregation task: %v", resp)
	}
	if err := <-errs; !errors.Is(err, ErrRejected) {
		t.Errorf("Fit: %v", err)
	}
	// Outside an open round, a secure aggregation coordinator never
	// asks for a plain update.
	if _, err := sc.Fit(context.Background(), "gamma", fl.FitIns{Params: global, Config: fl.FitConfig{Round: 2, Epochs: 1}}); err == nil ||
		!strings.Contains(err.Error(), "not in an open secure aggregation round 2") {
		t.Errorf("Fit outside a round: %v", err)
	}
}

// TestRequireSecAgg: a participant joined with -secagg fails a plain fit
// task instead of sending its update in the clear.
func TestRequireSecAgg(t *testing.T) {
	coord, addr := testCoordinator(t, CoordinatorConfig{RoundTimeout: 10 * time.Second}, nil)
	layout := coord.cfg.Layout
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	trained := make(chan struct{})
	p := &Participant{Conn: dial(t, addr, nil), Name: "alpha", Client: hangingClient{hang: 1, started: trained},
		ModelModalities: coord.cfg.Modalities, Holds: 0b11, NumSamples: 10, Layout: layout, RequireSecAgg: true}
	go p.Run(ctx)
	if err := coord.WaitParticipants(ctx, 1); err != nil {
		t.Fatal(err)
	}
	coord.BeginRound(1)
	_, err := coord.Fit(ctx, "alpha", fl.FitIns{Params: zeroParams(layout), Config: fl.FitConfig{Round: 1, Epochs: 1}})
	if err == nil || !strings.Contains(err.Error(), "requires secure aggregation") {
		t.Errorf("Fit: %v", err)
	}
	select {
	case <-trained:
		t.Error("the participant trained on a plain task")
	default:
	}
}

// TestSecAggKnowsEveryMethod makes every method's author decide whether its
// server can work from sums alone: each method sets exactly one of
// fl.Method's SumsOnly and SingleUpdates.
func TestSecAggKnowsEveryMethod(t *testing.T) {
	for _, name := range fl.MethodNames() {
		m, err := fl.LookupMethod(name)
		if err != nil {
			t.Fatal(err)
		}
		if m.SumsOnly == (m.SingleUpdates != "") {
			t.Errorf("method %s: SumsOnly %v, SingleUpdates %q; set exactly one in fl/method.go", name, m.SumsOnly, m.SingleUpdates)
		}
	}
}

// TestSAMetricsValid: the metrics beside a masked input may carry a
// method's sums (OGM-GE's coefficients) but no per-participant statistics
// in the clear: class statistics, the privacy indicator, FedMDrop's
// prototypes.
func TestSAMetricsValid(t *testing.T) {
	b := fl.MetricBounds{Modalities: 2, Classes: 3, Width: 2, Holds: 3, Samples: 10}
	cs := fl.NewClassStats(2, 3)
	for _, tc := range []struct {
		name string
		m    fl.FitMetrics
		want string // in the error; "" for accepted
	}{
		{"plain", fl.FitMetrics{Batches: 2}, ""},
		{"OGM-GE sums", fl.FitMetrics{Batches: 2, Report: &fl.OGMReport{CoefSum: [2]float64{1, 1}, Batches: 2}}, ""},
		{"class statistics", fl.FitMetrics{FedCMI: fl.FedCMIReport{ClassStats: &cs}}, "class statistics"},
		{"privacy indicator", fl.FitMetrics{DPUnclipped: 1}, "privacy indicator"},
		{"FedMDrop prototypes", fl.FitMetrics{Report: &fl.MDropReport{Selection: &fl.ModalityReport{}}}, "FedMDrop's prototypes"},
		{"invalid", fl.FitMetrics{Batches: -1}, "batches -1"},
	} {
		err := saMetricsValid(tc.m, b)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
