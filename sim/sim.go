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
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

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

// LoadData returns the training and test sets a config names, with
// modalities in the config's order and, if asked, standardised with the
// training set's statistics (returned so they can be stored with the run).
// Media sources are read from their preprocessing cache, which is built
// first if needed.
func LoadData(ctx context.Context, cfg *config.Config, log *slog.Logger) (train, test *data.Set, z *data.Standardizer, err error) {
	d := cfg.Data
	switch d.Source {
	case "avdigits", "cremad", "ave", "crisismmd":
		var src *data.Source
		var dir string
		src, dir, err = OpenMedia(cfg, func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) })
		if err == nil {
			train, test, err = data.Prepare(ctx, src, dir)
		}
	case "synthetic":
		s := d.Synthetic
		sc := data.SyntheticConfig{
			Modalities: [2]string{s.Modalities[0], s.Modalities[1]},
			Dims:       [2]int{s.Dims[0], s.Dims[1]},
			NumClasses: s.NumClasses, TrainPerClass: s.TrainPerClass, TestPerClass: s.TestPerClass,
			Signal: [2]float64{s.Signal[0], s.Signal[1]}, Noise: s.Noise,
			Seed: rng(cfg.Seed, streamData).Uint64(),
		}
		train, test, err = data.Synthetic(sc)
	case "npz":
		train, test, err = data.LoadNPZ(d.Dir, d.Modalities, d.NumClasses)
	case "mfeat":
		train, test, err = data.LoadMfeat(d.Dir, d.Modalities, d.TestFraction, rng(cfg.Seed, streamData))
	default:
		err = fmt.Errorf("unknown data source %q", d.Source)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("sim: load data: %w", err)
	}
	if len(d.Modalities) == 2 {
		if train, err = train.Select(d.Modalities...); err != nil {
			return nil, nil, nil, fmt.Errorf("sim: training set: %w", err)
		}
		if test, err = test.Select(d.Modalities...); err != nil {
			return nil, nil, nil, fmt.Errorf("sim: test set: %w", err)
		}
	}
	if len(train.Modalities) != 2 {
		return nil, nil, nil, fmt.Errorf("sim: data has modalities %v; choose two with data.modalities", train.Modalities)
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
			return nil, nil, nil, fmt.Errorf("sim: validation split: %w", err)
		}
		if train, err = train.Subset(keep); err != nil {
			return nil, nil, nil, fmt.Errorf("sim: validation split: %w", err)
		}
		log.Info("evaluating on a validation split of the training set, not on the test set", "validation", test.Len(), "train", train.Len())
	}
	if d.Standardize {
		z = data.FitStandardizer(train)
		if train, err = z.Apply(train); err != nil {
			return nil, nil, nil, fmt.Errorf("sim: standardise training set: %w", err)
		}
		if test, err = z.Apply(test); err != nil {
			return nil, nil, nil, fmt.Errorf("sim: standardise test set: %w", err)
		}
	}
	return train, test, z, nil
}

// Arch returns the network a config asks for on data shaped like set.
// A CNN encoder reads the modality's sample shape: [H, W], [C, H, W], or
// [Frames, C, H, W] (frames averaged).
func Arch(cfg *config.Config, set *data.Set) (model.Arch, error) {
	arch := model.Arch{
		Modalities: [2]string{set.Modalities[0], set.Modalities[1]},
		InputDims:  [2]int{set.Dims[0], set.Dims[1]},
		NumClasses: set.NumClasses,
		Hidden:     cfg.Model.Hidden,
		EmbedDim:   cfg.Model.EmbedDim,
		Projector:  cfg.Model.Projector,
		Fusion:     cfg.Model.Fusion,
	}
	for m := range 2 {
		if cfg.Model.Encoders[m] != model.EncoderCNN {
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
	masks, err := data.AllocateModalities(len(parts), cfg.Data.MultiRatio, rng(cfg.Seed, streamModalities))
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
}

// Result is what a finished (or interrupted) simulation produced.
type Result struct {
	Dir     string
	Schema  metrics.Schema
	Rounds  []metrics.Round
	Summary metrics.Summary
}

// Run runs the experiment cfg and writes its run directory. If ctx is
// cancelled, the rounds completed so far, the last global model and the
// summary are kept on disk and Run returns them with ctx's error.
func Run(ctx context.Context, cfg config.Config, opt Options) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := opt.Logger
	if log == nil {
		log = slog.Default()
	}
	fed, err := Prepare(ctx, &cfg, log)
	if err != nil {
		return nil, err
	}
	train, test, z, engine, global := fed.Train, fed.Test, fed.Standardizer, fed.Engine, fed.Global
	mods := fed.Modalities()
	strategy, err := NewStrategy(&cfg, engine.Layout(), log)
	if err != nil {
		return nil, err
	}
	clients := make(map[string]fl.Client, len(fed.Parts))
	infos := make([]fl.ClientInfo, len(fed.Parts))
	kinds := map[string]int{}
	for i := range fed.Parts {
		c, err := fed.Client(i)
		if err != nil {
			return nil, err
		}
		infos[i] = fed.Info(i)
		clients[infos[i].ID] = c
		kinds[fed.Masks[i].Format(mods[:])]++
	}

	schema := fed.Schema()
	heads := schema.Heads
	dir := filepath.Join(cfg.OutDir, cfg.RunName())
	run, err := rundir.Create(dir, schema, cfg.Overwrite)
	if err != nil {
		if errors.Is(err, rundir.ErrExists) {
			return nil, fmt.Errorf("sim: %w (set a new name, or -overwrite)", err)
		}
		return nil, err
	}
	defer run.Close()
	if cfg.Overwrite {
		// rundir clears the metrics; the files this package adds go too,
		// so nothing of the old run sits beside the new config.
		for _, name := range []string{rundir.ModelFile, StandardizerFile} {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("sim: overwrite: %w", err)
			}
		}
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
		"method", cfg.Method, "data", cfg.Data.Source, "modalities", mods, "train", train.Len(), "test", test.Len(),
		"classes", train.NumClasses, "clients", len(fed.Parts), "kinds", kinds, "per_round", cfg.ClientsPerRound,
		"rounds", cfg.Rounds, "params", global.NumElements(), "dir", dir)

	saveModel := ModelSaver(run, mods, cfg.Method)
	server := &fl.Server{
		Strategy:  strategy,
		Transport: fl.NewInmemTransport(clients),
		Clients:   infos,
		Evaluate: func(ctx context.Context, p model.Params) (fl.Evaluation, error) {
			return fl.EvaluateSet(engine, p, test)
		},
		Parallelism: cfg.Parallel,
		Logger:      log,
		OnRound: func(m metrics.Round, p model.Params) error {
			if err := run.AppendRound(m); err != nil {
				return err
			}
			if opt.Progress != nil {
				fmt.Fprintf(opt.Progress, "round %3d/%d  %s %.4f  %s %.4f  %s %.4f  dominance %.3f  loss %.4f  %.2fs\n",
					m.Round, cfg.Rounds, heads[0], m.Heads[0], heads[1], m.Heads[1], heads[2], m.Heads[2],
					m.Dominance, m.TrainLoss, m.Seconds)
			}
			return saveModel(p)
		},
	}
	_, runErr := server.Run(ctx, global, 1, cfg.Rounds)
	extra := map[string]any{"method": cfg.Method, "seed": cfg.Seed, "compile_seconds": compileSeconds(engine)}
	return Finish(run, dir, schema, extra, runErr, global, saveModel)
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

// ModelSaver returns a function that writes a global model atomically to
// run's model file, with the data's modalities and the method as metadata.
func ModelSaver(run *rundir.Run, mods [2]string, method string) func(model.Params) error {
	meta := map[string]string{"modalities": mods[0] + "," + mods[1], "method": method}
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
