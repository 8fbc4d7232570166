package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/internal/fedcmipb"
	"github.com/fedcmi/fedcmi/internal/secagg"
	"github.com/fedcmi/fedcmi/model"
)

// SecAggConfig turns on secure aggregation (serve -secagg): participants
// mask their updates so that the coordinator learns only each modality
// group's weighted sum (internal/secagg).
type SecAggConfig struct {
	// Threshold is t: the shares of any t of a round's participants
	// reconstruct a participant's masking secrets, and a round fails
	// once fewer than t are left. 0 means DefaultThreshold of the round's
	// participants; it must not exceed them.
	Threshold int
	// PhaseTimeout bounds each key step and the unmasking step (default
	// 1m); the masked inputs are awaited until the round's deadline.
	PhaseTimeout time.Duration
	// Unweighted gives every participant the same weight (client-side
	// differential privacy averages unweighted); otherwise weights are the
	// sample counts.
	Unweighted bool
}

// DefaultThreshold is the default secure aggregation threshold of a
// round of n participants: ceil(2n/3), at least 2 (the example of
// Bonawitz et al.: a third of the participants may drop out).
func DefaultThreshold(n int) int { return max(2, (2*n+2)/3) }

// Secure aggregation groups: each modality's holders (group m for
// modality m), and everyone for the fusion head (group M). An input to a
// group is the weighted update of the group's tensors in layout order,
// then the weight and the weighted unclipped indicator of client-side
// privacy.
const saScalars = 2

// saGroup is the group of a parameter of a model of nm modalities.
func saGroup(info model.ParamInfo, nm int) int {
	if info.Side < 0 {
		return nm
	}
	return info.Side
}

// saLengths returns the length of an input to each group.
func saLengths(layout []model.ParamInfo) []int {
	nm := fl.LayoutModalities(layout)
	l := make([]int, nm+1)
	for _, info := range layout {
		l[saGroup(info, nm)] += info.Size()
	}
	for g := range l {
		l[g] += saScalars
	}
	return l
}

// saMemberGroups returns the groups a participant holding mods of nm
// modalities inputs to: its modalities' and the fusion group.
func saMemberGroups(mods data.Mask, nm int) uint32 {
	return uint32(mods)&(1<<nm-1) | 1<<nm
}

// Steps of a coordinator's secure aggregation round.
const (
	saAdvertise = iota
	saShare
	saInput
	saReveal
	saUnmasking
	saDone
)

// saRound is the coordinator's state of one secure aggregation round;
// guarded by Coordinator.mu.
type saRound struct {
	round     int
	r         secagg.Round
	srv       *secagg.Server
	setup     *fedcmipb.SecAggSetup
	global    model.Params
	mods      map[string]data.Mask
	step      int
	changed   chan struct{} // closed and replaced when the step changes
	timer     *time.Timer
	keys      []secagg.Keys
	shareSet  []string
	survivors []string
	revealed  map[string]bool
	out       map[string]error // members dropped, and why
	metrics   map[string]fl.FitMetrics
	res       map[string]fl.FitRes
	err       error         // the round failed
	done      chan struct{} // closed when res or err is set
	started   time.Time
}

// errSecAggSkip marks a round too small for secure aggregation.
var errSecAggSkip = errors.New("deploy: secure aggregation: round skipped")

// openSecAgg starts the secure aggregation round of the participants ids
// (the round's sampled participants) from global. A previous round still
// open fails.
func (c *Coordinator) openSecAgg(round int, global model.Params, ids []string) error {
	sc := c.cfg.SecAgg
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.sa; old != nil && old.step < saDone {
		c.saFail(old, errors.New("a new round began"))
	}
	c.sa = nil
	n := len(ids)
	t := sc.Threshold
	if t == 0 {
		t = DefaultThreshold(n)
	}
	if n < 2 || t > n {
		return fmt.Errorf("%w: %d participants sampled, the threshold is %d", errSecAggSkip, n, t)
	}
	id := make([]byte, 16)
	rand.Read(id)
	sa := &saRound{
		round: round, global: global, mods: map[string]data.Mask{}, changed: make(chan struct{}),
		revealed: map[string]bool{}, out: map[string]error{}, metrics: map[string]fl.FitMetrics{},
		done: make(chan struct{}), started: time.Now(),
	}
	sa.r = secagg.Round{ID: fmt.Sprintf("r%d-%s", round, hex.EncodeToString(id)), Threshold: t, Lengths: saLengths(c.cfg.Layout)}
	names := slices.Sorted(slices.Values(ids))
	total := 0.0
	setup := &fedcmipb.SecAggSetup{RoundId: sa.r.ID, Threshold: int32(t), Unweighted: sc.Unweighted}
	for _, l := range sa.r.Lengths {
		setup.Lengths = append(setup.Lengths, int64(l))
	}
	nm := len(c.cfg.Modalities)
	for _, name := range names {
		p, ok := c.parts[name]
		if !ok {
			return fmt.Errorf("deploy: secure aggregation: %w: %s", fl.ErrUnknownClient, name)
		}
		sa.mods[name] = p.mods
		total += float64(p.samples)
		m := secagg.Member{Name: name, Groups: saMemberGroups(p.mods, nm)}
		sa.r.Members = append(sa.r.Members, m)
		setup.Members = append(setup.Members, &fedcmipb.SecAggMember{Name: name, Groups: m.Groups})
	}
	setup.WeightTotal = total
	sa.setup = setup
	var err error
	if sa.srv, err = secagg.NewServer(sa.r); err != nil {
		return fmt.Errorf("deploy: secure aggregation round %d: %w", round, err)
	}
	c.sa = sa
	c.saArm(sa, c.phaseTimeout())
	c.log.Info("secure aggregation round", "round", round, "participants", n, "threshold", t, "id", sa.r.ID)
	return nil
}

func (c *Coordinator) phaseTimeout() time.Duration {
	if d := c.cfg.SecAgg.PhaseTimeout; d > 0 {
		return d
	}
	return time.Minute
}

// saArm closes sa's current step after d, whoever is missing; c.mu is held.
func (c *Coordinator) saArm(sa *saRound, d time.Duration) {
	if sa.timer != nil {
		sa.timer.Stop()
	}
	step := sa.step
	sa.timer = time.AfterFunc(d, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if sa.step == step {
			c.log.Warn("secure aggregation step timed out", "round", sa.round, "step", saStepName(step), "missing", c.saMissing(sa))
			c.saClose(sa)
		}
	})
}

func saStepName(step int) string {
	return [...]string{"advertise", "share", "input", "reveal", "unmasking", "done"}[step]
}

// saWaiting returns the members sa's current step still waits for.
func (c *Coordinator) saMissing(sa *saRound) []string {
	var set []string
	done := func(string) bool { return true }
	switch sa.step {
	case saAdvertise:
		for _, m := range sa.r.Members {
			set = append(set, m.Name)
		}
		done = sa.srv.Advertised
	case saShare:
		for _, k := range sa.keys {
			set = append(set, k.Name)
		}
		done = sa.srv.Shared
	case saInput:
		set, done = sa.shareSet, sa.srv.HasInput
	case saReveal:
		set, done = sa.survivors, func(n string) bool { return sa.revealed[n] }
	}
	var out []string
	for _, n := range set {
		if sa.out[n] == nil && !done(n) {
			out = append(out, n)
		}
	}
	return out
}

// saAdvance closes sa's step if no member is missing; c.mu is held.
func (c *Coordinator) saAdvance(sa *saRound) {
	for sa.step < saUnmasking && len(c.saMissing(sa)) == 0 {
		c.saClose(sa)
	}
}

// saDrop takes name out of sa's round; c.mu is held.
func (c *Coordinator) saDrop(sa *saRound, name string, why error) {
	if _, ok := sa.mods[name]; !ok || sa.out[name] != nil || sa.step >= saUnmasking {
		return
	}
	if why == nil {
		why = errors.New("dropped out")
	}
	sa.out[name] = why
	c.log.Info("secure aggregation: participant dropped out", "round", sa.round, "participant", name, "step", saStepName(sa.step), "why", why)
	c.saCloseTasks(sa, name, fedcmipb.UploadStatus_UPLOAD_STATUS_REJECTED, fmt.Errorf("%w from %s: %v", ErrRejected, name, why))
	c.saAdvance(sa)
}

// saClose ends sa's current step with the members in; c.mu is held.
func (c *Coordinator) saClose(sa *saRound) {
	var err error
	switch sa.step {
	case saAdvertise:
		sa.keys, err = sa.srv.CloseAdvertise()
	case saShare:
		sa.shareSet, err = sa.srv.CloseShares()
	case saInput:
		sa.survivors, err = sa.srv.CloseInput()
	case saReveal:
		sa.step = saUnmasking
		sa.timer.Stop()
		c.saBroadcast(sa)
		go c.saUnmask(sa)
		return
	default:
		return
	}
	if err != nil {
		c.saFail(sa, err)
		return
	}
	sa.step++
	c.saBroadcast(sa)
	if sa.step == saInput {
		// The inputs come after training: awaited until the round's deadline.
		c.saArm(sa, max(time.Until(c.deadline), 0))
	} else {
		c.saArm(sa, c.phaseTimeout())
	}
}

func (c *Coordinator) saBroadcast(sa *saRound) {
	close(sa.changed)
	sa.changed = make(chan struct{})
	c.progress = time.Now()
}

// saFail ends sa without a result; c.mu is held.
func (c *Coordinator) saFail(sa *saRound, err error) {
	if sa.step == saDone {
		return
	}
	sa.step, sa.err = saDone, fmt.Errorf("deploy: secure aggregation round %d failed: %w", sa.round, err)
	if sa.timer != nil {
		sa.timer.Stop()
	}
	c.saBroadcast(sa)
	close(sa.done)
	c.saCloseTasks(sa, "", fedcmipb.UploadStatus_UPLOAD_STATUS_LATE, sa.err)
	c.met.SecAggRounds.WithLabelValues("failed").Inc()
	c.log.Error("secure aggregation round failed: no update of this round is aggregated", "round", sa.round, "err", err)
}

// saCloseTasks closes the open tasks of sa (of participant name only, if
// not empty), so that their Fit calls return at once; c.mu is held.
func (c *Coordinator) saCloseTasks(sa *saRound, name string, st fedcmipb.UploadStatus, err error) {
	for _, t := range c.tasks {
		if t.sa == sa && !t.closed && (name == "" || t.name == name) {
			c.closeTask(t, st, err)
		}
	}
}

// saUnmask unmasks the sums (outside the lock: it draws every survivor's
// masks) and turns them into results.
func (c *Coordinator) saUnmask(sa *saRound) {
	sums, err := sa.srv.Unmask()
	var res map[string]fl.FitRes
	if err == nil {
		res, err = c.saResults(sa, sums)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if sa.step == saDone {
		return
	}
	if err != nil {
		c.saFail(sa, err)
		return
	}
	sa.res, sa.step = res, saDone
	c.saBroadcast(sa)
	close(sa.done)
	c.met.SecAggRounds.WithLabelValues("completed").Inc()
	c.log.Info("secure aggregation round unmasked", "round", sa.round, "survivors", len(sa.survivors),
		"of", len(sa.r.Members), "seconds", time.Since(sa.started).Seconds())
}

// saResults turns the unmasked sums into the strategy's results: every
// survivor gets a result holding the same model, global plus each group's
// weighted mean update (global where a group's sum is withheld), for the
// groups it holds whose sums are revealed. Aggregated by any mean (plain
// or the server optimizers'), identical results give that model; their
// metrics are the survivors' own.
func (c *Coordinator) saResults(sa *saRound, sums [][]uint64) (map[string]fl.FitRes, error) {
	out := sa.global.Clone()
	var revealed data.Mask
	unclipped := 0.0
	nm := len(c.cfg.Modalities)
	off := make([]int, nm+1)
	weights := make([]float64, nm+1)
	for g, sum := range sums {
		if sum == nil {
			continue
		}
		weights[g] = secagg.Decode(sum[len(sum)-saScalars])
		if !(weights[g] > 0) {
			continue
		}
		if g < nm {
			revealed |= 1 << g
		} else {
			unclipped = secagg.Decode(sum[len(sum)-1]) / weights[g]
		}
	}
	if weights[nm] <= 0 {
		return nil, errors.New("the fusion group's total weight is not positive (every survivor sent weight 0)")
	}
	for i, info := range c.cfg.Layout {
		g := saGroup(info, nm)
		if sums[g] != nil && weights[g] > 0 {
			for j := range out[i].Data {
				out[i].Data[j] = float32(float64(sa.global[i].Data[j]) + secagg.Decode(sums[g][off[g]+j])/weights[g])
			}
		}
		off[g] += info.Size()
	}
	res := map[string]fl.FitRes{}
	for _, name := range sa.survivors {
		mods := sa.mods[name] & revealed
		if mods == 0 {
			continue // its Fit reports why
		}
		m := sa.metrics[name]
		m.DPUnclipped = unclipped
		res[name] = fl.FitRes{Params: out, NumSamples: 1, Modalities: mods, Metrics: m}
	}
	return res, nil
}

// fitSecAgg is Fit for a member of the secure aggregation round sa: the
// task's result is a masked input, and the participant's result is the
// round's, once unmasked.
func (c *Coordinator) fitSecAgg(ctx context.Context, sa *saRound, id string, ins fl.FitIns) (fl.FitRes, error) {
	t, err := c.queue(id, fedcmipb.TaskKind_TASK_KIND_FIT, ins)
	if err != nil {
		c.mu.Lock()
		c.saDrop(sa, id, err)
		c.mu.Unlock()
		return fl.FitRes{}, err
	}
	if err := c.await(ctx, t); err != nil {
		return fl.FitRes{}, err
	}
	select {
	case <-sa.done:
	case <-ctx.Done():
		return fl.FitRes{}, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if sa.err != nil {
		return fl.FitRes{}, sa.err
	}
	res, ok := sa.res[id]
	if !ok {
		return fl.FitRes{}, fmt.Errorf("deploy: secure aggregation round %d: no modality group %s holds has %d surviving holders: its sums are withheld",
			sa.round, id, secagg.MinGroupSurvivors)
	}
	return res, nil
}

// saFor returns the secure aggregation round a fit task of round for
// participant name belongs to (nil if none); c.mu is held.
func (c *Coordinator) saFor(round int, name string) *saRound {
	if sa := c.sa; sa != nil && sa.round == round && sa.step < saDone {
		if _, ok := sa.mods[name]; ok {
			return sa
		}
	}
	return nil
}

// SecAgg implements the Federation service: the key and unmasking steps
// of a secure aggregation round.
func (c *Coordinator) SecAgg(ctx context.Context, req *fedcmipb.SecAggRequest) (*fedcmipb.SecAggResponse, error) {
	p, err := c.lookup(ctx, req.GetProtocolVersion(), req.GetSession())
	if err != nil {
		return nil, err
	}
	c.met.SecAggBytes.WithLabelValues("in").Add(float64(proto.Size(req)))
	c.mu.Lock()
	t, ok := c.tasks[req.GetTaskId()]
	var sa *saRound
	if ok && t.name == p.name {
		sa = t.sa
	}
	if sa == nil {
		c.mu.Unlock()
		return nil, status.Errorf(codes.Aborted, "task %q of %s is not in a secure aggregation round", req.GetTaskId(), p.name)
	}
	var want int // the step whose end the caller waits for
	switch req.GetStep() {
	case fedcmipb.SecAggStep_SECAGG_STEP_ADVERTISE:
		want = saAdvertise
		if sa.step == saAdvertise && !sa.srv.Advertised(p.name) {
			err = sa.srv.Advertise(secagg.Keys{Name: p.name, Cipher: req.GetCipherKey(), Mask: req.GetMaskKey()})
		}
	case fedcmipb.SecAggStep_SECAGG_STEP_SHARE:
		want = saShare
		if sa.step == saShare && !sa.srv.Shared(p.name) {
			cts := make([]secagg.Ciphertext, len(req.GetShares()))
			for i, s := range req.GetShares() {
				cts[i] = secagg.Ciphertext{Peer: s.GetPeer(), Data: s.GetData()}
			}
			err = sa.srv.Shares(p.name, cts, req.GetCommitments())
		}
	case fedcmipb.SecAggStep_SECAGG_STEP_SURVIVORS:
		want = saInput
	case fedcmipb.SecAggStep_SECAGG_STEP_REVEAL:
		want = -1 // no wait
		if sa.step == saReveal && !sa.revealed[p.name] {
			rs := make([]secagg.Reveal, len(req.GetReveals()))
			for i, r := range req.GetReveals() {
				rs[i] = secagg.Reveal{Owner: r.GetOwner(), Secrets: r.GetSecrets(), Share: secagg.Share{X: r.GetX(), Values: r.GetValues()}}
			}
			if err = sa.srv.Reveal(p.name, rs); err == nil {
				sa.revealed[p.name] = true
			}
		} else if !sa.revealed[p.name] {
			err = fmt.Errorf("secure aggregation round %d is not unmasking (step %s)", sa.round, saStepName(sa.step))
		}
	default:
		c.mu.Unlock()
		return nil, status.Errorf(codes.InvalidArgument, "unknown secure aggregation step %v", req.GetStep())
	}
	if err != nil {
		c.met.Rejections.WithLabelValues("secagg").Inc()
		c.log.Warn("secure aggregation: refused", "participant", p.name, "round", sa.round, "step", req.GetStep(), "err", err)
		c.saDrop(sa, p.name, err)
		c.mu.Unlock()
		return nil, status.Errorf(codes.Aborted, "%v", err)
	}
	c.saAdvance(sa)
	c.mu.Unlock()
	resp, err := c.saWait(ctx, sa, p.name, want)
	if resp != nil {
		c.met.SecAggBytes.WithLabelValues("out").Add(float64(proto.Size(resp)))
	}
	return resp, err
}

// saWait waits until sa is past step want (at most PollTimeout) and
// answers what the caller needs to go on.
func (c *Coordinator) saWait(ctx context.Context, sa *saRound, name string, want int) (*fedcmipb.SecAggResponse, error) {
	timer := time.NewTimer(c.cfg.PollTimeout)
	defer timer.Stop()
	for {
		c.mu.Lock()
		if sa.out[name] != nil {
			err := sa.out[name]
			c.mu.Unlock()
			return nil, status.Errorf(codes.Aborted, "secure aggregation round %d went on without %s: %v", sa.round, name, err)
		}
		if sa.err != nil && want >= 0 {
			err := sa.err
			c.mu.Unlock()
			return nil, status.Errorf(codes.Aborted, "%v", err)
		}
		if sa.step > want {
			resp := c.saAnswer(sa, name, want)
			c.mu.Unlock()
			if resp == nil {
				return nil, status.Errorf(codes.Aborted, "secure aggregation round %d went on without %s", sa.round, name)
			}
			return resp, nil
		}
		ch := sa.changed
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
			return &fedcmipb.SecAggResponse{}, nil
		case <-ch:
		}
	}
}

// saAnswer is the data of step want for name, nil if the round left name
// out of it; c.mu is held.
func (c *Coordinator) saAnswer(sa *saRound, name string, want int) *fedcmipb.SecAggResponse {
	resp := &fedcmipb.SecAggResponse{Ready: true}
	switch want {
	case saAdvertise:
		if !slices.ContainsFunc(sa.keys, func(k secagg.Keys) bool { return k.Name == name }) {
			return nil
		}
		for _, k := range sa.keys {
			resp.Keys = append(resp.Keys, &fedcmipb.SecAggKeys{Name: k.Name, CipherKey: k.Cipher, MaskKey: k.Mask})
		}
	case saShare:
		if !slices.Contains(sa.shareSet, name) {
			return nil
		}
		resp.ShareSet = sa.shareSet
		for _, ct := range sa.srv.SharesFor(name) {
			resp.Shares = append(resp.Shares, &fedcmipb.SecAggCiphertext{Peer: ct.Peer, Data: ct.Data})
		}
	case saInput:
		if !slices.Contains(sa.survivors, name) {
			return nil
		}
		resp.Survivors = sa.survivors
	}
	return resp
}

// secAggStrategy opens a secure aggregation round for the participants
// each round samples; rounds with too few of them for the threshold are
// skipped (the global model is kept).
type secAggStrategy struct {
	fl.Strategy
	coord *Coordinator
	log   *slog.Logger
}

func (s secAggStrategy) ConfigureFit(round int, global model.Params, clients []fl.ClientInfo) ([]fl.Instruction, error) {
	ins, err := s.Strategy.ConfigureFit(round, global, clients)
	if err != nil || len(ins) == 0 {
		return ins, err
	}
	ids := make([]string, len(ins))
	for i, in := range ins {
		ids[i] = in.ClientID
	}
	if err := s.coord.openSecAgg(round, global, ids); err != nil {
		if errors.Is(err, errSecAggSkip) {
			s.log.Warn("round skipped: too few participants for secure aggregation", "round", round, "err", err)
			return nil, nil
		}
		return nil, err
	}
	return ins, nil
}

// saInputs collects a member's masked input from its upload's chunks,
// checking each against the round's lengths and the member's groups. A
// group's buffer is made on its first piece, so that an upload that stops
// after its header holds no memory.
type saInputs struct {
	lengths []int
	groups  uint32
	vecs    [][]uint64
	bytes   int64
}

func newSAInputs(sa *saRound, name string) *saInputs {
	return &saInputs{lengths: sa.r.Lengths, groups: saMemberGroups(sa.mods[name], len(sa.r.Lengths)-1), vecs: make([][]uint64, len(sa.r.Lengths))}
}

func (in *saInputs) add(ch *fedcmipb.MaskedChunk) error {
	g := int(ch.GetGroup())
	if g < 0 || g >= len(in.lengths) || in.groups&(1<<g) == 0 {
		return fmt.Errorf("masked input to group %d, not one of the participant's", ch.GetGroup())
	}
	v := in.vecs[g]
	if v == nil {
		v = make([]uint64, 0, in.lengths[g])
	}
	if ch.GetOffset() != int64(len(v)) {
		return fmt.Errorf("masked input to group %d: piece at %d out of order (have %d values)", g, ch.GetOffset(), len(v))
	}
	if len(v)+len(ch.GetValues()) > in.lengths[g] {
		return fmt.Errorf("masked input to group %d: oversized: %d values, want %d", g, len(v)+len(ch.GetValues()), in.lengths[g])
	}
	in.vecs[g] = append(v, ch.GetValues()...)
	in.bytes += 8 * int64(len(ch.GetValues()))
	return nil
}

// saMetricsValid checks the metrics beside a masked input: valid, and
// without what secure aggregation must hide (fl.FitMetrics.PerClient:
// per-participant statistics travel only masked, or not at all).
func saMetricsValid(m fl.FitMetrics, b fl.MetricBounds) error {
	if what := m.PerClient(); what != "" {
		return fmt.Errorf("the metrics of a masked input carry per-participant statistics (%s) in the clear", what)
	}
	return m.Validate(b)
}

// uploadMasked receives the masked input of a secure aggregation task
// and adds it to the round's sums: chunks checked against the round's
// lengths as they arrive, then the metrics beside it.
func (c *Coordinator) uploadMasked(stream fedcmipb.Federation_UploadServer, p *participant, t *task, h *fedcmipb.ResultHeader, reject func(string, error) error) error {
	in := newSAInputs(t.sa, p.name)
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			c.met.BytesIn.Add(float64(in.bytes))
			if status.Code(err) == codes.ResourceExhausted {
				return reject("size", fmt.Errorf("message too large: %v", status.Convert(err).Message()))
			}
			return err
		}
		ch := msg.GetMasked()
		if ch == nil {
			return reject("format", errors.New("a masked input holds masked chunks only"))
		}
		if err := in.add(ch); err != nil {
			c.met.BytesIn.Add(float64(in.bytes))
			return reject("secagg", err)
		}
	}
	c.met.BytesIn.Add(float64(in.bytes))
	for g, v := range in.vecs {
		if in.groups&(1<<g) != 0 && len(v) != in.lengths[g] {
			return reject("secagg", fmt.Errorf("masked input to group %d incomplete: %d of %d values", g, len(v), in.lengths[g]))
		}
	}
	ex := resultExtras{Metrics: fromPBMetrics(h.GetMetrics())}
	if b := h.GetResultGob(); b != nil {
		if err := gobDecode(b, &ex, gobLimit(fl.PrototypeShape(c.cfg.Layout))); err != nil {
			if errors.Is(err, errGobSize) {
				return reject("size", err)
			}
			return reject("format", err)
		}
	}
	if err := saMetricsValid(ex.Metrics, c.metricBounds(t)); err != nil {
		return reject("metrics", err)
	}
	c.mu.Lock()
	if t.closed {
		c.mu.Unlock()
		return stream.SendAndClose(c.closedResponse(t))
	}
	sa := t.sa
	var err error
	if sa.step != saInput {
		err = fmt.Errorf("secure aggregation round %d is not taking inputs (step %s)", sa.round, saStepName(sa.step))
	} else {
		err = sa.srv.Input(p.name, in.vecs)
	}
	if err != nil {
		c.mu.Unlock()
		return reject("secagg", err)
	}
	sa.metrics[p.name] = ex.Metrics
	c.closeTask(t, fedcmipb.UploadStatus_UPLOAD_STATUS_ACCEPTED, nil)
	c.mu.Unlock()
	c.log.Debug("masked input accepted", "participant", p.name, "task", t.id, "seconds", time.Since(t.started).Seconds())
	return stream.SendAndClose(&fedcmipb.UploadResponse{Status: fedcmipb.UploadStatus_UPLOAD_STATUS_ACCEPTED})
}

// checkSecAgg refuses settings that need single updates, which secure
// aggregation hides, naming the field or flag, and completes opt for
// secure aggregation: weights unweighted under client-side privacy (as
// DP-FedAvg averages), no weight cap.
func checkSecAgg(cfg *config.Config, opt *ServeOptions) error {
	sc := opt.SecAgg
	method, err := fl.LookupMethod(cfg.Method)
	if err != nil {
		return &config.FieldError{Path: "method", Err: err}
	}
	if why := method.SingleUpdates; why != "" {
		return &config.FieldError{Path: "method", Err: fmt.Errorf("%s cannot run under secure aggregation (-secagg): %s", cfg.Method, why)}
	}
	if !method.SumsOnly {
		return &config.FieldError{Path: "method", Err: fmt.Errorf("%s is not known to run under secure aggregation (-secagg): its server may need single updates", cfg.Method)}
	}
	if a := cfg.Server.Aggregator; a != "mean" {
		return &config.FieldError{Path: "server.aggregator", Err: fmt.Errorf("%s needs single updates (per-coordinate order statistics or distances between updates), which secure aggregation (-secagg) hides: use mean", a)}
	}
	if cfg.DP.Clip > 0 && cfg.DP.Noise != "client" {
		return &config.FieldError{Path: "dp.noise", Err: fmt.Errorf("%s: the server would clip each participant's update, which secure aggregation (-secagg) hides: use client (each participant clips and adds its share of the noise)", cfg.DP.Noise)}
	}
	if opt.NormBound > 0 {
		return fmt.Errorf("deploy: -norm_bound %g needs each update's norm, which secure aggregation (-secagg) hides", opt.NormBound)
	}
	if opt.MaxWeightShare != 0 && opt.MaxWeightShare < 1 {
		return fmt.Errorf("deploy: -max_weight_share %g needs each result's weight, which secure aggregation (-secagg) hides: leave it unset (1 under -secagg)", opt.MaxWeightShare)
	}
	perRound := min(cfg.ClientsPerRound, cfg.Clients)
	switch {
	case sc.Threshold < 0 || sc.Threshold == 1:
		return fmt.Errorf("deploy: secure aggregation threshold %d (-secagg_threshold): want at least 2, or 0 for the default", sc.Threshold)
	case sc.Threshold > perRound:
		return fmt.Errorf("deploy: secure aggregation threshold %d (-secagg_threshold) is larger than the %d participants of a round (clients_per_round %d, clients %d)",
			sc.Threshold, perRound, cfg.ClientsPerRound, cfg.Clients)
	case perRound > secagg.MaxParticipants:
		return &config.FieldError{Path: "clients_per_round", Err: fmt.Errorf("%d participants per round: secure aggregation's fixed-point sums hold at most %d", perRound, secagg.MaxParticipants)}
	case perRound < 2:
		return &config.FieldError{Path: "clients_per_round", Err: fmt.Errorf("%d: secure aggregation needs at least 2 participants per round (a sum of one update is that update)", perRound)}
	case sc.PhaseTimeout < 0:
		return fmt.Errorf("deploy: secure aggregation step timeout %v (-secagg_timeout) is negative", sc.PhaseTimeout)
	}
	sc.Unweighted = cfg.DP.Clip > 0
	opt.MaxWeightShare = 1
	return nil
}
