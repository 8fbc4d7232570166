package fl

import (
	"fmt"

	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/model"
)

// Evaluation is the accuracy of a model on a labelled set.
type Evaluation struct {
	// Heads is the accuracy of each inference head (model.Head*).
	Heads [model.NumHeads]float64
	// PerClass is the fused head's accuracy per class (NaN for a class
	// without samples).
	PerClass []float64
	// N is the number of samples.
	N int
}

// EvaluateSet measures params on every sample of set (the server's test set).
func EvaluateSet(engine *model.Engine, params model.Params, set *data.Set) (Evaluation, error) {
	arch := engine.Arch()
	if len(set.Modalities) != 2 || set.Modalities[0] != arch.Modalities[0] || set.Modalities[1] != arch.Modalities[1] {
		return Evaluation{}, fmt.Errorf("fl: evaluate: data modalities %v, model %v", set.Modalities, arch.Modalities)
	}
	return evaluate(engine, params, [2][]float32{set.Features[0], set.Features[1]}, set.Labels, set.NumClasses)
}

func evaluate(engine *model.Engine, params model.Params, x [2][]float32, labels []int, numClasses int) (Evaluation, error) {
	pred, err := engine.Predict(params, x, len(labels))
	if err != nil {
		return Evaluation{}, fmt.Errorf("fl: evaluate: %w", err)
	}
	ev := Evaluation{N: len(labels)}
	for h := range model.NumHeads {
		if ev.Heads[h], err = metrics.Accuracy(pred.Preds[h], labels); err != nil {
			return Evaluation{}, err
		}
	}
	if ev.PerClass, err = metrics.PerClassAccuracy(pred.Preds[model.HeadFused], labels, numClasses); err != nil {
		return Evaluation{}, err
	}
	return ev, nil
}
