package deploy

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/fl"
)

// TestServerOptionsOverTheWire: a federation over loopback gRPC with a
// server optimizer, a robust aggregator and one Byzantine participant
// gives the simulation's metrics and model (the simulation makes the same
// client Byzantine with attack.clients).
func TestServerOptionsOverTheWire(t *testing.T) {
	for _, tc := range []struct {
		name string
		mut  func(c *config.Config)
	}{
		{"adam multikrum", func(c *config.Config) {
			c.Server.Optimizer, c.Server.LR = "adam", 0.01
			c.Server.Aggregator, c.Server.KrumF = "multikrum", 1
		}},
		{"avgm trimmed mean", func(c *config.Config) {
			c.Server.Optimizer = "avgm"
			c.Server.Aggregator, c.Server.Trim = "trimmed_mean", 0.2
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := smallConfig(t, 5, 5, 3)
			tc.mut(&cfg)
			attacked := cfg
			attacked.Attack.Clients, attacked.Attack.Kind = 1, "scale"
			want := simulate(t, attacked)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			l := listen(t)
			done := serve(ctx, cfg, ServeOptions{Listener: l, Insecure: true, HeartbeatInterval: 200 * time.Millisecond, PollTimeout: time.Second})
			for i := range cfg.Clients {
				var wrap func(fl.Client) fl.Client
				if i == 0 {
					wrap = func(c fl.Client) fl.Client { return &fl.Byzantine{Client: c, Attack: fl.AttackScale} }
				}
				shardParticipant(ctx, t, cfg, i, l.Addr().String(), nil, "", wrap)
			}
			sameRun(t, federated(t, done, nil), want)
		})
	}
}

// TestClientPrivacyOverTheWire: client-side DP noise with adaptive
// clipping (each participant clips, adds its share of the noise and
// reports its noisy unclipped indicator) gives the simulation's run, with
// epsilon recorded per round.
func TestClientPrivacyOverTheWire(t *testing.T) {
	cfg := smallConfig(t, 4, 3, 3)
	cfg.DP.Clip, cfg.DP.NoiseMultiplier, cfg.DP.Noise = 0.5, 0.5, "client"
	cfg.DP.Adaptive, cfg.DP.CountStd = true, 1
	want := simulate(t, cfg)
	got := loopback(t, cfg)
	sameRun(t, got, want)
	for _, r := range got.Rounds {
		if !(r.Epsilon > 0) || math.IsInf(r.Epsilon, 0) {
			t.Errorf("round %d: epsilon %v", r.Round, r.Epsilon)
		}
	}
}

func TestServeRefusesAttack(t *testing.T) {
	cfg := smallConfig(t, 4, 3, 1)
	cfg.Attack.Clients = 1
	_, err := Serve(context.Background(), cfg, ServeOptions{Listener: listen(t), Insecure: true})
	var fe *config.FieldError
	if !errors.As(err, &fe) || fe.Path != "attack.clients" {
		t.Fatalf("serve with attack.clients: %v", err)
	}
}

func TestServeRefusesMissingModalities(t *testing.T) {
	cfg := smallConfig(t, 4, 3, 1)
	cfg.Data.MissingRate = 0.2
	_, err := Serve(context.Background(), cfg, ServeOptions{Listener: listen(t), Insecure: true})
	var fe *config.FieldError
	if !errors.As(err, &fe) || fe.Path != "data.missing_rate" {
		t.Fatalf("serve with data.missing_rate: %v", err)
	}
}

// TestServeRefusesUnreachableMinResults: -min_results above what a round
// samples (min of clients_per_round and clients) could never be met:
// every round would keep the initial model, or wait forever.
func TestServeRefusesUnreachableMinResults(t *testing.T) {
	cfg := smallConfig(t, 3, 2, 1) // 3 clients, 2 a round
	_, err := Serve(context.Background(), cfg, ServeOptions{Listener: listen(t), Insecure: true, MinResults: 3})
	if err == nil || !strings.Contains(err.Error(), "-min_results 3") {
		t.Fatalf("serve with -min_results 3 of 2 a round: %v", err)
	}
}

// TestServeRefusesSmallMessages: a message bound below a model chunk
// would refuse every chunk of every upload; Serve says so at once.
func TestServeRefusesSmallMessages(t *testing.T) {
	cfg := smallConfig(t, 4, 3, 1)
	_, err := Serve(context.Background(), cfg, ServeOptions{Listener: listen(t), Insecure: true, MaxMessageBytes: 1 << 20})
	if err == nil || !strings.Contains(err.Error(), "models travel in chunks") {
		t.Fatalf("serve with 1 MiB messages: %v", err)
	}
}
