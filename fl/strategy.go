package fl

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"

	"github.com/fedcmi/fedcmi/model"
)

// Strategy is the server's policy: which clients train a round, with what
// instructions, and how their results become the next global model. It does
// no I/O, so the simulation and a network deployment share it.
type Strategy interface {
	// ConfigureFit returns the instructions of round (1-based) for some of
	// the available clients; an empty list skips the round.
	ConfigureFit(round int, global model.Params, clients []ClientInfo) ([]Instruction, error)
	// AggregateFit merges the results of round into a new global model.
	// It returns nil to keep global (no usable result).
	AggregateFit(round int, global model.Params, results []Result, failures []Failure) (model.Params, error)
}

// Schedule holds the optimisation settings shared by all methods.
type Schedule struct {
	// Rounds is the total number of rounds (for the learning-rate decay).
	Rounds int
	// Epochs is the number of local epochs.
	Epochs int
	// LR is the initial learning rate; after LRDecayStart rounds it decays
	// linearly to LRMin at the last round (the reference code's schedule).
	LR, LRMin    float64
	LRDecayStart int
	// Momentum and WeightDecay configure SGD.
	Momentum, WeightDecay float64
}

// LearningRate returns the learning rate of round (1-based).
func (s Schedule) LearningRate(round int) float64 {
	if round <= s.LRDecayStart || s.Rounds <= s.LRDecayStart {
		return s.LR
	}
	frac := float64(round-s.LRDecayStart) / float64(s.Rounds-s.LRDecayStart)
	return s.LR - (s.LR-s.LRMin)*min(frac, 1)
}

// FedCMIOptions are the method's hyper-parameters (method note defaults).
type FedCMIOptions struct {
	Alpha        float64 // weight of the infiltration loss (1)
	C1           float64 // weight of the unimodal self-head losses (2)
	C3           float64 // class-wise temperature strength (2)
	Temperature  float64 // global temperature when class-wise is off (1)
	Warmup       int     // number of first rounds without infiltration (1)
	Mu           float64 // proximal coefficient for fedprox and fedcmi (1)
	Personalized bool    // keep infiltration projectors and classifiers local
	// Holdout is the fraction of each class held out for measuring
	// dominance by methods that hold out (0.2).
	Holdout float64
	// Smoothing is the weight of the previous rounds in the federated
	// dominance table (0.5; 0 uses the last round alone).
	Smoothing float64
	// ClassDirection gives each class its own infiltration direction in
	// the variants that measure dominance before training.
	ClassDirection bool
}

// ModalityAware is the strategy of FedAvg, FedProx and FedCMI: uniform
// seeded sampling of PerRound clients and modality-aware averaging.
type ModalityAware struct {
	Method   Method
	Schedule Schedule
	Options  FedCMIOptions
	// PerRound is K, the number of clients sampled each round (all if
	// larger than the number available).
	PerRound int
	// Seed drives sampling and client shuffling.
	Seed uint64
	// Layout is the model's parameter layout.
	Layout []model.ParamInfo
	// Logger receives rejected results; nil uses slog.Default().
	Logger *slog.Logger
	// Server, if not nil, aggregates in place of AggregateModalityAware:
	// a robust or private aggregate and a server optimizer step. Every
	// strategy built on ModalityAware aggregates through it.
	Server *ServerSide

	// table is the pooled dominance table (DominanceFederated).
	table *DominanceTable
}

// logger is Logger, or slog.Default() without one.
func (s *ModalityAware) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

// numModalities is the model's number of modalities, M.
func (s *ModalityAware) numModalities() int { return LayoutModalities(s.Layout) }

// LayoutModalities is the number of modalities of a parameter layout: one
// more than the largest Side.
func LayoutModalities(layout []model.ParamInfo) int {
	nm := 0
	for _, p := range layout {
		nm = max(nm, p.Side+1)
	}
	return nm
}

// Sample returns the indices of k of n clients for round, chosen uniformly
// without replacement from a generator seeded by (seed, round) alone, in
// ascending order.
func Sample(n, k int, seed uint64, round int) []int {
	rng := rand.New(rand.NewPCG(seed, uint64(round)))
	perm := rng.Perm(n)
	idx := perm[:min(k, n)]
	slices.Sort(idx)
	return idx
}

// clientSeed derives the shuffling seed of client i in round.
func clientSeed(seed uint64, round, i int) uint64 {
	return rand.New(rand.NewPCG(seed^0x636c69656e74, uint64(round)<<32|uint64(i))).Uint64()
}

// ConfigureFit implements Strategy.
func (s *ModalityAware) ConfigureFit(round int, global model.Params, clients []ClientInfo) ([]Instruction, error) {
	if len(clients) == 0 {
		return nil, errors.New("fl: no clients available")
	}
	cfg := s.fitConfig(round)
	var out []Instruction
	for _, i := range Sample(len(clients), s.PerRound, s.Seed, round) {
		c := cfg
		c.Seed = clientSeed(s.Seed, round, i)
		out = append(out, Instruction{ClientID: clients[i].ID, Ins: FitIns{Params: global, Config: c}})
	}
	return out, nil
}

// fitConfig returns the recipe of round shared by the sampled clients
// (without their seeds).
func (s *ModalityAware) fitConfig(round int) FitConfig {
	cfg := FitConfig{
		Round:       round,
		Epochs:      s.Schedule.Epochs,
		LR:          s.Schedule.LearningRate(round),
		C1:          s.Options.C1,
		WeightDecay: s.Schedule.WeightDecay,
		Momentum:    s.Schedule.Momentum,
		FedCMI: FedCMIFit{
			Infiltration:     s.Method.Infiltration && round > s.Options.Warmup,
			ClassTemperature: s.Method.ClassTemperature,
			Alpha:            s.Options.Alpha,
			C3:               s.Options.C3,
			Temperature:      s.Options.Temperature,
			Personalized:     s.Options.Personalized,
		},
	}
	if s.Method.Prox {
		cfg.Mu = s.Options.Mu
	}
	if s.Method.FusedOnly {
		cfg.C1 = 0
	}
	if s.Method.Dominance != DominanceBatch {
		cfg.FedCMI.Dominance = s.Method.Dominance
		cfg.FedCMI.ClassDirection = s.Options.ClassDirection
		cfg.FedCMI.Table = s.table.Clone()
	}
	if s.Method.Holdout {
		cfg.FedCMI.Holdout = s.Options.Holdout
		cfg.FedCMI.HoldoutSeed = rand.New(rand.NewPCG(s.Seed^0x686f6c646f7574, 0)).Uint64()
	}
	return cfg
}

// AggregateFit implements Strategy. Results that do not match the layout
// (names, shapes, non-finite values), claim no samples or carry an
// implausible privacy indicator (ServerSide.checkUnclipped) are rejected
// and logged, never averaged in.
func (s *ModalityAware) AggregateFit(round int, global model.Params, results []Result, failures []Failure) (model.Params, error) {
	log := s.logger()
	var updates []Update
	var stats []ClassStats
	var unclipped []float64
	for _, r := range results {
		if err := CheckUpdate(s.Layout, r.Res); err != nil {
			log.Warn("rejected update", "round", round, "client", r.ClientID, "err", err)
			continue
		}
		if s.Server != nil {
			// A NaN or huge indicator would ruin the adaptive clip of
			// every later round.
			if err := s.Server.checkUnclipped(r.Res.Metrics.DPUnclipped); err != nil {
				log.Warn("rejected update", "round", round, "client", r.ClientID, "err", err)
				continue
			}
		}
		if s.Method.Dominance == DominanceFederated && r.Res.Metrics.FedCMI.ClassStats != nil {
			cs := *r.Res.Metrics.FedCMI.ClassStats
			k := cs.Len()
			if s.table != nil {
				k = s.table.Len()
			} else if len(stats) > 0 {
				k = stats[0].Len()
			}
			if err := cs.Validate(s.numModalities(), k); err != nil {
				log.Warn("rejected update", "round", round, "client", r.ClientID, "err", err)
				continue
			}
			stats = append(stats, cs)
		}
		updates = append(updates, Update{Params: r.Res.Params, NumSamples: r.Res.NumSamples, Modalities: r.Res.Modalities})
		unclipped = append(unclipped, r.Res.Metrics.DPUnclipped)
	}
	if len(updates) == 0 {
		return nil, nil
	}
	next, err := s.aggregate(round, global, updates, unclipped)
	if err == nil && len(stats) > 0 {
		// Pooled only with a round that counts, so the table and the
		// model saved with it stay of the same round.
		s.table = PoolStats(s.table, stats, s.numModalities(), stats[0].Len(), s.Options.Smoothing)
	}
	return next, err
}

// aggregate merges the accepted updates of round: through Server if set,
// else by AggregateModalityAware. unclipped are the clients' indicators of
// client-side privacy (nil if none).
func (s *ModalityAware) aggregate(round int, global model.Params, updates []Update, unclipped []float64) (model.Params, error) {
	if s.Server == nil {
		return AggregateModalityAware(s.Layout, global, updates)
	}
	return s.Server.Aggregate(round, global, updates, unclipped)
}

// CheckUpdate validates a client's result against the layout: tensor names
// in order, shapes, finite values, a positive sample count and at least one
// modality.
func CheckUpdate(layout []model.ParamInfo, res FitRes) error {
	if res.NumSamples < 1 {
		return fmt.Errorf("fl: update claims %d samples", res.NumSamples)
	}
	if res.Modalities == 0 {
		return errors.New("fl: update holds no modality")
	}
	if len(res.Params) != len(layout) {
		return fmt.Errorf("fl: update has %d tensors, want %d", len(res.Params), len(layout))
	}
	for i, info := range layout {
		t := res.Params[i]
		if t.Name != info.Name || !slices.Equal(t.Shape, info.Shape) || len(t.Data) != info.Size() {
			return fmt.Errorf("fl: update tensor %d is %q %v (%d values), want %q %v", i, t.Name, t.Shape, len(t.Data), info.Name, info.Shape)
		}
		for j, v := range t.Data {
			if v != v || v > 3.4e38 || v < -3.4e38 {
				return fmt.Errorf("fl: update tensor %q value %d is %v", t.Name, j, v)
			}
		}
	}
	return nil
}

// MarshalState implements Stateful: the pooled dominance table (null for
// methods without one).
func (s *ModalityAware) MarshalState() ([]byte, error) { return marshalTable(s.table) }

// UnmarshalState implements Stateful.
func (s *ModalityAware) UnmarshalState(data []byte) error {
	t, err := unmarshalTable(data)
	if err != nil {
		return err
	}
	s.table = t
	return nil
}

// Table returns a copy of the pooled dominance table (nil if none).
func (s *ModalityAware) Table() *DominanceTable { return s.table.Clone() }
