package fl

import (
	"errors"
	"fmt"
	"slices"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/model"
)

// harmonyMethod registers Harmony (methods).
var harmonyMethod = Method{Name: "harmony", SumsOnly: true,
	CheckSettings: func(cfg *config.Config) error {
		if cfg.Harmony.UnimodalRounds >= cfg.Rounds {
			return &config.FieldError{Path: "harmony.unimodal_rounds", Err: fmt.Errorf("%d: must be < rounds (%d): the fusion stage needs at least one round", cfg.Harmony.UnimodalRounds, cfg.Rounds)}
		}
		if cfg.Data.MultiRatio <= 0 {
			return &config.FieldError{Path: "data.multi_ratio", Err: errors.New("harmony's fusion stage needs multimodal clients (> 0)")}
		}
		if cfg.FedCMI.Personalized {
			return &config.FieldError{Path: "fedcmi.personalized", Err: errors.New("personalised branches are FedCMI's; harmony's fusion stage keeps each client's encoders its own already")}
		}
		return nil
	},
	CheckClients: func(cfg *config.Config, clients []data.Mask) error {
		for _, m := range clients {
			if m.Count() >= 2 {
				return nil
			}
		}
		return &config.FieldError{Path: "data.multi_ratio", Err: fmt.Errorf("harmony's fusion stage needs multimodal clients, and none of the %d holds two modalities (data.multi_ratio %v of the clients rounds to none, or data.missing_rate dropped them)", len(clients), cfg.Data.MultiRatio)}
	},
	ClientState:  true,
	NoDP:         "its fusion stage samples only multimodal clients",
	Recipe:       HarmonyFit{},
	WholeSamples: "its unimodal stage assumes that every sample of a multimodal client has each modality",
	Server: func(base *ModalityAware, cfg *config.Config) Strategy {
		return &Harmony{Base: base, UnimodalRounds: cfg.HarmonyUnimodalRounds()}
	},
	Doc: "Harmony: modality-wise federated training of the encoders, then federated fusion on multimodal clients (only the fusion head averaged; each client fine-tunes its own encoders)"}

// Harmony is the two-stage schedule of Harmony (Ouyang, Xie, Fu, Cheng,
// Pan, Ling, Xing, Zhou, Huang, "Harmony: Heterogeneous Multi-Modal
// Federated Learning through Disentangled Model Training", MobiSys 2023;
// authors' code xmouyang/Harmony):
//
//   - Stage 1, modality-wise federated learning (rounds 1..UnimodalRounds):
//     clients are sampled from all clients as in Base; each trains every
//     encoder it holds with that modality's unimodal head, minimising
//     sum_m CE(C_m(S_m(E_m(x_m))), y) over its modalities (model.Engine,
//     model.HarmonyStage1), and the server averages each modality's
//     encoder, self projector and classifier over the sampled clients that
//     hold it (AggregateModalityAware; the fusion head is untouched).
//   - Stage 2, federated fusion learning (the remaining rounds): only
//     multimodal clients are sampled (K of them, as Base samples); each
//     trains the fusion head and fine-tunes the encoders, as the authors'
//     code does (harmony-MHAD/client/main_fusion.py): the fused
//     cross-entropy alone, the encoders (and self projectors, which
//     stage 1 trained with them) at a tenth of the learning rate, and the
//     client keeps its fine-tuned encoders for its next fusion round
//     instead of sending them: the server averages the fusion head only
//     and keeps stage 1's encoders in the global model.
//
// The per-round evaluation is the global model's (stage 1's encoders with
// the averaged fusion head); the authors evaluate each client's own model,
// which a simulation measures at its end (sim.OwnModels).
//
// Not implemented: the paper's balance-aware resource allocation of stage 1
// (a systems measure on the training time of multimodal nodes, with no
// effect on the computed model here) and its stage-2 clustering of nodes by
// "modality bias" with one fusion head per cluster (a personalisation:
// stage 2 averages over all sampled multimodal clients).
type Harmony struct {
	// Base samples clients, writes their instructions and aggregates.
	Base *ModalityAware
	// UnimodalRounds is the length of stage 1.
	UnimodalRounds int
}

// ErrNoMultimodalClients is returned by Harmony's ConfigureFit in stage 2
// when no registered client holds two or more modalities.
var ErrNoMultimodalClients = errors.New("fl: harmony: federated fusion learning needs multimodal clients, and there are none")

// Stage returns 1 (modality-wise) or 2 (fusion) for round.
func (h *Harmony) Stage(round int) int {
	if round <= h.UnimodalRounds {
		return 1
	}
	return 2
}

// ConfigureFit implements Strategy.
func (h *Harmony) ConfigureFit(round int, global model.Params, clients []ClientInfo) ([]Instruction, error) {
	recipe := HarmonyFit{Unimodal: true}
	if h.Stage(round) == 2 {
		var multi []ClientInfo
		for _, c := range clients {
			if c.Modalities.Count() >= 2 {
				multi = append(multi, c)
			}
		}
		if len(multi) == 0 {
			return nil, ErrNoMultimodalClients
		}
		if round == h.UnimodalRounds+1 {
			log := h.Base.logger()
			log.Info("harmony: federated fusion learning starts", "round", round, "multimodal_clients", len(multi))
		}
		recipe, clients = HarmonyFit{Fusion: true}, multi
	}
	ins, err := h.Base.ConfigureFit(round, global, clients)
	for k := range ins {
		ins[k].Ins.Config.Recipe = recipe
	}
	return ins, err
}

// AggregateFit implements Strategy: Base's modality-aware average; in
// stage 2 only the fusion head's, the rest of the global model kept as it
// was (the clients' fine-tuned encoders stay with them; a client that
// sends its encoders anyway does not change the global ones).
func (h *Harmony) AggregateFit(round int, global model.Params, results []Result, failures []Failure) (model.Params, error) {
	next, err := h.Base.AggregateFit(round, global, results, failures)
	if err != nil || next == nil || h.Stage(round) == 1 {
		return next, err
	}
	next = slices.Clone(next)
	for i, info := range h.Base.Layout {
		if info.Part != model.PartFusion {
			next[i] = global[i]
		}
	}
	return next, nil
}

var _ Strategy = (*Harmony)(nil)

// HarmonyFit is Harmony's recipe (FitConfig.Recipe).
type HarmonyFit struct {
	// Unimodal trains Harmony's first stage: each held modality's encoder,
	// self projector and classifier on its unimodal loss only.
	Unimodal bool
	// Fusion trains its second stage: the fusion head on the fused loss
	// alone, the client's own encoders fine-tuned at a tenth of the rate.
	Fusion bool
}

// hooks implements Recipe.
func (c HarmonyFit) hooks(multi bool) []roundHook {
	switch {
	case c.Unimodal:
		return []roundHook{harmonyHook{}}
	case c.Fusion:
		return []roundHook{harmonyFusionHook{}}
	}
	return nil
}

// validate implements Recipe: flags, nothing to check.
func (c HarmonyFit) validate(nm, k, d int) error { return nil }

// harmonyHook is Harmony's first stage on a client: unimodal training of
// each held modality's encoder, projector and classifier.
type harmonyHook struct{}

// prepare implements preparer.
func (harmonyHook) prepare(r *localRound) error {
	r.tc.Terms = append(r.tc.Terms, model.HarmonyStage1())
	return nil
}

// harmonyEncoderLR is the learning rate of the encoders in Harmony's
// fusion stage, relative to the fusion head's: the authors fine-tune them
// at 1e-4 beside the classifier's 1e-3.
const harmonyEncoderLR = 0.1

// harmonyFusionHook is Harmony's second stage on a client.
type harmonyFusionHook struct{}

// harmonyOwnParts are the parts a client keeps, and fine-tunes at
// harmonyEncoderLR, in Harmony's fusion stage: its encoders and self
// projectors.
var harmonyOwnParts = []string{model.PartEncoder, model.PartSelf}

// harmonyOwn reports whether a tensor is one a client keeps in Harmony's
// fusion stage.
func harmonyOwn(info model.ParamInfo) bool { return slices.Contains(harmonyOwnParts, info.Part) }

// prepare implements preparer: the client's own encoders, if an earlier
// fusion round fine-tuned them; the fused loss alone; the encoders at
// harmonyEncoderLR.
func (harmonyFusionHook) prepare(r *localRound) error {
	r.start, r.personal = r.c.startParams(r.ins.Params, true)
	r.tc.C1 = 0
	r.tc.PartLR = map[string]float64{}
	for _, part := range harmonyOwnParts {
		r.tc.PartLR[part] = harmonyEncoderLR
	}
	return nil
}

// finish implements finisher: keep the fine-tuned encoders for the next
// fusion round, and send only the fusion head: every other tensor of the
// update is the one received, so the fine-tuned encoders never leave the
// client, as in the authors' code (the server keeps the global model's
// anyway).
func (harmonyFusionHook) finish(r *localRound, trained model.Params, res *FitRes) error {
	r.c.keepOwn(trained, harmonyOwn)
	sent := slices.Clone(trained)
	for i, info := range r.c.engine.Layout() {
		if info.Part != model.PartFusion {
			sent[i] = r.ins.Params[i]
		}
	}
	res.Params = sent
	return nil
}
