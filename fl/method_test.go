package fl

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/model"
)

// TestCheckConfig: the checks only the method registry can make, each
// naming its field, and config.Validate's before them.
func TestCheckConfig(t *testing.T) {
	dp := func(c *config.Config) { c.DP.Clip, c.DP.NoiseMultiplier = 1, 0.5 }
	for _, tc := range []struct {
		name string
		mut  func(*config.Config)
		path string // "" means valid
		msg  string
	}{
		{"default", func(*config.Config) {}, "", ""},
		{"unknown method", func(c *config.Config) { c.Method = "fedsgd" }, "method", `"fedsgd" is not one of fedavg, fedavg-fused`},
		{"config first", func(c *config.Config) { c.Method, c.Train.LR = "fedsgd", 0 }, "train.lr", ""},
		{"dp fedavg", func(c *config.Config) { dp(c); c.Method = "fedavg" }, "", ""},
		{"dp scaffold", func(c *config.Config) { dp(c); c.Method = "scaffold" }, "dp.clip", "not available for method scaffold: its control variates"},
		{"dp fedmdrop", func(c *config.Config) { dp(c); c.Method = "fedmdrop" }, "dp.clip", "not available for method fedmdrop"},
		{"dp harmony", func(c *config.Config) { dp(c); c.Method = "harmony" }, "dp.clip", "not available for method harmony"},
		{"dp fedstats", func(c *config.Config) { dp(c); c.Method = "fedcmi-fedstats" }, "dp.clip", "per-class statistics"},
		{"missing samples", func(c *config.Config) { c.Method, c.Data.MissingSampleRate = "fedcmi", 0.2 }, "", ""},
		{"missing samples pmr", func(c *config.Config) { c.Method, c.Data.MissingSampleRate = "pmr", 0.2 }, "data.missing_sample_rate", "must be 0 for method pmr: its prototypes"},
		{"ogm-ge sum fusion", func(c *config.Config) { c.Method, c.Model.Fusion = "ogm-ge", "sum" }, "", ""},
		{"ogm-ge film fusion", func(c *config.Config) { c.Method, c.Model.Fusion = "ogm-ge", "film" }, "model.fusion", "ogm-ge needs concat or sum"},
		{"harmony no fusion round", func(c *config.Config) { c.Method, c.Harmony.UnimodalRounds = "harmony", c.Rounds }, "harmony.unimodal_rounds", "fusion stage"},
		{"harmony unimodal clients only", func(c *config.Config) { c.Method, c.Data.MultiRatio = "harmony", 0 }, "data.multi_ratio", "multimodal clients"},
		{"fedgb without self heads", func(c *config.Config) { c.Method, c.FedCMI.C1 = "fedgb", 0 }, "fedcmi.c1", "must be > 0"},
		{"fedgb", func(c *config.Config) { c.Method = "fedgb" }, "", ""},
		{"holdout", func(c *config.Config) { c.Method = "fedcmi-holdout" }, "", ""},
		{"no holdout", func(c *config.Config) { c.Method, c.FedCMI.Holdout = "fedcmi-holdout", 0 }, "fedcmi.holdout", "must be > 0"},
	} {
		c := config.Default()
		tc.mut(&c)
		err := CheckConfig(&c)
		var fe *config.FieldError
		switch {
		case tc.path == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.path == "":
		case !errors.As(err, &fe) || fe.Path != tc.path || !strings.Contains(err.Error(), tc.msg):
			t.Errorf("%s: error %v, want field %s with %q", tc.name, err, tc.path, tc.msg)
		}
	}
}

// TestRegistry: every method is registered under its own name, with a
// description.
func TestRegistry(t *testing.T) {
	for name, m := range methods {
		if m.Name != name {
			t.Errorf("method %q registered as %q", m.Name, name)
		}
		if m.Doc == "" {
			t.Errorf("%s: no Doc", name)
		}
	}
}

// exampleFit is the recipe of the method TestAddingAMethod adds from this
// file alone: multimodal clients weight the self-head losses by C1.
type exampleFit struct{ C1 float64 }

func (c exampleFit) validate(nm, k, d int) error { return finite("example c1", c.C1) }

func (c exampleFit) hooks(multi bool) []roundHook {
	if !multi {
		return nil
	}
	return []roundHook{&exampleHook{c1: c.C1}}
}

// exampleReport counts the steps the recipe ran.
type exampleReport struct{ Steps int }

func (r *exampleReport) validate(_ MetricBounds, batches int) error {
	return count("example steps", r.Steps, batches)
}

type exampleHook struct {
	c1  float64
	rep *exampleReport
}

func (h *exampleHook) prepare(r *localRound) error {
	r.tc.C1 = h.c1
	h.rep = &exampleReport{}
	r.metrics.Report = h.rep
	return nil
}

func (h *exampleHook) recordStep(r *localRound, st model.StepStats) { h.rep.Steps++ }

// exampleServer sends the recipe and reads the reports.
type exampleServer struct {
	*ModalityAware
	reports, steps int
}

func (s *exampleServer) ConfigureFit(round int, global model.Params, clients []ClientInfo) ([]Instruction, error) {
	ins, err := s.ModalityAware.ConfigureFit(round, global, clients)
	for k := range ins {
		ins[k].Ins.Config.Recipe = exampleFit{C1: 0.5}
	}
	return ins, err
}

func (s *exampleServer) AggregateFit(round int, global model.Params, results []Result, failures []Failure) (model.Params, error) {
	for _, r := range results {
		if rep, ok := r.Res.Metrics.Report.(*exampleReport); ok {
			if rep.Steps != r.Res.Metrics.Batches {
				return nil, fmt.Errorf("client %s reports %d steps of %d", r.ClientID, rep.Steps, r.Res.Metrics.Batches)
			}
			s.reports++
			s.steps += rep.Steps
		}
	}
	return s.ModalityAware.AggregateFit(round, global, results, failures)
}

// TestAddingAMethod adds a method with a recipe, round hooks, a report and
// a server side, all in this file, registered by one entry, and runs it:
// the registry's checks and factory, the recipe's hooks on multimodal
// clients only, the reports back at the server, and both through gob as
// the deployment sends them.
func TestAddingAMethod(t *testing.T) {
	saved := methods
	t.Cleanup(func() { methods = saved })
	methods = maps.Clone(saved)
	maps.Copy(methods, register(Method{Name: "example", SumsOnly: true,
		Recipe: exampleFit{}, Report: &exampleReport{},
		Server: func(base *ModalityAware, _ *config.Config) Strategy { return &exampleServer{ModalityAware: base} },
		Doc:    "an example method",
	}))

	cfg := config.Default()
	cfg.Method = "example"
	if err := CheckConfig(&cfg); err != nil {
		t.Fatal(err)
	}
	m, err := LookupMethod("example")
	if err != nil {
		t.Fatal(err)
	}
	srv, st, _, global := scaffoldSetup(t) // clients a (both modalities), b and c (one each)
	st.Base.Method = m
	st.Base.PerRound = 3
	s, ok := m.NewStrategy(st.Base, &cfg).(*exampleServer)
	if !ok {
		t.Fatalf("strategy %T", m.NewStrategy(st.Base, &cfg))
	}
	srv.Strategy = s
	if _, err := srv.Run(context.Background(), global, 1, 2); err != nil {
		t.Fatal(err)
	}
	if s.reports != 2 || s.steps == 0 {
		t.Errorf("%d reports over %d steps; want one per round from the multimodal client", s.reports, s.steps)
	}

	// The recipe and the report travel by gob, as deploy sends them.
	var buf bytes.Buffer
	in := struct {
		C FitConfig
		M FitMetrics
	}{FitConfig{Recipe: exampleFit{C1: 0.5}}, FitMetrics{Batches: 3, Report: &exampleReport{Steps: 3}}}
	if err := gob.NewEncoder(&buf).Encode(in); err != nil {
		t.Fatal(err)
	}
	out := in
	out.C, out.M = FitConfig{}, FitMetrics{}
	if err := gob.NewDecoder(&buf).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.C.Recipe != (exampleFit{C1: 0.5}) || out.M.Report.(*exampleReport).Steps != 3 {
		t.Errorf("after gob: recipe %+v, report %+v", out.C.Recipe, out.M.Report)
	}
	if err := out.M.Validate(MetricBounds{Modalities: 2, Classes: 3}); err != nil {
		t.Error(err)
	}
	out.M.Report.(*exampleReport).Steps = 4
	if err := out.M.Validate(MetricBounds{Modalities: 2, Classes: 3}); err == nil {
		t.Error("a report of more steps than batches accepted")
	}
}
