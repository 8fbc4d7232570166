package metrics

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Schema names the columns that vary by experiment.
type Schema struct {
	Heads   []string // accuracy heads, fused first, e.g. {"fused","audio_only","visual_only","audio_both","visual_both"}
	Classes []string // class names, e.g. {"0","1",...}
	// Privacy adds the epsilon column (runs with differential privacy).
	Privacy bool
}

// SingleHeads returns the indices of the fused head (the first) and of the
// single-modality heads ("<m>_only") among heads: what progress lines and
// the report's accuracy figures show.
func SingleHeads(heads []string) []int {
	if len(heads) == 0 {
		return nil
	}
	out := []int{0}
	for i, h := range heads {
		if i > 0 && strings.HasSuffix(h, "_only") {
			out = append(out, i)
		}
	}
	return out
}

// Validate reports the first problem with s: an empty or duplicate head
// name, or an empty or duplicate class name. Names must be unique because
// JSONL stores values as objects keyed by name.
func (s Schema) Validate() error {
	if err := uniqueNames("head", s.Heads); err != nil {
		return err
	}
	return uniqueNames("class", s.Classes)
}

// clone returns s with its own copies of the slices, so that a writer is not
// affected by the caller changing the schema later.
func (s Schema) clone() Schema {
	return Schema{
		Heads:   append([]string(nil), s.Heads...),
		Classes: append([]string(nil), s.Classes...),
		Privacy: s.Privacy,
	}
}

func uniqueNames(kind string, names []string) error {
	seen := make(map[string]bool, len(names))
	for i, n := range names {
		if n == "" {
			return fmt.Errorf("metrics: schema: %s %d has an empty name", kind, i)
		}
		if seen[n] {
			return fmt.Errorf("metrics: schema: duplicate %s name %q", kind, n)
		}
		seen[n] = true
	}
	return nil
}

// Round is what one federated round measured. Values that were not measured
// are NaN (e.g. Dominance when no multimodal client trained), and encode as
// empty CSV cells and JSON null.
type Round struct {
	Round         int       // 1-based
	Heads         []float64 // accuracy per Schema.Heads on the server test set
	PerClass      []float64 // accuracy of Heads[0] (fused) per Schema.Classes
	Dominance     float64   // mean dominance ratio rho over all multimodal training batches of the round
	FirstDominant float64   // fraction of those batches with rho > 1 (modality 0 dominant)
	TrainLoss     float64   // mean training loss over all batches of the round
	Clients       int       // results received (a strategy that rejects one logs it)
	Failures      int       // clients that failed or whose result was refused before aggregation
	Seconds       float64   // wall time of the round
	Elapsed       float64   // wall time since the run started
	Epsilon       float64   // differential privacy spent after this round (at the run's delta), written only if Schema.Privacy
}

// check reports whether r fits s; both writers call it before writing
// anything, so a rejected round leaves no partial output.
func (r Round) check(s Schema) error {
	if len(r.Heads) != len(s.Heads) {
		return fmt.Errorf("metrics: round %d: %d head accuracies for %d heads", r.Round, len(r.Heads), len(s.Heads))
	}
	if len(r.PerClass) != len(s.Classes) {
		return fmt.Errorf("metrics: round %d: %d per-class accuracies for %d classes", r.Round, len(r.PerClass), len(s.Classes))
	}
	return nil
}

// Clone returns a copy of r that shares no memory with it, for callers that
// keep a round whose slices the producer may reuse.
func (r Round) Clone() Round {
	r.Heads = append([]float64(nil), r.Heads...)
	r.PerClass = append([]float64(nil), r.PerClass...)
	return r
}

// Accuracy returns the fraction of i with pred[i]==labels[i]. It returns NaN
// for empty input and an error if the lengths differ.
func Accuracy(pred, labels []int) (float64, error) {
	if len(pred) != len(labels) {
		return math.NaN(), fmt.Errorf("metrics: accuracy: %d predictions for %d labels", len(pred), len(labels))
	}
	if len(pred) == 0 {
		return math.NaN(), nil
	}
	correct := 0
	for i, p := range pred {
		if p == labels[i] {
			correct++
		}
	}
	return float64(correct) / float64(len(pred)), nil
}

// PerClassAccuracy returns, per class 0..numClasses-1, the accuracy on the
// rows whose label is that class (NaN for a class with no rows). It returns
// an error if the lengths differ, numClasses is negative, or a label is
// outside 0..numClasses-1; predictions may be anything.
func PerClassAccuracy(pred, labels []int, numClasses int) ([]float64, error) {
	if len(pred) != len(labels) {
		return nil, fmt.Errorf("metrics: per-class accuracy: %d predictions for %d labels", len(pred), len(labels))
	}
	if numClasses < 0 {
		return nil, fmt.Errorf("metrics: per-class accuracy: negative number of classes %d", numClasses)
	}
	total := make([]int, numClasses)
	correct := make([]int, numClasses)
	for i, l := range labels {
		if l < 0 || l >= numClasses {
			return nil, fmt.Errorf("metrics: per-class accuracy: label %d at row %d outside 0..%d", l, i, numClasses-1)
		}
		total[l]++
		if pred[i] == l {
			correct[l]++
		}
	}
	acc := make([]float64, numClasses)
	for c := range acc {
		if total[c] == 0 {
			acc[c] = math.NaN()
			continue
		}
		acc[c] = float64(correct[c]) / float64(total[c])
	}
	return acc, nil
}

// formatCSVFloat writes the shortest text that parses back to v exactly;
// NaN (not measured) is the empty cell.
func formatCSVFloat(v float64) string {
	if math.IsNaN(v) {
		return ""
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// appendJSONFloat appends v as a JSON number, or null when v is not finite
// (JSON has no NaN or infinity).
func appendJSONFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
