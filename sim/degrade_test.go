package sim

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/data"
)

// TestDegrade checks each degradation of the training data on a prepared
// federation: only its own part changes, the test set stays clean, and
// the same seed gives the same result.
func TestDegrade(t *testing.T) {
	base := small(t, "fedavg")
	base.Clients = 12
	base.Data.MultiRatio = 1
	clean, err := Prepare(context.Background(), &base, quiet)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("label_noise", func(t *testing.T) {
		cfg := base
		cfg.Data.LabelNoise = 0.4
		f, err := Prepare(context.Background(), &cfg, quiet)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(f.Test.Labels, clean.Test.Labels) {
			t.Error("test labels changed")
		}
		if !slices.EqualFunc(f.Parts, clean.Parts, slices.Equal) || !slices.Equal(f.Masks, clean.Masks) {
			t.Error("partition changed")
		}
		changed, n := 0, 0
		for _, p := range f.Parts {
			for _, i := range p {
				n++
				if f.Train.Labels[i] != clean.Train.Labels[i] {
					changed++
				}
			}
		}
		if share := float64(changed) / float64(n); share < 0.3 || share > 0.5 {
			t.Errorf("%.2f of %d training labels changed, want about 0.4", share, n)
		}
		if &f.Train.Labels[0] == &clean.Train.Labels[0] {
			t.Error("the clean set's labels were modified in place")
		}
	})
	t.Run("missing_labels", func(t *testing.T) {
		cfg := base
		cfg.Data.MissingLabels = 0.5
		f, err := Prepare(context.Background(), &cfg, quiet)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range f.Parts {
			want := len(clean.Parts[i]) - int(float64(len(clean.Parts[i]))*0.5+0.5)
			if len(p) != max(want, 1) || f.Info(i).NumSamples != len(p) {
				t.Errorf("client %d: %d rows of %d (weight %d), want %d", i, len(p), len(clean.Parts[i]), f.Info(i).NumSamples, want)
			}
		}
	})
	t.Run("missing_sample_rate", func(t *testing.T) {
		cfg := base
		cfg.Data.MissingSampleRate = 0.3
		cfg.OutDir = t.TempDir()
		f, err := Prepare(context.Background(), &cfg, quiet)
		if err != nil {
			t.Fatal(err)
		}
		if f.RowMasks == nil || !slices.Equal(f.Masks, clean.Masks) {
			t.Fatal("no row masks, or the clients' modalities changed")
		}
		partial, rows := 0, 0
		for i, p := range f.Parts {
			if len(p) > len(clean.Parts[i]) {
				t.Errorf("client %d gained rows", i)
			}
			for _, r := range p {
				rows++
				if f.RowMasks[r] == 0 {
					t.Fatalf("row %d without modalities kept", r)
				}
				if f.RowMasks[r] != data.Full(2) {
					partial++
				}
			}
		}
		// A kept row misses one of two modalities with 2*0.3*0.7/0.91 = 0.46.
		if share := float64(partial) / float64(rows); share < 0.35 || share > 0.57 {
			t.Errorf("%.2f of the kept rows miss a modality, want about 0.46", share)
		}
		cfg.Rounds = 2
		if _, err := Run(context.Background(), cfg, Options{Logger: quiet}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("missing_rate", func(t *testing.T) {
		cfg := base
		cfg.Data.MissingRate = 0.5
		var logs strings.Builder
		f, err := Prepare(context.Background(), &cfg, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		again, err := Prepare(context.Background(), &cfg, quiet)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(f.Masks, again.Masks) {
			t.Error("same seed, different masks")
		}
		left := len(clean.Parts) - len(f.Parts)
		if got := strings.Count(logs.String(), "lost every modality"); got != left {
			t.Errorf("%d clients left out, %d log lines", left, got)
		}
		uni := 0
		for _, m := range f.Masks {
			if m == 0 {
				t.Fatal("a client without modalities survived")
			}
			if m != data.Full(2) {
				uni++
			}
		}
		if uni == 0 {
			t.Errorf("rate 0.5: every one of %d clients kept both modalities", len(f.Masks))
		}
		// A run with them trains and evaluates.
		cfg.Rounds = 2
		if _, err := Run(context.Background(), cfg, Options{Logger: quiet}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestDegradeEveryClientLost checks that a missing-modality rate that
// leaves no client with any modality is an error naming the field.
func TestDegradeEveryClientLost(t *testing.T) {
	cfg := small(t, "fedavg")
	cfg.Clients, cfg.ClientsPerRound = 3, 3
	cfg.Data.MultiRatio = 1
	cfg.Data.MissingRate = 0.999
	_, err := Prepare(context.Background(), &cfg, quiet)
	var fe *config.FieldError
	if !errors.As(err, &fe) || fe.Path != "data.missing_rate" || !strings.Contains(err.Error(), "every one of the 3 clients") {
		t.Fatalf("error %v, want one naming data.missing_rate", err)
	}
}
