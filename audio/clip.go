package audio

import (
	"fmt"
	"math"
)

// Clip is decoded audio: a sample rate and one slice of samples per channel.
//
// Samples[c][i] is the i-th sample (frame i) of channel c: for clips that
// [DecodeWAV] made from integer PCM a float32 in [-1, 1), for floating-point
// files the stored value, which is usually but not necessarily within
// [-1, 1] (see [Clamp]). Every channel has the same length, the clip's number of frames.
// Channels are stored separately (planar), not interleaved, because
// everything downstream works on one channel at a time.
type Clip struct {
	Rate     int         // sample rate in Hz (frames per second), > 0
	Channels int         // number of channels, == len(Samples), > 0
	Samples  [][]float32 // per channel, each of length Frames()
}

// Frames returns the number of frames (samples per channel), or 0 for a
// clip without channels.
func (c *Clip) Frames() int {
	if c == nil || len(c.Samples) == 0 {
		return 0
	}
	return len(c.Samples[0])
}

// Seconds returns the clip's duration, Frames()/Rate, or 0 if Rate is not
// positive.
func (c *Clip) Seconds() float64 {
	if c == nil || c.Rate <= 0 {
		return 0
	}
	return float64(c.Frames()) / float64(c.Rate)
}

// Validate checks the invariants documented on [Clip]: a positive rate, at
// least one channel, Channels == len(Samples) and channels of equal length.
// It does not check sample values; [EncodeWAV] does that while writing.
func (c *Clip) Validate() error {
	switch {
	case c == nil:
		return fmt.Errorf("audio: clip: %w: nil clip", ErrArgument)
	case c.Rate <= 0:
		return fmt.Errorf("audio: clip: %w: sample rate %d is not positive", ErrArgument, c.Rate)
	case c.Channels <= 0:
		return fmt.Errorf("audio: clip: %w: %d channels", ErrArgument, c.Channels)
	case c.Channels != len(c.Samples):
		return fmt.Errorf("audio: clip: %w: Channels is %d but Samples holds %d channels", ErrArgument, c.Channels, len(c.Samples))
	}
	for ch := 1; ch < len(c.Samples); ch++ {
		if len(c.Samples[ch]) != len(c.Samples[0]) {
			return fmt.Errorf("audio: clip: %w: channel %d has %d samples, channel 0 has %d", ErrArgument, ch, len(c.Samples[ch]), len(c.Samples[0]))
		}
	}
	return nil
}

// Mono returns the mixdown of the clip to one channel: the mean of the
// channels at every frame, as librosa.load(mono=True) computes it. The
// result is always a new slice, also for a mono clip, so it may be modified
// freely. A clip without channels gives an empty slice. Channels shorter
// than channel 0 (an invalid clip) count as silence where they end.
func (c *Clip) Mono() []float32 {
	n := c.Frames()
	out := make([]float32, n)
	if n == 0 {
		return out
	}
	if len(c.Samples) == 1 {
		copy(out, c.Samples[0])
		return out
	}
	acc := make([]float64, n)
	for _, ch := range c.Samples {
		for i, v := range ch[:min(len(ch), n)] {
			acc[i] += float64(v)
		}
	}
	inv := 1 / float64(len(c.Samples))
	for i, v := range acc {
		out[i] = float32(v * inv)
	}
	return out
}

// Clamp limits every sample of x to [-1, 1] in place, as the reference
// preprocessing does before its spectrogram (samples[samples > 1] = 1 and
// samples[samples < -1] = -1), and replaces NaN by 0. Resampling and
// floating-point WAV files can produce values slightly outside [-1, 1].
func Clamp(x []float32) {
	for i, v := range x {
		switch {
		case v > 1:
			x[i] = 1
		case v < -1:
			x[i] = -1
		case v != v:
			x[i] = 0
		}
	}
}

// checkFinite returns the index of the first NaN or infinite value of x, or
// -1 if all are finite.
func checkFinite(x []float32) int {
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return i
		}
	}
	return -1
}
