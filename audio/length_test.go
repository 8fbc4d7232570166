package audio

import (
	"errors"
	"math"
	"testing"
)

func TestFit(t *testing.T) {
	for _, tc := range []struct {
		name string
		x    []float32
		n    int
		want []float32
	}{
		{"tile", []float32{1, 2, 3}, 8, []float32{1, 2, 3, 1, 2, 3, 1, 2}},
		{"tile exact", []float32{1, 2}, 4, []float32{1, 2, 1, 2}},
		{"crop from start", []float32{1, 2, 3, 4, 5}, 3, []float32{1, 2, 3}},
		{"same", []float32{1, 2, 3}, 3, []float32{1, 2, 3}},
		{"single", []float32{7}, 3, []float32{7, 7, 7}},
		{"empty input", nil, 3, []float32{0, 0, 0}},
		{"zero", []float32{1}, 0, []float32{}},
		{"negative", []float32{1}, -2, []float32{}},
	} {
		got := Fit(tc.x, tc.n)
		if got == nil || !equalF32(got, tc.want) {
			t.Errorf("%s: Fit(%v, %d) = %v, want %v", tc.name, tc.x, tc.n, got, tc.want)
		}
		if len(tc.x) > 0 && len(got) > 0 {
			got[0] = 99
			if tc.x[0] == 99 {
				t.Errorf("%s: Fit aliases its input", tc.name)
			}
		}
	}
}

func TestWindow(t *testing.T) {
	x := make([]float32, 100) // 10 s at 10 Hz
	for i := range x {
		x[i] = float32(i)
	}
	for _, tc := range []struct {
		name       string
		start, end float64
		first, n   int
	}{
		{"whole", 0, 10, 0, 100},
		{"middle", 2, 5, 20, 30},
		{"rounded", 2.04, 2.96, 20, 10},
		{"end beyond", 9, 10.5, 90, 10},
		{"start inside, end far", 9.94, 100, 99, 1},
	} {
		got, err := Window(x, 10, tc.start, tc.end)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(got) != tc.n || got[0] != float32(tc.first) {
			t.Errorf("%s: %d samples from %v, want %d from %d", tc.name, len(got), got[0], tc.n, tc.first)
		}
	}
	for _, tc := range []struct {
		name       string
		rate       int
		start, end float64
	}{
		{"rate", 0, 0, 1},
		{"reversed", 10, 5, 2},
		{"empty", 10, 3, 3},
		{"negative", 10, -1, 2},
		{"nan", 10, math.NaN(), 2},
		{"inf", 10, 0, math.Inf(1)},
		{"past end", 10, 10, 11},
		{"rounds to nothing", 10, 2.01, 2.04},
	} {
		if _, err := Window(x, tc.rate, tc.start, tc.end); !errors.Is(err, ErrArgument) {
			t.Errorf("%s: error %v, want ErrArgument", tc.name, err)
		}
	}
}

func TestWindowFit(t *testing.T) {
	x := make([]float32, 160) // 10 s at 16 Hz
	for i := range x {
		x[i] = float32(i)
	}
	got, err := WindowFit(x, 16, 3, 5, 10) // 32 samples tiled to 160
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 160 || got[0] != 48 || got[31] != 79 || got[32] != 48 || got[159] != 79 {
		t.Errorf("WindowFit: %d samples %v...", len(got), got[:4])
	}
	for _, secs := range []float64{0, -1, math.NaN(), 1e12} {
		if _, err := WindowFit(x, 16, 3, 5, secs); !errors.Is(err, ErrArgument) {
			t.Errorf("seconds %v: error %v", secs, err)
		}
	}
	if _, err := WindowFit(x, 16, 20, 30, 10); !errors.Is(err, ErrArgument) {
		t.Errorf("window past end: %v", err)
	}
}

func TestClamp(t *testing.T) {
	x := []float32{-2, -1, 0.5, 1, 1.0001, float32(math.NaN()), float32(math.Inf(-1))}
	Clamp(x)
	if !equalF32(x, []float32{-1, -1, 0.5, 1, 1, 0, -1}) {
		t.Errorf("Clamp = %v", x)
	}
}
