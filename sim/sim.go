// Package sim runs a federated experiment on one machine: it loads the data
// a config names, splits it among simulated clients, and drives the same
// strategy and client code a network deployment uses, through an in-memory
// transport, writing a run directory as it goes.
package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/model"
	"github.com/fedcmi/fedcmi/rundir"
)

// Seed streams: each random choice has its own generator derived from the
// experiment seed, so changing one part (say, the partition) does not shift
// the others.
const (
	streamData = iota + 1
	streamPartition
	streamModalities
	streamInit
	streamValidation
	streamMissing
	streamLabelNoise
	streamMissingLabels
	streamMissingSamples
)

func rng(seed uint64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, stream))
}

// OpenMedia returns the media data set a config names (avdigits, cremad,
// ave, crisismmd) and the cache folder of its preprocessing: a sub-folder
// of data.cache_dir named by the data set, its spec's key, the key of the
// samples it holds and skip_broken, so that caches of different settings
// live side by side and a folder is never refused for its settings.
func OpenMedia(cfg *config.Config, logf func(string, ...any)) (*data.Source, string, error) {
	d := cfg.Data
	m := d.Media
	spec := data.MediaSpec{
		SampleRate: m.SampleRate, ClipSeconds: m.ClipSeconds, FreqPool: m.FreqPool, TimePool: m.TimePool,
		Frames: m.Frames, ImageSize: m.ImageSize, Channels: m.Channels, TextDim: m.TextDim,
	}
	opts := &data.MediaOptions{
		AudioDir: d.AudioDir, FramesDir: d.FramesDir, TestSplit: d.TestSplit, LabelColumn: d.LabelColumn,
		SkipBroken: d.SkipBroken, Limit: d.Limit, Workers: cfg.Parallel, Logf: logf,
	}
	var src *data.Source
	var err error
	switch d.Source {
	case "avdigits":
		src, err = data.OpenAVDigits(d.Dir, d.ImagesDir, spec, d.PairingSeed, opts)
	case "cremad":
		src, err = data.OpenCremaD(d.Dir, d.SplitDir, spec, opts)
	case "ave":
		src, err = data.OpenAVE(d.Dir, d.SplitDir, spec, opts)
	case "crisismmd":
		src, err = data.OpenCrisisMMD(d.Dir, d.SplitDir, spec, opts)
	default:
		return nil, "", fmt.Errorf("sim: %q is not a media source", d.Source)
	}
	if err != nil {
		return nil, "", fmt.Errorf("sim: %w", err)
	}
	specKey := strings.TrimPrefix(src.Spec().Key(), "sha256:")
	samples := strings.TrimPrefix(src.SamplesKey(), "sha256:")
	name := fmt.Sprintf("%s-%s-%s", src.Name(), specKey[:12], samples[:8])
	if d.SkipBroken {
		name += "-skipbroken"
	}
	return src, filepath.Join(d.CacheDir, name), nil
}

// isMedia reports whether source is a media data set, read through the
// preprocessing cache (OpenMedia).
func isMedia(source string) bool {
	switch source {
	case "avdigits", "cremad", "ave", "crisismmd":
		return true
	}
	return false
}

// LoadData returns the training and test sets a config names, with
// modalities in the config's order and, if asked, standardised with the
// training set's statistics (returned so they can be stored with the run).
// Media sources are read from their preprocessing cache, which is built
// first if needed. A nil log means slog.Default().
func LoadData(ctx context.Context, cfg *config.Config, log *slog.Logger) (train, test *data.Set, z *data.Standardizer, err error) {
	d, err := loadData(ctx, cfg, log, cfg.Data.Validation > 0)
	return d.train, d.test, d.z, err
}

// LoadTrain is LoadData for a participant's own data: the training set
// alone. An npz data set's test.npz may be absent; where it is there and
// the number of classes is inferred (data.num_classes 0), it is read for
// its labels, as by LoadData, so that a site whose training rows lack the
// last class still builds the federation's model.
func LoadTrain(ctx context.Context, cfg *config.Config, log *slog.Logger) (*data.Set, *data.Standardizer, error) {
	trainOnly := true
	if cfg.Data.Source == "npz" && cfg.Data.Validation == 0 && cfg.Data.NumClasses == 0 {
		if _, err := os.Stat(filepath.Join(cfg.Data.Dir, "test.npz")); err == nil {
			trainOnly = false
		}
	}
	d, err := loadData(ctx, cfg, log, trainOnly)
	return d.train, d.z, err
}

// loadData is LoadData, returning the sets, the standardiser and, for
// media, the cache folder read; trainOnly reads no test.npz (a tuning
// run's data, or a participant's), so that test is nil without
// data.validation.
func loadData(ctx context.Context, cfg *config.Config, log *slog.Logger, trainOnly bool) (federatedData, error) {
	if log == nil {
		log = slog.Default()
	}
	var train, test *data.Set
	var z *data.Standardizer
	var cache string
	var err error
	d := cfg.Data
	switch source := d.Source; {
	case isMedia(source):
		var src *data.Source
		src, cache, err = OpenMedia(cfg, func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) })
		if err == nil {
			train, test, err = data.Prepare(ctx, src, cache)
		}
	case source == "synthetic":
		s := d.Synthetic
		sc := data.SyntheticConfig{
			Modalities: s.Modalities, Dims: s.Dims,
			NumClasses: s.NumClasses, TrainPerClass: s.TrainPerClass, TestPerClass: s.TestPerClass,
			Signal: s.Signal, Noise: s.Noise,
			Seed: rng(cfg.Seed, streamData).Uint64(),
		}
		train, test, err = data.Synthetic(sc)
	case source == "npz":
		// A tuning run never reads test.npz: not even its labels may
		// change the number of classes it infers.
		train, test, err = data.LoadNPZWith(d.Dir, d.Modalities, data.NPZOptions{
			NumClasses: d.NumClasses, MaxBytes: int64(d.NPZMaxMB) << 20, Logger: log, TrainOnly: trainOnly})
	case source == "mfeat":
		train, test, err = data.LoadMfeat(d.Dir, d.Modalities, d.TestFraction, rng(cfg.Seed, streamData))
	default:
		err = fmt.Errorf("unknown data source %q", d.Source)
	}
	if err != nil {
		return federatedData{}, fmt.Errorf("sim: load data: %w", err)
	}
	if len(d.Modalities) >= 2 {
		if train, err = train.Select(d.Modalities...); err != nil {
			return federatedData{}, fmt.Errorf("sim: training set: %w", err)
		}
		if test != nil {
			if test, err = test.Select(d.Modalities...); err != nil {
				return federatedData{}, fmt.Errorf("sim: test set: %w", err)
			}
		}
	}
	if len(train.Modalities) < 2 || len(train.Modalities) > model.MaxModalities {
		return federatedData{}, fmt.Errorf("sim: data has modalities %v; choose 2 to %d with data.modalities", train.Modalities, model.MaxModalities)
	}
	if d.Validation > 0 {
		// Tuning runs evaluate on a stratified slice of the training set and
		// never see the test set.
		all := make([]int, train.Len())
		for i := range all {
			all[i] = i
		}
		keep, val := fl.HoldoutSplit(all, train.Labels, d.Validation, rng(cfg.Seed, streamValidation).Uint64())
		if test, err = train.Subset(val); err != nil {
			return federatedData{}, fmt.Errorf("sim: validation split: %w", err)
		}
		if train, err = train.Subset(keep); err != nil {
			return federatedData{}, fmt.Errorf("sim: validation split: %w", err)
		}
		log.Info("evaluating on a validation split of the training set, not on the test set", "validation", test.Len(), "train", train.Len())
	}
	if d.Standardize {
		z = data.FitStandardizer(train)
		if train, err = z.Apply(train); err != nil {
			return federatedData{}, fmt.Errorf("sim: standardise training set: %w", err)
		}
		if test != nil {
			if test, err = z.Apply(test); err != nil {
				return federatedData{}, fmt.Errorf("sim: standardise test set: %w", err)
			}
		}
	}
	return federatedData{train: train, test: test, z: z, cache: cache}, nil
}

// Arch returns the network a config asks for on data shaped like set.
// A CNN encoder reads the modality's sample shape: [H, W], [C, H, W], or
// [Frames, C, H, W] (frames averaged).
func Arch(cfg *config.Config, set *data.Set) (model.Arch, error) {
	nm := len(set.Modalities)
	if len(cfg.Model.Encoders) > nm {
		return model.Arch{}, fmt.Errorf("sim: model.encoders lists %d encoders for the data's %d modalities %v", len(cfg.Model.Encoders), nm, set.Modalities)
	}
	arch := model.Arch{
		Modalities: slices.Clone(set.Modalities),
		InputDims:  slices.Clone(set.Dims),
		Encoders:   make([]string, nm),
		CNN:        make([]model.CNN, nm),
		NumClasses: set.NumClasses,
		Hidden:     cfg.Model.Hidden,
		EmbedDim:   cfg.Model.EmbedDim,
		Projector:  cfg.Model.Projector,
		Fusion:     cfg.Model.Fusion,
	}
	for m := range nm {
		if m >= len(cfg.Model.Encoders) || cfg.Model.Encoders[m] != model.EncoderCNN {
			// "text" is an MLP over the hashed n-gram bag the loader computed.
			arch.Encoders[m] = model.EncoderMLP
			continue
		}
		arch.Encoders[m] = model.EncoderCNN
		shape := set.Shape(m)
		c := model.CNN{Frames: 1, Channels: cfg.Model.CNNChannels, Blocks: cfg.Model.CNNBlocks, StemStride: cfg.Model.CNNStem}
		switch len(shape) {
		case 2:
			c.Input = [3]int{1, shape[0], shape[1]}
		case 3:
			c.Input = [3]int{shape[0], shape[1], shape[2]}
		case 4:
			c.Frames, c.Input = shape[0], [3]int{shape[1], shape[2], shape[3]}
		default:
			return model.Arch{}, fmt.Errorf("sim: modality %q: a cnn encoder needs image-shaped samples ([H W], [C H W] or [frames C H W]), the data has shape %v; use mlp", set.Modalities[m], shape)
		}
		arch.CNN[m] = c
	}
	if err := arch.Validate(); err != nil {
		return model.Arch{}, fmt.Errorf("sim: %w", err)
	}
	return arch, nil
}

// Partition splits train among clients as the config says and allocates
// their modalities.
func Partition(cfg *config.Config, train *data.Set) ([][]int, []data.Mask, error) {
	var parts [][]int
	var err error
	r := rng(cfg.Seed, streamPartition)
	switch cfg.Data.Partition {
	case "iid":
		parts, err = data.IID(train.Len(), cfg.Clients, r)
	case "dirichlet":
		parts, err = data.Dirichlet(train.Labels, train.NumClasses, cfg.Clients, cfg.Data.Alpha, cfg.Data.MinSize, r)
	case "group":
		parts, _, err = data.ByGroup(train.Groups)
	default:
		err = fmt.Errorf("unknown partition %q", cfg.Data.Partition)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("sim: partition: %w", err)
	}
	masks, err := data.AllocateModalities(len(parts), len(train.Modalities), cfg.Data.MultiRatio, rng(cfg.Seed, streamModalities))
	if err != nil {
		return nil, nil, fmt.Errorf("sim: modalities: %w", err)
	}
	return parts, masks, nil
}

// StandardizerFile, in a run directory, holds the feature statistics
// applied to the data.
const StandardizerFile = "standardizer.json"

// Options are a simulation's non-experiment settings.
type Options struct {
	// Logger receives progress; nil uses slog.Default().
	Logger *slog.Logger
	// Progress, if not nil, receives one line per round.
	Progress io.Writer
	// Resume continues the run in the config's run directory after its
	// last completed round, from its checkpoint (CheckpointFile), to the
	// result an uninterrupted run gives. It refuses a directory whose
	// saved config differs (ErrConfigChanged) or whose data differ from
	// those it began on (ErrDataChanged), returns a completed run's result
	// without running anything, and starts from round 1 where no round was
	// checkpointed.
	Resume bool
	// Tracker, if not nil, follows the rounds and their training steps
	// (for a status line drawn by the caller).
	Tracker *Tracker
	// Status, if not nil, shows the run's progress (Tracker, or a tracker
	// of its own) live while it runs.
	Status *StatusLine
	// TuneGC lets a small run trade memory for speed: unless GOGC or
	// GOMEMLIMIT is set, a run whose training features and round's
	// updates take less than GCSmallData bytes lets the heap grow 5x
	// between collections (GOGC=400), others keep Go's default
	// (GOGC=100). It sets the process's garbage collector: for commands,
	// not libraries.
	TuneGC bool
	// Runs is how many runs share the process at once, as a sweep's cells
	// run in parallel (0 means 1). A CNN's graph nodes run in parallel
	// only where one client of one run trains at a time (see
	// model.NewBackend).
	Runs int

	// checkpointEvery, if > 0, writes a checkpoint after every
	// checkpointEvery-th round instead of by checkpointSpacing (tests).
	checkpointEvery int
}

// Result is what a finished (or interrupted) simulation produced.
type Result struct {
	Dir     string
	Schema  metrics.Schema
	Rounds  []metrics.Round
	Summary metrics.Summary
	// Own is the evaluation of the clients' own models at the end of a
	// completed run, when clients keep parts of their own (nil otherwise).
	Own *OwnModels
}

// OwnModels is the accuracy of the clients' own models on the evaluation
// set at the end of a run: each client that keeps parts of its own
// (personalised branches, Harmony's fine-tuned encoders) puts them into
// the final global model, as the authors of such methods evaluate them.
// A head is averaged over the clients that can compute it with the
// modalities they hold. The summary records it as "own_models".
type OwnModels struct {
	// Clients is how many clients' models were evaluated: those that keep
	// parts of their own, the first ownModelsMax of them in client order.
	Clients int `json:"clients"`
	// Of is how many clients keep parts of their own.
	Of int `json:"of"`
	// Mean and Std are per head, over the clients that can compute it
	// (population std); N is how many those are.
	Mean map[string]float64 `json:"mean"`
	Std  map[string]float64 `json:"std"`
	N    map[string]int     `json:"n"`
}

// ownModelsMax bounds how many clients' own models a run evaluates at its
// end (each is one pass over the evaluation set).
const ownModelsMax = 100

// evaluateOwnModels evaluates the own models of the clients that keep
// parts of their own, with the final global model, on set; nil if none.
func evaluateOwnModels(ctx context.Context, clients []*trackedClient, final model.Params, set *data.Set, heads []string) (*OwnModels, error) {
	var evs [][]float64
	of := 0
	for _, c := range clients {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !c.KeepsOwn() {
			continue
		}
		if of++; len(evs) == ownModelsMax {
			continue
		}
		ev, err := c.EvaluateOwn(final, set)
		if err != nil {
			return nil, fmt.Errorf("sim: %s's own model: %w", c.id, err)
		}
		evs = append(evs, ev.Heads)
	}
	if len(evs) == 0 {
		return nil, nil
	}
	own := &OwnModels{Clients: len(evs), Of: of, Mean: map[string]float64{}, Std: map[string]float64{}, N: map[string]int{}}
	col := make([]float64, len(evs))
	for h, name := range heads {
		for k, e := range evs {
			col[k] = e[h]
		}
		mean, std, n := metrics.MeanStd(col) // NaN heads (a client without the modality) left out
		if n == 0 {
			continue // no client computes it; JSON has no NaN
		}
		// The population std: the clients are all there are, not a sample.
		own.Mean[name], own.Std[name], own.N[name] = mean, std*math.Sqrt(float64(n-1)/float64(n)), n
	}
	return own, nil
}

// EvaluatedOn returns the set the global models of an experiment are
// evaluated on: "validation" if data.validation carves one out of the
// training set (tuning runs), else "test". The summary records it as
// "evaluated_on".
func EvaluatedOn(cfg *config.Config) string {
	if cfg.Data.Validation > 0 {
		return "validation"
	}
	return "test"
}

// checkpointSpacing bounds the time spent writing checkpoints to about
// 1/checkpointSpacing of the run: after a round, the checkpoint is written
// only if at least checkpointSpacing times the last write's duration has
// passed since it (always after rounds longer than that), and always when
// the run stops. A run killed outright (SIGKILL, power loss) resumes from
// the last one written, a few rounds back at most.
const checkpointSpacing = 20

// trackedClient notes that its client trained, so that the client's state
// is saved after the round.
type trackedClient struct {
	*fl.LocalClient
	id      string
	trained atomic.Bool
}

func (c *trackedClient) Fit(ctx context.Context, ins fl.FitIns) (fl.FitRes, error) {
	c.trained.Store(true)
	return c.LocalClient.Fit(ctx, ins)
}

// clientsKeepState reports whether cfg's clients carry state from round
// to round (fl.LocalClient's SCAFFOLD control variate, the parts it keeps
// for itself: personal branches, Harmony's fine-tuned encoders), which
// the checkpoint must then hold.
func clientsKeepState(cfg *config.Config) bool {
	m, err := fl.LookupMethod(cfg.Method)
	return err == nil && m.ClientState || cfg.FedCMI.Personalized
}

// Run runs the experiment cfg and writes its run directory. If ctx is
// cancelled, the rounds completed so far, the last global model and the
// summary are kept on disk, with a checkpoint to resume from (see
// Options.Resume), and Run returns them with ctx's error.
func Run(ctx context.Context, cfg config.Config, opt Options) (*Result, error) {
	if err := fl.CheckConfig(&cfg); err != nil {
		return nil, err
	}
	log := opt.Logger
	if log == nil {
		log = slog.Default()
	}
	dir := filepath.Join(cfg.OutDir, cfg.RunName())
	completed := opt.Resume && rundir.Completed(dir)
	if opt.Resume {
		// Refuse another experiment, or one that would lose its rounds,
		// before spending time on its data.
		if _, err := checkResumable(dir, cfg); err != nil {
			return nil, err
		}
		if !completed {
			if err := noCheckpointNoRounds(dir); err != nil {
				return nil, err
			}
		}
	}
	// Each of the runs at once holds a round's updates until it aggregates them.
	runs := max(1, opt.Runs)
	fed, err := PrepareFor(ctx, &cfg, log, clientsAtOnce(&cfg)*runs, min(cfg.ClientsPerRound, cfg.Clients)*runs)
	if err != nil {
		return nil, err
	}
	if err := checkClients(&cfg, fed); err != nil {
		return nil, err
	}
	if err := checkBatch(&cfg, fed.Parts); err != nil {
		return nil, err
	}
	train, test, z, engine := fed.Train, fed.Test, fed.Standardizer, fed.Engine
	mods := fed.Modalities()
	if opt.TuneGC {
		tuneGC(train, min(cfg.ClientsPerRound, len(fed.Parts))*fed.Global.NumElements(), log)
	}
	strategy, err := NewStrategy(&cfg, engine.Layout(), log)
	if err != nil {
		return nil, err
	}
	acct := Accountant(&cfg, len(fed.Parts))
	schema := fed.Schema()
	schema.Privacy = acct != nil
	heads := schema.Heads
	digest, err := ConfigDigest(cfg)
	if err != nil {
		return nil, err
	}
	if completed {
		log.Info("the run is complete: nothing to resume", "dir", dir)
		return storedResult(dir)
	}
	dataDigest := DataDigest(train, test)
	var ck *Checkpoint
	if opt.Resume {
		if ck, err = loadResumable(dir, fed, cfg, dataDigest); err != nil {
			return nil, err
		}
		if ck == nil {
			log.Info("no checkpoint to resume from: starting from round 1", "dir", dir)
		}
	}

	tracker := opt.Tracker
	if tracker == nil && opt.Status != nil {
		tracker = NewTracker()
	}
	clients := make(map[string]fl.Client, len(fed.Parts))
	infos := make([]fl.ClientInfo, len(fed.Parts))
	tracked := make([]*trackedClient, len(fed.Parts))
	samples := make(map[string]int, len(fed.Parts))
	kinds := map[string]int{}
	for i := range fed.Parts {
		c, err := fed.Client(i)
		if err != nil {
			return nil, err
		}
		infos[i] = fed.Info(i)
		id := infos[i].ID
		if tracker != nil {
			c.SetOnStep(func(round, done, total int) { tracker.step(id, round, done, total) })
		}
		tracked[i] = &trackedClient{LocalClient: c, id: id}
		clients[id] = tracked[i]
		samples[id] = infos[i].NumSamples
		kinds[fed.Masks[i].Format(mods)]++
	}
	byzantine(&cfg, clients)
	var store *clientStore // nil: the clients keep no state
	if clientsKeepState(&cfg) {
		store = newClientStore(filepath.Join(dir, ClientStateDir))
	}
	global, first, elapsed0 := fed.Global, 1, 0.0
	if ck != nil {
		if err := RestoreStrategy(strategy, ck.Strategy); err != nil {
			return nil, fmt.Errorf("sim: resume %s: %w", dir, err)
		}
		if store != nil {
			if err := restoreClients(store, ck.Round, tracked); err != nil {
				return nil, err
			}
		}
		global, first, elapsed0 = ck.Global, ck.Round+1, ck.Elapsed
	}

	run, err := rundir.Create(dir, schema, cfg.Overwrite || opt.Resume)
	if err != nil {
		if errors.Is(err, rundir.ErrExists) {
			return nil, fmt.Errorf("sim: %w (set a new name, -overwrite, or -resume)", err)
		}
		return nil, err
	}
	defer run.Close()
	if ck == nil && (cfg.Overwrite || opt.Resume) {
		// rundir clears the metrics; the files this package adds go too,
		// so nothing of the old run sits beside the new config.
		if err := removeRunFiles(dir); err != nil {
			return nil, fmt.Errorf("sim: overwrite: %w", err)
		}
	}
	saveModel := ModelSaver(run, mods, cfg.Method)
	if ck != nil {
		for _, r := range ck.Rounds {
			if err := run.AppendRound(r); err != nil {
				return nil, err
			}
		}
		// The model file may be of a round after the checkpoint's.
		if err := saveModel(ck.Global); err != nil {
			return nil, err
		}
	}
	if err := Restamp(run, CheckpointFile, ck, digest, schema); err != nil {
		return nil, err
	}
	if err := WriteRunFiles(run, &cfg, z); err != nil {
		return nil, err
	}
	if cfg.TensorBoard {
		if err := run.LogTensorBoard(); err != nil {
			return nil, err
		}
	}
	log.Info("simulation",
		"method", cfg.Method, "data", cfg.Data.Source, "modalities", mods, "train", train.Len(), EvaluatedOn(&cfg), test.Len(),
		"classes", train.NumClasses, "clients", len(fed.Parts), "kinds", kinds, "per_round", cfg.ClientsPerRound,
		"rounds", cfg.Rounds, "params", global.NumElements(), "dir", dir)
	if ck != nil {
		log.Info("resuming", "dir", dir, "after_round", ck.Round)
	}

	var srvStrategy fl.Strategy = strategy
	if tracker != nil {
		tracker.start(cfg.Rounds, first-1)
		srvStrategy = trackingStrategy{Strategy: strategy, tracker: tracker, samples: samples, batch: engine.BatchSize()}
	}
	if opt.Status != nil {
		opt.Status.Start(func() string { return tracker.Status().String() }, 250*time.Millisecond)
		defer opt.Status.Stop()
	}
	compiled := map[string]bool{}
	var last Checkpoint      // of the last completed round, without rounds and strategy state
	lastWritten := first - 1 // round of the last checkpoint written
	var written time.Time    // when it was written
	var cost time.Duration   // and how long writing it took
	saveCheckpoint := func() error {
		c := last
		c.Rounds = run.Rounds()
		if err := checkpoint(run, schema, strategy, tracked, store, &c); err != nil {
			return err
		}
		lastWritten = c.Round
		return nil
	}
	server := &fl.Server{
		Strategy:  srvStrategy,
		Transport: fl.NewInmemTransport(clients),
		Clients:   infos,
		Evaluate: func(ctx context.Context, p model.Params) (fl.Evaluation, error) {
			return fl.EvaluateSet(engine, p, test)
		},
		Parallelism: cfg.Parallel,
		Logger:      log,
		OnRound: func(m metrics.Round, p model.Params) error {
			m.Epsilon = EpsilonAt(acct, m.Round)
			m.Elapsed += elapsed0
			if tracker != nil {
				tracker.endRound(m.Round)
			}
			logCompileTimes(log, engine, compiled)
			if err := run.AppendRound(m); err != nil {
				return err
			}
			if opt.Progress != nil {
				eps := ""
				if acct != nil {
					eps = fmt.Sprintf("  epsilon %.3f", m.Epsilon)
				}
				fmt.Fprintf(opt.Progress, "round %3d/%d  %s  dominance %.3f  loss %.4f%s  %.2fs\n",
					m.Round, cfg.Rounds, ProgressHeads(heads, m.Heads), m.Dominance, m.TrainLoss, eps, m.Seconds)
			}
			if err := saveModel(p); err != nil {
				return err
			}
			last = Checkpoint{Round: m.Round, Global: p, ConfigDigest: digest, DataDigest: dataDigest, Elapsed: m.Elapsed}
			switch {
			case opt.checkpointEvery > 0 && m.Round-lastWritten < opt.checkpointEvery,
				opt.checkpointEvery == 0 && !written.IsZero() && time.Since(written) < checkpointSpacing*cost:
				return nil // see checkpointSpacing; written when the run stops
			}
			t0 := time.Now()
			if err := saveCheckpoint(); err != nil {
				return err
			}
			written, cost = time.Now(), time.Since(t0)
			return nil
		},
	}
	final, runErr := server.Run(ctx, global, first, cfg.Rounds)
	if runErr != nil && last.Round > lastWritten {
		// Stopped (Ctrl-C, a failure): save the last completed round.
		// The strategy's state is still that round's (fl.Stateful), and
		// a client that trained in the round cut short carries the state
		// it had before it, to train that round again on resume.
		if err := saveCheckpoint(); err != nil {
			runErr = errors.Join(runErr, err)
		}
	}
	extra := map[string]any{"method": cfg.Method, "seed": cfg.Seed, "evaluated_on": EvaluatedOn(&cfg), "compile_seconds": compileSeconds(engine),
		"data_digest": dataDigest}
	if fed.Cache != "" {
		// The cache folder names the samples read: a sweep tells a run on
		// other split lists by it even once the cache is gone.
		extra["data_cache"] = fed.Cache
	}
	if rounds := run.Rounds(); acct != nil && len(rounds) > 0 {
		extra["epsilon"], extra["delta"] = rounds[len(rounds)-1].Epsilon, cfg.DP.Delta
	}
	if ck != nil {
		extra["resumed_after_round"] = ck.Round
	}
	var own *OwnModels
	if runErr == nil {
		// Every round is done and saved: a failure or a stop here loses
		// only this extra measurement, not the run.
		var err error
		if own, err = evaluateOwnModels(ctx, tracked, final, test, heads); err != nil {
			log.Warn("the clients' own models were not evaluated", "err", err)
		} else if own != nil {
			extra["own_models"] = own
		}
	}
	res, err := Finish(run, dir, schema, extra, runErr, global, saveModel)
	if res != nil {
		res.Own = own
	}
	if err == nil {
		// The checkpoint only serves to resume an unfinished run.
		if err := removeCheckpoint(dir); err != nil {
			log.Warn("could not remove the checkpoint of the completed run", "dir", dir, "err", err)
		}
	}
	return res, err
}

// checkpoint saves, after a round, the states of the clients that trained
// since the last checkpoint (if clients keep state: store not nil), then
// the checkpoint c with the strategy's state, then lets the store drop the
// files it no longer needs (see clientStore).
func checkpoint(run *rundir.Run, schema metrics.Schema, strategy fl.Strategy, clients []*trackedClient, store *clientStore, c *Checkpoint) error {
	if store != nil {
		// A client's trained mark is cleared only once its state is
		// saved: a failed save, retried when the run stops, must save the
		// same states, or the checkpoint would pair this round with older
		// ones.
		states := map[string][]byte{}
		var saved []*trackedClient
		for _, tc := range clients {
			if !tc.trained.Load() {
				continue
			}
			b, err := tc.MarshalState()
			if err != nil {
				return fmt.Errorf("sim: %s: state: %w", tc.id, err)
			}
			states[tc.id] = b
			saved = append(saved, tc)
		}
		if err := store.save(c.Round, states); err != nil {
			return err
		}
		for _, tc := range saved {
			tc.trained.Store(false)
		}
	}
	var err error
	if c.Strategy, err = StrategyState(strategy); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if err := run.WriteAtomic(CheckpointFile, func(w io.Writer) error { return WriteCheckpoint(w, c, schema) }); err != nil {
		return err
	}
	if store != nil {
		return store.commit()
	}
	return nil
}

// loadResumable returns the checkpoint of the run in dir (nil: none, the
// run starts anew), checked against the experiment's digest and the
// training set's (a checkpoint that records none is not checked).
func loadResumable(dir string, fed *Federation, cfg config.Config, dataDigest string) (*Checkpoint, error) {
	ck, err := LoadCheckpoint(filepath.Join(dir, CheckpointFile), &fed.Arch)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sim: resume: %w (start anew with -overwrite)", err)
	}
	ok, err := CheckpointMatches(dir, cfg, ck.ConfigDigest)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("sim: resume: %s: %w: the checkpoint belongs to another configuration than %s (start anew with -overwrite)",
			dir, ErrConfigChanged, rundir.ConfigFile)
	}
	if err := SameData(dir, &cfg, ck.DataDigest, dataDigest, "simulate -overwrite, or remove this sweep cell's directory"); err != nil {
		return nil, err
	}
	return ck, nil
}

// SameData refuses the resume of the run in dir when the data digest its
// checkpoint recorded (none: an older fedcmi's, not checked) differs from
// the one of cfg's data read now, with an error wrapping ErrDataChanged
// that names the data and how to start anew.
func SameData(dir string, cfg *config.Config, recorded, now, anew string) error {
	if recorded == "" || recorded == now {
		return nil
	}
	return fmt.Errorf("sim: resume: %s: %w: the run began on training and test sets of digest %s, the data read now (%s) have %s: "+
		"another copy of the data, or features from another preprocessing or degradation (a newer fedcmi's); start the run anew (%s)",
		dir, ErrDataChanged, short(recorded), dataWhere(cfg), short(now), anew)
}

// noCheckpointNoRounds refuses to start the unfinished run in dir again
// from round 1 when it has no checkpoint but its metrics hold more than
// one round: a run saves its checkpoint after round 1, so such a run
// completed (and removed its checkpoint, but its summary is unreadable)
// or lost its checkpoint, and starting it again would replace the rounds
// it has.
func noCheckpointNoRounds(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, CheckpointFile)); !errors.Is(err, fs.ErrNotExist) {
		return nil // there is one (or loading it will say what is wrong)
	}
	_, rounds, err := rundir.ReadMetrics(dir)
	if err != nil || len(rounds) <= 1 {
		return nil // nothing worth keeping, or nothing readable
	}
	return fmt.Errorf("sim: resume: %s holds the metrics of %d rounds but no %s: resuming would start again from round 1 and replace them; "+
		"start anew with -overwrite, or check %s (a completed run's summary)", dir, len(rounds), CheckpointFile, rundir.SummaryFile)
}

// restoreClients gives each client the state saved in store with the
// checkpoint of round, if any.
func restoreClients(store *clientStore, round int, clients []*trackedClient) error {
	states, err := store.load(round)
	if err != nil {
		return fmt.Errorf("sim: resume: %w", err)
	}
	if len(states) == 0 && round >= 1 {
		// Every checkpoint after round 1 has some trained client's state.
		return fmt.Errorf("sim: resume: no client states in %s for the checkpoint of round %d: this method's clients keep state between rounds, "+
			"and resuming without it would not give the uninterrupted run's result; restore the folder, or start anew with -overwrite", store.dir, round)
	}
	for _, c := range clients {
		b, ok := states[c.id]
		if !ok {
			continue // never trained
		}
		if err := c.UnmarshalState(b); err != nil {
			return fmt.Errorf("sim: resume: %s: state in %s: %w", c.id, store.dir, err)
		}
	}
	return nil
}

// removeRunFiles removes the files of an earlier run this package wrote
// into dir besides the metrics.
func removeRunFiles(dir string) error {
	for _, name := range []string{rundir.ModelFile, StandardizerFile, rundir.TensorBoardFile} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return removeCheckpoint(dir)
}

// removeCheckpoint removes the checkpoint and the clients' states.
func removeCheckpoint(dir string) error {
	if err := os.Remove(filepath.Join(dir, CheckpointFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.RemoveAll(filepath.Join(dir, ClientStateDir))
}

// storedResult reads the result of the completed run in dir.
func storedResult(dir string) (*Result, error) {
	schema, rounds, err := rundir.ReadMetrics(dir)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	res := &Result{Dir: dir, Schema: schema, Rounds: rounds, Summary: metrics.Summarize(schema, rounds)}
	// The own models' evaluation, if the run made one (an unreadable
	// summary only loses that line).
	if extra, err := readSummaryExtra(dir); err == nil {
		res.Own = extra.Own
	}
	return res, nil
}

// logCompileTimes logs, at debug level, the graphs compiled since the last
// call (seen holds those logged).
func logCompileTimes(log *slog.Logger, e *model.Engine, seen map[string]bool) {
	times := e.CompileTimes()
	for _, name := range slices.Sorted(maps.Keys(times)) {
		if !seen[name] {
			seen[name] = true
			log.Debug("compiled graph", "graph", name, "seconds", times[name].Seconds())
		}
	}
}

// WriteRunFiles writes to run the resolved config cfg and, if z is not nil,
// the feature statistics applied to the data (StandardizerFile).
func WriteRunFiles(run *rundir.Run, cfg *config.Config, z *data.Standardizer) error {
	resolved, err := cfg.YAML()
	if err != nil {
		return err
	}
	if err := run.WriteFile(rundir.ConfigFile, resolved); err != nil {
		return err
	}
	if z == nil {
		return nil
	}
	zj, err := json.MarshalIndent(z, "", "  ")
	if err != nil {
		return fmt.Errorf("sim: standardizer: %w", err)
	}
	return run.WriteFile(StandardizerFile, zj)
}

// GCSmallData is the size of a run's training features and a round's
// updates (float32 values, each update held twice) under which
// Options.TuneGC raises GOGC to 400. The engine allocates a buffer per
// graph operation from pools that every collection empties, so a small
// model's run spends a quarter of its time allocating and clearing
// memory; with GOGC=400 the 26-class stand-in of the README ran 20-35%
// faster in about 3x the peak memory (about 300 MB). Large federations
// keep Go's default, and their small footprint.
const GCSmallData = 64 << 20

// tuneGC sets the garbage collector's target for a run on set whose rounds
// return updateValues values in all (see Options.TuneGC).
func tuneGC(set *data.Set, updateValues int, log *slog.Logger) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	percent, n := gcPercent(set, updateValues)
	debug.SetGCPercent(percent)
	log.Debug("garbage collector", "gogc", percent, "bytes", n)
}

// gcPercent returns the GOGC Options.TuneGC chooses for a run on set whose
// rounds return updateValues values in all, and the bytes it counted:
// 400 under GCSmallData, else Go's default 100.
func gcPercent(set *data.Set, updateValues int) (percent, bytes int) {
	n := heldValueBytes * updateValues
	for _, f := range set.Features {
		n += 4 * len(f)
	}
	if n < GCSmallData {
		return 400, n
	}
	return 100, n
}

// ProgressHeads formats a round's accuracies for a progress line: the
// fused head (the first) and each modality alone (the "<m>_only" heads of
// model.HeadNames), "fused 0.9800  audio_only 0.9300  ...".
func ProgressHeads(names []string, acc []float64) string {
	var b strings.Builder
	for _, h := range metrics.SingleHeads(names) {
		if h >= len(acc) {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("  ")
		}
		fmt.Fprintf(&b, "%s %.4f", names[h], acc[h])
	}
	return b.String()
}

// ModelSaver returns a function that writes a global model atomically to
// run's model file, with the data's modalities and the method as metadata.
func ModelSaver(run *rundir.Run, mods []string, method string) func(model.Params) error {
	meta := map[string]string{"modalities": strings.Join(mods, ","), "method": method}
	return func(p model.Params) error {
		return run.WriteAtomic(rundir.ModelFile, func(w io.Writer) error { return model.WriteParams(w, p, meta) })
	}
}

// Finish closes the experiment run stopped with runErr (nil: all rounds
// completed): it writes the summary with extra plus "completed" and, after
// an error, "stopped"; if no round completed, it saves initial, so that the
// directory holds a usable model. It returns the run's Result and runErr,
// or no Result and runErr joined with the error of writing.
func Finish(run *rundir.Run, dir string, schema metrics.Schema, extra map[string]any, runErr error, initial model.Params, save func(model.Params) error) (*Result, error) {
	extra["completed"] = runErr == nil
	if runErr != nil {
		extra["stopped"] = runErr.Error()
	}
	summary, err := run.Finish(extra)
	if err != nil {
		return nil, errors.Join(runErr, err)
	}
	if len(run.Rounds()) == 0 {
		if err := save(initial); err != nil {
			return nil, errors.Join(runErr, err)
		}
	}
	return &Result{Dir: dir, Schema: schema, Rounds: run.Rounds(), Summary: summary}, runErr
}

func compileSeconds(e *model.Engine) map[string]float64 {
	out := map[string]float64{}
	for k, v := range e.CompileTimes() {
		out[k] = v.Seconds()
	}
	return out
}
