package sim

import (
	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/fl"
)

// methodStrategy returns the server strategy of method: base (FedAvg's
// sampling and modality-aware averaging) for most methods, FedMDrop's
// selection around it for fedmdrop.
func methodStrategy(method fl.Method, base fl.Strategy, cfg *config.Config) fl.Strategy {
	ma, ok := base.(*fl.ModalityAware)
	if !method.MDrop || !ok {
		return base
	}
	o := cfg.FedMDrop
	return &fl.FedMDrop{
		ModalityAware: *ma,
		Options:       fl.FedMDropOptions{Alpha: o.Alpha, Threshold: o.Threshold, Subsample: o.Subsample},
	}
}
