package fl

import (
	"fmt"
	"slices"

	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/model"
)

// Evaluation is the accuracy of a model on a labelled set.
type Evaluation struct {
	// Heads is the accuracy of each inference head (model.Head*).
	Heads []float64
	// PerClass is the fused head's accuracy per class (NaN for a class
	// without samples).
	PerClass []float64
	// N is the number of samples.
	N int
}

// EvaluateSet measures params on every sample of set (the server's test set).
func EvaluateSet(engine *model.Engine, params model.Params, set *data.Set) (Evaluation, error) {
	arch := engine.Arch()
	if !slices.Equal(set.Modalities, arch.Modalities) {
		return Evaluation{}, fmt.Errorf("fl: evaluate: data modalities %v, model %v", set.Modalities, arch.Modalities)
	}
	return evaluate(engine, params, set.Features, set.Labels, set.NumClasses)
}

func evaluate(engine *model.Engine, params model.Params, x [][]float32, labels []int, numClasses int) (Evaluation, error) {
	pred, err := engine.Predict(params, x, len(labels))
	if err != nil {
		return Evaluation{}, fmt.Errorf("fl: evaluate: %w", err)
	}
	ev := Evaluation{N: len(labels), Heads: make([]float64, len(pred.Preds))}
	for h := range pred.Preds {
		if ev.Heads[h], err = metrics.Accuracy(pred.Preds[h], labels); err != nil {
			return Evaluation{}, err
		}
	}
	if ev.PerClass, err = metrics.PerClassAccuracy(pred.Preds[model.HeadFused], labels, numClasses); err != nil {
		return Evaluation{}, err
	}
	return ev, nil
}
