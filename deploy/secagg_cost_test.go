package deploy

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/model"
	"github.com/fedcmi/fedcmi/sim"
)

var secAggCost = flag.String("secagg.cost", "", "measure the cost of a round with and without secure aggregation for these comma-free participant counts, e.g. 10,100 (README, Secure aggregation)")

// wireCounter counts the bytes on the wire of a gRPC server.
type wireCounter struct{ in, out atomic.Int64 }

func (w *wireCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (w *wireCounter) HandleRPC(_ context.Context, s stats.RPCStats) {
	switch p := s.(type) {
	case *stats.InPayload:
		w.in.Add(int64(p.WireLength))
	case *stats.OutPayload:
		w.out.Add(int64(p.WireLength))
	}
}
func (w *wireCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (w *wireCounter) HandleConn(context.Context, stats.ConnStats)                       {}

// noiseClient answers a fit task at once with the global model plus
// small noise: the cost measured is the protocol's, not training's.
type noiseClient struct {
	seed uint64
	mods uint8
}

func (c noiseClient) Fit(_ context.Context, ins fl.FitIns) (fl.FitRes, error) {
	rng := rand.New(rand.NewPCG(c.seed, uint64(ins.Config.Round)))
	p := ins.Params.Clone()
	for i := range p {
		for j := range p[i].Data {
			p[i].Data[j] += float32(0.01 * rng.NormFloat64())
		}
	}
	return fl.FitRes{Params: p, NumSamples: 100, Modalities: 0b11, Metrics: fl.FitMetrics{LossSum: 1, Batches: 1}}, nil
}

func (noiseClient) Evaluate(context.Context, model.Params) (fl.Evaluation, error) {
	return fl.Evaluation{}, nil
}

// TestSecAggCost measures the bytes on the wire and the wall time of a
// round of n participants on loopback, with and without secure
// aggregation, for the default experiment's model (go test ./deploy -run
// SecAggCost -secagg.cost 10,100 -v). It asserts nothing.
func TestSecAggCost(t *testing.T) {
	if *secAggCost == "" {
		t.Skip("measures only with -secagg.cost")
	}
	var counts []int
	for _, f := range splitComma(*secAggCost) {
		var n int
		if _, err := fmt.Sscan(f, &n); err != nil || n < 2 {
			t.Fatalf("-secagg.cost %q", *secAggCost)
		}
		counts = append(counts, n)
	}
	cfg := config.Default()
	cfg.OutDir = t.TempDir()
	fed, err := sim.Prepare(context.Background(), &cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	layout := fed.Engine.Layout()
	size := 0
	for _, info := range layout {
		size += info.Size()
	}
	t.Logf("model: %d parameters (%d KiB as float32)", size, 4*size>>10)
	t.Logf("| participants | secure aggregation | bytes in per participant | bytes out per participant | round seconds |")
	for _, n := range counts {
		for _, secure := range []bool{false, true} {
			in, out, secs := costRound(t, layout, fed.Global, n, secure)
			t.Logf("| %d | %v | %d | %d | %.2f |", n, secure, in/int64(n), out/int64(n), secs)
		}
	}
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

// costRound runs two rounds of n participants and returns the bytes the
// coordinator received and sent in the second, and its wall time.
func costRound(t *testing.T, layout []model.ParamInfo, global model.Params, n int, secure bool) (int64, int64, float64) {
	cc := CoordinatorConfig{Layout: layout, Modalities: []string{"a", "b"}, Insecure: true, HeartbeatInterval: time.Second,
		PollTimeout: 5 * time.Second, RoundTimeout: 5 * time.Minute, RegisterBurst: 1000,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if secure {
		cc.SecAgg = &SecAggConfig{}
	}
	coord, err := NewCoordinator(cc)
	if err != nil {
		t.Fatal(err)
	}
	wc := &wireCounter{}
	gs := grpc.NewServer(grpc.StatsHandler(wc))
	RegisterService(gs, coord)
	l := listen(t)
	go gs.Serve(l)
	defer gs.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("p%04d", i)
		p := &Participant{Conn: dial(t, l.Addr().String(), nil), Name: names[i], Client: noiseClient{seed: uint64(i)},
			ModelModalities: cc.Modalities, Holds: 0b11, NumSamples: 100, Layout: layout, Logger: cc.Logger}
		wg.Add(1)
		go func() { defer wg.Done(); p.Run(ctx) }()
	}
	if err := coord.WaitParticipants(ctx, n); err != nil {
		t.Fatal(err)
	}
	var in, out int64
	var secs float64
	for r := 1; r <= 2; r++ {
		in0, out0 := wc.in.Load(), wc.out.Load()
		t0 := time.Now()
		coord.BeginRound(r)
		if secure {
			if err := coord.openSecAgg(r, global, names); err != nil {
				t.Fatal(err)
			}
		}
		var fw sync.WaitGroup
		var failed atomic.Int32
		for _, name := range names {
			fw.Add(1)
			go func() {
				defer fw.Done()
				if _, err := coord.Fit(ctx, name, fl.FitIns{Params: global, Config: fl.FitConfig{Round: r, Epochs: 1}}); err != nil {
					failed.Add(1)
					t.Errorf("%s: %v", name, err)
				}
			}()
		}
		fw.Wait()
		secs = time.Since(t0).Seconds()
		in, out = wc.in.Load()-in0, wc.out.Load()-out0
	}
	coord.Finish(time.Second)
	return in, out, secs
}
