package deploy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/model"
	"github.com/fedcmi/fedcmi/rundir"
	"github.com/fedcmi/fedcmi/sim"
)

// DefaultMaxMessageBytes bounds one gRPC message either way (gRPC's own
// default); models travel in chunks well below it.
const DefaultMaxMessageBytes = 4 << 20

// MinMessageBytes is the smallest message bound that carries a model
// chunk (DefaultChunkBytes) with its header.
const MinMessageBytes = DefaultChunkBytes + 64<<10

// CheckMaxMessage refuses a message bound (serve's and join's
// -max_message) below MinMessageBytes, which would refuse every chunk.
func CheckMaxMessage(n int) error {
	if n < MinMessageBytes {
		return fmt.Errorf("-max_message %d is below %d: models travel in chunks of %d bytes", n, MinMessageBytes, DefaultChunkBytes)
	}
	return nil
}

// ServeOptions are a coordinator's deployment settings; the experiment
// itself is the config. Zero values mean the documented defaults.
type ServeOptions struct {
	// Listener accepts participants' gRPC connections. Required.
	Listener net.Listener
	// HTTPListener, if not nil, serves /metrics and /healthz.
	HTTPListener net.Listener
	// TLS is the server's TLS configuration (ServerTLS); nil serves plain
	// text, which needs Insecure.
	TLS      *tls.Config
	Insecure bool
	// Roster lists the accepted participants (nil: see CoordinatorConfig).
	Roster *Roster
	// Resume continues the run in the config's run directory from its
	// saved state (StateFile) instead of starting anew. A run that stopped
	// before its first save (no state, at most round 1's metrics, the same
	// configuration) starts again from round 1; a run whose state holds
	// every round is complete: Serve then rewrites its summary and returns
	// without serving.
	Resume bool
	// WaitFor is the number of participants to wait for before the first
	// round (default: the config's number of clients).
	WaitFor int
	// MinResults is the minimum number of accepted results for a round to
	// be aggregated (default 1); with fewer, the round keeps the previous
	// global model.
	MinResults int
	// RoundTimeout, HeartbeatInterval, PollTimeout and NormBound: see
	// CoordinatorConfig.
	RoundTimeout, HeartbeatInterval, PollTimeout time.Duration
	NormBound                                    float64
	// StuckAfter is how long a round (or a wait for participants between
	// rounds) may go without progress (a task sent, a result received, a
	// round begun) before /healthz reports the run stuck (default twice
	// RoundTimeout).
	StuckAfter time.Duration
	// MaxSamples: see CoordinatorConfig.
	MaxSamples int
	// MaxWeightShare is the largest share of a round's aggregation weight
	// one result may take, in (0, 1] (default DefaultMaxWeightShare; 1:
	// none). With k results, a share below 1/k means equal weights; rounds
	// of fewer than three results are not capped. A result over the cap is
	// aggregated with the largest weight that keeps it at the cap.
	MaxWeightShare float64
	// MaxMessageBytes bounds one gRPC message (default DefaultMaxMessageBytes).
	MaxMessageBytes int
	// SecAgg, if not nil, runs every round under secure aggregation
	// (README, Secure aggregation): the coordinator learns only each
	// modality group's weighted sum. Settings that need single updates
	// are refused: methods scaffold, fedmdrop and fedcmi-fedstats*,
	// robust aggregators, server-side privacy noise, NormBound and a
	// MaxWeightShare below 1 (which defaults to 1 then).
	SecAgg *SecAggConfig
	// Metrics receives the coordinator's counters (nil: a private set).
	Metrics *Metrics
	// Logger receives progress; nil uses slog.Default().
	Logger *slog.Logger
	// Progress, if not nil, receives one line per round.
	Progress io.Writer
	// AfterRound, if not nil, is called after each round's state is saved.
	AfterRound func(round int)
}

// digestMatches reports whether the digest saved in the state of the run
// in dir belongs to cfg: the simulation's (sim.CheckpointMatches), or, for
// states written before 2026-12-06, legacyConfigDigest.
func digestMatches(dir string, cfg config.Config, saved string) (bool, error) {
	return sim.CheckpointMatches(dir, cfg, saved, legacyConfigDigest)
}

// legacyConfigDigest is the digest of the configuration that states
// written before 2026-12-06 hold: with name, out_dir, data.cache_dir and
// tensorboard in the hash, so that changing one of them for a resume was
// refused, though they change no number. The fields without are left
// out, as an older fedcmi that lacked them wrote it.
func legacyConfigDigest(cfg config.Config, without []string) (string, error) {
	cfg.Overwrite, cfg.Parallel, cfg.Backend = false, 0, ""
	return sim.HashConfig(cfg, without)
}

// anotherConfig is the error of a resume whose state in dir belongs to
// another configuration than cfg, naming the fields that differ from the
// run's saved config where it can be read.
func anotherConfig(dir string, cfg config.Config) error {
	state := filepath.Join(dir, StateFile)
	if changes, cerr := sim.ConfigChanges(dir, cfg); cerr == nil && len(changes) > 0 {
		return fmt.Errorf("deploy: resume: %s belongs to another configuration: %s; resume with the saved settings, or start anew with -overwrite", state, sim.Changes(changes))
	}
	return fmt.Errorf("deploy: resume: %s belongs to another configuration", state)
}

// quorum keeps the previous global model when a round has fewer than min
// results (late and rejected ones do not count).
type quorum struct {
	fl.Strategy
	min int
	log *slog.Logger
}

func (q quorum) AggregateFit(round int, global model.Params, results []fl.Result, failures []fl.Failure) (model.Params, error) {
	if len(results) < q.min {
		q.log.Warn("round below the minimum of results: the global model is kept", "round", round, "results", len(results), "min", q.min, "failures", len(failures))
		return nil, nil
	}
	return q.Strategy.AggregateFit(round, global, results, failures)
}

// beforeFirstSave returns nil if dir holds a run of the experiment with
// digest that stopped before its first state save (at most the metrics of
// round 1, which were written just before the state), so that resuming it
// means starting again from round 1; otherwise it says why not.
func beforeFirstSave(dir, digest string) error {
	noState := fmt.Errorf("deploy: no coordinator state to resume from: %s does not exist", filepath.Join(dir, StateFile))
	// The resolved configuration the run saved, read as it was written
	// (not as a user's file, whose relative paths might be resolved).
	f, err := os.Open(filepath.Join(dir, rundir.ConfigFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return noState
		}
		return fmt.Errorf("%w, and its configuration cannot be read: %w", noState, err)
	}
	defer f.Close()
	prev := config.Default()
	if err := prev.Load(f, f.Name()); err != nil {
		return fmt.Errorf("%w, and its configuration cannot be read: %w", noState, err)
	}
	if d, err := sim.ConfigDigest(prev); err != nil || d != digest {
		return fmt.Errorf("%w, and %s belongs to another configuration", noState, filepath.Join(dir, rundir.ConfigFile))
	}
	_, rounds, err := rundir.ReadMetrics(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("%w, and %w (start again with -overwrite)", noState, err)
	case len(rounds) > 1:
		return fmt.Errorf("%w, but its metrics hold %d rounds: not a coordinator's run, or its state was lost (start again with -overwrite)", noState, len(rounds))
	}
	return nil
}

// Serve runs the experiment cfg as a federation's coordinator: it waits
// for participants, drives the config's rounds over them with the same
// strategy as the simulation, evaluates every global model on its test
// set, and writes the same run directory as sim.Run plus its state after
// every round. Given the same config, seed and participants (fedcmi join
// -shard), the metrics equal the simulation's.
func Serve(ctx context.Context, cfg config.Config, opt ServeOptions) (*sim.Result, error) {
	if err := fl.CheckConfig(&cfg); err != nil {
		return nil, err
	}
	if cfg.Attack.Clients > 0 {
		return nil, &config.FieldError{Path: "attack.clients", Err: errors.New("Byzantine clients are a simulation option; serve cannot make participants attack")}
	}
	if cfg.Data.MissingRate > 0 {
		// Clients left with no modality drop out of the simulated
		// federation; a coordinator cannot know which participants to
		// expect. Label noise and missing labels work with join -shard.
		return nil, &config.FieldError{Path: "data.missing_rate", Err: errors.New("missing modalities are a simulation option; a deployment's participants declare the modalities they hold")}
	}
	if opt.MinResults > cfg.ClientsPerRound {
		// A round samples at most that many: it could never aggregate.
		return nil, fmt.Errorf("deploy: -min_results %d is more than a round can have: it samples at most clients_per_round = %d participants", opt.MinResults, cfg.ClientsPerRound)
	}
	if opt.Listener == nil {
		return nil, errors.New("deploy: serve needs a listener")
	}
	if opt.TLS == nil && !opt.Insecure {
		return nil, errors.New("deploy: serve without TLS needs Insecure")
	}
	if opt.SecAgg != nil {
		sc := *opt.SecAgg
		opt.SecAgg = &sc
		if err := checkSecAgg(&cfg, &opt); err != nil {
			return nil, err
		}
	}
	if opt.MaxMessageBytes != 0 {
		if err := CheckMaxMessage(opt.MaxMessageBytes); err != nil {
			return nil, fmt.Errorf("deploy: %w", err)
		}
	}
	if opt.MaxWeightShare == 0 {
		opt.MaxWeightShare = DefaultMaxWeightShare
	}
	if !(opt.MaxWeightShare > 0 && opt.MaxWeightShare <= 1) {
		return nil, fmt.Errorf("deploy: the largest weight share %v is not in (0, 1]", opt.MaxWeightShare)
	}
	if opt.MaxSamples < 0 {
		return nil, fmt.Errorf("deploy: the largest number of samples %d is negative", opt.MaxSamples)
	}
	log := opt.Logger
	if log == nil {
		log = slog.Default()
	}
	if opt.Insecure {
		log.Warn("INSECURE: serving participants over plain text without authentication of the coordinator or certificates of participants; use only on a trusted network")
	}
	if waits := max(cfg.Clients, opt.WaitFor); opt.MinResults > waits {
		// More participants than that may register, so it is no error.
		log.Warn("every round waits for more participants than the run waits for at its start: unless more join, it waits forever", "min_results", opt.MinResults, "waits_for", waits)
	}
	// The coordinator trains no client; it evaluates, one graph at a time.
	// It holds a round's results until it aggregates them.
	fed, err := sim.PrepareCoordinator(ctx, &cfg, log, min(cfg.ClientsPerRound, cfg.Clients))
	if err != nil {
		return nil, err
	}
	engine, test := fed.Engine, fed.Test
	strategy, err := sim.NewStrategy(&cfg, engine.Layout(), log)
	if err != nil {
		return nil, err
	}
	mods := fed.Modalities()
	schema := fed.Schema()
	// The clients: the participants it waits for, or, under
	// data.partition group, the groups of its data, which are the shards
	// (join -shard), as the simulation counts them.
	population := cfg.Clients
	if cfg.Data.Partition == "group" {
		if groups, _, err := data.ByGroup(fed.Train.Groups); err == nil { // an error: no groups
			population = len(groups)
		}
	}
	acct := sim.Accountant(&cfg, population)
	schema.Privacy = acct != nil
	heads := schema.Heads
	digest, err := sim.ConfigDigest(cfg)
	if err != nil {
		return nil, err
	}
	// The coordinator's own data: the shapes and the test set it
	// evaluates on; a resume on others would mix two in one run.
	dataDigest := sim.DataDigest(fed.Train, fed.Test)

	dir := filepath.Join(cfg.OutDir, cfg.RunName())
	global, first := fed.Global, 1
	var done []metrics.Round
	var elapsed0 float64
	scratch := false // resuming a run that died before saving any state
	var resumed *State
	if opt.Resume {
		st, err := LoadState(filepath.Join(dir, StateFile), &fed.Arch)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if err := beforeFirstSave(dir, digest); err != nil {
				return nil, err
			}
			scratch = true
			log.Warn("resuming a run that stopped before saving its first round: starting again from round 1", "dir", dir)
		case err != nil:
			return nil, err
		default:
			ok, err := digestMatches(dir, cfg, st.ConfigDigest)
			if err != nil {
				return nil, fmt.Errorf("deploy: resume %s: %w", filepath.Join(dir, StateFile), err)
			}
			if !ok {
				return nil, anotherConfig(dir, cfg)
			}
			if err := sim.SameData(dir, &cfg, st.DataDigest, dataDigest, "serve -overwrite"); err != nil {
				return nil, err
			}
			resumed = st
			if err := restoreStrategy(strategy, st.Strategy); err != nil {
				return nil, err
			}
			global, first, done, elapsed0 = st.Global, st.Round+1, st.Rounds, st.Elapsed
			log.Info("resuming", "dir", dir, "after_round", st.Round)
		}
	}
	run, err := rundir.Create(dir, schema, cfg.Overwrite || opt.Resume)
	if err != nil {
		if errors.Is(err, rundir.ErrExists) {
			return nil, fmt.Errorf("deploy: %w (set a new name, -overwrite, or -resume)", err)
		}
		return nil, err
	}
	defer run.Close()
	saveModel := sim.ModelSaver(run, mods, cfg.Method)
	extra := map[string]any{"method": cfg.Method, "seed": cfg.Seed, "evaluated_on": sim.EvaluatedOn(&cfg), "deployment": true, "data_digest": dataDigest}
	// Create removed the summary (and, resuming, the metrics, replayed
	// below from the state): from here on, every return finishes the run,
	// which writes the summary of the rounds so far.
	fail := func(err error) (*sim.Result, error) {
		return sim.Finish(run, dir, schema, extra, err, global, saveModel)
	}
	if stale := run.StaleTemps(); len(stale) > 0 {
		log.Info("removed temporary files of an interrupted write", "dir", dir, "files", stale)
	}
	if cfg.Overwrite && !opt.Resume || scratch {
		for _, name := range []string{rundir.ModelFile, StateFile, sim.StandardizerFile} {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fail(fmt.Errorf("deploy: overwrite: %w", err))
			}
		}
	}
	for _, r := range done {
		if err := run.AppendRound(r); err != nil {
			return fail(err)
		}
	}
	if err := sim.Restamp(run, StateFile, resumed, digest, schema); err != nil {
		return fail(fmt.Errorf("deploy: state: %w", err))
	}
	if err := sim.WriteRunFiles(run, &cfg, fed.Standardizer); err != nil {
		return fail(err)
	}
	if first > cfg.Rounds {
		// Nothing to wait for: close the listeners and restate the summary
		// (the coordinator may have died between its last save and it).
		opt.Listener.Close()
		if opt.HTTPListener != nil {
			opt.HTTPListener.Close()
		}
		log.Info("the run is complete: nothing to resume", "dir", dir, "rounds", cfg.Rounds)
		if opt.Progress != nil {
			fmt.Fprintf(opt.Progress, "%s: all %d rounds were completed before; nothing to resume\n", dir, cfg.Rounds)
		}
		return sim.Finish(run, dir, schema, extra, nil, global, saveModel)
	}
	if cfg.TensorBoard {
		// After the replayed rounds: the log is written anew with them.
		if err := run.LogTensorBoard(); err != nil {
			return fail(err)
		}
	}

	met := opt.Metrics
	if met == nil {
		met = NewMetrics()
	}
	coord, err := NewCoordinator(CoordinatorConfig{
		Layout: engine.Layout(), Modalities: mods, Roster: opt.Roster, Insecure: opt.Insecure,
		RoundTimeout: opt.RoundTimeout, HeartbeatInterval: opt.HeartbeatInterval, PollTimeout: opt.PollTimeout,
		NormBound: opt.NormBound, MaxSamples: opt.MaxSamples, Metrics: met, Logger: log, SecAgg: opt.SecAgg,
	})
	if err != nil {
		return fail(err)
	}
	maxMsg := opt.MaxMessageBytes
	if maxMsg <= 0 {
		maxMsg = DefaultMaxMessageBytes
	}
	sopts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxMsg), grpc.MaxSendMsgSize(maxMsg),
		grpc.MaxConcurrentStreams(1024),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		// Close connections of participants that vanished without a word.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.ConnectionTimeout(20 * time.Second),
	}
	if opt.TLS != nil {
		sopts = append(sopts, grpc.Creds(coord.ServerCredentials(opt.TLS)))
	}
	gs := grpc.NewServer(sopts...)
	RegisterService(gs, coord)
	serveErr := make(chan error, 1)
	go func() { serveErr <- gs.Serve(opt.Listener) }()
	defer gs.Stop()
	log.Info("coordinator listening", "addr", opt.Listener.Addr().String(), "tls", opt.TLS != nil, "dir", dir)
	waitFor := opt.WaitFor
	if waitFor <= 0 {
		waitFor = cfg.Clients
	}
	minResults := max(opt.MinResults, 1)
	stuckAfter := opt.StuckAfter
	if stuckAfter <= 0 {
		stuckAfter = 2 * coord.cfg.RoundTimeout
	}
	hl := &health{
		stuckAfter: stuckAfter, rounds: cfg.Rounds, progress: coord.lastProgress,
		connected: func() int { return len(coord.Available()) }, now: time.Now,
	}
	hl.set(phaseJoining, first, waitFor, nil)
	httpCtx, stopHTTP := context.WithCancel(ctx)
	defer stopHTTP()
	if opt.HTTPListener != nil {
		go func() {
			if err := met.ServeHTTP(httpCtx, opt.HTTPListener, hl.check, log); err != nil {
				log.Error("metrics endpoint", "err", err)
			}
		}()
	}

	go func() { // keep the connected-participants gauge current between rounds
		tick := time.NewTicker(coord.cfg.HeartbeatInterval)
		defer tick.Stop()
		for {
			select {
			case <-httpCtx.Done():
				return
			case <-tick.C:
				coord.Available()
			}
		}
	}()

	log.Info("waiting for participants", "want", waitFor)
	var runErr error
	if err := coord.WaitParticipants(ctx, waitFor); err != nil {
		runErr = fmt.Errorf("deploy: waiting for %d participants: %w", waitFor, err)
	}
	start := time.Now()
	for r := first; r <= cfg.Rounds && runErr == nil; r++ {
		hl.set(phaseWaiting, r, minResults, nil)
		if err := coord.WaitParticipants(ctx, minResults); err != nil {
			runErr = err
			break
		}
		clients := coord.Available()
		coord.BeginRound(r)
		hl.set(phaseRound, r, 0, nil)
		log.Info("round", "round", r, "participants", len(clients))
		var inner fl.Strategy = weightCap{Strategy: strategy, share: opt.MaxWeightShare, log: log, met: met}
		if opt.SecAgg != nil { // the weights are hidden
			inner = secAggStrategy{Strategy: strategy, coord: coord, log: log}
		}
		server := &fl.Server{
			Strategy:  quorum{Strategy: inner, min: minResults, log: log},
			Transport: coord,
			Clients:   clients,
			Evaluate: func(ctx context.Context, p model.Params) (fl.Evaluation, error) {
				return fl.EvaluateSet(engine, p, test)
			},
			AllowEmptyRounds: true,
			Parallelism:      len(clients),
			Logger:           log,
			OnRound: func(m metrics.Round, p model.Params) error {
				m.Elapsed = elapsed0 + time.Since(start).Seconds()
				m.Epsilon = sim.EpsilonAt(acct, m.Round)
				if err := run.AppendRound(m); err != nil {
					return err
				}
				if err := saveModel(p); err != nil {
					return err
				}
				sst, err := strategyState(strategy)
				if err != nil {
					return err
				}
				st := &State{Round: m.Round, Global: p, Strategy: sst, Rounds: run.Rounds(), ConfigDigest: digest, DataDigest: dataDigest, Elapsed: m.Elapsed}
				if err := run.WriteAtomic(StateFile, func(w io.Writer) error { return WriteState(w, st, schema) }); err != nil {
					return err
				}
				met.Rounds.Inc()
				met.RoundSeconds.Observe(m.Seconds)
				if opt.Progress != nil {
					fmt.Fprintf(opt.Progress, "round %3d/%d  %s  dominance %.3f  loss %.4f  clients %d  failures %d  %.2fs\n",
						m.Round, cfg.Rounds, sim.ProgressHeads(heads, m.Heads), m.Dominance, m.TrainLoss, m.Clients, m.Failures, m.Seconds)
				}
				return nil
			},
		}
		global, runErr = server.Run(ctx, global, r, r)
		if runErr == nil && opt.AfterRound != nil {
			opt.AfterRound(r)
		}
	}
	if runErr == nil {
		hl.set(phaseFinished, cfg.Rounds, 0, nil)
		coord.Finish(5 * time.Second)
	} else {
		hl.mu.Lock()
		r := hl.round
		hl.mu.Unlock()
		hl.set(phaseFailed, r, 0, runErr)
	}
	coord.Close()
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		gs.Stop()
	}
	return fail(runErr)
}
