package audio

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/dsp/fourier"
)

// Constants of the reference spectrogram.
const (
	// RefNPerSeg and RefNOverlap are the segment length and overlap that the
	// FedCMI and OGM-GE preprocessing pass to scipy.signal.spectrogram: a
	// 512-sample segment every 159 samples (32 ms every 9.9 ms at 16 kHz).
	RefNPerSeg  = 512
	RefNOverlap = 353
	// LogEpsilon is added to the power spectral density before the
	// logarithm, and NormEpsilon to the standard deviation before the
	// z-score division, as in the reference.
	LogEpsilon  = 1e-7
	NormEpsilon = 1e-9
	// tukeyAlpha is the shape of scipy's default spectrogram window,
	// ('tukey', 0.25).
	tukeyAlpha = 0.25
	// maxNPerSeg bounds the segment length a plan accepts.
	maxNPerSeg = 1 << 24
)

// SpectrogramConfig sets the segmentation of [Spectrogram]. The window is
// always scipy's default for spectrograms, a periodic Tukey window with
// α = 0.25; each segment has its mean removed (detrend='constant') before
// windowing, and the FFT length equals NPerSeg.
type SpectrogramConfig struct {
	// NPerSeg is the length of each segment and of its FFT, at least 1.
	// The output has NPerSeg/2+1 frequency rows.
	NPerSeg int
	// NOverlap is the number of samples consecutive segments share,
	// 0 <= NOverlap < NPerSeg; segments start every NPerSeg-NOverlap
	// samples.
	NOverlap int
	// PSD, when set, returns the one-sided power spectral density in
	// units²/Hz, as scipy returns it, instead of the reference's
	// log-and-z-scored values.
	PSD bool
}

// ReferenceSpectrogram returns the configuration of the FedCMI/OGM-GE
// reference preprocessing: nperseg=512, noverlap=353, log and z-score.
func ReferenceSpectrogram() SpectrogramConfig {
	return SpectrogramConfig{NPerSeg: RefNPerSeg, NOverlap: RefNOverlap}
}

// Hop returns the distance in samples between segment starts,
// NPerSeg-NOverlap.
func (c SpectrogramConfig) Hop() int { return c.NPerSeg - c.NOverlap }

// Frames returns the number of segments (spectrogram columns) of a signal
// of n samples: (n-NPerSeg)/Hop + 1, or 0 when n < NPerSeg.
func (c SpectrogramConfig) Frames(n int) int {
	if c.Hop() <= 0 || n < c.NPerSeg {
		return 0
	}
	return (n-c.NPerSeg)/c.Hop() + 1
}

// Validate checks 1 <= NPerSeg <= 2^24 and 0 <= NOverlap < NPerSeg.
func (c SpectrogramConfig) Validate() error {
	if c.NPerSeg < 1 || c.NPerSeg > maxNPerSeg || c.NOverlap < 0 || c.NOverlap >= c.NPerSeg {
		return fmt.Errorf("audio: spectrogram: %w: nperseg %d, noverlap %d: need 1 <= nperseg <= %d and 0 <= noverlap < nperseg", ErrArgument, c.NPerSeg, c.NOverlap, maxNPerSeg)
	}
	return nil
}

// Spec is a spectrogram: a matrix of Freqs rows (frequency bins 0 to the
// Nyquist frequency) by Frames columns (segments, in time order), stored
// row-major like the array S[f, t] that scipy.signal.spectrogram returns.
type Spec struct {
	Rate    int       // sample rate of the signal, Hz
	NPerSeg int       // segment and FFT length
	Hop     int       // samples between segment starts
	Freqs   int       // rows: NPerSeg/2 + 1
	Frames  int       // columns: (n - NPerSeg)/Hop + 1
	Data    []float32 // Freqs*Frames values; Data[f*Frames+t] is S[f, t]
}

// At returns S[f, t]: frequency bin f of frame t.
func (s *Spec) At(f, t int) float32 { return s.Data[f*s.Frames+t] }

// Row returns frequency bin f across all frames, sharing s.Data.
func (s *Spec) Row(f int) []float32 { return s.Data[f*s.Frames : (f+1)*s.Frames] }

// Freq returns the frequency of bin f in Hz, f·Rate/NPerSeg (scipy's f).
func (s *Spec) Freq(f int) float64 { return float64(f) * float64(s.Rate) / float64(s.NPerSeg) }

// Time returns the centre of frame t in seconds,
// (NPerSeg/2 + t·Hop)/Rate (scipy's t).
func (s *Spec) Time(t int) float64 {
	return (float64(s.NPerSeg)/2 + float64(t*s.Hop)) / float64(s.Rate)
}

// SpectrogramPlan computes spectrograms of one configuration, reusing its
// FFT plan, window and work buffers across calls, so that computing the
// spectrograms of many clips allocates nothing once the buffers have grown
// to the clip size. A plan is not safe for concurrent use: give each
// goroutine its own.
type SpectrogramPlan struct {
	cfg    SpectrogramConfig
	fft    *fourier.FFT
	win    []float64
	scale  float64 // 1/(fs·Σw²) without fs: density scaling
	seg    []float64
	coef   []complex128
	values []float64 // log spectrogram before the z-score
}

// NewSpectrogramPlan validates c and prepares its window and FFT.
func NewSpectrogramPlan(c SpectrogramConfig) (*SpectrogramPlan, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	n := c.NPerSeg
	p := &SpectrogramPlan{
		cfg:  c,
		fft:  fourier.NewFFT(n),
		win:  tukey(n, tukeyAlpha),
		seg:  make([]float64, n),
		coef: make([]complex128, n/2+1),
	}
	var s float64
	for _, w := range p.win {
		s += w * w
	}
	p.scale = 1 / s
	return p, nil
}

// Config returns the plan's configuration.
func (p *SpectrogramPlan) Config() SpectrogramConfig { return p.cfg }

// tukey returns scipy.signal.windows.tukey(n, alpha, sym=False): the
// periodic window, i.e. the symmetric window of n+1 points without its
// last point, computed with scipy's formula.
func tukey(n int, alpha float64) []float64 {
	w := make([]float64, n)
	if n == 1 {
		w[0] = 1
		return w
	}
	m := n + 1 // periodic: extend by one, truncate at the end
	width := int(math.Floor(alpha * float64(m-1) / 2))
	for i := range w {
		switch {
		case i <= width:
			w[i] = 0.5 * (1 + math.Cos(math.Pi*(-1+2*float64(i)/alpha/float64(m-1))))
		case i < m-width-1:
			w[i] = 1
		default:
			w[i] = 0.5 * (1 + math.Cos(math.Pi*(-2/alpha+1+2*float64(i)/alpha/float64(m-1))))
		}
	}
	return w
}

// Compute returns the spectrogram of x, sampled at rate Hz, as
// scipy.signal.spectrogram(x, rate, nperseg=NPerSeg, noverlap=NOverlap)
// computes it with its other defaults (periodic Tukey window α = 0.25,
// detrend='constant', one-sided, scaling='density', mode='psd'). Unless
// the configuration asks for the PSD, the result is then, as in the
// reference, S = log(S + 1e-7) followed by (S - mean)/(std + 1e-9) with
// the mean and population standard deviation of the whole matrix.
//
// The arithmetic is done in float64 and the result rounded to float32. dst,
// if not nil, is filled and returned, reusing its Data when it has the
// capacity; otherwise a new Spec is allocated.
//
// x must hold at least NPerSeg finite samples and rate must be positive;
// otherwise Compute returns an error wrapping [ErrArgument]. (scipy instead
// shrinks nperseg to a short signal's length with a warning, which would
// silently change the output shape.)
func (p *SpectrogramPlan) Compute(dst *Spec, x []float32, rate int) (*Spec, error) {
	c := p.cfg
	if rate <= 0 {
		return nil, fmt.Errorf("audio: spectrogram: %w: sample rate %d is not positive", ErrArgument, rate)
	}
	if len(x) < c.NPerSeg {
		return nil, fmt.Errorf("audio: spectrogram: %w: %d samples, fewer than one %d-sample segment", ErrArgument, len(x), c.NPerSeg)
	}
	if i := checkFinite(x); i >= 0 {
		return nil, fmt.Errorf("audio: spectrogram: %w: sample %d is %v", ErrArgument, i, x[i])
	}
	frames := c.Frames(len(x))
	freqs := c.NPerSeg/2 + 1
	if frames > math.MaxInt/freqs {
		return nil, fmt.Errorf("audio: spectrogram: %w: %d frames of %d bins overflow", ErrArgument, frames, freqs)
	}
	if dst == nil {
		dst = new(Spec)
	}
	*dst = Spec{Rate: rate, NPerSeg: c.NPerSeg, Hop: c.Hop(), Freqs: freqs, Frames: frames, Data: dst.Data}
	size := freqs * frames
	if cap(dst.Data) >= size {
		dst.Data = dst.Data[:size]
	} else {
		dst.Data = make([]float32, size)
	}
	if !c.PSD {
		if cap(p.values) >= size {
			p.values = p.values[:size]
		} else {
			p.values = make([]float64, size)
		}
	}

	scale := p.scale / float64(rate)
	// One-sided density: every bin but 0 (and the Nyquist bin, which exists
	// for even lengths) stands for a positive and a negative frequency.
	last := freqs
	if c.NPerSeg%2 == 0 {
		last = freqs - 1
	}
	hop := c.Hop()
	for t := range frames {
		in := x[t*hop : t*hop+c.NPerSeg]
		var mean float64
		for i, v := range in {
			p.seg[i] = float64(v)
			mean += float64(v)
		}
		mean /= float64(c.NPerSeg)
		for i, w := range p.win {
			p.seg[i] = (p.seg[i] - mean) * w
		}
		p.coef = p.fft.Coefficients(p.coef, p.seg)
		for f, z := range p.coef {
			v := (real(z)*real(z) + imag(z)*imag(z)) * scale
			if f > 0 && f < last {
				v *= 2
			}
			if c.PSD {
				dst.Data[f*frames+t] = float32(v)
			} else {
				p.values[f*frames+t] = math.Log(v + LogEpsilon)
			}
		}
	}
	if c.PSD {
		return dst, nil
	}

	// Mean and population variance, shifted by the first value for
	// accuracy (a constant spectrogram then gives exactly 0, not rounding
	// noise divided by 1e-9).
	shift := p.values[0]
	var sum float64
	for _, v := range p.values {
		sum += v - shift
	}
	dm := sum / float64(size)
	mean := shift + dm
	var ss float64
	for _, v := range p.values {
		d := v - shift - dm
		ss += d * d
	}
	inv := 1 / (math.Sqrt(ss/float64(size)) + NormEpsilon)
	for i, v := range p.values {
		dst.Data[i] = float32((v - mean) * inv)
	}
	return dst, nil
}

// Spectrogram computes the spectrogram of x, sampled at rate Hz, with
// configuration c; see [SpectrogramPlan.Compute] for the method. With
// [ReferenceSpectrogram] and a 3 s clip at 16 kHz the result is 257 x 299.
// For many clips, make one [SpectrogramPlan] per goroutine and reuse it.
func Spectrogram(x []float32, rate int, c SpectrogramConfig) (*Spec, error) {
	p, err := NewSpectrogramPlan(c)
	if err != nil {
		return nil, err
	}
	return p.Compute(nil, x, rate)
}
