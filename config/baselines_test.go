package config

import (
	"errors"
	"testing"
)

// TestBaselineSettings: the baseline sections' defaults and the checks of
// their values and of the settings each method needs.
func TestBaselineSettings(t *testing.T) {
	d := Default()
	if d.OGM.Alpha != 0.8 || d.OGM.StartRound != 1 || d.OGM.EndRound != 0 || d.Harmony.UnimodalRounds != 0 {
		t.Fatalf("defaults: ogm %+v harmony %+v", d.OGM, d.Harmony)
	}
	if got := d.HarmonyUnimodalRounds(); got != d.Rounds/2 {
		t.Fatalf("harmony stage 1 of %d rounds: %d", d.Rounds, got)
	}
	d.Harmony.UnimodalRounds = 4
	if got := d.HarmonyUnimodalRounds(); got != 4 {
		t.Fatalf("harmony stage 1: %d, want 4", got)
	}
	for _, tc := range []struct {
		name string
		mut  func(*Config)
		path string // "" means valid
	}{
		{"scaffold", func(c *Config) { c.Method = "scaffold" }, ""},
		{"ogm-ge", func(c *Config) { c.Method = "ogm-ge" }, ""},
		{"ogm-ge sum fusion", func(c *Config) { c.Method, c.Model.Fusion = "ogm-ge", "sum" }, ""},
		{"film fusion without ogm-ge", func(c *Config) { c.Model.Fusion = "film" }, ""},
		{"ogm alpha", func(c *Config) { c.OGM.Alpha = 0 }, "ogm.alpha"},
		{"ogm start", func(c *Config) { c.OGM.StartRound = 0 }, "ogm.start_round"},
		{"ogm span", func(c *Config) { c.OGM.StartRound, c.OGM.EndRound = 5, 4 }, "ogm.end_round"},
		{"ogm span ok", func(c *Config) { c.OGM.StartRound, c.OGM.EndRound = 5, 5 }, ""},
		{"harmony", func(c *Config) { c.Method = "harmony" }, ""},
		{"harmony setting unused", func(c *Config) { c.Harmony.UnimodalRounds = c.Rounds }, ""},
		{"harmony negative", func(c *Config) { c.Harmony.UnimodalRounds = -1 }, "harmony.unimodal_rounds"},
		{"ablation", func(c *Config) { c.Method = "fedcmi-noinf" }, ""},
	} {
		c := Default()
		tc.mut(&c)
		err := c.Validate()
		var fe *FieldError
		switch {
		case tc.path == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.path != "" && (!errors.As(err, &fe) || fe.Path != tc.path):
			t.Errorf("%s: want an error at %s, got %v", tc.name, tc.path, err)
		}
	}
}
