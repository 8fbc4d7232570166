package sim

import (
	"fmt"
	"log/slog"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/data"
)

// degrade applies the config's missing modalities, label noise and missing
// labels (data.missing_rate, data.label_noise, data.missing_labels) to a
// partition of train, each from its own seed stream, so that turning one
// on changes nothing else. It returns the training set with the noisy
// labels (a copy; the input is not changed) and the surviving clients'
// rows and modalities: a client left with no modality is left out, with a
// log line. With per-sample missing modalities it also returns every
// training row's modalities (nil otherwise).
func degrade(cfg *config.Config, train *data.Set, parts [][]int, masks []data.Mask, log *slog.Logger) (*data.Set, [][]int, []data.Mask, []data.Mask, error) {
	d := cfg.Data
	var err error
	if d.LabelNoise > 0 {
		labels, err := data.NoisyLabels(train.Labels, parts, train.NumClasses, d.LabelNoise, rng(cfg.Seed, streamLabelNoise))
		if err != nil {
			return nil, nil, nil, nil, fmt.Errorf("sim: data.label_noise: %w", err)
		}
		noisy := *train
		noisy.Labels = labels
		train = &noisy
	}
	if d.MissingLabels > 0 {
		if parts, err = data.DropLabels(parts, d.MissingLabels, rng(cfg.Seed, streamMissingLabels)); err != nil {
			return nil, nil, nil, nil, fmt.Errorf("sim: data.missing_labels: %w", err)
		}
	}
	if d.MissingRate > 0 {
		if masks, err = data.DropModalities(masks, len(train.Modalities), d.MissingRate, rng(cfg.Seed, streamMissing)); err != nil {
			return nil, nil, nil, nil, fmt.Errorf("sim: data.missing_rate: %w", err)
		}
		var keptParts [][]int
		var keptMasks []data.Mask
		for i, m := range masks {
			if m == 0 {
				log.Info("client lost every modality (data.missing_rate); left out", "client", i, "of", len(masks))
				continue
			}
			keptParts, keptMasks = append(keptParts, parts[i]), append(keptMasks, m)
		}
		if len(keptParts) == 0 {
			return nil, nil, nil, nil, &config.FieldError{Path: "data.missing_rate", Err: fmt.Errorf("every one of the %d clients lost every modality", len(masks))}
		}
		parts, masks = keptParts, keptMasks
	}
	var rows []data.Mask
	if d.MissingSampleRate > 0 {
		if rows, parts, err = data.DropSampleModalities(parts, masks, train.Len(), d.MissingSampleRate, rng(cfg.Seed, streamMissingSamples)); err != nil {
			return nil, nil, nil, nil, fmt.Errorf("sim: data.missing_sample_rate: %w", err)
		}
		for i, p := range parts {
			if len(p) == 0 {
				return nil, nil, nil, nil, &config.FieldError{Path: "data.missing_sample_rate", Err: fmt.Errorf("client %d lost every sample", i)}
			}
		}
	}
	return train, parts, masks, rows, nil
}
