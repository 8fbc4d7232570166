package sim

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/model"
)

// Federation is everything an experiment derives from its config before
// the first round: the data, its split among clients, the network and its
// initial parameters. The simulation and a deployment build it with
// Prepare, so that a deployed coordinator and its participants see the
// same model, clients and data as the simulation of the same config.
type Federation struct {
	// Train and Test are the data sets, standardised if the config says so
	// (with Standardizer, fitted on Train).
	Train, Test  *data.Set
	Standardizer *data.Standardizer
	// Cache is the preprocessing cache folder media data were read from
	// ("" for other sources).
	Cache string
	// Parts holds each client's training rows; Masks its modalities.
	Parts [][]int
	Masks []data.Mask
	// RowMasks holds each training row's modalities when samples miss
	// some (data.missing_sample_rate); nil otherwise.
	RowMasks []data.Mask
	// Arch and Engine are the network; Global its initial parameters.
	Arch   model.Arch
	Engine *model.Engine
	Global model.Params
	// Augment transforms training batches (nil: none).
	Augment fl.Augmenter
}

// Prepare loads the data cfg names, partitions it, and builds the network
// and its initial parameters, every random choice drawn from cfg.Seed.
func Prepare(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Federation, error) {
	return PrepareFor(ctx, cfg, log, clientsAtOnce(cfg), min(cfg.ClientsPerRound, cfg.Clients))
}

// PrepareFor is Prepare for a process that trains clients clients at
// once, which decides how the engine runs its graphs (see
// model.NewBackend): a deployed participant trains one. held is how many
// clients' updates the process keeps until it aggregates them (a round's
// for a simulation or a coordinator, none for a participant), which the
// memory check counts.
func PrepareFor(ctx context.Context, cfg *config.Config, log *slog.Logger, clients, held int) (*Federation, error) {
	d, err := prepareData(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	return build(cfg, d, clients, held)
}

// PrepareCoordinator is Prepare for a deployed coordinator, which keeps
// held updates until it aggregates them: its data give the model's shapes
// and the test set, and are not partitioned (its clients are the
// participants that register), so a training file of a few rows will do;
// Parts and Masks are nil.
func PrepareCoordinator(ctx context.Context, cfg *config.Config, log *slog.Logger, held int) (*Federation, error) {
	d, err := loadData(ctx, cfg, log, cfg.Data.Validation > 0)
	if err != nil {
		return nil, err
	}
	return build(cfg, d, 1, held)
}

// build makes the Federation of the data d: the network, its engine (for
// clients trained at once, held updates kept) and initial parameters.
func build(cfg *config.Config, d federatedData, clients, held int) (*Federation, error) {
	if err := checkMethodData(cfg, len(d.train.Modalities)); err != nil {
		return nil, err
	}
	arch, err := Arch(cfg, d.train)
	if err != nil {
		return nil, err
	}
	engine, err := newEngine(cfg, arch, clients, held)
	if err != nil {
		return nil, err
	}
	global, err := arch.Init(rng(cfg.Seed, streamInit).Uint64())
	if err != nil {
		return nil, err
	}
	shapes := make([][]int, len(d.train.Modalities))
	for m := range shapes {
		shapes[m] = d.train.Shape(m)
	}
	augment, err := augmenter(cfg.Data.Augment, shapes)
	if err != nil {
		return nil, err
	}
	return &Federation{
		Train: d.train, Test: d.test, Standardizer: d.z, Cache: d.cache, Parts: d.parts, Masks: d.masks, RowMasks: d.rows,
		Arch: arch, Engine: engine, Global: global, Augment: augment,
	}, nil
}

// federatedData is a run's data as its clients train on it: the
// training set (with its noisy labels, if any) and the test set, the
// standardiser, and the clients' rows, modalities and per-row modalities
// (see Federation).
type federatedData struct {
	train, test *data.Set
	z           *data.Standardizer
	cache       string // the media cache folder read ("" for other sources)
	parts       [][]int
	masks, rows []data.Mask
}

// prepareData loads the data cfg names, partitions it and applies the
// configured degradations: what a run trains and is evaluated on, which
// no method or server setting changes.
func prepareData(ctx context.Context, cfg *config.Config, log *slog.Logger) (federatedData, error) {
	if log == nil {
		log = slog.Default()
	}
	d, err := loadData(ctx, cfg, log, cfg.Data.Validation > 0)
	if err != nil {
		return d, err
	}
	if d.parts, d.masks, err = Partition(cfg, d.train); err != nil {
		return d, err
	}
	d.train, d.parts, d.masks, d.rows, err = degrade(cfg, d.train, d.parts, d.masks, log)
	return d, err
}

// checkMethodData checks that cfg's method can train on data of nm
// modalities.
func checkMethodData(cfg *config.Config, nm int) error {
	method, err := fl.LookupMethod(cfg.Method)
	if err != nil {
		return err
	}
	if err := method.CheckModalities(nm); err != nil {
		return &config.FieldError{Path: "method", Err: err}
	}
	if method.CheckData != nil {
		return method.CheckData(cfg, nm)
	}
	return nil
}

// checkClients checks a simulation's settings against the clients its
// data gave (data.partition group makes one per group; data.missing_rate
// may leave some out), not the clients field: the settings that depend on
// their number, and the method's needs of their modalities. (A deployed
// coordinator's clients are the participants that register.)
func checkClients(cfg *config.Config, fed *Federation) error {
	source := fmt.Sprintf("the %d clients the data gave", len(fed.Parts))
	if len(fed.Parts) == cfg.Clients {
		source = fmt.Sprintf("the %d clients", cfg.Clients)
	}
	if err := cfg.CheckClientCount(len(fed.Parts), source); err != nil {
		return err
	}
	method, err := fl.LookupMethod(cfg.Method)
	if err != nil {
		return err
	}
	if method.CheckClients != nil {
		return method.CheckClients(cfg, fed.Masks)
	}
	return nil
}

// RunDataDigest is the data digest (DataDigest) that a run of cfg
// records in its checkpoint and summary.json, from cfg's data as they
// read now: a run directory whose recorded digest differs ran on other
// data.
func RunDataDigest(ctx context.Context, cfg config.Config, log *slog.Logger) (string, error) {
	if err := fl.CheckConfig(&cfg); err != nil {
		return "", err
	}
	d, err := prepareData(ctx, &cfg, log)
	if err != nil {
		return "", err
	}
	return DataDigest(d.train, d.test), nil
}

// NewEngine returns an engine running arch on cfg's backend with cfg's
// training batch size, for a caller that trains clients clients at once
// (see model.NewBackend). An experiment whose training would need more
// than the machine's memory (a rough estimate of parameters and
// activations) is an error naming the field to change.
func NewEngine(cfg *config.Config, arch model.Arch, clients int) (*model.Engine, error) {
	return newEngine(cfg, arch, clients, 0)
}

// newEngine is NewEngine for a process that also keeps held updates until
// it aggregates them (PrepareFor).
func newEngine(cfg *config.Config, arch model.Arch, clients, held int) (*model.Engine, error) {
	if err := checkMemory(cfg, &arch, clients, held); err != nil {
		return nil, err
	}
	backend, err := model.NewBackend(cfg.Backend, arch, clients)
	if err != nil {
		return nil, err
	}
	return model.NewEngine(backend, arch, cfg.Train.BatchSize)
}

// Modalities returns the names of the data's modalities.
func (f *Federation) Modalities() []string {
	return slices.Clone(f.Train.Modalities)
}

// Schema returns the metrics schema of the federation's runs: the heads
// named after the modalities and the classes 0..k-1.
func (f *Federation) Schema() metrics.Schema {
	heads := model.HeadNames(f.Modalities())
	schema := metrics.Schema{Heads: heads}
	for c := range f.Train.NumClasses {
		schema.Classes = append(schema.Classes, strconv.Itoa(c))
	}
	return schema
}

// clientsAtOnce is how many clients a simulation of cfg trains at once.
func clientsAtOnce(cfg *config.Config) int {
	return min(cfg.Parallel, cfg.ClientsPerRound, cfg.Clients)
}

// ClientID is the ID of the i-th client (0-based): client-0000, ... The
// strategy samples clients by their position in the ID-sorted list.
func ClientID(i int) string { return fmt.Sprintf("client-%04d", i) }

// Client returns the i-th client, training on its rows of f.Train.
func (f *Federation) Client(i int) (*fl.LocalClient, error) {
	if i < 0 || i >= len(f.Parts) {
		return nil, fmt.Errorf("sim: client %d of %d", i, len(f.Parts))
	}
	c, err := fl.NewLocalClient(f.Engine, f.Train, f.Parts[i], f.Masks[i])
	if err != nil {
		return nil, fmt.Errorf("sim: %s: %w", ClientID(i), err)
	}
	c.SetAugmenter(f.Augment)
	if f.RowMasks != nil {
		if err := c.SetRowModalities(f.RowMasks); err != nil {
			return nil, fmt.Errorf("sim: %s: %w", ClientID(i), err)
		}
	}
	return c, nil
}

// Info is what the server knows of the i-th client.
func (f *Federation) Info(i int) fl.ClientInfo {
	return fl.ClientInfo{ID: ClientID(i), Modalities: f.Masks[i], NumSamples: len(f.Parts[i])}
}

// NewStrategy returns the server-side strategy of cfg's method for a model
// of the given layout: modality-aware averaging, wrapped by the baselines
// that have their own server side (fl.Method.NewStrategy); with server options
// (server.*, dp.*) other than plain FedAvg, every method aggregates
// through one fl.ServerSide (fl.WithServerSide). cfg has passed
// fl.CheckConfig (Run and deploy.Serve check it first).
func NewStrategy(cfg *config.Config, layout []model.ParamInfo, log *slog.Logger) (fl.Strategy, error) {
	method, err := fl.LookupMethod(cfg.Method)
	if err != nil {
		return nil, err
	}
	base := &fl.ModalityAware{
		Method: method,
		Schedule: fl.Schedule{
			Rounds: cfg.Rounds, Epochs: cfg.Train.Epochs, LR: cfg.Train.LR, LRMin: cfg.Train.LRMin,
			LRDecayStart: cfg.Train.LRDecayStart, Momentum: cfg.Train.Momentum, WeightDecay: cfg.Train.WeightDecay,
		},
		Options: fl.FedCMIOptions{
			Alpha: cfg.FedCMI.Alpha, C1: cfg.FedCMI.C1, C3: cfg.FedCMI.C3, Temperature: cfg.FedCMI.Temperature,
			Warmup: cfg.FedCMI.Warmup, Mu: cfg.FedCMI.Mu, Personalized: cfg.FedCMI.Personalized,
			Holdout: cfg.FedCMI.Holdout, Smoothing: cfg.FedCMI.Smoothing, ClassDirection: cfg.FedCMI.ClassDirection,
		},
		PerRound: cfg.ClientsPerRound,
		Seed:     cfg.Seed,
		Layout:   layout,
		Logger:   log,
	}
	side, err := serverSide(cfg, layout, log)
	if err != nil {
		return nil, err
	}
	if side == nil {
		return method.NewStrategy(base, cfg), nil
	}
	// Set before NewStrategy: FedMDrop copies base.
	base.Server = side
	return fl.WithServerSide(method.NewStrategy(base, cfg), side), nil
}
