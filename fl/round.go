package fl

import (
	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/model"
)

// localRound is one LocalClient.Fit in progress: the state the round's
// hooks read and extend. Fit runs the plain training loop; everything a
// method or option adds to it lives in a hook in the method's own file.
type localRound struct {
	c   *LocalClient
	ins FitIns
	cfg FitConfig
	// start is the model training starts from: the global model ins.Params
	// (the teacher and proximal anchor), with the client's personal parts
	// if personal.
	start    model.Params
	personal bool
	// has is the set of modalities trained this round; multi is both.
	has   data.Mask
	multi bool
	// train holds the rows trained on (a hook may set some aside).
	train []int
	// tc is the step's configuration, completed by the hooks' prepare.
	tc model.TrainConfig
	// local is the training session (from the first epoch on).
	local   *model.Local
	metrics FitMetrics
}

// A roundHook is one method's or option's share of a client's round. It
// implements any of the interfaces below; Fit calls them in the order of
// roundHooks.
type roundHook any

// preparer runs before the training session is built: measurements on the
// received model and the step's settings (r.tc).
type preparer interface {
	prepare(r *localRound) error
}

// epochStarter runs before each local epoch.
type epochStarter interface {
	startEpoch(r *localRound, epoch int) error
}

// batchFiller adds per-row inputs to a batch of the rows at positions pos
// of r.train.
type batchFiller interface {
	fillBatch(r *localRound, b *model.Batch, pos []int)
}

// stepRecorder records what a step measured.
type stepRecorder interface {
	recordStep(r *localRound, st model.StepStats)
}

// finisher runs after training, on the trained parameters, and completes
// the result (res.Metrics starts as r.metrics).
type finisher interface {
	finish(r *localRound, trained model.Params, res *FitRes) error
}

// roundHooks returns the hooks a round with cfg runs, in order: FedCMI's
// and the proximal term's, the running method's (cfg.Recipe.hooks), then
// personalisation's and client-side privacy's. Order matters where hooks
// share state: FedCMI's holdout split comes first (it chooses the training
// rows), the measurements on the trained model come before client-side
// privacy changes what leaves the client.
func roundHooks(cfg FitConfig, multi bool) []roundHook {
	var hooks []roundHook
	add := func(on bool, h roundHook) {
		if on {
			hooks = append(hooks, h)
		}
	}
	add(multi, &fedcmiHook{})
	add(cfg.Mu != 0, proxHook{})
	if cfg.Recipe != nil {
		hooks = append(hooks, cfg.Recipe.hooks(multi)...)
	}
	add(cfg.FedCMI.Personalized, personalHook{})
	add(cfg.DP != nil, privacyHook{})
	return hooks
}

// modalityDropper is a recipe that leaves some of a client's modalities
// out of the round (FedMDrop's).
type modalityDropper interface {
	dropped() data.Mask
}

// trainedModalities returns the modalities the client trains this round:
// those it holds minus the ones its recipe drops (never all of them).
func (c *LocalClient) trainedModalities(cfg FitConfig) data.Mask {
	d, ok := cfg.Recipe.(modalityDropper)
	if !ok {
		return c.has
	}
	if kept := c.has &^ d.dropped(); kept != 0 {
		return kept
	}
	return c.has
}
