package deploy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/internal/fedtest"
	"github.com/fedcmi/fedcmi/sim"
)

// smallConfig is a quick experiment on the built-in synthetic data.
func smallConfig(t testing.TB, clients, perRound, rounds int) config.Config {
	cfg := config.Default()
	cfg.OutDir = t.TempDir()
	cfg.Rounds = rounds
	cfg.Clients = clients
	cfg.ClientsPerRound = perRound
	cfg.Parallel = 1
	cfg.Train.Epochs = 1
	cfg.Data.MinSize = 5
	cfg.Data.Synthetic.TrainPerClass = 20
	cfg.Data.Synthetic.TestPerClass = 10
	cfg.Model.Hidden = []int{16}
	cfg.Model.EmbedDim = 16
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func listen(t testing.TB) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// dial connects to addr with TLS configuration tc (nil: plain text).
func dial(t testing.TB, addr string, tc *tls.Config) *grpc.ClientConn {
	creds := insecure.NewCredentials()
	if tc != nil {
		creds = credentials.NewTLS(tc)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

type served struct {
	res *sim.Result
	err error
}

// serve runs Serve in the background.
func serve(ctx context.Context, cfg config.Config, opt ServeOptions) <-chan served {
	out := make(chan served, 1)
	go func() {
		res, err := Serve(ctx, cfg, opt)
		out <- served{res, err}
	}()
	return out
}

// shardParticipant runs shard i of cfg against addr in the background.
func shardParticipant(ctx context.Context, t testing.TB, cfg config.Config, i int, addr string, tc *tls.Config, token string, wrap func(fl.Client) fl.Client) <-chan error {
	loc, err := ShardLocal(ctx, &cfg, i, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := loc.Participant(dial(t, addr, tc))
	p.Token, p.MinBackoff, p.MaxBackoff = token, 20*time.Millisecond, 200*time.Millisecond
	if wrap != nil {
		p.Client = wrap(p.Client)
	}
	out := make(chan error, 1)
	go func() { out <- p.Run(ctx) }()
	return out
}

// federated waits for the coordinator serve started and for the
// participants, failing t on an error of either, and returns the
// coordinator's result.
func federated(t *testing.T, done <-chan served, parts []<-chan error) *sim.Result {
	t.Helper()
	s := <-done
	if s.err != nil {
		t.Fatal(s.err)
	}
	for i, p := range parts {
		if err := <-p; err != nil {
			t.Errorf("participant %d: %v", i, err)
		}
	}
	return s.res
}

// sameRun fails t unless run got has want's metrics (but for wall times)
// and final model.
func sameRun(t *testing.T, got, want *sim.Result) {
	t.Helper()
	fedtest.SameRounds(t, got.Rounds, want.Rounds)
	fedtest.SameModel(t, got.Dir, want.Dir)
}

func simulate(t *testing.T, cfg config.Config) *sim.Result {
	t.Helper()
	cfg.OutDir = t.TempDir()
	res, err := sim.Run(context.Background(), cfg, sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestInProcessEqualsSimulation runs a federation of goroutines over
// loopback gRPC with mutual TLS and compares its metrics with sim.Run's.
func TestInProcessEqualsSimulation(t *testing.T) {
	cfg := smallConfig(t, 4, 3, 3)
	want := simulate(t, cfg)

	certs := t.TempDir()
	names := []string{sim.ClientID(0), sim.ClientID(1), sim.ClientID(2), sim.ClientID(3)}
	if err := WriteDevCerts(certs, []string{"127.0.0.1"}, names, time.Hour); err != nil {
		t.Fatal(err)
	}
	stls := serverTLS(t, certs)
	roster, err := LoadRoster(filepath.Join(certs, RosterFile))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := listen(t)
	done := serve(ctx, cfg, ServeOptions{Listener: l, TLS: stls, Roster: roster, HeartbeatInterval: 200 * time.Millisecond, PollTimeout: time.Second})
	var parts []<-chan error
	for i, n := range names {
		cert, key, _ := ParticipantFiles(certs, n)
		ctls, err := ClientTLS(filepath.Join(certs, CAFile), cert, key, "")
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, shardParticipant(ctx, t, cfg, i, l.Addr().String(), ctls, readToken(t, certs, n), nil))
	}
	sameRun(t, federated(t, done, parts), want)
}

func readToken(t testing.TB, dir, name string) string {
	ro, err := LoadRoster(filepath.Join(dir, RosterFile))
	if err != nil {
		t.Fatal(err)
	}
	return ro.entries[name].token
}

var _ = errors.New
var _ = fmt.Sprint

// TestLargeModel: a model of about 17 MiB, four times gRPC's default
// message limit, travels in chunks both ways and the federation still
// equals the simulation.
func TestLargeModel(t *testing.T) {
	cfg := smallConfig(t, 2, 2, 1)
	cfg.Model.Hidden = []int{2048, 1024}
	cfg.Data.Synthetic.TrainPerClass = 6
	cfg.Data.Synthetic.TestPerClass = 2
	cfg.Data.MinSize = 2
	want := simulate(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := listen(t)
	met := NewMetrics()
	done := serve(ctx, cfg, ServeOptions{Listener: l, Insecure: true, Metrics: met, HeartbeatInterval: 200 * time.Millisecond, PollTimeout: time.Second})
	for i := range 2 {
		shardParticipant(ctx, t, cfg, i, l.Addr().String(), nil, "", nil)
	}
	sameRun(t, federated(t, done, nil), want)
	sent := value(met.BytesOut)
	if sent < 2*4*(4<<20) {
		t.Errorf("%v bytes sent for two copies of a model over 16 MiB", sent)
	}
	t.Logf("model bytes sent %.1f MiB, received %.1f MiB", sent/(1<<20), value(met.BytesIn)/(1<<20))
}

// loopback runs cfg as a federation over loopback gRPC without TLS: the
// coordinator and one participant per client, each on its shard.
func loopback(t *testing.T, cfg config.Config) *sim.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := listen(t)
	done := serve(ctx, cfg, ServeOptions{Listener: l, Insecure: true, HeartbeatInterval: 200 * time.Millisecond, PollTimeout: time.Second})
	for i := range cfg.Clients {
		shardParticipant(ctx, t, cfg, i, l.Addr().String(), nil, "", nil)
	}
	return federated(t, done, nil)
}

// threeModalities makes cfg's synthetic data three modalities, the third
// of middling signal, with multimodal clients holding all three.
func threeModalities(cfg *config.Config) {
	s := &cfg.Data.Synthetic
	s.Modalities = []string{"audio", "visual", "text"}
	s.Dims = []int{s.Dims[0], s.Dims[1], 12}
	s.Signal = []float64{s.Signal[0], s.Signal[1], 0.6}
}

// TestThreeModalitiesEqualsSimulation: with three modalities, a
// federation over loopback gRPC gives the simulation's metrics and final
// model for the methods that take more than two (their per-modality
// messages, reports and state travel).
func TestThreeModalitiesEqualsSimulation(t *testing.T) {
	for _, method := range []string{"fedavg", "fedcmi", "fedcmi-fedstats", "scaffold", "harmony", "fedgb", "fedrelearn"} {
		t.Run(method, func(t *testing.T) {
			cfg := smallConfig(t, 4, 3, 3)
			cfg.Method = method
			cfg.Harmony.UnimodalRounds = 1
			threeModalities(&cfg)
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			want := simulate(t, cfg)
			if n := len(want.Rounds[0].Heads); n != 10 {
				t.Fatalf("%d heads, want 10 for three modalities", n)
			}
			sameRun(t, loopback(t, cfg), want)
		})
	}
}

// TestEveryMethodEqualsSimulation: for every method (with their recipes,
// control variates, reports and strategy state), a federation over
// loopback gRPC gives the simulation's metrics and final model.
func TestEveryMethodEqualsSimulation(t *testing.T) {
	for _, method := range fl.MethodNames() {
		t.Run(method, func(t *testing.T) {
			cfg := smallConfig(t, 4, 3, 3)
			cfg.Method = method
			cfg.Harmony.UnimodalRounds = 1
			want := simulate(t, cfg)
			sameRun(t, loopback(t, cfg), want)
		})
	}
}
