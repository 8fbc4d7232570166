package metrics_test

import (
	"os"

	"github.com/fedcmi/fedcmi/metrics"
)

// Two seeds of one method: the table shows mean ± sample std of their
// final rounds (fused 0.8 and 0.6), the mean dominance ratio of those
// rounds, the share of batches with modality a dominant over all rounds
// (1 and 0.5: 0.75), and the best round (2 and 1).
func ExampleCompare() {
	s := metrics.Schema{Heads: []string{"fused", "a_only", "v_only"}, Classes: []string{"0", "1"}}
	runs := []metrics.Labeled{
		{Name: "fedavg-seed1", Method: "fedavg", Schema: s, Rounds: []metrics.Round{
			{Round: 1, Heads: []float64{0.5, 0.5, 0.2}, PerClass: []float64{0.4, 0.6}, Dominance: 2, FirstDominant: 1},
			{Round: 2, Heads: []float64{0.8, 0.7, 0.3}, PerClass: []float64{0.7, 0.9}, Dominance: 3, FirstDominant: 1},
		}},
		{Name: "fedavg-seed2", Method: "fedavg", Schema: s, Rounds: []metrics.Round{
			{Round: 1, Heads: []float64{0.7, 0.6, 0.2}, PerClass: []float64{0.6, 0.8}, Dominance: 2, FirstDominant: 0},
			{Round: 2, Heads: []float64{0.6, 0.5, 0.1}, PerClass: []float64{0.5, 0.7}, Dominance: 1, FirstDominant: 1},
		}},
	}
	rows, err := metrics.Compare(runs, metrics.PickFinal)
	if err != nil {
		panic(err)
	}
	metrics.WriteComparison(os.Stdout, rows)
	// Output:
	// | method | runs | fused | a_only | v_only | dominance | a dominant | round | best round |
	// |---|---|---|---|---|---|---|---|---|
	// | fedavg | 2 | 0.700 ± 0.141 | 0.600 ± 0.141 | 0.200 ± 0.141 | 2.00 | 0.75 | 2 | 1.5 ± 0.7 |
}
