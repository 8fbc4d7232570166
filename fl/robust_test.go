package fl

import (
	"math"
	"strings"
	"testing"

	"github.com/fedcmi/fedcmi/data"
)

// robustUpdates are five clients over aggLayout (a: two values of
// modality 0, v: one of modality 1, f: one fusion value); values of a
// modality the client does not hold are 999 and must never count.
func robustUpdates() []Update {
	const av, a, v = data.Mask(3), data.Mask(1), data.Mask(2)
	return []Update{
		{aggParams(1, 10, 1, 1), 1, av},
		{aggParams(2, 20, 2, 2), 1, av},
		{aggParams(3, 30, 10, 3), 2, av},
		{aggParams(50, -40, 999, 4), 3, a},
		{aggParams(999, 999, 20, 100), 5, v},
	}
}

func TestAggregateRobust(t *testing.T) {
	global := aggParams(-7, -7, -7, -7)
	for _, tc := range []struct {
		name string
		o    RobustOptions
		want [4]float64 // a0, a1, v, f
	}{
		// Group a = clients 0-3, v = 0,1,2,4, fusion = all five.
		// a: medians of {1,2,3,50} and {10,20,30,-40}; v: of {1,2,10,20};
		// f: of {1,2,3,4,100}.
		{"median", RobustOptions{Aggregator: AggregatorMedian}, [4]float64{2.5, 15, 6, 3}},
		// Trim 0.2 cuts int(0.8) = 0 of four (the unweighted mean) and
		// int(1.0) = 1 of five from each end: mean(2,3,4).
		{"trimmed 0.2", RobustOptions{Aggregator: AggregatorTrimmedMean, Trim: 0.2}, [4]float64{14, 5, 8.25, 3}},
		{"trimmed 0.25", RobustOptions{Aggregator: AggregatorTrimmedMean, Trim: 0.25}, [4]float64{2.5, 15, 6, 3}},
		// f = 0 scores by the n-2 nearest: a: client 1 (101+101), v:
		// client 1 (1+64), fusion: clients 1 and 2 tie at 1+1+4, the
		// earlier wins.
		{"krum f=0", RobustOptions{Aggregator: AggregatorKrum}, [4]float64{2, 20, 2, 2}},
		// f = 1: groups of four are too small (n <= 2f+2) and fall back to
		// the median; fusion scores by the 2 nearest: 5, 2, 2, 5, huge.
		{"krum f=1", RobustOptions{Aggregator: AggregatorKrum, KrumF: 1}, [4]float64{2.5, 15, 6, 2}},
		// Bulyan with f = 1 needs 7: every group falls back to the median.
		{"bulyan f=1", RobustOptions{Aggregator: AggregatorBulyan, KrumF: 1}, [4]float64{2.5, 15, 6, 3}},
		// Multi-Krum m=3 keeps clients 1, 2 and (tie with 3) 0, weighted by
		// samples 1, 1, 2: (1 + 2 + 2*3)/4.
		{"multikrum m=3", RobustOptions{Aggregator: AggregatorMultiKrum, KrumF: 1, MultiKrumM: 3}, [4]float64{2.5, 15, 6, 2.25}},
		// m = 0 keeps n - f = 4: clients 0-3, (1 + 2 + 2*3 + 3*4)/7.
		{"multikrum m=n-f", RobustOptions{Aggregator: AggregatorMultiKrum, KrumF: 1}, [4]float64{2.5, 15, 6, 3}},
		// The mean is AggregateModalityAware, sample-weighted.
		{"mean", RobustOptions{Aggregator: AggregatorMean}, [4]float64{(1 + 2 + 6 + 150) / 7.0, (10 + 20 + 60 - 120) / 7.0, (1 + 2 + 20 + 100) / 9.0, (1 + 2 + 6 + 12 + 500) / 12.0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AggregateRobust(aggLayout, global, robustUpdates(), tc.o, nil)
			if err != nil {
				t.Fatal(err)
			}
			flat := []float32{got[0].Data[0], got[0].Data[1], got[1].Data[0], got[2].Data[0]}
			for k, w := range tc.want {
				if math.Abs(float64(flat[k])-w) > 1e-5 {
					t.Errorf("value %d = %v, want %v (all %v)", k, flat[k], w, flat)
				}
			}
			if global[0].Data[0] != -7 {
				t.Fatal("global was modified")
			}
		})
	}
}

func TestAggregateRobustAbsentSide(t *testing.T) {
	// Nobody holds modality 1: its tensor keeps the global value.
	const a = data.Mask(1)
	global := aggParams(0, 0, 42, 0)
	ups := []Update{{aggParams(1, 1, 9, 1), 1, a}, {aggParams(3, 3, 9, 3), 1, a}, {aggParams(8, 8, 9, 8), 1, a}}
	got, err := AggregateRobust(aggLayout, global, ups, RobustOptions{Aggregator: AggregatorMedian}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got[1].Data[0] != 42 || got[0].Data[0] != 3 || got[2].Data[0] != 3 {
		t.Errorf("got %v", got)
	}
}

func TestRobustOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		o    RobustOptions
		n    int
		want string // "" = valid
	}{
		{RobustOptions{Aggregator: "mean"}, 10, ""},
		{RobustOptions{Aggregator: "average"}, 10, "unknown aggregator"},
		{RobustOptions{Aggregator: "trimmed_mean", Trim: 0.5}, 10, "trimmed fraction"},
		{RobustOptions{Aggregator: "trimmed_mean", Trim: -0.1}, 10, "trimmed fraction"},
		{RobustOptions{Aggregator: "trimmed_mean", Trim: 0.49}, 10, ""},
		{RobustOptions{Aggregator: "krum", KrumF: 2}, 6, "more than 2f+2 = 6"},
		{RobustOptions{Aggregator: "multikrum", KrumF: 2}, 7, ""},
		{RobustOptions{Aggregator: "krum", KrumF: -1}, 7, "must be >= 0"},
		{RobustOptions{Aggregator: "bulyan", KrumF: 1}, 6, "at least 4f+3 = 7"},
		{RobustOptions{Aggregator: "bulyan", KrumF: 1}, 7, ""},
	} {
		err := tc.o.Validate(tc.n)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v n=%d: %v", tc.o, tc.n, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v n=%d: error %v, want %q", tc.o, tc.n, err, tc.want)
		}
	}
}

// TestBulyan checks Bulyan against values from an independent reference
// (a direct Python transcription of El Mhamdi et al. 2018's Algorithm,
// with ties to the earlier client): seven multimodal clients, f = 1, so
// theta = 5 are selected and beta = 3 values averaged per coordinate.
func TestBulyan(t *testing.T) {
	const av = data.Mask(3)
	a := [][2]float32{{1, 0}, {2, 5}, {4, 0}, {7, 1}, {8, 0}, {9, 0}, {100, -50}}
	v := []float32{3, 1, 4, 1, 5, 9, 2}
	f := []float32{2, 7, 1, 8, 2, 8, 1}
	var ups []Update
	for k := range a {
		ups = append(ups, Update{aggParams(a[k][0], a[k][1], v[k], f[k]), 1 + k, av})
	}
	got, err := AggregateRobust(aggLayout, aggParams(0, 0, 0, 0), ups, RobustOptions{Aggregator: AggregatorBulyan, KrumF: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Selected: a {0,1,2,3,4}, v {0,1,2,3,6}, fusion {0,1,2,3,4}.
	want := [4]float64{7.0 / 3, 0, 2, 5.0 / 3}
	flat := []float32{got[0].Data[0], got[0].Data[1], got[1].Data[0], got[2].Data[0]}
	for k, w := range want {
		if math.Abs(float64(flat[k])-w) > 1e-6 {
			t.Errorf("value %d = %v, want %v (all %v)", k, flat[k], w, flat)
		}
	}
	// f = 0 keeps and averages everyone, unweighted.
	got, err = AggregateRobust(aggLayout, aggParams(0, 0, 0, 0), ups, RobustOptions{Aggregator: AggregatorBulyan}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := (1 + 2 + 4 + 7 + 8 + 9 + 100) / 7.0; math.Abs(float64(got[0].Data[0])-m) > 1e-5 {
		t.Errorf("f = 0: %v, want the mean %v", got[0].Data[0], m)
	}
}
