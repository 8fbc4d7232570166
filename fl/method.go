package fl

import (
	"fmt"
	"sort"
	"strings"
)

// Method says what clients optimise; every method shares the server side
// (modality-aware averaging).
type Method struct {
	// Name is the name users select it by.
	Name string
	// Infiltration turns on cross-modal infiltration (FedCMI).
	Infiltration bool
	// ClassTemperature uses class-wise temperatures for infiltration.
	ClassTemperature bool
	// FusedOnly trains multimodal clients on the fused cross-entropy alone
	// (c1 forced to 0): the FedAvg client of the FedCMI paper and of the
	// authors' code, without the unimodal self-head terms fedcmi gives
	// every other method.
	FusedOnly bool
	// Prox adds the proximal term mu (w - w_global) to the gradient.
	Prox bool
	// Dominance is where the infiltration direction and temperatures come
	// from (DominanceBatch: as published).
	Dominance Dominance
	// Holdout makes multimodal clients set a slice of their data aside to
	// measure dominance on (FedCMIOptions.Holdout of each class).
	Holdout bool
	// Scaffold uses SCAFFOLD's control variates (strategy Scaffold).
	Scaffold bool
	// OGM modulates encoder gradients with OGM-GE (multimodal clients).
	OGM bool
	// Harmony trains in Harmony's two stages (strategy Harmony).
	Harmony bool
	// PMR adds PMR's prototype loss on multimodal clients (pmr.go).
	PMR bool
	// MDrop runs FedMDrop's server (client and modality selection, global
	// prototypes) and its modal enhancement loss (fedmdrop.go).
	MDrop bool
	// GB weights the multimodal loss's heads by gradient blending
	// (gradblend.go).
	GB bool
	// Relearn diagnoses each modality's learning state and softly
	// re-initialises the encoders that learn too fast (relearn.go).
	Relearn bool
	// TwoModalities, if not empty, says why the method is defined for
	// exactly two modalities (CheckModalities refuses others).
	TwoModalities string
	// SumsOnly says that the method's server reads only the (weighted)
	// mean of each modality group's updates and the clients' training
	// metrics, so it runs under secure aggregation; SingleUpdates, if not
	// empty, says why its server needs single updates instead. Every
	// method sets exactly one of the two (a test insists).
	SumsOnly      bool
	SingleUpdates string
	// Doc is a one-line description.
	Doc string
}

// CheckModalities reports whether the method works with nm modalities.
func (m Method) CheckModalities(nm int) error {
	if nm != 2 && m.TwoModalities != "" {
		return fmt.Errorf("fl: method %s needs exactly 2 modalities, the data has %d: %s", m.Name, nm, m.TwoModalities)
	}
	return nil
}

var methods = map[string]Method{
	"fedavg":        {Name: "fedavg", SumsOnly: true, Doc: "FedAvg with modality-aware averaging and the unimodal self-head losses (fedcmi.c1) on multimodal clients"},
	"fedavg-fused":  {Name: "fedavg-fused", SumsOnly: true, FusedOnly: true, Doc: "FedAvg as in the FedCMI paper and the authors' code: fused cross-entropy only on multimodal clients (fedcmi.c1 ignored, 0)"},
	"fedprox":       {Name: "fedprox", SumsOnly: true, Prox: true, Doc: "FedProx: FedAvg plus the proximal term mu"},
	"fedcmi":        {Name: "fedcmi", SumsOnly: true, Infiltration: true, ClassTemperature: true, Prox: true, Doc: "FedCMI: cross-modal infiltration with class-wise temperatures and the proximal term"},
	"fedcmi-noinf":  {Name: "fedcmi-noinf", SumsOnly: true, ClassTemperature: true, Prox: true, Doc: "FedCMI ablation without infiltration (model and proximal term kept)"},
	"fedcmi-notemp": {Name: "fedcmi-notemp", SumsOnly: true, Infiltration: true, Prox: true, Doc: "FedCMI ablation with the global temperature instead of class-wise ones"},
	"fedcmi-noprox": {Name: "fedcmi-noprox", SumsOnly: true, Infiltration: true, ClassTemperature: true, Doc: "FedCMI ablation without the proximal term"},
	"fedcmi-teacher": {Name: "fedcmi-teacher", SumsOnly: true, Infiltration: true, ClassTemperature: true, Prox: true, Dominance: DominanceTeacher,
		Doc: "FedCMI variant: direction and temperatures from the received global model on the client's data, fixed per round"},
	"fedcmi-holdout": {Name: "fedcmi-holdout", SumsOnly: true, Infiltration: true, ClassTemperature: true, Prox: true, Dominance: DominanceHoldout, Holdout: true,
		Doc: "FedCMI variant: direction and temperatures from the global model on a held-out slice the client never trains on"},
	"fedcmi-fedstats": {Name: "fedcmi-fedstats", SingleUpdates: "its server pools each participant's per-class statistics", Infiltration: true, ClassTemperature: true, Prox: true, Dominance: DominanceFederated,
		Doc: "FedCMI variant: direction and temperatures from per-class statistics pooled by the server over clients and rounds"},
	"fedcmi-fedstats-holdout": {Name: "fedcmi-fedstats-holdout", SingleUpdates: "its server pools each participant's per-class statistics", Infiltration: true, ClassTemperature: true, Prox: true, Dominance: DominanceFederated, Holdout: true,
		Doc: "FedCMI variant: fedcmi-fedstats with the statistics measured on held-out slices"},
	"scaffold": {Name: "scaffold", SingleUpdates: "its server averages each participant's control variate change, which travels beside the update in the clear", Scaffold: true, Doc: "SCAFFOLD (option II) with modality-aware control variates"},
	"ogm-ge": {Name: "ogm-ge", SumsOnly: true, OGM: true,
		TwoModalities: "OGM-GE slows each encoder by the ratio of its score to the other modality's (Peng et al., CVPR 2022, two modalities)",
		Doc:           "OGM-GE: on-the-fly gradient modulation with generalisation enhancement"},
	"harmony": {Name: "harmony", SumsOnly: true, Harmony: true, Doc: "Harmony: modality-wise federated training of the encoders, then federated fusion on multimodal clients"},
	"pmr": {Name: "pmr", SumsOnly: true, PMR: true,
		TwoModalities: "PMR weights its prototype losses by the ratio of the two modalities' prototype scores (Fan et al., CVPR 2023, two modalities)",
		Doc:           "PMR (Fan et al., CVPR 2023): prototypical cross-entropy on the slow modality, entropy regulariser on the fast one"},
	"fedgb":      {Name: "fedgb", SumsOnly: true, GB: true, Doc: "fedgb: gradient blending (Wang et al., CVPR 2020): the fused and self heads' loss weights from their generalisation and overfitting, measured on the clients' data before and after local training and pooled by the server"},
	"fedrelearn": {Name: "fedrelearn", SumsOnly: true, Relearn: true, Doc: "fedrelearn: diagnosing and re-learning (Wei et al., ECCV 2024): clustering purity of each modality's features before and after local training, pooled by the server, softly re-initialises the encoders that learn too fast"},
	"fedmdrop": {Name: "fedmdrop", SingleUpdates: "its server selects participants and modalities from each participant's reported prototypes and modality ratio", MDrop: true,
		TwoModalities: "fedcmi's FedMDrop keeps prototypes, modality-pair distances and drop masks for two modalities; not generalised yet",
		Doc:           "FedMDrop / balanced modality selection (Fan et al., ECCV 2024): global prototypes, modal enhancement loss, submodular client selection dropping dominant modalities"},
}

// LookupMethod returns the method of that name.
func LookupMethod(name string) (Method, error) {
	m, ok := methods[name]
	if !ok {
		return Method{}, fmt.Errorf("fl: unknown method %q (known: %s)", name, strings.Join(MethodNames(), ", "))
	}
	return m, nil
}

// MethodNames lists the known methods, sorted.
func MethodNames() []string {
	names := make([]string, 0, len(methods))
	for n := range methods {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
