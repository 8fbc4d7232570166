package fl

import (
	"errors"
	"strings"
	"testing"

	"github.com/fedcmi/fedcmi/config"
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
