package metrics

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestSummarize(t *testing.T) {
	s := Schema{Heads: []string{"fused", "audio"}}
	history := []Round{
		{Round: 1, Heads: []float64{0.5, 0.4}, Dominance: 1.2, Seconds: 1, Elapsed: 1.5},
		{Round: 2, Heads: []float64{0.7, nan}, Dominance: nan, Seconds: 2, Elapsed: 3.5},
		{Round: 3, Heads: []float64{0.7, 0.3}, Dominance: 0.8, Seconds: 1, Elapsed: 4.5},
	}
	noElapsed := []Round{history[0], history[1], history[2]}
	noElapsed[2].Elapsed = nan
	tests := []struct {
		name   string
		s      Schema
		rounds []Round
		want   Summary
	}{
		{
			// fused ties at 0.7 in rounds 2 and 3: the earlier wins. Audio's
			// best skips round 2's NaN. Dominance mean (1.2+0.8)/2 = 1.
			name: "history", s: s, rounds: history,
			want: Summary{Rounds: 3, Final: map[string]float64{"fused": 0.7, "audio": 0.3},
				Best: map[string]float64{"fused": 0.7, "audio": 0.4}, BestRound: 2, MeanDominance: 1, Seconds: 4.5},
		},
		{
			// Without the last Elapsed, Seconds is 1+2+1.
			name: "seconds summed", s: s, rounds: noElapsed,
			want: Summary{Rounds: 3, Final: map[string]float64{"fused": 0.7, "audio": 0.3},
				Best: map[string]float64{"fused": 0.7, "audio": 0.4}, BestRound: 2, MeanDominance: 1, Seconds: 4},
		},
		{
			name: "empty", s: s,
			want: Summary{Final: map[string]float64{"fused": nan, "audio": nan},
				Best: map[string]float64{"fused": nan, "audio": nan}, MeanDominance: nan},
		},
		{
			// Round numbering need not start at 1; a short Heads reads NaN.
			name: "unmeasured", s: s,
			rounds: []Round{{Round: 4, Heads: []float64{nan}, Dominance: nan, Seconds: nan, Elapsed: nan},
				{Round: 5, Heads: []float64{0.2, 0.1}, Dominance: nan, Seconds: 3, Elapsed: nan}},
			want: Summary{Rounds: 2, Final: map[string]float64{"fused": 0.2, "audio": 0.1},
				Best: map[string]float64{"fused": 0.2, "audio": 0.1}, BestRound: 5, MeanDominance: nan, Seconds: 3},
		},
		{
			name: "no heads", s: Schema{}, rounds: history,
			want: Summary{Rounds: 3, Final: map[string]float64{}, Best: map[string]float64{}, MeanDominance: 1, Seconds: 4.5},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Summarize(tc.s, tc.rounds)
			if !sameSummary(got, tc.want) {
				t.Errorf("Summarize =\n %+v\nwant\n %+v", got, tc.want)
			}
		})
	}
}

func sameSummary(a, b Summary) bool {
	return a.Rounds == b.Rounds && sameMap(a.Final, b.Final) && sameMap(a.Best, b.Best) &&
		a.BestRound == b.BestRound && sameFloat(a.MeanDominance, b.MeanDominance) && sameFloat(a.Seconds, b.Seconds)
}

func sameMap(a, b map[string]float64) bool {
	if a == nil || b == nil || len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !sameFloat(v, w) {
			return false
		}
	}
	return true
}

func TestSummaryJSON(t *testing.T) {
	in := Summary{Rounds: 2, Final: map[string]float64{"fused": 0.5, "audio": nan},
		Best: map[string]float64{"fused": 0.75, "audio": nan}, BestRound: 1, MeanDominance: nan, Seconds: 12.5}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"rounds":2,"final":{"audio":null,"fused":0.5},"best":{"audio":null,"fused":0.75},"best_round":1,"dominance_mean":null,"seconds":12.5}`
	if string(b) != want {
		t.Errorf("Marshal = %s\nwant %s", b, want)
	}
	var out Summary
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !sameSummary(out, in) {
		t.Errorf("round trip = %+v, want %+v", out, in)
	}
	if err := json.Unmarshal([]byte(`{"seconds":"x"}`), &out); err == nil {
		t.Error("Unmarshal of a string seconds succeeded")
	}
}

func TestWriteTable(t *testing.T) {
	s := Schema{Heads: []string{"fused", "audio_only", "visual_only"}, Classes: []string{"0", "1"}}
	rounds := []Round{
		{Round: 1, Heads: []float64{0.5, 0.25, 0.125}, Dominance: nan, TrainLoss: 2.302585, Seconds: 0.5},
		{Round: 2, Heads: []float64{0.61234, 0.3, nan}, Dominance: 1.23456, TrainLoss: 1.5, Seconds: 12.345},
		{Round: 10, Heads: []float64{1}, Dominance: 0.9, TrainLoss: nan, Seconds: 100},
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, s, rounds); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "table.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("WriteTable:\n%s\nwant (%s):\n%s", buf.Bytes(), golden, want)
	}
	if err := WriteTable(failWriter{}, s, rounds); err == nil {
		t.Error("WriteTable to a failing writer succeeded")
	}
}

func TestMeanStd(t *testing.T) {
	// 0.5, 0.7, 0.9: mean 0.7, deviations -0.2, 0, 0.2, sample variance 0.08/2 = 0.04.
	m, s, n := MeanStd([]float64{0.5, 0.7, math.NaN(), 0.9})
	if n != 3 || math.Abs(m-0.7) > 1e-12 || math.Abs(s-0.2) > 1e-12 {
		t.Fatalf("MeanStd = %v, %v, %v", m, s, n)
	}
	if m, s, n := MeanStd([]float64{0.3}); m != 0.3 || s != 0 || n != 1 {
		t.Fatalf("single: %v %v %v", m, s, n)
	}
	if m, _, n := MeanStd(nil); !math.IsNaN(m) || n != 0 {
		t.Fatalf("empty: %v %v", m, n)
	}
}

// TestSummaryOldDominanceKey: summary.json files written before the
// metric had one name ("mean_dominance") still read; new files say
// "dominance_mean".
func TestSummaryOldDominanceKey(t *testing.T) {
	for _, tc := range []struct {
		json string
		want float64
	}{
		{`{"rounds":1,"mean_dominance":1.25}`, 1.25},
		{`{"rounds":1,"dominance_mean":1.5}`, 1.5},
		{`{"rounds":1,"dominance_mean":2,"mean_dominance":3}`, 2},
		{`{"rounds":1}`, math.NaN()},
	} {
		var s Summary
		if err := json.Unmarshal([]byte(tc.json), &s); err != nil {
			t.Fatal(err)
		}
		if !sameFloat(s.MeanDominance, tc.want) {
			t.Errorf("%s: dominance %v, want %v", tc.json, s.MeanDominance, tc.want)
		}
	}
	b, err := json.Marshal(Summary{MeanDominance: 1.5, Seconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"dominance_mean":1.5`) || strings.Contains(string(b), "mean_dominance") {
		t.Errorf("summary JSON %s", b)
	}
}
