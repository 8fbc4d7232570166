package audio

import (
	"errors"
	"math"
	"testing"
)

func sine(n, rate int, freq, amp float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)+0.3))
	}
	return x
}

// fitSine fits a·sin + b·cos at freq (Hz, at rate) to y by least squares and
// returns the amplitude and the RMS of what the fit leaves. A wrong
// frequency leaves nearly all the signal in the residual.
func fitSine(y []float32, rate int, freq float64) (amp, resid float64) {
	var ss, cc, sc, ys, yc float64
	for i, v := range y {
		w := 2 * math.Pi * freq * float64(i) / float64(rate)
		s, c := math.Sin(w), math.Cos(w)
		ss += s * s
		cc += c * c
		sc += s * c
		ys += float64(v) * s
		yc += float64(v) * c
	}
	det := ss*cc - sc*sc
	a := (ys*cc - yc*sc) / det
	b := (yc*ss - ys*sc) / det
	var r float64
	for i, v := range y {
		w := 2 * math.Pi * freq * float64(i) / float64(rate)
		d := float64(v) - a*math.Sin(w) - b*math.Cos(w)
		r += d * d
	}
	return math.Hypot(a, b), math.Sqrt(r / float64(len(y)))
}

func rms(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(len(x)))
}

func TestResampleLength(t *testing.T) {
	for _, tc := range []struct {
		n, from, to, want int
	}{
		{48000, 16000, 22050, 66150},
		{1000, 44100, 16000, 363}, // 362.81
		{7, 48000, 44100, 6},      // 6.43
		{3, 2, 1, 2},              // 1.5 rounds up
		{1, 3, 1, 0},              // 0.33
		{0, 8000, 16000, 0},
		{10, 8000, 8000, 10},
		{5, 8000, 16000, 10},
		{66150, 22050, 16000, 48000},
		{12345, 11025, 16000, 17916}, // 17916.01
	} {
		r, err := NewResampler(tc.from, tc.to)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Resample(nil, make([]float32, tc.n))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tc.want {
			t.Errorf("%d samples %d -> %d Hz: %d, want %d", tc.n, tc.from, tc.to, len(got), tc.want)
		}
	}
}

func TestResampleSine(t *testing.T) {
	for _, tc := range []struct {
		from, to int
		freq     float64
	}{
		{44100, 16000, 440},
		{44100, 16000, 6500},
		{22050, 16000, 3000},
		{48000, 16000, 7000},
		{8000, 16000, 1000},
		{8000, 16000, 3500},
		{16000, 8000, 1500},
		{48000, 44100, 10000},
		{16000, 22050, 7000},
		{44101, 16000, 440}, // coprime rates: taps computed on the fly
	} {
		const amp = 0.6
		x := sine(tc.from/4, tc.from, tc.freq, amp) // 0.25 s
		y, err := Resample(x, tc.from, tc.to)
		if err != nil {
			t.Fatal(err)
		}
		if want := int(math.Round(float64(len(x)) * float64(tc.to) / float64(tc.from))); len(y) != want {
			t.Errorf("%d -> %d Hz: %d samples, want %d", tc.from, tc.to, len(y), want)
		}
		// Leave out the ends, where the filter reaches beyond the clip.
		edge := tc.to / 50
		got, resid := fitSine(y[edge:len(y)-edge], tc.to, tc.freq)
		if math.Abs(got/amp-1) > 1e-4 || resid > 1e-4 {
			t.Errorf("%d -> %d Hz, %.0f Hz sine of amplitude %g: amplitude %.5f, residual RMS %.2e", tc.from, tc.to, tc.freq, amp, got, resid)
		}
	}
}

// TestResampleAntiAlias checks that content above the new Nyquist frequency
// is removed rather than folded back.
func TestResampleAntiAlias(t *testing.T) {
	for _, tc := range []struct {
		from, to int
		freq     float64
	}{
		{44100, 8000, 6000},
		{16000, 8000, 4300},
		{48000, 16000, 12000},
	} {
		x := sine(tc.from/2, tc.from, tc.freq, 1)
		y, err := Resample(x, tc.from, tc.to)
		if err != nil {
			t.Fatal(err)
		}
		edge := tc.to / 50
		if r := rms(y[edge : len(y)-edge]); r > 1e-5 {
			t.Errorf("%d -> %d Hz: %.0f Hz sine leaves RMS %.2e (%.0f dB)", tc.from, tc.to, tc.freq, r, 20*math.Log10(r/math.Sqrt(0.5)))
		}
	}
}

func TestResampleConstant(t *testing.T) {
	for _, rates := range [][2]int{{44100, 16000}, {8000, 16000}, {22050, 16000}, {16000, 48000}} {
		x := make([]float32, rates[0]/10)
		for i := range x {
			x[i] = 0.5
		}
		y, err := Resample(x, rates[0], rates[1])
		if err != nil {
			t.Fatal(err)
		}
		edge := rates[1] / 50
		for i, v := range y[edge : len(y)-edge] {
			if math.Abs(float64(v)-0.5) > 1e-6 {
				t.Fatalf("%v: y[%d] = %v, want 0.5", rates, i+edge, v)
			}
		}
	}
}

// TestResampleDirect checks that computing taps on the fly (for rate pairs
// whose table would be too large) gives what the table gives.
func TestResampleDirect(t *testing.T) {
	r, err := NewResampler(44100, 16000)
	if err != nil {
		t.Fatal(err)
	}
	if r.table == nil {
		t.Fatal("44.1 kHz -> 16 kHz has no table")
	}
	d := *r
	d.table = nil
	x := sine(4410, 44100, 1234, 0.7)
	a, _ := r.Resample(nil, x)
	b, _ := d.Resample(nil, x)
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-6 {
			t.Fatalf("sample %d: table %v, direct %v", i, a[i], b[i])
		}
	}
	if r, _ := NewResampler(44101, 16000); r.table != nil {
		t.Error("44101 Hz -> 16 kHz built a table larger than the bound")
	}
}

func TestResamplerReuseAndCopy(t *testing.T) {
	r, err := NewResampler(16000, 16000)
	if err != nil {
		t.Fatal(err)
	}
	x := []float32{1, 2, 3}
	y, _ := r.Resample(nil, x)
	y[0] = 9
	if x[0] != 1 || r.From() != 16000 || r.To() != 16000 {
		t.Error("same-rate Resample aliases its input")
	}
	r, _ = NewResampler(8000, 16000)
	buf := make([]float32, 0, 100)
	out, _ := r.Resample(buf, sine(50, 8000, 100, 1))
	if len(out) != 100 || &out[0] != &buf[:1][0] {
		t.Error("Resample did not reuse dst")
	}
	allocs := testing.AllocsPerRun(10, func() { _, _ = r.Resample(buf, x) })
	if allocs != 0 {
		t.Errorf("Resample into a large enough dst allocates %v times", allocs)
	}
}

func TestResampleErrors(t *testing.T) {
	for _, rates := range [][2]int{
		{0, 16000}, {16000, 0}, {-1, 8000},
		// Ratios so extreme that the filter's tap count overflows an int
		// (this once panicked with a division by zero).
		{1 << 62, 1}, {math.MaxInt, 1}, {math.MaxInt, 2},
	} {
		if _, err := Resample([]float32{1}, rates[0], rates[1]); !errors.Is(err, ErrArgument) {
			t.Errorf("%v: error %v, want ErrArgument", rates, err)
		}
	}
	// The most extreme ratio of WAV rates (32-bit) still works.
	if _, err := NewResampler(math.MaxInt32, 1); err != nil {
		t.Errorf("2^31-1 Hz -> 1 Hz: %v", err)
	}
	r, _ := NewResampler(1, math.MaxInt32)
	if _, err := r.OutputLen(math.MaxInt / 2); !errors.Is(err, ErrArgument) {
		t.Errorf("overflowing length: %v", err)
	}
	if _, err := r.OutputLen(-1); !errors.Is(err, ErrArgument) {
		t.Errorf("negative length: %v", err)
	}
}

func BenchmarkResample44k1To16k(b *testing.B) {
	x := sine(3*44100, 44100, 440, 0.5)
	r, err := NewResampler(44100, 16000)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, 0, 48000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Resample(dst, x); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "clips/s")
}
