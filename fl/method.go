package fl

import (
	"encoding/gob"
	"fmt"
	"sort"
	"strings"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/data"
)

// Method is one entry of the method registry (methods, below): what
// clients optimise under the shared FedCMI recipe (the flags up to
// Holdout), and the method's own server side (Server), which chooses its
// clients' recipe (FitConfig.Recipe) and through it their share of a round
// (Recipe.hooks). A method's code lives in its own file; its entry in
// methods is the one line that registers it.
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
	// Server builds the method's own server side around base, the shared
	// modality-aware strategy, from the experiment's settings (its config
	// block); nil means base itself.
	Server func(base *ModalityAware, cfg *config.Config) Strategy
	// Recipe and Report are zero values of the types the method's
	// recipe and report have (nil: none), registered with encoding/gob
	// so that they travel in FitConfig.Recipe and FitMetrics.Report.
	Recipe Recipe
	Report Report
	// CheckSettings, if set, checks the experiment's settings beyond what
	// config.Validate can, for this method (its needs of other sections);
	// CheckData checks them against the data's nm modalities. Errors name
	// the field (config.FieldError).
	CheckSettings func(cfg *config.Config) error
	CheckData     func(cfg *config.Config, nm int) error
	// CheckClients, if set, checks a simulation's clients, each by the
	// modalities it holds once the data is partitioned and degraded,
	// before any round runs.
	CheckClients func(cfg *config.Config, clients []data.Mask) error
	// ClientState says that clients carry state from round to round
	// (SCAFFOLD's control variates, Harmony's fine-tuned encoders), which a
	// checkpoint must hold.
	ClientState bool
	// WholeSamples, if not empty, says why the method needs every sample
	// of a multimodal client to hold each of the client's modalities
	// (data.missing_sample_rate must be 0).
	WholeSamples string
	// NoDP, if not empty, says why client-level differential privacy
	// (dp.clip) does not hold for the method: its clients send more than
	// their clipped update, or its sampling is not uniform.
	NoDP string
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

// methods is the registry: one line per method. Entries with a server side
// of their own are defined in the method's file.
var methods = register(
	Method{Name: "fedavg", SumsOnly: true, Doc: "FedAvg with modality-aware averaging and the unimodal self-head losses (fedcmi.c1) on multimodal clients"},
	Method{Name: "fedavg-fused", SumsOnly: true, FusedOnly: true, Doc: "FedAvg as in the FedCMI paper and the authors' code: fused cross-entropy only on multimodal clients (fedcmi.c1 ignored, 0)"},
	Method{Name: "fedprox", SumsOnly: true, Prox: true, Doc: "FedProx: FedAvg plus the proximal term mu"},
	Method{Name: "fedcmi", SumsOnly: true, Infiltration: true, ClassTemperature: true, Prox: true, Doc: "FedCMI: cross-modal infiltration with class-wise temperatures and the proximal term"},
	Method{Name: "fedcmi-noinf", SumsOnly: true, ClassTemperature: true, Prox: true, Doc: "FedCMI ablation without infiltration (model and proximal term kept)"},
	Method{Name: "fedcmi-notemp", SumsOnly: true, Infiltration: true, Prox: true, Doc: "FedCMI ablation with the global temperature instead of class-wise ones"},
	Method{Name: "fedcmi-noprox", SumsOnly: true, Infiltration: true, ClassTemperature: true, Doc: "FedCMI ablation without the proximal term"},
	Method{Name: "fedcmi-teacher", SumsOnly: true, Infiltration: true, ClassTemperature: true, Prox: true, Dominance: DominanceTeacher,
		Doc: "FedCMI variant: direction and temperatures from the received global model on the client's data, fixed per round"},
	Method{Name: "fedcmi-holdout", SumsOnly: true, Infiltration: true, ClassTemperature: true, Prox: true, Dominance: DominanceHoldout, Holdout: true,
		Doc: "FedCMI variant: direction and temperatures from the global model on a held-out slice the client never trains on"},
	Method{Name: "fedcmi-fedstats", SingleUpdates: "its server pools each participant's per-class statistics", NoDP: "its clients send per-class statistics", Infiltration: true, ClassTemperature: true, Prox: true, Dominance: DominanceFederated,
		Doc: "FedCMI variant: direction and temperatures from per-class statistics pooled by the server over clients and rounds"},
	Method{Name: "fedcmi-fedstats-holdout", SingleUpdates: "its server pools each participant's per-class statistics", NoDP: "its clients send per-class statistics", Infiltration: true, ClassTemperature: true, Prox: true, Dominance: DominanceFederated, Holdout: true,
		Doc: "FedCMI variant: fedcmi-fedstats with the statistics measured on held-out slices"},
	scaffoldMethod, // scaffold.go
	ogmMethod,      // ogm.go
	harmonyMethod,  // harmony.go
	pmrMethod,      // pmr.go
	gbMethod,       // gradblend.go
	relearnMethod,  // relearn.go
	mdropMethod,    // fedmdrop.go
)

// register indexes the methods by name and registers their recipes' and
// reports' types with encoding/gob.
func register(ms ...Method) map[string]Method {
	out := make(map[string]Method, len(ms))
	for _, m := range ms {
		if _, dup := out[m.Name]; dup {
			panic("fl: method " + m.Name + " registered twice")
		}
		out[m.Name] = m
		if m.Recipe != nil {
			gob.Register(m.Recipe)
		}
		if m.Report != nil {
			gob.Register(m.Report)
		}
	}
	return out
}

// NewStrategy returns the method's server side around base (Server), or
// base itself.
func (m Method) NewStrategy(base *ModalityAware, cfg *config.Config) Strategy {
	if m.Server == nil {
		return base
	}
	return m.Server(base, cfg)
}

// CheckConfig checks cfg (config.Validate) and what only the method
// registry knows: that the method exists; that client-level differential
// privacy holds for it (NoDP); that it can train on samples missing a
// modality if the data has them (WholeSamples); that a method measuring
// dominance on held-out data has some (fedcmi.holdout); and the method's
// own CheckSettings. The checks against the data (CheckModalities,
// CheckData) come when it is loaded.
func CheckConfig(cfg *config.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	m, ok := methods[cfg.Method]
	if !ok {
		return &config.FieldError{Path: "method", Err: fmt.Errorf("%q is not one of %s", cfg.Method, strings.Join(MethodNames(), ", "))}
	}
	if cfg.DP.Clip > 0 && m.NoDP != "" {
		return &config.FieldError{Path: "dp.clip", Err: fmt.Errorf("differential privacy is not available for method %s: %s", m.Name, m.NoDP)}
	}
	if cfg.Data.MissingSampleRate > 0 && m.WholeSamples != "" {
		return &config.FieldError{Path: "data.missing_sample_rate", Err: fmt.Errorf("must be 0 for method %s: %s", m.Name, m.WholeSamples)}
	}
	if m.Holdout && cfg.FedCMI.Holdout <= 0 {
		return &config.FieldError{Path: "fedcmi.holdout", Err: fmt.Errorf("must be > 0 for method %s", m.Name)}
	}
	if m.CheckSettings != nil {
		return m.CheckSettings(cfg)
	}
	return nil
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
