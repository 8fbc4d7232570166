package deploy

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/internal/fedcmipb"
	"github.com/fedcmi/fedcmi/sim"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestEvaluateOverTheWire: Coordinator.Evaluate (fl.Transport) gets the
// participant's own evaluation of the given model.
func TestEvaluateOverTheWire(t *testing.T) {
	cfg := smallConfig(t, 4, 4, 1)
	coord, addr := testCoordinator(t, CoordinatorConfig{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	loc, err := ShardLocal(ctx, &cfg, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	go loc.Participant(dial(t, addr, nil)).Run(ctx)
	if err := coord.WaitParticipants(ctx, 1); err != nil {
		t.Fatal(err)
	}
	fed, err := sim.Prepare(ctx, &cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	params := fed.Global
	got, err := coord.Evaluate(ctx, loc.Info.ID, params)
	if err != nil {
		t.Fatal(err)
	}
	want, err := loc.Client.Evaluate(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	for h := range want.Heads {
		if got.Heads[h] != want.Heads[h] && !(math.IsNaN(got.Heads[h]) && math.IsNaN(want.Heads[h])) {
			t.Errorf("head %d: %v over the wire, %v locally", h, got.Heads[h], want.Heads[h])
		}
	}
	if got.N != want.N || len(got.PerClass) != len(want.PerClass) {
		t.Errorf("evaluation %+v, want %+v", got, want)
	}
}

// stopOnFit lets a test stop a participant when it is asked to train
// round from on: the participant dies mid-round.
type stopOnFit struct {
	fl.Client
	from int
	stop context.CancelFunc
}

func (s stopOnFit) Fit(ctx context.Context, ins fl.FitIns) (fl.FitRes, error) {
	if ins.Config.Round >= s.from {
		s.stop()
		<-ctx.Done()
		return fl.FitRes{}, ctx.Err()
	}
	return s.Client.Fit(ctx, ins)
}

// TestParticipantDropsAndReturns: a participant that dies in round 2 makes
// that round close on its deadline, is not sampled in round 3, and is
// sampled again once it has come back.
func TestParticipantDropsAndReturns(t *testing.T) {
	cfg := smallConfig(t, 3, 3, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := listen(t)
	met := NewMetrics()
	addr := l.Addr().String()
	restart := func() {
		shardParticipant(ctx, t, cfg, 2, addr, nil, "", nil)
		for value(met.Connected) < 3 && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
	done := serve(ctx, cfg, ServeOptions{Listener: l, Insecure: true, Metrics: met,
		HeartbeatInterval: 100 * time.Millisecond, PollTimeout: time.Second, RoundTimeout: 2 * time.Second,
		AfterRound: func(r int) {
			if r == 3 {
				restart()
			}
		}})
	shardParticipant(ctx, t, cfg, 0, addr, nil, "", nil)
	shardParticipant(ctx, t, cfg, 1, addr, nil, "", nil)
	pctx, stop := context.WithCancel(ctx)
	dying := shardParticipant(pctx, t, cfg, 2, addr, nil, "", func(c fl.Client) fl.Client { return stopOnFit{c, 2, stop} })
	s := <-done
	if s.err != nil {
		t.Fatal(s.err)
	}
	if err := <-dying; !errors.Is(err, context.Canceled) {
		t.Errorf("the dying participant: %v", err)
	}
	want := []struct{ clients, failures int }{{3, 0}, {2, 1}, {2, 0}, {3, 0}, {3, 0}}
	for i, r := range s.res.Rounds {
		if r.Clients != want[i].clients || r.Failures != want[i].failures {
			t.Errorf("round %d: %d results, %d failures; want %d and %d", r.Round, r.Clients, r.Failures, want[i].clients, want[i].failures)
		}
	}
	if got := value(met.Rounds); got != 5 {
		t.Errorf("rounds counter %v", got)
	}
}

// countingClient keeps state between rounds: the number of fits.
type countingClient struct {
	fl.Client
	fits atomic.Int64
}

func (c *countingClient) MarshalState() ([]byte, error) {
	return []byte{byte(c.fits.Load())}, nil
}

func (c *countingClient) UnmarshalState(b []byte) error {
	if len(b) != 1 {
		return errors.New("bad state")
	}
	c.fits.Store(int64(b[0]))
	return nil
}

func (c *countingClient) Fit(ctx context.Context, ins fl.FitIns) (fl.FitRes, error) {
	c.fits.Add(1)
	return c.Client.Fit(ctx, ins)
}

// TestParticipantState: a participant whose client keeps state
// (fl.ClientStateful) saves it after every round and a restarted one
// picks it up.
func TestParticipantState(t *testing.T) {
	cfg := smallConfig(t, 2, 2, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := listen(t)
	done := serve(ctx, cfg, ServeOptions{Listener: l, Insecure: true, HeartbeatInterval: 100 * time.Millisecond, PollTimeout: time.Second})
	state := filepath.Join(t.TempDir(), "client.state")
	var parts []*countingClient
	for i := range 2 {
		loc, err := ShardLocal(ctx, &cfg, i, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := &countingClient{Client: loc.Client}
		parts = append(parts, c)
		p := loc.Participant(dial(t, l.Addr().String(), nil))
		p.Client = c
		if i == 0 {
			p.StateFile = state
		}
		go p.Run(ctx)
	}
	if s := <-done; s.err != nil {
		t.Fatal(s.err)
	}
	restarted := &countingClient{}
	p := &Participant{Client: restarted, StateFile: state}
	if err := p.restore(); err != nil {
		t.Fatal(err)
	}
	if got, want := restarted.fits.Load(), parts[0].fits.Load(); got != want || got != 3 {
		t.Errorf("restored %d fits, the participant made %d (want 3)", got, want)
	}
}

// value reads a gauge or counter.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return math.NaN()
	}
	if d.Gauge != nil {
		return d.GetGauge().GetValue()
	}
	return d.GetCounter().GetValue()
}

// silentCoordinator registers participants and then stops answering: its
// polls and heartbeats block until the caller gives up.
type silentCoordinator struct {
	fedcmipb.UnimplementedFederationServer
	registrations atomic.Int32
}

func (s *silentCoordinator) Register(context.Context, *fedcmipb.RegisterRequest) (*fedcmipb.RegisterResponse, error) {
	s.registrations.Add(1)
	return &fedcmipb.RegisterResponse{ProtocolVersion: ProtocolVersion, Session: "s", HeartbeatIntervalMs: 50}, nil
}

func (s *silentCoordinator) Heartbeat(ctx context.Context, _ *fedcmipb.HeartbeatRequest) (*fedcmipb.HeartbeatResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (s *silentCoordinator) PullWork(_ *fedcmipb.PullRequest, stream fedcmipb.Federation_PullWorkServer) error {
	<-stream.Context().Done()
	return stream.Context().Err()
}

// TestParticipantLeavesSilentCoordinator: a coordinator that stops
// answering after registration ends the participant's session once its
// heartbeats fail: the participant registers again, and gives up after
// GiveUpAfter without an answer.
func TestParticipantLeavesSilentCoordinator(t *testing.T) {
	for _, tc := range []struct {
		name   string
		giveUp time.Duration
	}{
		{"gives up", time.Second},
		{"reconnects", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := &silentCoordinator{}
			gs := grpc.NewServer()
			fedcmipb.RegisterFederationServer(gs, srv)
			l := listen(t)
			go gs.Serve(l)
			defer gs.Stop()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			p := &Participant{Conn: dial(t, l.Addr().String(), nil), Name: "p", Client: struct{ fl.Client }{},
				MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, GiveUpAfter: tc.giveUp}
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			if tc.giveUp == 0 {
				for srv.registrations.Load() < 2 && ctx.Err() == nil {
					time.Sleep(20 * time.Millisecond)
				}
				if ctx.Err() != nil {
					t.Fatal("the participant never left its silent session")
				}
				cancel()
			}
			err := <-done
			switch {
			case tc.giveUp == 0 && !errors.Is(err, context.Canceled):
				t.Errorf("Run: %v, want context.Canceled", err)
			case tc.giveUp > 0 && (!errors.Is(err, errCoordinatorSilent) || !strings.Contains(err.Error(), "giving up")):
				t.Errorf("Run: %v, want it to give up on a coordinator that stopped answering", err)
			}
		})
	}
}

// quickRPC answers a secure aggregation call at once, not ready, or never
// (block).
type quickRPC struct {
	fedcmipb.FederationClient
	block bool
	calls atomic.Int32
}

func (q *quickRPC) SecAgg(ctx context.Context, _ *fedcmipb.SecAggRequest, _ ...grpc.CallOption) (*fedcmipb.SecAggResponse, error) {
	q.calls.Add(1)
	if q.block {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return &fedcmipb.SecAggResponse{}, nil
}

// TestSecAggCallBounded: a secure aggregation step the coordinator never
// completes, answering not ready at once or not at all, ends at the
// task's end as a round gone on without the participant, and quick
// answers are not asked again at once.
func TestSecAggCallBounded(t *testing.T) {
	p := &Participant{MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	for _, rpc := range []*quickRPC{{}, {block: true}} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := p.secAggCall(ctx, rpc, &fedcmipb.SecAggRequest{Step: fedcmipb.SecAggStep_SECAGG_STEP_ADVERTISE}, time.Now().Add(400*time.Millisecond))
		cancel()
		if !errors.Is(err, errSecAggTimeout) {
			t.Errorf("block %v: %v, want the step's timeout", rpc.block, err)
		}
		// With backoff from 50ms, at most a handful of calls in 400ms.
		if n := rpc.calls.Load(); n < 1 || n > 20 {
			t.Errorf("block %v: %d calls, want a few", rpc.block, n)
		}
	}
}

// answeringRPC answers every upload with status.
type answeringRPC struct {
	fedcmipb.FederationClient
	status fedcmipb.UploadStatus
}

func (a answeringRPC) Upload(context.Context, ...grpc.CallOption) (fedcmipb.Federation_UploadClient, error) {
	return answeringStream{status: a.status}, nil
}

// answeringStream takes every chunk and answers with status.
type answeringStream struct {
	grpc.ClientStream
	status fedcmipb.UploadStatus
}

func (answeringStream) Send(*fedcmipb.UploadChunk) error { return nil }
func (a answeringStream) CloseAndRecv() (*fedcmipb.UploadResponse, error) {
	return &fedcmipb.UploadResponse{Status: a.status}, nil
}

// discardingClient records the rounds it is told to discard.
type discardingClient struct {
	fl.Client
	discarded []int
}

func (d *discardingClient) Discard(round int) bool {
	d.discarded = append(d.discarded, round)
	return true
}

// TestUploadNotAggregatedDiscards: a training result answered late or
// rejected makes the client undo that round's state (SCAFFOLD's control
// variate would otherwise drift from the server's); an accepted or
// duplicate one, or an evaluation, does not.
func TestUploadNotAggregatedDiscards(t *testing.T) {
	for _, tc := range []struct {
		status fedcmipb.UploadStatus
		kind   fedcmipb.TaskKind
		want   []int
	}{
		{fedcmipb.UploadStatus_UPLOAD_STATUS_LATE, fedcmipb.TaskKind_TASK_KIND_FIT, []int{4}},
		{fedcmipb.UploadStatus_UPLOAD_STATUS_REJECTED, fedcmipb.TaskKind_TASK_KIND_FIT, []int{4}},
		{fedcmipb.UploadStatus_UPLOAD_STATUS_ACCEPTED, fedcmipb.TaskKind_TASK_KIND_FIT, nil},
		{fedcmipb.UploadStatus_UPLOAD_STATUS_DUPLICATE, fedcmipb.TaskKind_TASK_KIND_FIT, nil},
		{fedcmipb.UploadStatus_UPLOAD_STATUS_LATE, fedcmipb.TaskKind_TASK_KIND_EVALUATE, nil},
	} {
		c := &discardingClient{}
		p := &Participant{Client: c, MinBackoff: time.Millisecond}
		h := &fedcmipb.TaskHeader{TaskId: "t", Round: 4, Kind: tc.kind}
		if err := p.upload(context.Background(), answeringRPC{status: tc.status}, "s", h, outcome{}, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatalf("%v %v: %v", tc.status, tc.kind, err)
		}
		if !slices.Equal(c.discarded, tc.want) {
			t.Errorf("%v %v: discarded rounds %v, want %v", tc.status, tc.kind, c.discarded, tc.want)
		}
	}
}

// busyRPC refuses the first busy uploads as the coordinator does while it
// still holds an earlier, broken upload of the same result, then accepts.
type busyRPC struct {
	fedcmipb.FederationClient
	busy  int
	calls int
}

func (b *busyRPC) Upload(context.Context, ...grpc.CallOption) (fedcmipb.Federation_UploadClient, error) {
	b.calls++
	if b.calls <= b.busy {
		return nil, status.Error(codes.Aborted, "another upload of its result is in progress (one at a time)")
	}
	return answeringStream{status: fedcmipb.UploadStatus_UPLOAD_STATUS_ACCEPTED}, nil
}

// TestUploadRetriesWhileBusy: a retry refused because the coordinator
// still holds the broken first upload is tried again, beyond the three
// attempts for broken streams, until it is delivered.
func TestUploadRetriesWhileBusy(t *testing.T) {
	rpc := &busyRPC{busy: 5}
	c := &discardingClient{}
	p := &Participant{Client: c, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	h := &fedcmipb.TaskHeader{TaskId: "t", Round: 2, Kind: fedcmipb.TaskKind_TASK_KIND_FIT}
	if err := p.upload(context.Background(), rpc, "s", h, outcome{}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("upload: %v", err)
	}
	if rpc.calls != 6 || len(c.discarded) != 0 {
		t.Errorf("%d calls, discarded %v; want 6 calls and nothing discarded", rpc.calls, c.discarded)
	}
}

// statefulClient is a client that says whether it carries state.
type statefulClient struct {
	fl.Client
	state bool
}

func (c statefulClient) HasState() bool { return c.state }

// TestWarnStateInMemory: a participant whose client carries state between
// rounds, without a state file, warns once; with a state file, or without
// state, it does not.
func TestWarnStateInMemory(t *testing.T) {
	for _, tc := range []struct {
		name      string
		client    fl.Client
		stateFile string
		warnings  int
	}{
		{"state, no file", statefulClient{state: true}, "", 1},
		{"state, file", statefulClient{state: true}, "state.bin", 0},
		{"no state", statefulClient{}, "", 0},
		{"a client that cannot say", struct{ fl.Client }{}, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			p := &Participant{Client: tc.client, StateFile: tc.stateFile}
			for range 3 {
				p.warnStateInMemory(log)
			}
			if got := strings.Count(buf.String(), "join -state"); got != tc.warnings {
				t.Errorf("%d warnings, want %d: %s", got, tc.warnings, buf.String())
			}
		})
	}
}

// TestNotAggregated: the answers after which a participant undoes its
// round's client state, on the plain and the masked upload alike.
func TestNotAggregated(t *testing.T) {
	for st, want := range map[fedcmipb.UploadStatus]bool{
		fedcmipb.UploadStatus_UPLOAD_STATUS_ACCEPTED:  false,
		fedcmipb.UploadStatus_UPLOAD_STATUS_DUPLICATE: false, // a retry of an upload already in
		fedcmipb.UploadStatus_UPLOAD_STATUS_LATE:      true,
		fedcmipb.UploadStatus_UPLOAD_STATUS_REJECTED:  true,
	} {
		if got := notAggregated(st); got != want {
			t.Errorf("notAggregated(%s) = %v, want %v", st, got, want)
		}
	}
}
