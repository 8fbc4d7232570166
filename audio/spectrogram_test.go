package audio

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// fixtureCase is one entry of testdata/spectrogram/cases.json, written by
// testdata/gen_spectrogram.py from scipy's output.
type fixtureCase struct {
	Name   string  `json:"name"`
	Rate   int     `json:"rate"`
	N      int     `json:"n"`
	Freqs  int     `json:"freqs"`
	Frames int     `json:"frames"`
	F1     float64 `json:"f1"`
	FLast  float64 `json:"f_last"`
	T0     float64 `json:"t0"`
	TLast  float64 `json:"t_last"`
}

func readF32(t *testing.T, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b)%4 != 0 {
		t.Fatalf("%s: %d bytes is not a whole number of float32", path, len(b))
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// TestSpectrogramMatchesScipy compares with scipy.signal.spectrogram and the
// reference log/z-score, computed by testdata/gen_spectrogram.py.
//
// Tolerance: 1e-4 relative (for the z-scored values, which cross zero,
// relative to max(1, |want|)). scipy computed the fixtures in float64 and
// so does this package, but both the fixtures and the output are stored as
// float32 (relative rounding 6e-8), and the two FFTs (pocketfft, gonum's
// FFTPACK) round differently, which matters most in bins 15 orders of
// magnitude below the peak (the chirp's). The reference code itself runs
// scipy on float32 input, in float32 arithmetic; its log/z-scored values
// differ from the float64 answer by up to 1e-5 (gen_spectrogram.py prints
// the figure), so 1e-4 still tells a correct implementation from one with
// a wrong window, scaling or detrend by orders of magnitude.
func TestSpectrogramMatchesScipy(t *testing.T) {
	dir := filepath.Join("testdata", "spectrogram")
	raw, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		NPerSeg  int           `json:"nperseg"`
		NOverlap int           `json:"noverlap"`
		Cases    []fixtureCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		t.Fatal(err)
	}
	if len(meta.Cases) == 0 {
		t.Fatal("no cases in cases.json")
	}
	for _, tc := range meta.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			x := readF32(t, filepath.Join(dir, tc.Name+".in.f32"))
			if len(x) != tc.N {
				t.Fatalf("input has %d samples, cases.json says %d", len(x), tc.N)
			}
			for _, mode := range []struct {
				name string
				psd  bool
				file string
			}{{"psd", true, ".psd.f32"}, {"logz", false, ".logz.f32"}} {
				want := readF32(t, filepath.Join(dir, tc.Name+mode.file))
				cfg := SpectrogramConfig{NPerSeg: meta.NPerSeg, NOverlap: meta.NOverlap, PSD: mode.psd}
				s, err := Spectrogram(x, tc.Rate, cfg)
				if err != nil {
					t.Fatal(err)
				}
				if s.Freqs != tc.Freqs || s.Frames != tc.Frames || len(s.Data) != len(want) {
					t.Fatalf("%s: shape %d x %d (%d values), scipy %d x %d (%d values)", mode.name, s.Freqs, s.Frames, len(s.Data), tc.Freqs, tc.Frames, len(want))
				}
				worst, at := 0.0, 0
				for i, w := range want {
					den := math.Abs(float64(w))
					if !mode.psd {
						den = math.Max(1, den)
					}
					if e := math.Abs(float64(s.Data[i])-float64(w)) / den; e > worst || math.IsNaN(e) {
						worst, at = e, i
					}
				}
				t.Logf("%s: max relative error %.2e at [%d, %d]", mode.name, worst, at/s.Frames, at%s.Frames)
				if !(worst <= 1e-4) {
					t.Errorf("%s: S[%d, %d] = %g, scipy %g (relative error %.2e > 1e-4)", mode.name, at/s.Frames, at%s.Frames, s.Data[at], want[at], worst)
				}
				for _, c := range []struct {
					what      string
					got, want float64
				}{
					{"f[1]", s.Freq(1), tc.F1},
					{"f[-1]", s.Freq(s.Freqs - 1), tc.FLast},
					{"t[0]", s.Time(0), tc.T0},
					{"t[-1]", s.Time(s.Frames - 1), tc.TLast},
				} {
					if math.Abs(c.got-c.want) > 1e-9*math.Max(1, math.Abs(c.want)) {
						t.Errorf("%s = %v, scipy %v", c.what, c.got, c.want)
					}
				}
			}
		})
	}
}

// TestTukey compares with scipy.signal.windows.tukey(n, alpha, sym=False),
// values printed by scipy 1.10.1.
func TestTukey(t *testing.T) {
	for _, tc := range []struct {
		n     int
		alpha float64
		want  []float64
	}{
		{1, 0.25, []float64{1}},
		{8, 0.25, []float64{0, 1, 1, 1, 1, 1, 1, 1}},
		{10, 0.5, []float64{0, 0.3454915028125263, 0.9045084971874738, 1, 1, 1, 1, 1, 0.9045084971874736, 0.34549150281252616}},
		{7, 0.6, []float64{0, 0.4626349532067881, 0.9944154131125642, 1, 1, 0.9944154131125642, 0.4626349532067881}},
	} {
		got := tukey(tc.n, tc.alpha)
		if len(got) != len(tc.want) {
			t.Fatalf("tukey(%d, %v): %d points, want %d", tc.n, tc.alpha, len(got), len(tc.want))
		}
		for i := range got {
			if math.Abs(got[i]-tc.want[i]) > 1e-15 {
				t.Errorf("tukey(%d, %v)[%d] = %.17g, want %.17g", tc.n, tc.alpha, i, got[i], tc.want[i])
			}
		}
	}
	// The reference window: scipy gives sum(w^2) = 432 and these points.
	w := tukey(512, 0.25)
	var ss float64
	for _, v := range w {
		ss += v * v
	}
	if math.Abs(ss-432) > 1e-9 {
		t.Errorf("tukey(512, 0.25): sum of squares %.12g, scipy 432", ss)
	}
	for i, want := range map[int]float64{1: 0.0006022718974138, 2: 0.00240763666390165, 60: 0.9903926402016152, 63: 0.9993977281025863, 64: 1} {
		if math.Abs(w[i]-want) > 1e-15 {
			t.Errorf("tukey(512, 0.25)[%d] = %.17g, scipy %.17g", i, w[i], want)
		}
	}
}

func TestSpectrogramShape(t *testing.T) {
	cfg := ReferenceSpectrogram()
	for _, tc := range []struct {
		n, frames int
	}{
		{512, 1}, {670, 1}, {671, 2}, {3 * 16000, 299}, {3 * 22050, (3*22050-512)/159 + 1}, {160000, 1004},
	} {
		if got := cfg.Frames(tc.n); got != tc.frames {
			t.Errorf("Frames(%d) = %d, want %d", tc.n, got, tc.frames)
		}
	}
	x := make([]float32, 3*16000)
	for i := range x {
		x[i] = float32(math.Sin(float64(i) * 0.1))
	}
	s, err := Spectrogram(x, 16000, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Freqs != 257 || s.Frames != 299 || len(s.Data) != 257*299 || len(s.Row(256)) != 299 {
		t.Fatalf("3 s at 16 kHz: %d x %d, want 257 x 299", s.Freqs, s.Frames)
	}
	// The z-score makes mean 0 and standard deviation 1.
	var sum, ss float64
	for _, v := range s.Data {
		sum += float64(v)
		ss += float64(v) * float64(v)
	}
	mean := sum / float64(len(s.Data))
	std := math.Sqrt(ss/float64(len(s.Data)) - mean*mean)
	if math.Abs(mean) > 1e-5 || math.Abs(std-1) > 1e-5 {
		t.Errorf("z-scored spectrogram: mean %g, std %g", mean, std)
	}
	// The sine at 0.1 rad/sample = 254.6 Hz peaks in bin round(254.6/31.25) = 8.
	best := 0
	for f := range s.Freqs {
		if s.At(f, 100) > s.At(best, 100) {
			best = f
		}
	}
	if best != 8 {
		t.Errorf("peak in bin %d (%.1f Hz), want 8", best, s.Freq(best))
	}
}

func TestSpectrogramConstant(t *testing.T) {
	// A constant signal has zero PSD after the detrend, hence a constant
	// log spectrogram and std 0: the 1e-9 keeps the z-score at 0, not NaN.
	x := make([]float32, 2000)
	for i := range x {
		x[i] = 0.5
	}
	s, err := Spectrogram(x, 16000, ReferenceSpectrogram())
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range s.Data {
		if v != 0 {
			t.Fatalf("Data[%d] = %v, want 0", i, v)
		}
	}
}

func TestSpectrogramErrors(t *testing.T) {
	ok := make([]float32, 1000)
	nan := make([]float32, 1000)
	nan[700] = float32(math.NaN())
	for _, tc := range []struct {
		name string
		x    []float32
		rate int
		cfg  SpectrogramConfig
	}{
		{"short", make([]float32, 511), 16000, ReferenceSpectrogram()},
		{"empty", nil, 16000, ReferenceSpectrogram()},
		{"nan", nan, 16000, ReferenceSpectrogram()},
		{"rate", ok, 0, ReferenceSpectrogram()},
		{"zero config", ok, 16000, SpectrogramConfig{}},
		{"overlap", ok, 16000, SpectrogramConfig{NPerSeg: 256, NOverlap: 256}},
		{"negative overlap", ok, 16000, SpectrogramConfig{NPerSeg: 256, NOverlap: -1}},
		{"huge", ok, 16000, SpectrogramConfig{NPerSeg: 1 << 30}},
	} {
		_, err := Spectrogram(tc.x, tc.rate, tc.cfg)
		if !errors.Is(err, ErrArgument) {
			t.Errorf("%s: error %v, want ErrArgument", tc.name, err)
		}
	}
}

// TestSpectrogramOddAndTiny checks segment lengths scipy also accepts: odd
// (the last bin is not a Nyquist bin and is doubled) and 1.
func TestSpectrogramOddAndTiny(t *testing.T) {
	x := []float32{1, -1, 0.5, 0.25, -0.75, 0.1, 0.3}
	s, err := Spectrogram(x, 10, SpectrogramConfig{NPerSeg: 5, NOverlap: 3, PSD: true})
	if err != nil {
		t.Fatal(err)
	}
	// scipy.signal.spectrogram(x, 10, nperseg=5, noverlap=3), float64.
	want := [][]float64{
		{0.025, 0.00441},
		{0.06625508163672238, 0.04506463045646882},
		{0.14311991836327764, 0.04635036954353119},
	}
	if s.Freqs != 3 || s.Frames != 2 {
		t.Fatalf("shape %d x %d, want 3 x 2", s.Freqs, s.Frames)
	}
	for f := range want {
		for tt, w := range want[f] {
			if g := float64(s.At(f, tt)); math.Abs(g-w) > 1e-6*w {
				t.Errorf("S[%d, %d] = %.9g, scipy %.9g", f, tt, g, w)
			}
		}
	}
	s1, err := Spectrogram(x, 10, SpectrogramConfig{NPerSeg: 1, NOverlap: 0, PSD: true})
	if err != nil {
		t.Fatal(err)
	}
	if s1.Freqs != 1 || s1.Frames != len(x) {
		t.Fatalf("nperseg 1: shape %d x %d", s1.Freqs, s1.Frames)
	}
	for i, v := range s1.Data {
		if v != 0 {
			t.Errorf("nperseg 1: Data[%d] = %v, want 0 (a one-sample segment minus its mean)", i, v)
		}
	}
}

func TestSpectrogramPlanReuse(t *testing.T) {
	p, err := NewSpectrogramPlan(ReferenceSpectrogram())
	if err != nil {
		t.Fatal(err)
	}
	a := make([]float32, 8000)
	b := make([]float32, 12000)
	for i := range b {
		b[i] = float32(math.Sin(float64(i) * 0.3))
		if i < len(a) {
			a[i] = float32(math.Cos(float64(i) * 0.05))
		}
	}
	want, err := Spectrogram(a, 16000, ReferenceSpectrogram())
	if err != nil {
		t.Fatal(err)
	}
	var dst Spec
	if _, err := p.Compute(&dst, b, 16000); err != nil {
		t.Fatal(err)
	}
	got, err := p.Compute(&dst, a, 16000) // smaller clip into a used Spec
	if err != nil {
		t.Fatal(err)
	}
	if got != &dst || got.Frames != want.Frames || len(got.Data) != len(want.Data) {
		t.Fatalf("reused plan: %d frames (%d values), want %d (%d)", got.Frames, len(got.Data), want.Frames, len(want.Data))
	}
	for i := range want.Data {
		if got.Data[i] != want.Data[i] {
			t.Fatalf("reused plan differs at %d: %v vs %v", i, got.Data[i], want.Data[i])
		}
	}
	allocs := testing.AllocsPerRun(5, func() {
		if _, err := p.Compute(&dst, a, 16000); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Compute with a warm plan allocates %v times, want 0", allocs)
	}
}

// BenchmarkSpectrogram3s16k is one CREMA-D-sized clip: 3 s at 16 kHz,
// 257 x 299, with a reused plan.
func BenchmarkSpectrogram3s16k(b *testing.B) {
	x := make([]float32, 3*16000)
	for i := range x {
		x[i] = float32(0.5*math.Sin(float64(i)*0.07) + 0.1*math.Sin(float64(i)*1.3))
	}
	p, err := NewSpectrogramPlan(ReferenceSpectrogram())
	if err != nil {
		b.Fatal(err)
	}
	var dst Spec
	if _, err := p.Compute(&dst, x, 16000); err != nil { // grow the buffers
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Compute(&dst, x, 16000); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "clips/s")
}
