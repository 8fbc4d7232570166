package metrics

import (
	"math"
	"strings"
	"testing"
)

var nan = math.NaN()

// sameFloats compares element-wise, treating NaN as equal to NaN and nil as
// equal to empty.
func sameFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameFloat(a[i], b[i]) {
			return false
		}
	}
	return true
}

func sameFloat(a, b float64) bool {
	return a == b || (math.IsNaN(a) && math.IsNaN(b))
}

func sameRound(a, b Round) bool {
	return a.Round == b.Round && sameFloats(a.Heads, b.Heads) && sameFloats(a.PerClass, b.PerClass) &&
		sameFloat(a.Dominance, b.Dominance) && sameFloat(a.FirstDominant, b.FirstDominant) &&
		sameFloat(a.TrainLoss, b.TrainLoss) && a.Clients == b.Clients && a.Failures == b.Failures &&
		sameFloat(a.Seconds, b.Seconds) && sameFloat(a.Elapsed, b.Elapsed)
}

func TestAccuracy(t *testing.T) {
	tests := []struct {
		name         string
		pred, labels []int
		want         float64
		wantErr      bool
	}{
		{"half", []int{1, 2, 3, 4}, []int{1, 0, 3, 0}, 0.5, false},
		{"all", []int{0, 0, 0}, []int{0, 0, 0}, 1, false},
		{"none", []int{1, 1}, []int{0, 2}, 0, false},
		{"one of three", []int{5, 1, 2}, []int{5, 2, 1}, 1.0 / 3, false},
		{"empty", nil, nil, nan, false},
		{"length mismatch", []int{1, 2}, []int{1}, nan, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Accuracy(tc.pred, tc.labels)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && !sameFloat(got, tc.want) {
				t.Errorf("Accuracy = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPerClassAccuracy(t *testing.T) {
	tests := []struct {
		name         string
		pred, labels []int
		classes      int
		want         []float64
		wantErr      string
	}{
		// class 0: rows 0-2, preds 0,0,1 -> 2/3; class 1: row 3 -> 1;
		// class 2: rows 4-5, preds 0,1 -> 0; class 3: no rows -> NaN.
		{"mixed", []int{0, 0, 1, 1, 0, 1}, []int{0, 0, 0, 1, 2, 2}, 4, []float64{2.0 / 3, 1, 0, nan}, ""},
		{"prediction out of range is just wrong", []int{7, 1}, []int{0, 1}, 2, []float64{0, 1}, ""},
		{"no classes", nil, nil, 0, []float64{}, ""},
		{"length mismatch", []int{0}, []int{0, 1}, 2, nil, "1 predictions for 2 labels"},
		{"label too large", []int{0, 0}, []int{0, 2}, 2, nil, "label 2 at row 1"},
		{"negative label", []int{0}, []int{-1}, 2, nil, "label -1 at row 0"},
		{"negative classes", nil, nil, -1, nil, "negative number of classes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PerClassAccuracy(tc.pred, tc.labels, tc.classes)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "metrics: ") {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !sameFloats(got, tc.want) {
				t.Errorf("PerClassAccuracy = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSchemaValidate(t *testing.T) {
	tests := []struct {
		name    string
		s       Schema
		wantErr string
	}{
		{"ok", Schema{Heads: []string{"fused", "audio_only"}, Classes: []string{"0", "1"}}, ""},
		{"empty schema", Schema{}, ""},
		{"empty head", Schema{Heads: []string{"fused", ""}}, "head 1 has an empty name"},
		{"duplicate head", Schema{Heads: []string{"fused", "fused"}}, `duplicate head name "fused"`},
		{"duplicate class", Schema{Heads: []string{"fused"}, Classes: []string{"a", "b", "a"}}, `duplicate class name "a"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
