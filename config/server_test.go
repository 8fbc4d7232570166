package config

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// TestServerSettings: the server, dp and attack sections' checks, each
// error naming its field.
func TestServerSettings(t *testing.T) {
	d := Default()
	if d.Server.Optimizer != "sgd" || d.ServerLR() != 1 || d.Server.Aggregator != "mean" || d.DP.Clip != 0 || d.Attack.Clients != 0 {
		t.Fatalf("defaults: server %+v dp %+v attack %+v", d.Server, d.DP, d.Attack)
	}
	dp := func(c *Config) { c.DP.Clip, c.DP.NoiseMultiplier = 1, 1 }
	for _, tc := range []struct {
		name string
		mut  func(*Config)
		path string // "" means valid
		msg  string // part of the message
	}{
		{"adam", func(c *Config) { c.Server.Optimizer = "adam" }, "", ""},
		{"unknown optimizer", func(c *Config) { c.Server.Optimizer = "rmsprop" }, "server.optimizer", `"rmsprop" is not one of`},
		{"unknown aggregator", func(c *Config) { c.Server.Aggregator = "average" }, "server.aggregator", "not one of"},
		{"negative lr", func(c *Config) { c.Server.LR = -1 }, "server.lr", ""},
		{"tau", func(c *Config) { c.Server.Tau = 0 }, "server.tau", ""},
		{"trim 0.5", func(c *Config) { c.Server.Aggregator, c.Server.Trim = "trimmed_mean", 0.5 }, "server.trim", ""},
		{"trim negative", func(c *Config) { c.Server.Trim = -0.1 }, "server.trim", ""},
		{"trim ok", func(c *Config) { c.Server.Aggregator, c.Server.Trim = "trimmed_mean", 0.2 }, "", ""},
		// 10 clients per round: f = 4 needs more than 10.
		{"krum too few", func(c *Config) { c.Server.Aggregator, c.Server.KrumF = "krum", 4 }, "server.krum_f", "more than 2f+2 = 10"},
		{"krum ok", func(c *Config) { c.Server.Aggregator, c.Server.KrumF = "krum", 3 }, "", ""},
		{"bulyan too few", func(c *Config) { c.Server.Aggregator, c.Server.KrumF = "bulyan", 2 }, "server.krum_f", "at least 4f+3 = 11"},
		{"bulyan ok", func(c *Config) { c.Server.Aggregator, c.Server.KrumF = "bulyan", 1 }, "", ""},
		// 2f+2 and 4f+3 overflow int: they must not wrap negative and pass.
		{"krum f overflows", func(c *Config) { c.Server.Aggregator, c.Server.KrumF = "krum", math.MaxInt64/2 }, "server.krum_f", "more than 2f+2 = 9223372036854775808"},
		{"multikrum f overflows", func(c *Config) { c.Server.Aggregator, c.Server.KrumF = "multikrum", math.MaxInt64 }, "server.krum_f", "more than 2f+2 = 18446744073709551616"},
		{"bulyan f overflows", func(c *Config) { c.Server.Aggregator, c.Server.KrumF = "bulyan", 2305843009213693952 }, "server.krum_f", "at least 4f+3 = 9223372036854775811"},
		{"bulyan f max", func(c *Config) { c.Server.Aggregator, c.Server.KrumF = "bulyan", math.MaxInt64 }, "server.krum_f", "at least 4f+3"},
		{"krum f above n", func(c *Config) { c.Server.Aggregator, c.Server.KrumF = "krum", 11 }, "server.krum_f", "more than 2f+2 = 24"},
		{"mean ignores f", func(c *Config) { c.Server.KrumF = math.MaxInt64 }, "", ""},
		{"multikrum m", func(c *Config) { c.Server.Aggregator, c.Server.MultiKrumM = "multikrum", 11 }, "server.multikrum_m", ""},
		{"dp", dp, "", ""},
		{"negative clip", func(c *Config) { c.DP.Clip = -1 }, "dp.clip", ""},
		{"negative noise", func(c *Config) { dp(c); c.DP.NoiseMultiplier = -0.5 }, "dp.noise_multiplier", ""},
		// Beyond the bound fl's accountant sums ever longer series.
		{"noise 1e6", func(c *Config) { dp(c); c.DP.NoiseMultiplier = 1e6 }, "dp.noise_multiplier", "[0, 1000]"},
		{"noise above max", func(c *Config) { dp(c); c.DP.NoiseMultiplier = MaxNoiseMultiplier + 0.5 }, "dp.noise_multiplier", "[0, 1000]"},
		{"noise max", func(c *Config) { dp(c); c.DP.NoiseMultiplier = MaxNoiseMultiplier }, "", ""},
		{"noise without clip", func(c *Config) { c.DP.NoiseMultiplier = 1 }, "dp.clip", ""},
		{"delta 1", func(c *Config) { dp(c); c.DP.Delta = 1 }, "dp.delta", ""},
		{"delta 0", func(c *Config) { dp(c); c.DP.Delta = 0 }, "dp.delta", ""},
		{"noise where", func(c *Config) { dp(c); c.DP.Noise = "both" }, "dp.noise", ""},
		{"dp median", func(c *Config) { dp(c); c.Server.Aggregator = "median" }, "server.aggregator", "needs mean"},
		{"dp fedavg", func(c *Config) { dp(c); c.Method = "fedavg" }, "", ""},
		// 10 per round: count std 0.5, z must be < 1.
		{"adaptive split", func(c *Config) { dp(c); c.DP.Adaptive = true }, "dp.noise_multiplier", "2 * dp.count_std"},
		{"adaptive ok", func(c *Config) { dp(c); c.DP.Adaptive, c.DP.CountStd = true, 1 }, "", ""},
		{"attack", func(c *Config) { c.Attack.Clients, c.Attack.Kind = 2, "scale" }, "", ""},
		{"attack kind", func(c *Config) { c.Attack.Kind = "flip" }, "attack.kind", ""},
		{"attack too many", func(c *Config) { c.Attack.Clients = 21 }, "attack.clients", ""},
	} {
		c := Default()
		tc.mut(&c)
		err := c.Validate()
		var fe *FieldError
		switch {
		case tc.path == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.path != "" && (!errors.As(err, &fe) || fe.Path != tc.path || !strings.Contains(err.Error(), tc.msg)):
			t.Errorf("%s: want an error at %s (%q), got %v", tc.name, tc.path, tc.msg, err)
		}
	}
	c := Default()
	c.Server.Optimizer = "avgm"
	if got := c.ServerLR(); got != 1-c.Server.Momentum {
		t.Errorf("avgm default lr %v", got)
	}
	c.Server.Optimizer = "yogi"
	if got := c.ServerLR(); got != 0.01 {
		t.Errorf("yogi default lr %v", got)
	}
}
