package report

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"testing"
)

func TestTrendField(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings []string
		field    string
		xs       []float64
	}{
		{"one numeric field", []string{"fedcmi.c1=0", "fedcmi.c1=0.5", "fedcmi.c1=8"}, "fedcmi.c1", []float64{0, 0.5, 8}},
		{"two values only", []string{"data.alpha=1", "data.alpha=100"}, "", nil},
		{"not a number", []string{"data.partition=iid", "data.partition=dirichlet", "data.partition=group"}, "", nil},
		{"two fields", []string{"data.alpha=1,fedcmi.c1=1", "data.alpha=1,fedcmi.c1=2", "data.alpha=2,fedcmi.c1=1"}, "", nil},
		{"different fields", []string{"data.alpha=1", "data.alpha=2", "fedcmi.c1=1"}, "", nil},
		{"one setting", []string{""}, "", nil},
		{"infinite", []string{"x=1", "x=2", "x=Inf"}, "", nil},
	} {
		field, xs, ok := trendField(tc.settings)
		if ok != (tc.field != "") || field != tc.field || !slices.Equal(xs, tc.xs) {
			t.Errorf("%s: trendField = %q %v %v, want %q %v", tc.name, field, xs, ok, tc.field, tc.xs)
		}
	}
}

// TestBuildTrend checks that a sweep over three values of one field gets a
// trend figure whose points are the picked accuracies of the settings.
func TestBuildTrend(t *testing.T) {
	root := t.TempDir()
	for _, f := range []fixture{
		{dir: "sw/a1/fedavg-seed1", method: "fedavg", seed: 1, alpha: 1, completed: true, fused: []float64{0.5, 0.6}, aOnly: []float64{0.5, 0.5}, vOnly: []float64{0.2, 0.3}, dom: []float64{2, 1}},
		{dir: "sw/a2/fedavg-seed1", method: "fedavg", seed: 1, alpha: 2, completed: true, fused: []float64{0.5, 0.7}, aOnly: []float64{0.5, 0.5}, vOnly: []float64{0.2, 0.3}, dom: []float64{2, 1}},
		{dir: "sw/a4/fedavg-seed1", method: "fedavg", seed: 1, alpha: 4, completed: true, fused: []float64{0.5, 0.8}, aOnly: []float64{0.5, 0.5}, vOnly: []float64{0.2, 0.3}, dom: []float64{2, 1}},
	} {
		writeRun(t, root, f)
	}
	runs, err := Load(filepath.Join(root, "sw"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "report")
	res, err := Build(context.Background(), runs, out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	last := res.Figures[len(res.Figures)-1]
	if last.Kind != "trend" || last.Setting != "data.alpha" || last.PNG != "trend-data.alpha.png" {
		t.Fatalf("last figure %s %s %s, want the trend of data.alpha", last.Kind, last.Setting, last.PNG)
	}
	if n := len(res.Figures); n != 3*4+1 {
		t.Errorf("%d figures, want 13", n)
	}
	// The fused line: the final rounds' 0.6, 0.7, 0.8 at alpha 1, 2, 4.
	pts := trendSeries(res.Rows, map[string]float64{"data.alpha=1": 1, "data.alpha=2": 2, "data.alpha=4": 4}, "fedavg", "fused")
	var got [][2]float64
	for _, p := range pts {
		got = append(got, [2]float64{p.X, math.Round(p.Mean*1e9) / 1e9})
	}
	if want := [][2]float64{{1, 0.6}, {2, 0.7}, {4, 0.8}}; !slices.Equal(got, want) {
		t.Errorf("fused trend %v, want %v", got, want)
	}
}
