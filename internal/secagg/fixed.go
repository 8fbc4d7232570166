package secagg

import (
	"fmt"
	"math"
)

// Fixed-point encoding of the values summed: v becomes round(v * 2^FracBits)
// as a two's-complement uint64, so that sums (and the masks, which cancel
// exactly) wrap modulo 2^64. Values are clipped to [-Clip, Clip] first:
// one encoded value is then at most Clip * 2^FracBits = 2^52 in magnitude,
// and a sum of MaxParticipants of them stays below 2^63, so the signed
// reading of the sum is the true sum.
const (
	FracBits = 40
	Clip     = 4096.0
	// MaxParticipants is the largest round: 2047 * 2^52 < 2^63.
	MaxParticipants = 2047
)

const scale = 1 << FracBits

// Encode returns v in fixed point, clipped to [-Clip, Clip], and whether
// it was clipped (NaN is encoded as 0 and counts as clipped).
func Encode(v float64) (uint64, bool) {
	clipped := false
	switch {
	case v != v:
		return 0, true
	case v > Clip:
		v, clipped = Clip, true
	case v < -Clip:
		v, clipped = -Clip, true
	}
	return uint64(int64(math.Round(v * scale))), clipped
}

// Decode returns the value of an encoded sum.
func Decode(u uint64) float64 { return float64(int64(u)) / scale }

// CheckCapacity returns an error if n inputs of at most Clip each could
// overflow the signed range of a sum.
func CheckCapacity(n int) error {
	if n < 1 || n > MaxParticipants {
		return fmt.Errorf("secagg: %d participants in a round: the fixed-point sum holds at most %d (clip %g at 2^-%d)", n, MaxParticipants, Clip, FracBits)
	}
	return nil
}
