package sim

import (
	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/fl"
)

// baselineStrategy wraps base in the strategy of a baseline method that
// has its own server side (SCAFFOLD's control variates, Harmony's stages,
// OGM-GE's and PMR's recipes, FedMDrop's client and modality selection,
// ...); every other method uses base itself.
func baselineStrategy(method fl.Method, base *fl.ModalityAware, cfg *config.Config) fl.Strategy {
	switch {
	case method.Scaffold:
		return &fl.Scaffold{Base: base}
	case method.Harmony:
		return &fl.Harmony{Base: base, UnimodalRounds: cfg.HarmonyUnimodalRounds()}
	case method.GB:
		return &fl.GradBlend{Base: base, Smoothing: cfg.FedGB.Smoothing, Floor: cfg.FedGB.Floor}
	case method.OGM:
		return &fl.OGMGE{ModalityAware: base, Options: fl.OGMOptions{Alpha: cfg.OGM.Alpha, StartRound: cfg.OGM.StartRound, EndRound: cfg.OGM.EndRound}}
	case method.PMR:
		return &fl.PMR{ModalityAware: base, Options: pmrOptions(cfg)}
	case method.Relearn:
		return &fl.Relearn{Base: base, Lambda: cfg.FedRelearn.Lambda, Every: cfg.FedRelearn.Every, Rounds: cfg.Rounds}
	case method.MDrop:
		o := cfg.FedMDrop
		return &fl.FedMDrop{
			ModalityAware: *base,
			Options:       fl.FedMDropOptions{Alpha: o.Alpha, Threshold: o.Threshold, Subsample: o.Subsample},
		}
	}
	return base
}
