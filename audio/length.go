package audio

import (
	"fmt"
	"math"
)

// Fit returns exactly n samples made from x: a clip shorter than n is
// repeated (tiled) end to end and the result cut at n, and a longer clip is
// cropped to its first n samples. This is what the reference preprocessing
// computes with np.tile(samples, k)[:n]; cropping keeps the start of the
// clip, as the reference does, not a centre or random window.
//
// The result is always a new slice and never aliases x. An empty x gives n
// zeros (silence) rather than an empty result, so callers always get the
// length they asked for; n <= 0 gives an empty slice. Like make, Fit panics
// if n is too large to allocate.
func Fit(x []float32, n int) []float32 {
	if n <= 0 {
		return []float32{}
	}
	out := make([]float32, n)
	if len(x) == 0 {
		return out
	}
	for i := 0; i < n; i += len(x) {
		copy(out[i:], x)
	}
	return out
}

// Window returns the samples of x between start and end seconds, for a
// clip at the given rate: indices round(start·rate) up to, not including,
// round(end·rate). An end beyond the clip is cut at the clip's end, since
// annotated event times (AVE's are whole seconds of a nominal 10 s video)
// often overshoot audio that is a few milliseconds short. The result is a
// new slice.
//
// The arguments must satisfy rate > 0, 0 <= start < end, both finite, and
// the window must start before the clip ends; otherwise Window returns an
// error wrapping [ErrArgument].
func Window(x []float32, rate int, start, end float64) ([]float32, error) {
	if rate <= 0 {
		return nil, fmt.Errorf("audio: Window: %w: sample rate %d is not positive", ErrArgument, rate)
	}
	if math.IsNaN(start) || math.IsNaN(end) || math.IsInf(start, 0) || math.IsInf(end, 0) || start < 0 || end <= start {
		return nil, fmt.Errorf("audio: Window: %w: window [%v s, %v s) must have 0 <= start < end", ErrArgument, start, end)
	}
	i0f := math.Round(start * float64(rate))
	if i0f >= float64(len(x)) {
		return nil, fmt.Errorf("audio: Window: %w: window starts at %v s (sample %.0f), after the %d-sample clip (%.3f s) ends", ErrArgument, start, i0f, len(x), float64(len(x))/float64(rate))
	}
	i0 := int(i0f)
	i1 := len(x)
	if e := math.Round(end * float64(rate)); e < float64(len(x)) {
		i1 = int(e)
	}
	if i1 <= i0 {
		return nil, fmt.Errorf("audio: Window: %w: window [%v s, %v s) holds no sample at %d Hz", ErrArgument, start, end, rate)
	}
	out := make([]float32, i1-i0)
	copy(out, x[i0:i1])
	return out, nil
}

// WindowFit cuts the window [start, end) seconds out of x with [Window] and
// tiles or crops it with [Fit] to round(seconds·rate) samples: AVE's
// preprocessing of an annotated event, with seconds = 10.
func WindowFit(x []float32, rate int, start, end, seconds float64) ([]float32, error) {
	w, err := Window(x, rate, start, end)
	if err != nil {
		return nil, err
	}
	n := math.Round(seconds * float64(rate))
	if !(n > 0) || n > math.MaxInt32 {
		return nil, fmt.Errorf("audio: WindowFit: %w: target length %v s at %d Hz is not a positive sample count", ErrArgument, seconds, rate)
	}
	return Fit(w, int(n)), nil
}
