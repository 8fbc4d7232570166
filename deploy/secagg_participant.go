package deploy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/internal/fedcmipb"
	"github.com/fedcmi/fedcmi/internal/secagg"
	"github.com/fedcmi/fedcmi/model"
)

// ErrNeedSecAgg is the failure of a fit task without secure aggregation
// sent to a participant that requires it (Participant.RequireSecAgg).
var ErrNeedSecAgg = errors.New("deploy: this participant requires secure aggregation (join -secagg), and the coordinator does not run it (serve -secagg)")

// errSecAggTimeout ends a secure aggregation step the coordinator did not
// complete by the task's end (taskEnd): the round went on without this
// participant, or failed.
var errSecAggTimeout = errors.New("deploy: secure aggregation step not complete by the task's end")

// Bounds of the secure aggregation calls of a participant.
const (
	// secAggCallTimeout bounds one call: well above the coordinator's long
	// poll (PollTimeout, default 30s), after which it answers not ready.
	secAggCallTimeout = 2 * time.Minute
	// secAggMaxWait bounds a step of a task without a deadline.
	secAggMaxWait = 30 * time.Minute
)

// secAggCall sends req until the coordinator answers that its step is
// complete (Ready), with backoff when it answers not ready at once and a
// deadline per call, until end: then it fails with errSecAggTimeout.
func (p *Participant) secAggCall(ctx context.Context, rpc fedcmipb.FederationClient, req *fedcmipb.SecAggRequest, end time.Time) (*fedcmipb.SecAggResponse, error) {
	bctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	backoff := max(p.MinBackoff, time.Millisecond)
	for {
		t0 := time.Now()
		cctx, ccancel := context.WithTimeout(bctx, secAggCallTimeout)
		resp, err := rpc.SecAgg(cctx, req)
		ccancel()
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case bctx.Err() != nil:
			return nil, fmt.Errorf("%w (step %v, task %s, until %s)", errSecAggTimeout, req.GetStep(), req.GetTaskId(), end.Format(time.RFC3339))
		case err != nil && status.Code(err) != codes.DeadlineExceeded: // that call's own deadline: ask again
			return nil, err
		case err == nil && resp.GetReady():
			return resp, nil
		}
		// A coordinator answers not ready after its long poll; one that
		// answers at once is not asked again at once.
		if d := backoff - time.Since(t0); d > 0 {
			select {
			case <-bctx.Done():
			case <-time.After(d):
			}
			backoff = min(2*backoff, max(p.MaxBackoff, backoff))
		}
	}
}

// saRoundOf checks a task's secure aggregation setup against the
// participant's model and holdings and returns the round.
func saRoundOf(s *fedcmipb.SecAggSetup, layout []model.ParamInfo, holds uint32) (secagg.Round, error) {
	r := secagg.Round{ID: s.GetRoundId(), Threshold: int(s.GetThreshold())}
	want := saLengths(layout)
	if len(s.GetLengths()) != len(want) {
		return r, fmt.Errorf("secure aggregation setup has %d groups, want %d", len(s.GetLengths()), len(want))
	}
	for g, l := range s.GetLengths() {
		if l != int64(want[g]) {
			return r, fmt.Errorf("secure aggregation setup: group %d has %d values, this model %d", g, l, want[g])
		}
	}
	r.Lengths = want
	for _, m := range s.GetMembers() {
		r.Members = append(r.Members, secagg.Member{Name: m.GetName(), Groups: m.GetGroups()})
		if m.GetName() == s.GetYou() && m.GetGroups() != holds {
			return r, fmt.Errorf("secure aggregation setup puts %s in groups %03b, it holds %03b", m.GetName(), m.GetGroups(), holds)
		}
	}
	if err := r.Validate(); err != nil {
		return r, err
	}
	if w := s.GetWeightTotal(); !s.GetUnweighted() && !(w >= 1 && w <= math.MaxInt64) {
		return r, fmt.Errorf("secure aggregation setup: total weight %v", w)
	}
	return r, nil
}

// saEncode returns the participant's inputs to the groups of its member
// entry in fixed point: per group, weight * (trained - global) for the
// group's tensors, then the weight and weight * the privacy indicator.
// The weight is the result's samples (at most the declared count) over
// the round's total, or 1/members unweighted; a modality the result did
// not train gets weight 0. It also returns how many values were clipped.
func saEncode(s *fedcmipb.SecAggSetup, layout []model.ParamInfo, groups uint32, declared int, global model.Params, res fl.FitRes) ([][]uint64, int) {
	var a float64
	if s.GetUnweighted() {
		a = 1 / float64(len(s.GetMembers()))
	} else {
		a = float64(min(res.NumSamples, declared)) / s.GetWeightTotal()
	}
	if !(a >= 0) {
		a = 0
	}
	a = min(a, 1)
	clipped := 0
	enc := func(v float64) uint64 {
		u, c := secagg.Encode(v)
		if c {
			clipped++
		}
		return u
	}
	lengths := saLengths(layout)
	nm := fl.LayoutModalities(layout)
	out := make([][]uint64, len(lengths))
	for g := range out {
		if groups&(1<<g) == 0 {
			continue
		}
		w := a
		if g < nm && !res.Modalities.Has(g) {
			w = 0
		}
		v := make([]uint64, 0, lengths[g])
		for i, info := range layout {
			if saGroup(info, nm) != g {
				continue
			}
			for j, x := range res.Params[i].Data {
				v = append(v, enc(w*(float64(x)-float64(global[i].Data[j]))))
			}
		}
		out[g] = append(v, enc(w), enc(w*res.Metrics.DPUnclipped))
	}
	return out, clipped
}

// secAggTask runs a fit task of a secure aggregation round: advertise
// keys, share them, train, upload the masked input, reveal shares for
// unmasking. A failure before the upload is reported as the task's
// failure; the returned error is a lost connection only.
func (p *Participant) secAggTask(ctx context.Context, rpc fedcmipb.FederationClient, session string, h *fedcmipb.TaskHeader, ins fl.FitIns, log *slog.Logger) error {
	s := h.GetSecagg()
	runLog := log
	log = log.With("task", h.GetTaskId(), "round", h.GetRound())
	fail := func(err error) error {
		log.Warn("secure aggregation task failed", "err", err)
		return p.upload(ctx, rpc, session, h, outcome{err: err}, runLog)
	}
	end, ok := taskEnd(h)
	if !ok {
		end = time.Now().Add(secAggMaxWait)
	}
	call := func(req *fedcmipb.SecAggRequest) (*fedcmipb.SecAggResponse, error) {
		req.ProtocolVersion, req.Session, req.TaskId = ProtocolVersion, session, h.GetTaskId()
		return p.secAggCall(ctx, rpc, req, end)
	}
	// aborted tells a round that went on without this participant (the
	// task is reported failed) from a lost connection (returned).
	aborted := func(err error) bool { return status.Code(err) == codes.Aborted || errors.Is(err, errSecAggTimeout) }
	holds := saMemberGroups(p.Holds, fl.LayoutModalities(p.Layout))
	r, err := saRoundOf(s, p.Layout, holds)
	if err != nil {
		return fail(fmt.Errorf("deploy: task %s: %w", h.GetTaskId(), err))
	}
	cl, err := secagg.NewClient(r, s.GetYou(), rand.Reader)
	if err != nil {
		return fail(err)
	}
	k := cl.Keys()
	resp, err := call(&fedcmipb.SecAggRequest{Step: fedcmipb.SecAggStep_SECAGG_STEP_ADVERTISE, CipherKey: k.Cipher, MaskKey: k.Mask})
	if err != nil {
		if aborted(err) {
			return fail(err)
		}
		return err
	}
	keys := make([]secagg.Keys, len(resp.GetKeys()))
	for i, k := range resp.GetKeys() {
		keys[i] = secagg.Keys{Name: k.GetName(), Cipher: k.GetCipherKey(), Mask: k.GetMaskKey()}
	}
	cts, commits, err := cl.ShareKeys(keys)
	if err != nil {
		return fail(err)
	}
	req := &fedcmipb.SecAggRequest{Step: fedcmipb.SecAggStep_SECAGG_STEP_SHARE, Commitments: commits}
	for _, ct := range cts {
		req.Shares = append(req.Shares, &fedcmipb.SecAggCiphertext{Peer: ct.Peer, Data: ct.Data})
	}
	if resp, err = call(req); err != nil {
		if aborted(err) {
			return fail(err)
		}
		return err
	}
	got := make([]secagg.Ciphertext, len(resp.GetShares()))
	for i, ct := range resp.GetShares() {
		got[i] = secagg.Ciphertext{Peer: ct.GetPeer(), Data: ct.GetData()}
	}
	if err := cl.ReceiveShares(resp.GetShareSet(), got); err != nil {
		return fail(err)
	}
	for peer, why := range cl.Skipped() {
		log.Warn("secure aggregation: a peer's share is unusable", "peer", peer, "err", why)
	}
	out := p.run(ctx, h, ins, runLog)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if out.err == nil {
		out.err = fl.CheckUpdate(p.Layout, out.res)
	}
	if out.err != nil {
		return fail(out.err)
	}
	vecs, clipped := saEncode(s, p.Layout, holds, p.NumSamples, ins.Params, out.res)
	if clipped > 0 {
		log.Warn("secure aggregation: update values clipped to the fixed-point range", "values", clipped, "clip", secagg.Clip)
	}
	for g, v := range vecs {
		if v != nil {
			if err := cl.Mask(g, v); err != nil {
				return fail(err)
			}
		}
	}
	m := out.res.Metrics
	m.FedCMI.ClassStats, m.DPUnclipped = nil, 0 // never in the clear
	up, err := p.uploadMasked(ctx, rpc, session, h, m, vecs, log)
	if err != nil {
		return err
	}
	if notAggregated(up.GetStatus()) {
		log.Warn("masked input not accepted", "status", up.GetStatus(), "reason", up.GetReason())
		return p.discard(h, log)
	}
	log.Info("masked input uploaded", "status", up.GetStatus())
	if resp, err = call(&fedcmipb.SecAggRequest{Step: fedcmipb.SecAggStep_SECAGG_STEP_SURVIVORS}); err != nil {
		if aborted(err) {
			// Not among the survivors: the sums leave its input out.
			log.Warn("secure aggregation round went on without this participant", "err", err)
			return p.discard(h, log)
		}
		return err
	}
	rs, err := cl.Reveal(resp.GetSurvivors())
	if err != nil {
		log.Warn("secure aggregation: refusing to reveal shares", "err", err)
		return nil
	}
	req = &fedcmipb.SecAggRequest{Step: fedcmipb.SecAggStep_SECAGG_STEP_REVEAL}
	for _, rv := range rs {
		req.Reveals = append(req.Reveals, &fedcmipb.SecAggReveal{Owner: rv.Owner, Secrets: rv.Secrets, X: rv.Share.X, Values: rv.Share.Values})
	}
	if _, err := call(req); err != nil {
		if aborted(err) {
			log.Warn("secure aggregation: shares for unmasking refused", "err", err)
			return nil
		}
		return err
	}
	log.Info("secure aggregation: shares revealed", "survivors", len(resp.GetSurvivors()))
	return nil
}

// uploadMasked sends a masked input, retrying as retryUpload does.
func (p *Participant) uploadMasked(ctx context.Context, rpc fedcmipb.FederationClient, session string, h *fedcmipb.TaskHeader, m fl.FitMetrics, vecs [][]uint64, log *slog.Logger) (*fedcmipb.UploadResponse, error) {
	return p.retryUpload(ctx, h, log, func() (*fedcmipb.UploadResponse, error) {
		return p.uploadMaskedOnce(ctx, rpc, session, h, m, vecs)
	})
}

func (p *Participant) uploadMaskedOnce(ctx context.Context, rpc fedcmipb.FederationClient, session string, h *fedcmipb.TaskHeader, m fl.FitMetrics, vecs [][]uint64) (*fedcmipb.UploadResponse, error) {
	ctx, cancel := uploadContext(ctx, h)
	defer cancel()
	stream, err := rpc.Upload(ctx)
	if err != nil {
		return nil, err
	}
	gb, err := gobEncode(resultExtras{Metrics: m})
	if err != nil {
		return nil, err
	}
	rh := &fedcmipb.ResultHeader{ProtocolVersion: ProtocolVersion, Session: session, TaskId: h.GetTaskId(), Round: h.GetRound(),
		Secagg: true, Metrics: toPBMetrics(m), ResultGob: gb}
	err = stream.Send(&fedcmipb.UploadChunk{Part: &fedcmipb.UploadChunk_Header{Header: rh}})
	chunk := p.ChunkBytes
	if chunk <= 0 {
		chunk = DefaultChunkBytes
	}
	per := max(chunk/8, 1)
	for g, v := range vecs {
		for lo := 0; err == nil && lo < len(v); lo += per {
			hi := min(lo+per, len(v))
			err = stream.Send(&fedcmipb.UploadChunk{Part: &fedcmipb.UploadChunk_Masked{Masked: &fedcmipb.MaskedChunk{Group: int32(g), Offset: int64(lo), Values: v[lo:hi]}}})
		}
	}
	if err != nil && err != io.EOF {
		return nil, err
	}
	return stream.CloseAndRecv()
}
