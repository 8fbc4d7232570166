package metrics

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func compareRuns() []Labeled {
	s := Schema{Heads: []string{"fused", "a_only", "v_only"}, Classes: []string{"0", "1"}}
	return []Labeled{
		{Name: "s1/fedavg-seed1", Setting: "s1", Method: "fedavg", Schema: s, Rounds: []Round{
			{Round: 1, Heads: []float64{0.5, 0.4, 0.3}, PerClass: []float64{0.4, 0.6}, Dominance: 2, FirstDominant: 1},
			{Round: 2, Heads: []float64{0.7, 0.6, 0.2}, PerClass: []float64{0.6, 0.8}, Dominance: 1.5, FirstDominant: 0.2},
		}},
		{Name: "s1/fedavg-seed2", Setting: "s1", Method: "fedavg", Schema: s, Rounds: []Round{
			{Round: 1, Heads: []float64{0.6, 0.5, 0.1}, PerClass: []float64{0.5, 0.7}, Dominance: 3, FirstDominant: 0.5},
			{Round: 2, Heads: []float64{0.5, 0.5, 0.4}, PerClass: []float64{0.5, 0.5}, Dominance: nan, FirstDominant: nan},
		}},
		{Name: "s2/fedavg-seed1", Setting: "s2", Method: "fedavg", Schema: s, Rounds: []Round{
			{Round: 1, Heads: []float64{0.9, 0.8, 0.7}, PerClass: []float64{1, 0.8}, Dominance: 1, FirstDominant: 0},
		}},
		{Name: "s1/fedcmi-seed1", Setting: "s1", Method: "fedcmi", Schema: s, Rounds: []Round{
			{Round: 1, Heads: []float64{0.2, 0.2, 0.2}, PerClass: []float64{0.2, 0.2}, Dominance: 1},
		}},
	}
}

func TestCompare(t *testing.T) {
	const eps = 1e-12
	near := func(got Stat, mean, std float64, n int) bool {
		ok := func(a, b float64) bool { return math.IsNaN(a) && math.IsNaN(b) || math.Abs(a-b) < eps }
		return got.N == n && ok(got.Mean, mean) && ok(got.Std, std)
	}
	tests := []struct {
		name string
		pick Pick
		// wanted values of the first row (s1 fedavg, seeds 1 and 2)
		fused, fusedStd   float64
		class1, class1Std float64
		dom               float64
		domN              int
		round             float64
	}{
		// Final rounds: fused 0.7 and 0.5 (mean 0.6, std sqrt(2*0.1²/1)),
		// class 1 0.8 and 0.5 (std sqrt(2*0.15²)), dominance 1.5 and NaN.
		{"final", PickFinal, 0.6, 0.1 * math.Sqrt2, 0.65, 0.15 * math.Sqrt2, 1.5, 1, 2},
		// Best rounds: 2 (0.7) and 1 (0.6): fused std sqrt(2*0.05²),
		// class 1 0.8 and 0.7, dominance 1.5 and 3.
		{"best", PickBest, 0.65, 0.05 * math.Sqrt2, 0.75, 0.05 * math.Sqrt2, 2.25, 2, 1.5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := Compare(compareRuns(), tc.pick)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 3 {
				t.Fatalf("%d rows, want 3 (s1 fedavg, s2 fedavg, s1 fedcmi)", len(rows))
			}
			order := []string{"s1 fedavg", "s2 fedavg", "s1 fedcmi"}
			for i, r := range rows {
				if r.Setting+" "+r.Method != order[i] {
					t.Errorf("row %d is %s %s, want %s", i, r.Setting, r.Method, order[i])
				}
			}
			r := rows[0]
			if r.Runs != 2 || !near(r.Acc[0], tc.fused, tc.fusedStd, 2) || !near(r.PerClass[1], tc.class1, tc.class1Std, 2) ||
				!near(r.Dominance, tc.dom, r.Dominance.Std, tc.domN) || !near(r.Round, tc.round, r.Round.Std, 2) {
				t.Errorf("row %+v", r)
			}
			// The share of modality-0-dominant batches over all rounds,
			// whatever the pick: (1 + 0.2)/2 = 0.6 and 0.5 (NaN left out).
			if !near(r.FirstDominant, 0.55, 0.05*math.Sqrt2, 2) {
				t.Errorf("first dominant %+v", r.FirstDominant)
			}
			// Best rounds 2 and 1 whatever the pick.
			if !near(r.BestRound, 1.5, math.Sqrt(0.5), 2) {
				t.Errorf("best round %+v", r.BestRound)
			}
			if one := rows[1]; one.Runs != 1 || !near(one.Acc[2], 0.7, 0, 1) {
				t.Errorf("single run row %+v", one)
			}
		})
	}
}

func TestCompareErrors(t *testing.T) {
	empty := compareRuns()
	empty[1].Rounds = nil
	other := compareRuns()
	other[1].Schema = Schema{Heads: []string{"fused", "x", "y"}, Classes: []string{"0", "1"}}
	for _, tc := range []struct {
		name string
		runs []Labeled
		want string
	}{
		{"no rounds", empty, "s1/fedavg-seed2: no rounds"},
		{"heads differ", other, "s1/fedavg-seed2: heads [fused x y]"},
	} {
		if _, err := Compare(tc.runs, PickFinal); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestWriteComparison(t *testing.T) {
	rows, err := Compare(compareRuns(), PickFinal)
	if err != nil {
		t.Fatal(err)
	}
	var md, csv bytes.Buffer
	if err := WriteComparison(&md, rows); err != nil {
		t.Fatal(err)
	}
	if err := WriteComparisonCSV(&csv, rows); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| setting | method | runs | fused | a_only | v_only | dominance | a dominant | round | best round |\n",
		"| s1 | fedavg | 2 | 0.600 ± 0.141 | 0.550 ± 0.071 | 0.300 ± 0.141 | 1.50 | 0.55 | 2 | 1.5 ± 0.7 |\n",
		"| s2 | fedavg | 1 | 0.900 ± 0.000 | 0.800 ± 0.000 | 0.700 ± 0.000 | 1.00 | 0.00 | 1 | 1.0 ± 0.0 |\n",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	for _, want := range []string{
		"setting,method,runs,fused_mean,fused_std,a_only_mean,a_only_std,v_only_mean,v_only_std,dominance_mean,first_dominant_mean,round_mean,best_round_mean,best_round_std\n",
		"s2,fedavg,1,0.9,0,0.8,0,0.7,0,1,0,1,1,0\n",
	} {
		if !strings.Contains(csv.String(), want) {
			t.Errorf("CSV lacks %q:\n%s", want, csv.String())
		}
	}
	// Without settings the column goes.
	for i := range rows {
		rows[i].Setting = ""
	}
	md.Reset()
	if err := WriteComparison(&md, rows[:1]); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(md.String(), "| method | runs | fused |") || !strings.Contains(md.String(), "\n| fedavg | 2 | 0.600 ± 0.141 |") {
		t.Errorf("markdown without settings:\n%s", md.String())
	}
}
