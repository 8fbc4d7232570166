package fl

import "github.com/fedcmi/fedcmi/model"

// proxHook is the proximal term of FedProx and FedCMI
// (FitConfig.Mu, model.Proximal).
type proxHook struct{}

// prepare implements preparer.
func (proxHook) prepare(r *localRound) error {
	r.tc.Terms = append(r.tc.Terms, model.Proximal(r.cfg.Mu))
	return nil
}

var _ preparer = proxHook{}
