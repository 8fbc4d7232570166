package sim

import (
	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/fl"
)

// baselineStrategy wraps base in the strategy of a baseline method that
// has its own server side (SCAFFOLD's control variates, Harmony's stages);
// every other method uses base itself.
func baselineStrategy(method fl.Method, base *fl.ModalityAware, cfg *config.Config) fl.Strategy {
	switch {
	case method.Scaffold:
		return &fl.Scaffold{Base: base}
	case method.Harmony:
		return &fl.Harmony{Base: base, UnimodalRounds: cfg.HarmonyUnimodalRounds()}
	}
	return base
}
