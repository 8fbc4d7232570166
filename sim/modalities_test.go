package sim

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/model"
)

// three is small(t, method) with three synthetic modalities.
func three(t *testing.T, method string) config.Config {
	c := small(t, method)
	s := &c.Data.Synthetic
	s.Modalities = []string{"audio", "visual", "text"}
	s.Dims = []int{s.Dims[0], s.Dims[1], 12}
	s.Signal = []float64{s.Signal[0], s.Signal[1], 0.6}
	return c
}

// TestThreeModalities runs every method on three modalities: those that
// take more than two train and report every head (with the fused head
// without each modality), with missing modalities per client and per
// sample where the method allows them; the others refuse, naming the
// field and the reason.
func TestThreeModalities(t *testing.T) {
	for _, name := range fl.MethodNames() {
		t.Run(name, func(t *testing.T) {
			cfg := three(t, name)
			cfg.Harmony.UnimodalRounds = 1
			cfg.Data.MissingRate = 0.3
			method, err := fl.LookupMethod(name)
			if err != nil {
				t.Fatal(err)
			}
			if method.TwoModalities == "" && method.WholeSamples == "" {
				cfg.Data.MissingSampleRate = 0.2
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			var progress bytes.Buffer
			res, err := Run(context.Background(), cfg, Options{Logger: quiet, Progress: &progress})
			if method.TwoModalities != "" {
				var fe *config.FieldError
				if !errors.As(err, &fe) || fe.Path != "method" || !strings.Contains(err.Error(), "needs exactly 2 modalities") {
					t.Fatalf("err = %v, want a refusal of field method", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			names := model.HeadNames([]string{"audio", "visual", "text"})
			last := res.Rounds[len(res.Rounds)-1]
			if len(last.Heads) != len(names) || len(names) != 10 {
				t.Fatalf("%d heads, names %v", len(last.Heads), names)
			}
			for h, acc := range last.Heads {
				if !(acc >= 0 && acc <= 1) {
					t.Errorf("head %s: accuracy %v", names[h], acc)
				}
			}
			if !strings.Contains(progress.String(), "text_only") {
				t.Errorf("progress lacks the third modality:\n%s", progress.String())
			}
		})
	}
}

// TestThreeModalitiesAllocation: with three modalities, multi_ratio's
// multimodal clients hold all three and the others one each, every
// modality held by someone.
func TestThreeModalitiesAllocation(t *testing.T) {
	cfg := three(t, "fedavg")
	cfg.Clients = 9
	cfg.Data.MultiRatio = 1.0 / 3
	f, err := Prepare(context.Background(), &cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	count := map[data.Mask]int{}
	for _, m := range f.Masks {
		count[m]++
	}
	if count[7] != 3 || count[1] != 2 || count[2] != 2 || count[4] != 2 {
		t.Errorf("modality sets %v, want 3 of all three and 2 of each alone", count)
	}
	if len(f.Arch.Modalities) != 3 || f.Arch.InputDims[2] != 12 {
		t.Errorf("arch %v %v", f.Arch.Modalities, f.Arch.InputDims)
	}
}

// TestFedGBFloorThreeModalities: fedgb's floor must leave room for the
// 1 + M heads.
func TestFedGBFloorThreeModalities(t *testing.T) {
	cfg := three(t, "fedgb")
	cfg.FedGB.Floor = 0.3
	_, err := Prepare(context.Background(), &cfg, quiet)
	var fe *config.FieldError
	if !errors.As(err, &fe) || fe.Path != "fedgb.floor" {
		t.Fatalf("err = %v, want a refusal of fedgb.floor", err)
	}
}
