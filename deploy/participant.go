package deploy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/internal/fedcmipb"
	"github.com/fedcmi/fedcmi/model"
)

// Request deadlines of a participant.
const (
	registerTimeout = 30 * time.Second
	// uploadGrace is how long after a task's deadline an upload may still
	// run (to be answered LATE rather than hang).
	uploadGrace = 30 * time.Second
	// heartbeatFailures is how many heartbeats in a row may fail or go
	// unanswered before a participant takes the coordinator for gone: it
	// ends the session (a task in progress with it) and reconnects, or
	// gives up per GiveUpAfter. The coordinator stops sampling a
	// participant after as many missed heartbeats (its default).
	heartbeatFailures = 3
	// minHeartbeatTimeout is the least time one heartbeat is given, so that
	// a short interval on a busy machine does not end sessions.
	minHeartbeatTimeout = 500 * time.Millisecond
)

// errCoordinatorSilent ends a session whose coordinator stopped answering
// heartbeats.
var errCoordinatorSilent = errors.New("deploy: the coordinator stopped answering")

// ErrRefused is returned (wrapped) by Participant.Run when the coordinator
// refuses the participant for good: unknown, revoked, wrong token or
// certificate, another protocol version or model.
var ErrRefused = errors.New("deploy: refused by the coordinator")

// Participant is the client side of a deployment: it dials the
// coordinator, registers, and then pulls tasks, runs them on its fl.Client
// and uploads the results, reconnecting with backoff when the coordinator
// goes away (and registering again when it comes back).
type Participant struct {
	// Conn is the connection to the coordinator (grpc.NewClient). Required.
	Conn grpc.ClientConnInterface
	// Name and Token identify the participant; with TLS, Name must be the
	// certificate's common name (empty: taken from the certificate).
	Name, Token string
	// Client trains and evaluates on the local data. Required.
	Client fl.Client
	// ModelModalities names the model's modalities; Holds is the set
	// the participant holds, NumSamples its training samples and Layout
	// its model's parameters, all declared at registration.
	ModelModalities []string
	Holds           data.Mask
	NumSamples      int
	Layout          []model.ParamInfo
	// StateFile, if set and Client implements fl.ClientStateful, is where
	// the client's state is saved after every task and restored from at
	// start, so a restarted participant continues where it stopped.
	StateFile string
	// ChunkBytes is the size of uploaded tensor pieces (default
	// DefaultChunkBytes).
	ChunkBytes int
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts (defaults 200ms and 10s).
	MinBackoff, MaxBackoff time.Duration
	// GiveUpAfter, if > 0, stops Run with an error after this long without
	// an answer of the coordinator (a heartbeat, a poll or an upload
	// answered; a registration alone does not count), checked whenever
	// the participant would reconnect; by default a participant waits for
	// it for ever (it may be restarting). A session ends, and so
	// reconnects, when heartbeatFailures heartbeats in a row fail.
	GiveUpAfter time.Duration
	// Plaintext tells that Conn speaks plain text (no TLS). A plain-text
	// participant whose connections are closed before the coordinator
	// speaks gRPC ("error reading server preface") is talking to a TLS
	// coordinator: Run then fails with ErrWrongTransport, at once if
	// Address confirms it with a TLS probe, else after prefaceFailures
	// such failures in a row.
	Plaintext bool
	// Address is the coordinator's host:port, for that probe (optional).
	Address string
	// RequireSecAgg refuses (as failed, ErrNeedSecAgg) fit tasks outside
	// secure aggregation, so that this participant's update never reaches
	// the coordinator in the clear. Without it, the participant follows
	// the coordinator: a task of a secure aggregation round is masked.
	RequireSecAgg bool
	// Logger receives events; nil uses slog.Default().
	Logger *slog.Logger

	// stateWarning warns, once, that the client's state is kept in memory
	// only (no StateFile).
	stateWarning sync.Once
}

// ErrWrongTransport is returned (wrapped) by Participant.Run when the
// participant speaks plain text to a coordinator that speaks TLS, or TLS
// to one that speaks plain text: no retry can succeed.
var ErrWrongTransport = errors.New("deploy: the coordinator speaks another transport")

// prefaceFailures is how many connections in a row a plain-text
// participant sees closed before the server preface, without a TLS probe,
// before it concludes that the coordinator speaks TLS.
const prefaceFailures = 3

// transportMismatch returns an error wrapping ErrWrongTransport if err
// says that the coordinator speaks TLS to a TLS participant's plain text
// or the reverse (closedEarly: a plain-text connection closed before the
// server preface, so the caller can count them); nil otherwise.
func transportMismatch(err error, plaintext bool) (mismatch error, closedEarly bool) {
	msg := status.Convert(err).Message()
	switch {
	case status.Code(err) != codes.Unavailable:
		return nil, false
	case !plaintext && strings.Contains(msg, "first record does not look like a TLS handshake"):
		return fmt.Errorf("%w: the coordinator speaks plain text (it serves with -insecure), this participant TLS: "+
			"join with -insecure too, or serve with certificates (%s)", ErrWrongTransport, msg), false
	case plaintext && strings.Contains(msg, "error reading server preface") && !strings.Contains(msg, "tls:"):
		return nil, true
	}
	return nil, false
}

// tlsMismatch is the error of a plain-text participant facing a TLS
// coordinator at addr; sure says whether a probe confirmed it.
func tlsMismatch(addr string, sure bool, err error) error {
	if addr == "" {
		addr = "the coordinator"
	} else {
		addr = "the coordinator at " + addr
	}
	speaks := "speaks TLS"
	if !sure {
		speaks = fmt.Sprintf("closed %d connections in a row before speaking gRPC: it probably speaks TLS", prefaceFailures)
	}
	return fmt.Errorf("%w: %s %s, this participant plain text (-insecure): join with the federation's CA and your certificate "+
		"(-certs dir, or -ca, -cert and -key) instead of -insecure (%s)", ErrWrongTransport, addr, speaks, status.Convert(err).Message())
}

// tlsProbeProtocol is the application protocol (ALPN) speaksTLS offers.
// A coordinator refuses it at the client hello and does not count it as a
// failed handshake: the plain-text attempt that led to the probe was
// counted already, and one failed join counts once.
const tlsProbeProtocol = "fedcmi-tls-probe"

// speaksTLS reports whether a TLS server answers at addr. It only looks
// at the handshake (nothing is sent after it), so the server's
// certificate need not be trusted.
func speaksTLS(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// A probe: no data is exchanged.
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{tlsProbeProtocol}}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		conn.Close()
		return true
	}
	// A TLS alert (e.g. the certificate the server requires is missing)
	// also comes from a TLS server.
	return strings.Contains(err.Error(), "remote error: tls")
}

// permanent reports whether err means the coordinator will never accept
// this participant as it is.
func permanent(err error) bool {
	switch status.Code(err) {
	case codes.PermissionDenied, codes.FailedPrecondition, codes.InvalidArgument:
		return true
	case codes.Unavailable:
		// A failed TLS handshake (unknown CA, missing certificate) will fail
		// the same way on every retry.
		msg := status.Convert(err).Message()
		return strings.Contains(msg, "tls: ") || strings.Contains(msg, "x509: ") || strings.Contains(msg, "certificate")
	}
	return false
}

// Run serves the federation until it is over (nil), ctx is done, the
// coordinator refuses the participant (an error wrapping ErrRefused), or
// the two speak different transports (ErrWrongTransport).
func (p *Participant) Run(ctx context.Context) error {
	if p.Conn == nil || p.Client == nil {
		return errors.New("deploy: participant needs a connection and a client")
	}
	log := p.Logger
	if log == nil {
		log = slog.Default()
	}
	if p.MinBackoff <= 0 {
		p.MinBackoff = 200 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 10 * time.Second
	}
	if err := p.restore(); err != nil {
		return err
	}
	rpc := fedcmipb.NewFederationClient(p.Conn)
	backoff := p.MinBackoff
	// lastContact is when the coordinator last answered (UnixNano); a
	// session's heartbeats update it from their own goroutine.
	var lastContact atomic.Int64
	lastContact.Store(time.Now().UnixNano())
	seen := func() { lastContact.Store(time.Now().UnixNano()) }
	earlyCloses := 0 // plain-text connections closed before the server preface, in a row
	wait := func(last error) error {
		if since := time.Since(time.Unix(0, lastContact.Load())); p.GiveUpAfter > 0 && since > p.GiveUpAfter {
			return fmt.Errorf("deploy: no answer from the coordinator for %v (more than %v); giving up: %w",
				since.Round(time.Millisecond), p.GiveUpAfter, last)
		}
		d := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, p.MaxBackoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}
	for {
		rctx, rcancel := context.WithTimeout(ctx, registerTimeout)
		resp, err := rpc.Register(rctx, &fedcmipb.RegisterRequest{
			ProtocolVersion: ProtocolVersion, Name: p.Name, Token: p.Token, Modalities: namesOf(p.Holds, p.ModelModalities),
			NumSamples: int64(p.NumSamples), LayoutDigest: LayoutDigest(p.Layout),
		})
		rcancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			mismatch, closedEarly := transportMismatch(err, p.Plaintext)
			if mismatch != nil {
				return mismatch
			}
			if closedEarly {
				earlyCloses++
				switch {
				case p.Address != "" && speaksTLS(ctx, p.Address):
					return tlsMismatch(p.Address, true, err)
				case p.Address == "" && earlyCloses >= prefaceFailures:
					return tlsMismatch(p.Address, false, err)
				}
			} else {
				earlyCloses = 0
			}
			// Unauthenticated at registration means no usable certificate.
			if permanent(err) || status.Code(err) == codes.Unauthenticated {
				return fmt.Errorf("%w: %s", ErrRefused, status.Convert(err).Message())
			}
			log.Warn("cannot register; retrying", "err", err)
			if err := wait(err); err != nil {
				return err
			}
			continue
		}
		if resp.GetProtocolVersion() != ProtocolVersion {
			return fmt.Errorf("%w: coordinator speaks protocol version %d, this participant %d; run the same fedcmi release on both",
				ErrRefused, resp.GetProtocolVersion(), ProtocolVersion)
		}
		log.Info("registered", "name", p.Name, "modalities", namesOf(p.Holds, p.ModelModalities), "samples", p.NumSamples)
		backoff = p.MinBackoff
		stop, err := p.session(ctx, rpc, resp, seen, log)
		switch {
		case stop:
			log.Info("the federation is over")
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case permanent(err):
			return fmt.Errorf("%w: %s", ErrRefused, status.Convert(err).Message())
		}
		log.Warn("lost the coordinator; reconnecting", "err", err)
		if err := wait(err); err != nil {
			return err
		}
	}
}

// session pulls and runs tasks until the coordinator says stop (true) or a
// call fails. Heartbeats go on meanwhile; after heartbeatFailures failures
// in a row the session ends with errCoordinatorSilent, whatever it was
// waiting for. seen records an answer of the coordinator.
func (p *Participant) session(parent context.Context, rpc fedcmipb.FederationClient, reg *fedcmipb.RegisterResponse, seen func(), log *slog.Logger) (bool, error) {
	ctx, cancel := context.WithCancelCause(parent)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel(nil)
	// end returns err, or why the heartbeats ended the session.
	end := func(err error) (bool, error) {
		if cause := context.Cause(ctx); parent.Err() == nil && errors.Is(cause, errCoordinatorSilent) {
			return false, cause
		}
		return false, err
	}
	wg.Add(1)
	go func() { // heartbeats
		defer wg.Done()
		every := max(time.Duration(reg.GetHeartbeatIntervalMs())*time.Millisecond, 10*time.Millisecond)
		tick := time.NewTicker(every)
		defer tick.Stop()
		failed := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			hctx, hcancel := context.WithTimeout(ctx, max(every, minHeartbeatTimeout))
			_, err := rpc.Heartbeat(hctx, &fedcmipb.HeartbeatRequest{ProtocolVersion: ProtocolVersion, Session: reg.GetSession()})
			hcancel()
			switch {
			case ctx.Err() != nil:
				return
			case err == nil:
				failed = 0
				seen()
				continue
			}
			failed++
			log.Debug("heartbeat failed", "failures", failed, "err", err)
			if failed >= heartbeatFailures {
				err = fmt.Errorf("%w: %d heartbeats in a row failed, the last: %v", errCoordinatorSilent, failed, status.Convert(err).Message())
				log.Warn("ending the session", "err", err)
				cancel(err)
				return
			}
		}
	}()
	for {
		h, ins, bad, err := p.pull(ctx, rpc, reg.GetSession())
		if err != nil {
			return end(err)
		}
		seen()
		switch h.GetKind() {
		case fedcmipb.TaskKind_TASK_KIND_NONE:
			continue
		case fedcmipb.TaskKind_TASK_KIND_STOP:
			return true, nil
		}
		if h.GetKind() == fedcmipb.TaskKind_TASK_KIND_FIT && bad == nil {
			if h.GetSecagg() != nil {
				if err := p.secAggTask(ctx, rpc, reg.GetSession(), h, ins, log); err != nil {
					return end(err)
				}
				continue
			}
			if p.RequireSecAgg {
				bad = ErrNeedSecAgg
			}
		}
		var out outcome
		if bad != nil {
			log.Warn("refusing task", "task", h.GetTaskId(), "round", h.GetRound(), "err", bad)
			out.err = bad
		} else {
			out = p.run(ctx, h, ins, log)
		}
		if ctx.Err() != nil {
			return end(ctx.Err())
		}
		if err := p.upload(ctx, rpc, reg.GetSession(), h, out, log); err != nil {
			return end(err)
		}
	}
}

// pull long-polls for the next task and receives its instruction: the
// model, the recipe and a control variate if the method sends one. A
// recipe that does not decode within its size limit (gobLimit) or is not
// valid (fl.FitConfig.Validate) comes back as bad, with the rest of the
// task: the task then fails, reported to the coordinator, without
// training.
func (p *Participant) pull(ctx context.Context, rpc fedcmipb.FederationClient, session string) (h *fedcmipb.TaskHeader, ins fl.FitIns, bad, err error) {
	stream, err := rpc.PullWork(ctx, &fedcmipb.PullRequest{ProtocolVersion: ProtocolVersion, Session: session})
	if err != nil {
		return nil, ins, nil, err
	}
	first, err := stream.Recv()
	if err != nil {
		return nil, ins, nil, err
	}
	h = first.GetHeader()
	if h == nil {
		return nil, ins, nil, errors.New("deploy: work stream without a header")
	}
	if h.GetKind() != fedcmipb.TaskKind_TASK_KIND_FIT && h.GetKind() != fedcmipb.TaskKind_TASK_KIND_EVALUATE {
		return h, ins, nil, nil
	}
	ins.Config = fromPBConfig(h.GetConfig())
	k, d := fl.PrototypeShape(p.Layout)
	if b := h.GetConfigGob(); b != nil {
		bad = gobDecode(b, &ins.Config, gobLimit(k, d))
	}
	if bad == nil {
		bad = ins.Config.Validate(len(p.ModelModalities), k, d)
	}
	if bad != nil {
		bad = fmt.Errorf("deploy: task %s: coordinator's recipe: %w", h.GetTaskId(), bad)
	}
	asm := newSets(p.Layout, h.GetNumControlTensors() > 0)
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, ins, nil, err
		}
		if msg.GetTensor() == nil {
			return nil, ins, nil, errors.New("deploy: a second header in one task")
		}
		if err := asm.add(msg.GetTensor()); err != nil {
			return nil, ins, nil, fmt.Errorf("deploy: task %s: %w", h.GetTaskId(), err)
		}
	}
	if ins.Params, ins.Control, err = asm.done(); err != nil {
		return nil, ins, nil, fmt.Errorf("deploy: task %s: %w", h.GetTaskId(), err)
	}
	return h, ins, bad, nil
}

type outcome struct {
	res  fl.FitRes
	eval fl.Evaluation
	err  error
}

// run executes a task on the client.
func (p *Participant) run(ctx context.Context, h *fedcmipb.TaskHeader, ins fl.FitIns, log *slog.Logger) outcome {
	t0 := time.Now()
	var out outcome
	if h.GetKind() == fedcmipb.TaskKind_TASK_KIND_EVALUATE {
		out.eval, out.err = p.Client.Evaluate(ctx, ins.Params)
	} else {
		out.res, out.err = p.Client.Fit(ctx, ins)
		if out.err == nil {
			out.err = p.save()
			p.warnStateInMemory(log)
		}
	}
	log.Info("task done", "task", h.GetTaskId(), "round", h.GetRound(), "seconds", time.Since(t0).Seconds(), "err", out.err)
	return out
}

// upload sends a task's outcome (retryUpload) and undoes the round's
// client state when the coordinator does not aggregate it.
func (p *Participant) upload(ctx context.Context, rpc fedcmipb.FederationClient, session string, h *fedcmipb.TaskHeader, out outcome, log *slog.Logger) error {
	resp, err := p.retryUpload(ctx, h, log, func() (*fedcmipb.UploadResponse, error) {
		return p.uploadOnce(ctx, rpc, session, h, out)
	})
	switch {
	case status.Code(err) == codes.ResourceExhausted:
		log.Warn("result refused as too large", "task", h.GetTaskId(), "err", err)
		return p.discard(h, log)
	case err != nil:
		return err
	}
	lvl := slog.LevelInfo
	if resp.GetStatus() != fedcmipb.UploadStatus_UPLOAD_STATUS_ACCEPTED {
		lvl = slog.LevelWarn
	}
	log.Log(ctx, lvl, "result uploaded", "task", h.GetTaskId(), "status", resp.GetStatus(), "reason", resp.GetReason())
	if notAggregated(resp.GetStatus()) {
		return p.discard(h, log)
	}
	return nil
}

// notAggregated reports whether an upload's answer says that its result
// will not reach the aggregate (late, rejected), so the round's client
// state is undone (discard). A duplicate was received before: it counts.
func notAggregated(st fedcmipb.UploadStatus) bool {
	return st == fedcmipb.UploadStatus_UPLOAD_STATUS_LATE || st == fedcmipb.UploadStatus_UPLOAD_STATUS_REJECTED
}

// retryUpload runs once, an upload of task h's result, retrying a broken
// stream up to three times in all; errors a retry cannot mend
// (authentication, cancellation, permanent ones, a result too large)
// end it at once. A retry after a broken stream may find the coordinator
// still holding the broken upload (a half-open connection, until its
// keepalive or the task's end), which it answers Aborted: such retries
// back off and go on until the task's end, without counting against the
// attempts.
func (p *Participant) retryUpload(ctx context.Context, h *fedcmipb.TaskHeader, log *slog.Logger, once func() (*fedcmipb.UploadResponse, error)) (*fedcmipb.UploadResponse, error) {
	end, ok := taskEnd(h)
	if !ok {
		end = time.Now().Add(2 * time.Minute)
	}
	busy := max(p.MinBackoff, 10*time.Millisecond)
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(attempt) * p.MinBackoff):
			}
		}
		var resp *fedcmipb.UploadResponse
		resp, err = once()
		if status.Code(err) == codes.Aborted && time.Now().Add(busy).Before(end) {
			log.Debug("the coordinator still holds an earlier upload of this result; retrying", "task", h.GetTaskId(), "in", busy)
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(busy):
			}
			busy = min(2*busy, max(p.MaxBackoff, p.MinBackoff))
			attempt--
			continue
		}
		if err == nil {
			return resp, nil
		}
		if code := status.Code(err); code == codes.Unauthenticated || code == codes.Canceled || code == codes.ResourceExhausted || permanent(err) {
			return nil, err
		}
	}
	return nil, err
}

// discard undoes what training task h did to the client's state, if the
// client keeps one (fl.LocalClient.Discard), and saves the state: the
// coordinator did not aggregate the result.
func (p *Participant) discard(h *fedcmipb.TaskHeader, log *slog.Logger) error {
	d, ok := p.Client.(interface{ Discard(round int) bool })
	if !ok || h.GetKind() != fedcmipb.TaskKind_TASK_KIND_FIT || !d.Discard(int(h.GetRound())) {
		return nil
	}
	log.Info("result not aggregated: the client's state is back to before the round", "task", h.GetTaskId())
	return p.save()
}

// uploadContext bounds an upload by the task's deadline (taskEnd).
func uploadContext(ctx context.Context, h *fedcmipb.TaskHeader) (context.Context, context.CancelFunc) {
	end, ok := taskEnd(h)
	if !ok {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, end)
}

// taskEnd returns when the coordinator has discarded task h's result
// anyway: its deadline plus uploadGrace, at least uploadGrace from now
// whatever the clocks' skew; false if h has no deadline.
func taskEnd(h *fedcmipb.TaskHeader) (time.Time, bool) {
	d := h.GetDeadlineUnixMs()
	if d <= 0 {
		return time.Time{}, false
	}
	end := time.UnixMilli(d)
	if now := time.Now(); end.Before(now) {
		end = now
	}
	return end.Add(uploadGrace), true
}

func (p *Participant) uploadOnce(ctx context.Context, rpc fedcmipb.FederationClient, session string, h *fedcmipb.TaskHeader, out outcome) (*fedcmipb.UploadResponse, error) {
	ctx, cancel := uploadContext(ctx, h)
	defer cancel()
	stream, err := rpc.Upload(ctx)
	if err != nil {
		return nil, err
	}
	rh := &fedcmipb.ResultHeader{ProtocolVersion: ProtocolVersion, Session: session, TaskId: h.GetTaskId(), Round: h.GetRound()}
	var params, control model.Params
	switch {
	case out.err != nil:
		rh.Error = out.err.Error()
	case h.GetKind() == fedcmipb.TaskKind_TASK_KIND_EVALUATE:
		rh.Evaluation = toPBEvaluation(out.eval)
	default:
		params = out.res.Params
		rh.NumSamples = int64(out.res.NumSamples)
		rh.Modalities = namesOf(out.res.Modalities, p.ModelModalities)
		rh.Metrics = toPBMetrics(out.res.Metrics)
		rh.NumTensors = int32(len(params))
		control = out.res.ControlDelta
		rh.NumControlTensors = int32(len(control))
		if rh.ResultGob, err = gobEncode(resultExtras{Metrics: out.res.Metrics}); err != nil {
			return nil, err
		}
	}
	send := func(m *fedcmipb.UploadChunk) error {
		if err := stream.Send(m); err != nil {
			if err == io.EOF { // the coordinator answered early (a rejection)
				return io.EOF
			}
			return err
		}
		return nil
	}
	err = send(&fedcmipb.UploadChunk{Part: &fedcmipb.UploadChunk_Header{Header: rh}})
	tensor := func(ch *fedcmipb.TensorChunk) error {
		return send(&fedcmipb.UploadChunk{Part: &fedcmipb.UploadChunk_Tensor{Tensor: ch}})
	}
	if err == nil {
		_, err = sendParams(params, 0, p.ChunkBytes, tensor)
	}
	if err == nil && control != nil {
		_, err = sendParams(control, 1, p.ChunkBytes, tensor)
	}
	if err != nil && err != io.EOF {
		return nil, err
	}
	return stream.CloseAndRecv()
}

// restore loads the client's saved state, if any.
func (p *Participant) restore() error {
	cs, ok := p.Client.(fl.ClientStateful)
	if !ok || p.StateFile == "" {
		return nil
	}
	b, err := os.ReadFile(p.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deploy: participant state: %w", err)
	}
	if err := cs.UnmarshalState(b); err != nil {
		return fmt.Errorf("deploy: participant state %s: %w", p.StateFile, err)
	}
	return nil
}

// warnStateInMemory warns, once, when the client carries state between
// rounds (SCAFFOLD's control variate, Harmony's fine-tuned encoders,
// personalised branches) that no StateFile keeps across a restart.
func (p *Participant) warnStateInMemory(log *slog.Logger) {
	if p.StateFile != "" {
		return
	}
	if c, ok := p.Client.(interface{ HasState() bool }); ok && c.HasState() {
		p.stateWarning.Do(func() {
			log.Warn("this method keeps state on the participant between rounds, in memory only: a restarted participant loses it and trains its next round without it; keep it with join -state FILE")
		})
	}
}

// save writes the client's state, if it has any.
func (p *Participant) save() error {
	cs, ok := p.Client.(fl.ClientStateful)
	if !ok || p.StateFile == "" {
		return nil
	}
	b, err := cs.MarshalState()
	if err != nil {
		return fmt.Errorf("deploy: participant state: %w", err)
	}
	return writeFileAtomic(p.StateFile, b)
}

// writeFileAtomic replaces path with b: a temporary file in the same
// directory, synced, then renamed over path, and the directory synced.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("deploy: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("deploy: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("deploy: sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("deploy: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("deploy: write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
