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
	// Prox adds the proximal term mu (w - w_global) to the gradient.
	Prox bool
	// PMR adds PMR's prototype loss on multimodal clients (pmr.go).
	PMR bool
	// MDrop runs FedMDrop's server (client and modality selection, global
	// prototypes) and its modal enhancement loss (fedmdrop.go).
	MDrop bool
	// Doc is a one-line description.
	Doc string
}

var methods = map[string]Method{
	"fedavg":        {Name: "fedavg", Doc: "FedAvg with modality-aware averaging"},
	"fedprox":       {Name: "fedprox", Prox: true, Doc: "FedProx: FedAvg plus the proximal term mu"},
	"fedcmi":        {Name: "fedcmi", Infiltration: true, ClassTemperature: true, Prox: true, Doc: "FedCMI: cross-modal infiltration with class-wise temperatures and the proximal term"},
	"fedcmi-noinf":  {Name: "fedcmi-noinf", ClassTemperature: true, Prox: true, Doc: "FedCMI ablation without infiltration (model and proximal term kept)"},
	"fedcmi-notemp": {Name: "fedcmi-notemp", Infiltration: true, Prox: true, Doc: "FedCMI ablation with the global temperature instead of class-wise ones"},
	"fedcmi-noprox": {Name: "fedcmi-noprox", Infiltration: true, ClassTemperature: true, Doc: "FedCMI ablation without the proximal term"},
	"pmr":           {Name: "pmr", PMR: true, Doc: "PMR (Fan et al., CVPR 2023): prototypical cross-entropy on the slow modality, entropy regulariser on the fast one"},
	"fedmdrop":      {Name: "fedmdrop", MDrop: true, Doc: "FedMDrop / balanced modality selection (Fan et al., ECCV 2024): global prototypes, modal enhancement loss, submodular client selection dropping dominant modalities"},
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
