package fl

import (
	"errors"
	"fmt"

	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/model"
)

// Update is one client's contribution to an average.
type Update struct {
	Params     model.Params
	NumSamples int
	Modalities data.Mask
}

// AggregateModalityAware returns the modality-aware weighted average of the
// updates (method note, "Server"): a parameter of modality m's branch is
// averaged over the updates whose client holds m, with weights n_k / sum n_k
// over those clients; fusion parameters over all updates. A parameter no
// contributing client holds keeps its value in global. global is not
// modified.
//
// Personal parts (personalised branches) are averaged too, as in the
// reference code: the average is what a client without a copy of its own
// starts from (and what the server evaluates), while a client with its own
// copy keeps using it (see LocalClient), so its copy is never overwritten.
func AggregateModalityAware(layout []model.ParamInfo, global model.Params, updates []Update) (model.Params, error) {
	if len(global) != len(layout) {
		return nil, fmt.Errorf("fl: aggregate: global model has %d tensors, layout %d", len(global), len(layout))
	}
	if len(updates) == 0 {
		return nil, errors.New("fl: aggregate: no updates")
	}
	for k, u := range updates {
		if len(u.Params) != len(layout) {
			return nil, fmt.Errorf("fl: aggregate: update %d has %d tensors, want %d", k, len(u.Params), len(layout))
		}
		if u.NumSamples < 1 {
			return nil, fmt.Errorf("fl: aggregate: update %d has %d samples", k, u.NumSamples)
		}
	}
	out := global.Clone()
	for i, info := range layout {
		total := 0
		for _, u := range updates {
			if info.Side < 0 || u.Modalities.Has(info.Side) {
				total += u.NumSamples
			}
		}
		if total == 0 {
			continue // no sampled client holds this side: keep it
		}
		// Accumulate in float64 so that the result does not depend on
		// float32 rounding of partial sums.
		acc := make([]float64, len(out[i].Data))
		for _, u := range updates {
			if !(info.Side < 0 || u.Modalities.Has(info.Side)) {
				continue
			}
			t := u.Params[i]
			if t.Name != info.Name || len(t.Data) != len(acc) {
				return nil, fmt.Errorf("fl: aggregate: tensor %d is %q with %d values, want %q with %d", i, t.Name, len(t.Data), info.Name, len(acc))
			}
			w := float64(u.NumSamples) / float64(total)
			for j, v := range t.Data {
				acc[j] += w * float64(v)
			}
		}
		for j, v := range acc {
			out[i].Data[j] = float32(v)
		}
	}
	return out, nil
}
