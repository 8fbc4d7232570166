package sim

import (
	"log/slog"
	"math"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/model"
)

// serverOptions returns the server-side options a config sets.
func serverOptions(cfg *config.Config) fl.ServerOptions {
	s, d := cfg.Server, cfg.DP
	o := fl.ServerOptions{
		Optimizer: s.Optimizer, LR: cfg.ServerLR(), Momentum: s.Momentum, Beta1: s.Beta1, Beta2: s.Beta2, Tau: s.Tau,
		Robust: fl.RobustOptions{Aggregator: s.Aggregator, Trim: s.Trim, KrumF: s.KrumF, MultiKrumM: s.MultiKrumM},
		Seed:   cfg.Seed,
	}
	if d.Clip > 0 {
		o.DP = fl.DPOptions{
			Clip: d.Clip, NoiseMultiplier: d.NoiseMultiplier, ClientNoise: d.Noise == "client",
			Adaptive: d.Adaptive, TargetQuantile: d.TargetQuantile, ClipLR: d.ClipLR, Delta: d.Delta,
		}
		if d.Adaptive && d.NoiseMultiplier > 0 {
			o.DP.CountStd = cfg.DPCountStd()
		}
	}
	return o
}

// serverSide returns the ServerSide of cfg, or nil for plain FedAvg
// averaging (which then runs exactly the code it ran before server
// options existed).
func serverSide(cfg *config.Config, layout []model.ParamInfo, log *slog.Logger) (*fl.ServerSide, error) {
	o := serverOptions(cfg)
	if o.Plain() {
		return nil, nil
	}
	return fl.NewServerSide(o, layout, min(cfg.ClientsPerRound, cfg.Clients), log)
}

// Accountant returns the privacy accountant of cfg's differential privacy
// over a federation of clients clients (sampling rate clients_per_round
// over clients), or nil without privacy noise.
func Accountant(cfg *config.Config, clients int) *fl.Accountant {
	if cfg.DP.Clip == 0 || cfg.DP.NoiseMultiplier == 0 || clients < 1 {
		return nil
	}
	q := float64(min(cfg.ClientsPerRound, clients)) / float64(clients)
	return &fl.Accountant{Q: q, Sigma: cfg.DP.NoiseMultiplier, Delta: cfg.DP.Delta}
}

// EpsilonAt returns the epsilon a spent after round, NaN if a is nil.
func EpsilonAt(a *fl.Accountant, round int) float64 {
	if a == nil {
		return math.NaN()
	}
	eps, _ := a.Epsilon(round)
	return eps
}

// byzantine wraps the first attack.clients clients in fl.Byzantine.
func byzantine(cfg *config.Config, clients map[string]fl.Client) {
	for i := range cfg.Attack.Clients {
		id := ClientID(i)
		if c, ok := clients[id]; ok {
			clients[id] = &fl.Byzantine{Client: c, Attack: cfg.Attack.Kind, Factor: cfg.Attack.Factor}
		}
	}
}
