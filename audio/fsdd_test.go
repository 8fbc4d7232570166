package audio

import (
	"math"
	"path/filepath"
	"sort"
	"testing"
)

// TestFSDD decodes a few recordings of the Free Spoken Digit Dataset (8 kHz
// mono 16-bit) from the shared data folder and runs the CREMA-D-style
// pipeline on them: resample to 16 kHz, tile or crop to 3 s, reference
// spectrogram. It skips when the folder is absent.
func TestFSDD(t *testing.T) {
	dir := filepath.Join("..", "..", "shared", "data", "fsdd", "recordings")
	files, err := filepath.Glob(filepath.Join(dir, "*.wav"))
	if err != nil || len(files) == 0 {
		t.Skipf("FSDD recordings not found in %s (err %v)", dir, err)
	}
	sort.Strings(files)
	step := max(1, len(files)/6)
	r, err := NewResampler(8000, 16000)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := NewSpectrogramPlan(ReferenceSpectrogram())
	if err != nil {
		t.Fatal(err)
	}
	psdPlan, err := NewSpectrogramPlan(SpectrogramConfig{NPerSeg: RefNPerSeg, NOverlap: RefNOverlap, PSD: true})
	if err != nil {
		t.Fatal(err)
	}
	var spec, psd Spec
	for i := 0; i < len(files); i += step {
		path := files[i]
		c, err := ReadWAVFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if c.Rate != 8000 || c.Channels != 1 || c.Frames() < 1000 {
			t.Fatalf("%s: %d Hz, %d channels, %d frames; FSDD is 8 kHz mono", path, c.Rate, c.Channels, c.Frames())
		}
		if r := rms(c.Samples[0]); r < 1e-3 || r > 0.9 {
			t.Errorf("%s: RMS %g is not that of speech scaled to [-1, 1]", path, r)
		}
		x, err := r.Resample(nil, c.Mono())
		if err != nil {
			t.Fatal(err)
		}
		if want := 2 * c.Frames(); len(x) != want {
			t.Fatalf("%s: %d samples at 16 kHz, want %d", path, len(x), want)
		}
		xr := x
		x = Fit(x, 3*16000)
		Clamp(x)
		s, err := plan.Compute(&spec, x, 16000)
		if err != nil {
			t.Fatal(err)
		}
		if s.Freqs != 257 || s.Frames != 299 {
			t.Fatalf("%s: spectrogram %d x %d, want 257 x 299", path, s.Freqs, s.Frames)
		}
		var sum, ss float64
		for _, v := range s.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%s: non-finite spectrogram value", path)
			}
			sum += float64(v)
			ss += float64(v) * float64(v)
		}
		n := float64(len(s.Data))
		if mean, std := sum/n, math.Sqrt(ss/n-sum*sum/n/n); math.Abs(mean) > 1e-4 || math.Abs(std-1) > 1e-4 {
			t.Errorf("%s: z-scored spectrogram has mean %g, std %g", path, mean, std)
		}
		// Speech energy sits below 4 kHz, the Nyquist frequency of the 8 kHz
		// recording. Upsampling must not create images of it above 4 kHz:
		// content below 3.5 kHz would image above 4.5 kHz, where the filter
		// attenuates by more than 100 dB; linear interpolation would leave
		// images at -5 to -35 dB. The measure is taken before tiling, whose
		// splices are broadband clicks, and is limited to about -85 dB by
		// the leakage of the Tukey window itself, hence the -70 dB bound.
		p, err := psdPlan.Compute(&psd, xr, 16000)
		if err != nil {
			t.Fatal(err)
		}
		var low, high float64
		var nLow, nHigh int
		for f := range p.Freqs {
			for _, v := range p.Row(f) {
				switch {
				case p.Freq(f) < 3500:
					low += float64(v)
					nLow++
				case p.Freq(f) > 4500:
					high += float64(v)
					nHigh++
				}
			}
		}
		ratio := 10 * math.Log10((high/float64(nHigh))/(low/float64(nLow)))
		t.Logf("%s: %.2f s; power above 4.5 kHz %.0f dB relative to below 3.5 kHz", filepath.Base(path), c.Seconds(), ratio)
		if ratio > -70 {
			t.Errorf("%s: power above 4.5 kHz only %.0f dB below that under 3.5 kHz", path, ratio)
		}
	}
}
