package deploy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/internal/fedcmipb"
	"github.com/fedcmi/fedcmi/model"
)

// ProtocolVersion is the version of the wire protocol (proto/fedcmi/v1
// and the gob-encoded fl.FitConfig and fl.FitMetrics beside it). Both
// sides refuse a peer speaking another. Version 2: any number of
// modalities, and each method's recipe and report in its own struct;
// version 3: the running method's recipe and report travel as one
// gob-registered interface value each (fl.Recipe, fl.Report).
const ProtocolVersion = 3

// ErrDeadline is returned (wrapped) by Coordinator.Fit when the round's
// deadline passes before the participant's result arrives.
var ErrDeadline = errors.New("deploy: round deadline passed")

// ErrRejected is returned (wrapped) by Coordinator.Fit for a result that
// failed validation; it is never aggregated.
var ErrRejected = errors.New("deploy: update rejected")

// CoordinatorConfig configures a Coordinator. Zero values mean the
// documented defaults.
type CoordinatorConfig struct {
	// Layout is the model's parameter layout; every tensor received is
	// checked against it. Required.
	Layout []model.ParamInfo
	// Modalities names the model's modalities, in order. Required.
	Modalities []string
	// Roster, if not nil, lists the participants accepted (with tokens and
	// revocations). Without a roster, any participant with a certificate of
	// the federation's CA is accepted under its certificate's name, and
	// without TLS anyone is (Insecure must then be set).
	Roster *Roster
	// Insecure accepts connections without TLS; names then rest on tokens
	// alone. It must be set explicitly when the gRPC server has no TLS.
	Insecure bool
	// RoundTimeout is how long a round waits for results (default 10m).
	RoundTimeout time.Duration
	// HeartbeatInterval is how often participants send heartbeats
	// (default 5s); one that misses HeartbeatMisses in a row (default 3) is
	// not sampled until it is heard from again.
	HeartbeatInterval time.Duration
	HeartbeatMisses   int
	// PollTimeout bounds one PullWork long poll (default 30s).
	PollTimeout time.Duration
	// NormBound, if > 0, rejects an update whose L2 distance from the
	// global model it started from exceeds it.
	NormBound float64
	// MaxSamples, if > 0, refuses a registration declaring more training
	// samples: a participant's weight in the average is its sample count,
	// which only it knows. The roster's max_samples bounds a participant
	// further.
	MaxSamples int
	// RegisterRate and RegisterBurst limit registrations per second
	// (defaults 20 and 200).
	RegisterRate  float64
	RegisterBurst int
	// ChunkBytes is the size of tensor pieces sent (default DefaultChunkBytes).
	ChunkBytes int
	// SecAgg, if not nil, runs every fit round under secure aggregation:
	// the strategy must be wrapped by the coordinator (Serve does), and
	// Fit refuses a participant outside an open secure aggregation round.
	SecAgg *SecAggConfig
	// Metrics receives counters (nil: a private set).
	Metrics *Metrics
	// Logger receives events; nil uses slog.Default().
	Logger *slog.Logger
}

// LayoutDigest identifies a parameter layout (names and shapes in order),
// so that a participant training another model is refused at registration.
func LayoutDigest(layout []model.ParamInfo) string {
	h := sha256.New()
	for _, p := range layout {
		fmt.Fprintf(h, "%s%v;", p.Name, p.Shape)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Coordinator is the server side of a deployment: a gRPC Federation
// service that participants dial, and an fl.Transport through which an
// fl.Server drives rounds over them. Fit queues a task for the named
// participant, which pulls it, trains and uploads its result; Fit returns
// when the validated result arrives, the round's deadline passes, or ctx
// is done.
type Coordinator struct {
	fedcmipb.UnimplementedFederationServer

	cfg    CoordinatorConfig
	log    *slog.Logger
	met    *Metrics
	digest string
	reg    *limiter

	mu       sync.Mutex
	parts    map[string]*participant // by name
	sessions map[string]*participant // by session
	tasks    map[string]*task        // by ID
	deadline time.Time               // of the current round
	progress time.Time               // last round begun, task sent or result closed
	finished bool
	closed   bool
	changed  chan struct{} // closed and replaced when participants change
	sa       *saRound      // the current secure aggregation round
}

type participant struct {
	name     string
	mods     data.Mask
	samples  int
	session  string
	lastSeen time.Time
	queue    []*task
	wake     chan struct{} // closed and replaced when a task is queued
	stopped  bool          // received the STOP message
}

type task struct {
	id      string
	kind    fedcmipb.TaskKind
	round   int
	name    string
	ins     fl.FitIns
	done    chan struct{}
	closed  bool // result delivered, or the coordinator stopped waiting
	status  fedcmipb.UploadStatus
	res     fl.FitRes
	eval    fl.Evaluation
	err     error
	started time.Time
	sa      *saRound // the secure aggregation round of a fit task
	// holds and samples are what the participant had declared when the
	// task was queued: its result is checked against them, not against a
	// registration made since (the round counted it by these).
	holds   data.Mask
	samples int
	// uploading is set while an upload of the task's result runs: one at
	// a time.
	uploading bool
}

// NewCoordinator returns a coordinator with cfg.
func NewCoordinator(cfg CoordinatorConfig) (*Coordinator, error) {
	if len(cfg.Layout) == 0 {
		return nil, errors.New("deploy: coordinator needs the model layout")
	}
	if len(cfg.Modalities) < 2 || slices.Contains(cfg.Modalities, "") || len(cfg.Modalities) != fl.LayoutModalities(cfg.Layout) {
		return nil, fmt.Errorf("deploy: coordinator needs the names of the model's modalities, got %q", cfg.Modalities)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.RoundTimeout, 10*time.Minute)
	def(&cfg.HeartbeatInterval, 5*time.Second)
	def(&cfg.PollTimeout, 30*time.Second)
	if cfg.HeartbeatMisses <= 0 {
		cfg.HeartbeatMisses = 3
	}
	if cfg.RegisterRate <= 0 {
		cfg.RegisterRate = 20
	}
	if cfg.RegisterBurst <= 0 {
		cfg.RegisterBurst = 200
	}
	if cfg.ChunkBytes <= 0 {
		cfg.ChunkBytes = DefaultChunkBytes
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Coordinator{
		cfg: cfg, log: log, met: cfg.Metrics, digest: LayoutDigest(cfg.Layout),
		reg:   newLimiter(cfg.RegisterRate, cfg.RegisterBurst),
		parts: map[string]*participant{}, sessions: map[string]*participant{}, tasks: map[string]*task{},
		changed: make(chan struct{}),
	}, nil
}

// BeginRound starts the clock of a round: results of tasks sent from now
// on are awaited until now + RoundTimeout.
func (c *Coordinator) BeginRound(round int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.progress = time.Now()
	c.deadline = c.progress.Add(c.cfg.RoundTimeout)
	for id, t := range c.tasks { // a retried upload of an older round is late
		if t.closed {
			delete(c.tasks, id)
		}
	}
	c.log.Debug("round begins", "round", round, "deadline", c.deadline)
}

func (c *Coordinator) alive(p *participant, now time.Time) bool {
	return now.Sub(p.lastSeen) < time.Duration(c.cfg.HeartbeatMisses)*c.cfg.HeartbeatInterval
}

// Available lists the participants whose heartbeats are current, sorted by
// name: the clients a strategy samples from.
func (c *Coordinator) Available() []fl.ClientInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	var out []fl.ClientInfo
	for _, p := range c.parts {
		if c.alive(p, now) {
			out = append(out, fl.ClientInfo{ID: p.name, Modalities: p.mods, NumSamples: p.samples})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	c.met.Connected.Set(float64(len(out)))
	return out
}

// WaitParticipants blocks until at least n participants are available or
// ctx is done.
func (c *Coordinator) WaitParticipants(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		if len(c.Available()) >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		case <-time.After(c.cfg.HeartbeatInterval):
		}
	}
}

// Fit implements fl.Transport.
func (c *Coordinator) Fit(ctx context.Context, id string, ins fl.FitIns) (fl.FitRes, error) {
	if c.cfg.SecAgg != nil {
		c.mu.Lock()
		sa := c.saFor(ins.Config.Round, id)
		c.mu.Unlock()
		if sa == nil { // never fall back to plain updates
			return fl.FitRes{}, fmt.Errorf("deploy: %s is not in an open secure aggregation round %d", id, ins.Config.Round)
		}
		return c.fitSecAgg(ctx, sa, id, ins)
	}
	t, err := c.queue(id, fedcmipb.TaskKind_TASK_KIND_FIT, ins)
	if err != nil {
		return fl.FitRes{}, err
	}
	if err := c.await(ctx, t); err != nil {
		return fl.FitRes{}, err
	}
	return t.res, nil
}

// Evaluate implements fl.Transport: the participant evaluates params on
// its own data.
func (c *Coordinator) Evaluate(ctx context.Context, id string, params model.Params) (fl.Evaluation, error) {
	t, err := c.queue(id, fedcmipb.TaskKind_TASK_KIND_EVALUATE, fl.FitIns{Params: params})
	if err != nil {
		return fl.Evaluation{}, err
	}
	if err := c.await(ctx, t); err != nil {
		return fl.Evaluation{}, err
	}
	return t.eval, nil
}

func (c *Coordinator) queue(name string, kind fedcmipb.TaskKind, ins fl.FitIns) (*task, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fl.ErrClosed
	}
	p, ok := c.parts[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", fl.ErrUnknownClient, name)
	}
	if !c.alive(p, time.Now()) {
		return nil, fmt.Errorf("%w: %s (no heartbeat since %s)", fl.ErrDisconnected, name, p.lastSeen.Format(time.RFC3339))
	}
	id := fmt.Sprintf("r%d/%s/%s", ins.Config.Round, name, kind)
	if kind == fedcmipb.TaskKind_TASK_KIND_EVALUATE {
		id = fmt.Sprintf("e%d/%s", time.Now().UnixNano(), name)
	}
	if old, dup := c.tasks[id]; dup && !old.closed {
		return nil, fmt.Errorf("deploy: task %s is already running", id)
	}
	t := &task{id: id, kind: kind, round: ins.Config.Round, name: name, ins: ins, done: make(chan struct{}), started: time.Now(),
		holds: p.mods, samples: p.samples}
	if kind == fedcmipb.TaskKind_TASK_KIND_FIT && c.cfg.SecAgg != nil {
		if t.sa = c.saFor(t.round, name); t.sa == nil {
			return nil, fmt.Errorf("deploy: %s is not in an open secure aggregation round %d", name, t.round)
		}
	}
	c.tasks[id] = t
	p.queue = append(p.queue, t)
	close(p.wake)
	p.wake = make(chan struct{})
	return t, nil
}

// taskDeadline is when the coordinator stops waiting for t's result: the
// round's deadline, or RoundTimeout after t was queued outside a round;
// c.mu is held.
func (c *Coordinator) taskDeadline(t *task) time.Time {
	if d := c.deadline; !d.IsZero() && !d.Before(t.started) {
		return d
	}
	return t.started.Add(c.cfg.RoundTimeout)
}

// await waits for t's result, the round's deadline or ctx.
func (c *Coordinator) await(ctx context.Context, t *task) error {
	c.mu.Lock()
	deadline := c.taskDeadline(t)
	c.mu.Unlock()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	var why error
	select {
	case <-t.done:
		return t.err
	case <-ctx.Done():
		why = ctx.Err()
	case <-timer.C:
		why = fmt.Errorf("%w: no result from %s", ErrDeadline, t.name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.closed { // the result came in meanwhile
		return t.err
	}
	c.closeTask(t, fedcmipb.UploadStatus_UPLOAD_STATUS_LATE, why)
	return why
}

// closeTask records t's outcome and drops it from its participant's queue;
// c.mu is held.
func (c *Coordinator) closeTask(t *task, st fedcmipb.UploadStatus, err error) {
	t.closed, t.status, t.err = true, st, err
	c.progress = time.Now()
	close(t.done)
	if p := c.parts[t.name]; p != nil {
		p.queue = slices.DeleteFunc(p.queue, func(q *task) bool { return q == t })
	}
	if t.sa != nil {
		if st != fedcmipb.UploadStatus_UPLOAD_STATUS_ACCEPTED {
			c.saDrop(t.sa, t.name, err)
		}
		c.saAdvance(t.sa)
	}
}

// Finish tells participants that the federation is over: their pending
// and future pulls get a STOP message. It returns once every participant
// heard of it, or after wait.
func (c *Coordinator) Finish(wait time.Duration) {
	c.mu.Lock()
	c.finished = true
	for _, p := range c.parts {
		close(p.wake)
		p.wake = make(chan struct{})
	}
	c.mu.Unlock()
	end := time.Now().Add(wait)
	for time.Now().Before(end) {
		c.mu.Lock()
		all := true
		now := time.Now()
		for _, p := range c.parts {
			if !p.stopped && c.alive(p, now) {
				all = false
			}
		}
		c.mu.Unlock()
		if all {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Close implements fl.Transport: pending Fit calls fail with fl.ErrClosed.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.sa != nil {
		c.saFail(c.sa, fl.ErrClosed)
	}
	for _, t := range c.tasks {
		if !t.closed {
			c.closeTask(t, fedcmipb.UploadStatus_UPLOAD_STATUS_LATE, fl.ErrClosed)
		}
	}
	return nil
}

// identity returns the name in the caller's verified client certificate
// ("" without TLS).
func identity(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return ""
	}
	if len(ti.State.VerifiedChains) > 0 && len(ti.State.VerifiedChains[0]) > 0 {
		return ti.State.VerifiedChains[0][0].Subject.CommonName
	}
	return ""
}

func (c *Coordinator) refuse(reason string, code codes.Code, format string, args ...any) error {
	c.met.Rejections.WithLabelValues(reason).Inc()
	msg := fmt.Sprintf(format, args...)
	c.log.Warn("refused", "reason", reason, "err", msg)
	return status.Error(code, msg)
}

func versionError(v uint32) error {
	if v == ProtocolVersion {
		return nil
	}
	return status.Errorf(codes.FailedPrecondition,
		"fedcmi protocol version mismatch: participant speaks %d, coordinator speaks %d; run the same fedcmi release on both", v, ProtocolVersion)
}

// Register implements the Federation service.
func (c *Coordinator) Register(ctx context.Context, req *fedcmipb.RegisterRequest) (*fedcmipb.RegisterResponse, error) {
	if !c.reg.allow() {
		return nil, c.refuse("rate", codes.ResourceExhausted, "too many registrations; retry later")
	}
	if err := versionError(req.GetProtocolVersion()); err != nil {
		c.met.Rejections.WithLabelValues("version").Inc()
		c.log.Warn("refused", "reason", "version", "participant", req.GetName(), "err", err)
		return nil, err
	}
	name := req.GetName()
	certName := identity(ctx)
	switch {
	case certName != "" && name == "":
		name = certName
	case certName != "" && name != certName:
		return nil, c.refuse("identity", codes.PermissionDenied, "participant %q presents the certificate of %q", name, certName)
	case certName == "" && !c.cfg.Insecure:
		return nil, c.refuse("identity", codes.Unauthenticated, "no verified client certificate")
	}
	if !validName.MatchString(name) {
		return nil, c.refuse("identity", codes.InvalidArgument, "invalid participant name %q", name)
	}
	if c.cfg.Roster != nil {
		if err := c.cfg.Roster.check(name, req.GetToken()); err != nil {
			return nil, c.refuse("identity", codes.PermissionDenied, "%v", err)
		}
	}
	if req.GetLayoutDigest() != c.digest {
		return nil, c.refuse("layout", codes.FailedPrecondition,
			"participant %q trains another model (layout %s, coordinator's %s): use the same model settings, and data of the same shapes and number of classes (set data.num_classes where a site may lack the last class)", name, req.GetLayoutDigest(), c.digest)
	}
	mods, err := maskOf(req.GetModalities(), c.cfg.Modalities)
	if err != nil {
		return nil, c.refuse("registration", codes.InvalidArgument, "participant %q: %v", name, err)
	}
	if n := req.GetNumSamples(); n < 1 || n > math.MaxInt32 {
		return nil, c.refuse("registration", codes.InvalidArgument, "participant %q declares %d samples", name, n)
	}
	if limit, by := c.maxSamples(name); limit > 0 && req.GetNumSamples() > int64(limit) {
		return nil, c.refuse("samples", codes.InvalidArgument,
			"participant %q declares %d samples, more than the %d %s allows", name, req.GetNumSamples(), limit, by)
	}
	sess := make([]byte, 16)
	rand.Read(sess)
	session := hex.EncodeToString(sess)

	c.mu.Lock()
	p, ok := c.parts[name]
	displaced := false
	if !ok {
		p = &participant{name: name, wake: make(chan struct{})}
		c.parts[name] = p
	} else {
		// A live session replaced: a restart, or a second process under
		// the same name (the two would take turns, each losing its
		// session to the other).
		displaced = c.alive(p, time.Now()) && !p.stopped
		delete(c.sessions, p.session)
	}
	p.mods, p.samples, p.session, p.lastSeen, p.stopped = mods, int(req.GetNumSamples()), session, time.Now(), false
	c.sessions[session] = p
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	c.log.Info("participant registered", "participant", name, "modalities", req.GetModalities(), "samples", req.GetNumSamples(), "returning", ok)
	if displaced {
		c.log.Warn("a registration replaced a live session of the same participant: a restart, or two processes under one name, which would take turns", "participant", name)
	}
	c.Available()
	return &fedcmipb.RegisterResponse{
		ProtocolVersion: ProtocolVersion, Session: session,
		HeartbeatIntervalMs: c.cfg.HeartbeatInterval.Milliseconds(),
	}, nil
}

// maxSamples returns the most samples name may declare (0: no bound) and
// what sets it.
func (c *Coordinator) maxSamples(name string) (int, string) {
	limit, by := c.cfg.MaxSamples, "coordinator's -max_samples"
	if c.cfg.Roster != nil {
		if r := c.cfg.Roster.MaxSamples(name); r > 0 && (limit == 0 || r < limit) {
			limit, by = r, "roster's max_samples"
		}
	}
	return limit, by
}

// lookup returns the participant of a session, checking the caller's
// certificate, and marks it seen.
func (c *Coordinator) lookup(ctx context.Context, version uint32, session string) (*participant, error) {
	if err := versionError(version); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.sessions[session]
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "unknown session: register again")
	}
	if name := identity(ctx); name != "" && name != p.name {
		return nil, status.Errorf(codes.PermissionDenied, "session of %q used by %q", p.name, name)
	}
	p.lastSeen = time.Now()
	return p, nil
}

// Heartbeat implements the Federation service.
func (c *Coordinator) Heartbeat(ctx context.Context, req *fedcmipb.HeartbeatRequest) (*fedcmipb.HeartbeatResponse, error) {
	if _, err := c.lookup(ctx, req.GetProtocolVersion(), req.GetSession()); err != nil {
		return nil, err
	}
	return &fedcmipb.HeartbeatResponse{}, nil
}

// PullWork implements the Federation service.
func (c *Coordinator) PullWork(req *fedcmipb.PullRequest, stream fedcmipb.Federation_PullWorkServer) error {
	ctx := stream.Context()
	p, err := c.lookup(ctx, req.GetProtocolVersion(), req.GetSession())
	if err != nil {
		return err
	}
	timer := time.NewTimer(c.cfg.PollTimeout)
	defer timer.Stop()
	for {
		c.mu.Lock()
		if c.finished {
			p.stopped = true
			c.mu.Unlock()
			return stream.Send(&fedcmipb.WorkChunk{Part: &fedcmipb.WorkChunk_Header{Header: &fedcmipb.TaskHeader{Kind: fedcmipb.TaskKind_TASK_KIND_STOP}}})
		}
		var t *task
		if len(p.queue) > 0 {
			t = p.queue[0]
		}
		wake := p.wake
		deadline := c.deadline
		c.mu.Unlock()
		if t != nil {
			return c.sendTask(stream, t, deadline)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return stream.Send(&fedcmipb.WorkChunk{Part: &fedcmipb.WorkChunk_Header{Header: &fedcmipb.TaskHeader{Kind: fedcmipb.TaskKind_TASK_KIND_NONE}}})
		case <-wake:
		}
	}
}

func (c *Coordinator) sendTask(stream fedcmipb.Federation_PullWorkServer, t *task, deadline time.Time) error {
	cfgGob, err := gobEncode(t.ins.Config)
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	h := &fedcmipb.TaskHeader{
		TaskId: t.id, Kind: t.kind, Round: int64(t.round), Config: toPBConfig(t.ins.Config), ConfigGob: cfgGob,
		NumTensors: int32(len(t.ins.Params)), NumControlTensors: int32(len(t.ins.Control)), DeadlineUnixMs: deadline.UnixMilli(),
	}
	if t.sa != nil {
		h.Secagg = proto.Clone(t.sa.setup).(*fedcmipb.SecAggSetup)
		h.Secagg.You = t.name
	}
	if err := stream.Send(&fedcmipb.WorkChunk{Part: &fedcmipb.WorkChunk_Header{Header: h}}); err != nil {
		return err
	}
	send := func(ch *fedcmipb.TensorChunk) error {
		return stream.Send(&fedcmipb.WorkChunk{Part: &fedcmipb.WorkChunk_Tensor{Tensor: ch}})
	}
	n, err := sendParams(t.ins.Params, 0, c.cfg.ChunkBytes, send)
	if err == nil && t.ins.Control != nil {
		var m int64
		m, err = sendParams(t.ins.Control, 1, c.cfg.ChunkBytes, send)
		n += m
	}
	c.met.BytesOut.Add(float64(n))
	c.log.Debug("task sent", "task", t.id, "bytes", n)
	if err == nil {
		c.mu.Lock()
		c.progress = time.Now()
		c.mu.Unlock()
	}
	return err
}

// lastProgress returns when a round last began, a task was sent or a
// result arrived (or its task closed without one).
func (c *Coordinator) lastProgress() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.progress
}

// errTaskClosed ends an upload whose task closed meanwhile (its deadline
// passed, its round failed, the coordinator closed): it is answered as
// the task's outcome.
var errTaskClosed = errors.New("deploy: the task closed during its upload")

// uploadStream receives an upload's messages in a goroutine, so that Recv
// returns when ctx ends even if the participant sends nothing more: the
// handler then returns, which ends the stream and the goroutine's pending
// Recv with it. Recv returns context.Cause(ctx) then.
type uploadStream struct {
	fedcmipb.Federation_UploadServer
	ctx  context.Context
	msgs chan received
	quit chan struct{}
}

type received struct {
	msg *fedcmipb.UploadChunk
	err error
}

// newUploadStream starts receiving stream; close stops it.
func newUploadStream(stream fedcmipb.Federation_UploadServer) *uploadStream {
	s := &uploadStream{Federation_UploadServer: stream, ctx: stream.Context(), msgs: make(chan received), quit: make(chan struct{})}
	go func() {
		for {
			m, err := stream.Recv()
			select {
			case s.msgs <- received{m, err}:
			case <-s.quit:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return s
}

func (s *uploadStream) Recv() (*fedcmipb.UploadChunk, error) {
	select {
	case r := <-s.msgs:
		return r.msg, r.err
	case <-s.ctx.Done():
		return nil, context.Cause(s.ctx)
	}
}

func (s *uploadStream) close() { close(s.quit) }

// uploadHeaderTimeout is how long the coordinator waits for an upload's
// first message, its header, which a participant sends at once (a
// variable for tests).
var uploadHeaderTimeout = 30 * time.Second

// Upload implements the Federation service. An upload runs while its task
// is open, and at most uploadGrace after the task's deadline; a second
// upload of a task while one runs is refused.
func (c *Coordinator) Upload(stream fedcmipb.Federation_UploadServer) error {
	in := newUploadStream(stream)
	defer in.close()
	// Until its header names a task, an upload is bounded by
	// uploadHeaderTimeout: a peer that opens uploads and sends nothing
	// would otherwise hold their streams for as long as its connection
	// answers keepalives.
	hctx, cancelHeader := context.WithTimeoutCause(stream.Context(), uploadHeaderTimeout,
		status.Errorf(codes.DeadlineExceeded, "upload sent no result header within %v", uploadHeaderTimeout))
	in.ctx = hctx
	first, err := in.Recv()
	cancelHeader()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil {
		return status.Error(codes.InvalidArgument, "upload must start with a result header")
	}
	p, err := c.lookup(stream.Context(), h.GetProtocolVersion(), h.GetSession())
	if err != nil {
		return err
	}
	c.mu.Lock()
	t, ok := c.tasks[h.GetTaskId()]
	c.mu.Unlock()
	if !ok || t.name != p.name {
		return stream.SendAndClose(&fedcmipb.UploadResponse{Status: fedcmipb.UploadStatus_UPLOAD_STATUS_LATE, Reason: "unknown task " + h.GetTaskId()})
	}
	if resp := c.closedResponse(t); resp != nil {
		return stream.SendAndClose(resp)
	}
	c.mu.Lock()
	busy := t.uploading
	t.uploading = true
	end := c.taskDeadline(t).Add(uploadGrace)
	c.mu.Unlock()
	if busy {
		return c.refuse("concurrent", codes.Aborted, "participant %q: task %s: another upload of its result is in progress (one at a time)", p.name, t.id)
	}
	defer func() {
		c.mu.Lock()
		t.uploading = false
		c.mu.Unlock()
	}()
	ctx, cancelDeadline := context.WithDeadlineCause(stream.Context(), end,
		status.Errorf(codes.DeadlineExceeded, "task %s: upload unfinished %v after the task's deadline", t.id, uploadGrace))
	defer cancelDeadline()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-t.done:
			cancel(errTaskClosed)
		case <-ctx.Done():
		}
	}()
	in.ctx = ctx
	err = c.receive(in, p, t, h)
	if errors.Is(err, errTaskClosed) {
		c.log.Debug("upload cut short: its task closed", "participant", p.name, "task", t.id)
		return stream.SendAndClose(c.closedResponse(t))
	}
	return err
}

// receive reads the rest of an upload (after its header h) of task t of
// participant p, validates the result and delivers it.
func (c *Coordinator) receive(stream *uploadStream, p *participant, t *task, h *fedcmipb.ResultHeader) error {
	reject := func(reason string, err error) error {
		c.met.Rejections.WithLabelValues(reason).Inc()
		c.log.Warn("rejected update", "participant", p.name, "task", t.id, "round", t.round, "reason", reason, "err", err)
		c.mu.Lock()
		if !t.closed {
			c.closeTask(t, fedcmipb.UploadStatus_UPLOAD_STATUS_REJECTED, fmt.Errorf("%w from %s: %v", ErrRejected, p.name, err))
		}
		c.mu.Unlock()
		return stream.SendAndClose(&fedcmipb.UploadResponse{Status: fedcmipb.UploadStatus_UPLOAD_STATUS_REJECTED, Reason: err.Error()})
	}
	if e := h.GetError(); e != "" {
		c.mu.Lock()
		if !t.closed {
			c.closeTask(t, fedcmipb.UploadStatus_UPLOAD_STATUS_REJECTED, fmt.Errorf("deploy: %s failed: %s", p.name, e))
		}
		c.mu.Unlock()
		return stream.SendAndClose(&fedcmipb.UploadResponse{Status: fedcmipb.UploadStatus_UPLOAD_STATUS_ACCEPTED})
	}
	if t.kind == fedcmipb.TaskKind_TASK_KIND_EVALUATE {
		if _, err := stream.Recv(); err != io.EOF {
			if stream.ctx.Err() != nil { // the upload's end, not the participant's fault
				return err
			}
			return reject("format", fmt.Errorf("an evaluation carries no tensors (%v)", err))
		}
		k, _ := fl.PrototypeShape(c.cfg.Layout)
		ev, err := fromPBEvaluation(h.GetEvaluation(), len(c.cfg.Modalities), k)
		if err != nil {
			return reject("format", err)
		}
		return c.deliver(stream, t, func() { t.eval = ev })
	}
	if t.sa != nil || h.GetSecagg() {
		if t.sa == nil || !h.GetSecagg() {
			return reject("format", fmt.Errorf("a masked input answers a secure aggregation task, and only it (task %s)", t.id))
		}
		return c.uploadMasked(stream, p, t, h, reject)
	}
	asm := newSets(c.cfg.Layout, t.ins.Control != nil && h.GetNumControlTensors() > 0)
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			c.met.BytesIn.Add(float64(asm.bytes()))
			if status.Code(err) == codes.ResourceExhausted {
				return reject("size", fmt.Errorf("message too large: %v", status.Convert(err).Message()))
			}
			return err // a broken connection: the participant may retry
		}
		ch := msg.GetTensor()
		if ch == nil {
			return reject("format", errors.New("a second header in one upload"))
		}
		if err := asm.add(ch); err != nil {
			c.met.BytesIn.Add(float64(asm.bytes()))
			return reject("tensor", err)
		}
	}
	c.met.BytesIn.Add(float64(asm.bytes()))
	params, control, err := asm.done()
	if err != nil {
		return reject("tensor", err)
	}
	mods, err := maskOf(h.GetModalities(), c.cfg.Modalities)
	if err != nil {
		return reject("modalities", err)
	}
	res := fl.FitRes{Params: params, NumSamples: int(h.GetNumSamples()), Modalities: mods, Metrics: fromPBMetrics(h.GetMetrics()), ControlDelta: control}
	if b := h.GetResultGob(); b != nil {
		var ex resultExtras
		if err := gobDecode(b, &ex, gobLimit(fl.PrototypeShape(c.cfg.Layout))); err != nil {
			if errors.Is(err, errGobSize) {
				return reject("size", err)
			}
			return reject("format", err)
		}
		res.Metrics = ex.Metrics
	}
	if reason, err := c.validate(t, res); err != nil {
		return reject(reason, err)
	}
	return c.deliver(stream, t, func() { t.res = res })
}

func (c *Coordinator) closedResponse(t *task) *fedcmipb.UploadResponse {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !t.closed {
		return nil
	}
	switch t.status {
	case fedcmipb.UploadStatus_UPLOAD_STATUS_ACCEPTED:
		return &fedcmipb.UploadResponse{Status: fedcmipb.UploadStatus_UPLOAD_STATUS_DUPLICATE, Reason: "result already received"}
	case fedcmipb.UploadStatus_UPLOAD_STATUS_REJECTED:
		return &fedcmipb.UploadResponse{Status: fedcmipb.UploadStatus_UPLOAD_STATUS_REJECTED, Reason: fmt.Sprint(t.err)}
	}
	return &fedcmipb.UploadResponse{Status: fedcmipb.UploadStatus_UPLOAD_STATUS_LATE, Reason: fmt.Sprint(t.err)}
}

func (c *Coordinator) deliver(stream fedcmipb.Federation_UploadServer, t *task, set func()) error {
	c.mu.Lock()
	if t.closed {
		c.mu.Unlock()
		return stream.SendAndClose(c.closedResponse(t))
	}
	set()
	c.closeTask(t, fedcmipb.UploadStatus_UPLOAD_STATUS_ACCEPTED, nil)
	c.mu.Unlock()
	c.log.Debug("result accepted", "participant", t.name, "task", t.id, "seconds", time.Since(t.started).Seconds())
	return stream.SendAndClose(&fedcmipb.UploadResponse{Status: fedcmipb.UploadStatus_UPLOAD_STATUS_ACCEPTED})
}

// metricBounds is what the metrics of task t are checked against: the
// model's shape, the modalities and samples its participant had declared
// when t was queued, and the share of client-side privacy t gave it.
func (c *Coordinator) metricBounds(t *task) fl.MetricBounds {
	k, d := fl.PrototypeShape(c.cfg.Layout)
	return fl.MetricBounds{Modalities: len(c.cfg.Modalities), Classes: k, Width: d, Holds: t.holds, Samples: t.samples, DP: t.ins.Config.DP}
}

// validate checks an update before it may reach aggregation: the layout
// and finite values (fl.CheckUpdate), the sample count and modalities
// declared when its task was queued (metricBounds), the training metrics
// (fl.FitMetrics.Validate) with the method's report (against the same
// declaration), and the norm bound. It returns the rejection reason (the
// rejections metric's label) with the error.
func (c *Coordinator) validate(t *task, res fl.FitRes) (string, error) {
	if err := fl.CheckUpdate(c.cfg.Layout, res); err != nil {
		return "values", err
	}
	if t.ins.Control != nil && res.ControlDelta == nil {
		return "format", errors.New("update without the control variate change its task asks for")
	}
	for _, tns := range res.ControlDelta {
		for j, v := range tns.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return "values", fmt.Errorf("control variate change %q value %d is %v", tns.Name, j, v)
			}
		}
	}
	b := c.metricBounds(t)
	declared, mods := b.Samples, b.Holds
	if res.NumSamples < 0 || res.NumSamples > declared {
		return "samples", fmt.Errorf("update claims %d samples, %d declared when its round began", res.NumSamples, declared)
	}
	if err := res.Metrics.Validate(b); err != nil {
		return "metrics", err
	}
	if res.Modalities&^mods != 0 {
		return "modalities", fmt.Errorf("update trains modalities %v, declared %v when its round began",
			namesOf(res.Modalities, c.cfg.Modalities), namesOf(mods, c.cfg.Modalities))
	}
	if c.cfg.NormBound > 0 {
		var sq float64
		for i, tns := range res.Params {
			g := t.ins.Params[i].Data
			for j, v := range tns.Data {
				d := float64(v) - float64(g[j])
				sq += d * d
			}
		}
		if n := math.Sqrt(sq); n > c.cfg.NormBound {
			return "norm", fmt.Errorf("update norm %.4g exceeds the bound %.4g", n, c.cfg.NormBound)
		}
		if t.ins.Control != nil {
			// SCAFFOLD: Δc_i = -c + (x - y) / (K_eff lr) with K_eff >= 1
			// (fl.ScaffoldClientControl), so an update within the bound
			// has |Δc_i| <= |c| + bound / lr; a larger one would poison
			// the server's control variate, which every client then
			// adds to its gradients.
			limit := (norm(t.ins.Control) + c.cfg.NormBound/t.ins.Config.LR) * (1 + 1e-5)
			if n := norm(res.ControlDelta); !(n <= limit) {
				return "norm", fmt.Errorf("control variate change norm %.4g exceeds %.4g, the most an update within the bound %.4g can give", n, limit, c.cfg.NormBound)
			}
		}
	}
	return "", nil
}

// norm is the Euclidean norm of every value of p.
func norm(p model.Params) float64 {
	var sq float64
	for _, tns := range p {
		for _, v := range tns.Data {
			sq += float64(v) * float64(v)
		}
	}
	return math.Sqrt(sq)
}

// limiter is a token bucket.
type limiter struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int) *limiter {
	return &limiter{rate: rate, burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

func (l *limiter) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}

// RegisterService registers the coordinator's Federation service on s.
func RegisterService(s *grpc.Server, c *Coordinator) { fedcmipb.RegisterFederationServer(s, c) }
