package sim

import (
	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/fl"
)

// pmrOptions returns the PMR hyper-parameters a config sets.
func pmrOptions(cfg *config.Config) fl.PMROptions {
	p := cfg.PMR
	return fl.PMROptions{
		Alpha: p.Alpha, Gamma: p.Gamma, EntropyRounds: p.EntropyRounds,
		Binary: p.Coefficient == "binary", Momentum: p.Momentum,
	}
}
