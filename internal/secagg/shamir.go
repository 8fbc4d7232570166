package secagg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// Prime is the order of the field Shamir's shares live in, the Mersenne
// prime 2^61 - 1: products of two elements fit in 128 bits and reduce
// with shifts.
const Prime = 1<<61 - 1

// chunkBytes is how many bytes of a secret one field element carries
// (56 bits < 61), and ElementsPerSecret how many elements a 32-byte
// secret takes.
const (
	chunkBytes        = 7
	ElementsPerSecret = (SecretSize + chunkBytes - 1) / chunkBytes
)

// SecretSize is the size of every shared secret: an X25519 private key or
// a self-mask seed.
const SecretSize = 32

// Secret is a value split among the members of a round.
type Secret [SecretSize]byte

func reduce(x uint64) uint64 {
	x = (x & Prime) + (x >> 61)
	if x >= Prime {
		x -= Prime
	}
	return x
}

func fadd(a, b uint64) uint64 { return reduce(a + b) }

func fsub(a, b uint64) uint64 { return reduce(a + Prime - b) }

func fmul(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	// a*b = hi*2^64 + lo = (hi<<3 | lo>>61)*2^61 + (lo & Prime), and
	// 2^61 = 1 (mod Prime).
	return reduce((lo & Prime) + (hi<<3 | lo>>61))
}

func finv(a uint64) uint64 { // a^(p-2), Fermat
	r, b, e := uint64(1), a, uint64(Prime-2)
	for e > 0 {
		if e&1 == 1 {
			r = fmul(r, b)
		}
		b = fmul(b, b)
		e >>= 1
	}
	return r
}

// randomElement draws a uniform field element from rnd (rejecting the
// few 61-bit values at or above Prime).
func randomElement(rnd io.Reader, buf []byte) (uint64, error) {
	for {
		if _, err := io.ReadFull(rnd, buf[:8]); err != nil {
			return 0, fmt.Errorf("secagg: randomness: %w", err)
		}
		if v := binary.LittleEndian.Uint64(buf) & Prime; v < Prime {
			return v, nil
		}
	}
}

// elements splits a secret into field elements of chunkBytes each.
func elements(s Secret) []uint64 {
	out := make([]uint64, ElementsPerSecret)
	var b [8]byte
	for i := range out {
		clear(b[:])
		copy(b[:], s[i*chunkBytes:min((i+1)*chunkBytes, SecretSize)])
		out[i] = binary.LittleEndian.Uint64(b[:])
	}
	return out
}

// fromElements is the inverse of elements; a reconstruction from bad
// shares usually yields elements too large to be a chunk.
func fromElements(v []uint64) (Secret, error) {
	var s Secret
	var b [8]byte
	for i, e := range v {
		n := min((i+1)*chunkBytes, SecretSize) - i*chunkBytes
		if e>>(8*n) != 0 {
			return s, errBadShares
		}
		binary.LittleEndian.PutUint64(b[:], e)
		copy(s[i*chunkBytes:], b[:n])
	}
	return s, nil
}

var errBadShares = errors.New("the shares do not reconstruct a secret (a share is corrupt)")

// Share is one member's share of a sequence of secrets: the values at X
// of one random polynomial of degree threshold-1 per field element of
// each secret (ElementsPerSecret per secret, in order).
type Share struct {
	// X is the evaluation point, the holder's index in the round plus 1.
	X uint32
	// Values holds ElementsPerSecret field elements per secret.
	Values []uint64
}

// Split returns n shares (X = 1..n) of the secrets, any t of which
// reconstruct them and fewer of which reveal nothing about them.
func Split(secrets []Secret, n, t int, rnd io.Reader) ([]Share, error) {
	if t < 1 || t > n {
		return nil, fmt.Errorf("secagg: threshold %d outside 1..%d shares", t, n)
	}
	if n > MaxParticipants {
		return nil, fmt.Errorf("secagg: %d shares, at most %d", n, MaxParticipants)
	}
	shares := make([]Share, n)
	for i := range shares {
		shares[i] = Share{X: uint32(i + 1), Values: make([]uint64, 0, len(secrets)*ElementsPerSecret)}
	}
	coef := make([]uint64, t)
	buf := make([]byte, 8)
	for _, s := range secrets {
		for _, e := range elements(s) {
			coef[0] = e
			for k := 1; k < t; k++ {
				var err error
				if coef[k], err = randomElement(rnd, buf); err != nil {
					return nil, err
				}
			}
			for i := range shares {
				x := uint64(i + 1)
				y := coef[t-1]
				for k := t - 2; k >= 0; k-- {
					y = fadd(fmul(y, x), coef[k])
				}
				shares[i].Values = append(shares[i].Values, y)
			}
		}
	}
	clear(coef)
	return shares, nil
}

// Combine reconstructs the secrets from the first t of shares, which must
// have distinct points and the same number of whole secrets.
func Combine(shares []Share, t int) ([]Secret, error) {
	if t < 1 {
		return nil, fmt.Errorf("secagg: threshold %d", t)
	}
	if len(shares) < t {
		return nil, fmt.Errorf("secagg: %d shares, the threshold is %d", len(shares), t)
	}
	use := shares[:t]
	m := len(use[0].Values)
	if m == 0 || m%ElementsPerSecret != 0 {
		return nil, fmt.Errorf("secagg: a share of %d values is not whole secrets of %d", m, ElementsPerSecret)
	}
	xs := make([]uint64, t)
	for i, s := range use {
		if len(s.Values) != m {
			return nil, fmt.Errorf("secagg: shares of %d and %d values", m, len(s.Values))
		}
		if s.X == 0 || uint64(s.X) >= Prime {
			return nil, fmt.Errorf("secagg: share point %d", s.X)
		}
		for j := range i {
			if xs[j] == uint64(s.X) {
				return nil, fmt.Errorf("secagg: two shares at point %d", s.X)
			}
		}
		xs[i] = uint64(s.X)
	}
	lag := make([]uint64, t)
	lagrangeAt(lag, xs, 0)
	out := make([]Secret, m/ElementsPerSecret)
	vals := make([]uint64, ElementsPerSecret)
	for k := range out {
		for e := range vals {
			var acc uint64
			for i, s := range use {
				y := s.Values[k*ElementsPerSecret+e]
				if y >= Prime {
					return nil, fmt.Errorf("secagg: share value %d is not a field element", y)
				}
				acc = fadd(acc, fmul(y, lag[i]))
			}
			vals[e] = acc
		}
		var err error
		if out[k], err = fromElements(vals); err != nil {
			return nil, fmt.Errorf("secagg: %w", err)
		}
	}
	return out, nil
}

// lagrangeAt sets lag to the Lagrange basis of the distinct points xs at
// x: l_i = prod_{j != i} (x - x_j) / (x_i - x_j).
func lagrangeAt(lag, xs []uint64, x uint64) {
	for i := range xs {
		num, den := uint64(1), uint64(1)
		for j := range xs {
			if j != i {
				num = fmul(num, fsub(x, xs[j]))
				den = fmul(den, fsub(xs[i], xs[j]))
			}
		}
		lag[i] = fmul(num, finv(den))
	}
}

// consistent reports whether the shares after the first t lie on the
// polynomials through the first t, that is, whether every t of them
// reconstruct the same secrets. The shares must have distinct points and
// equal lengths; it is false when there are no more than t.
func consistent(shares []Share, t int) bool {
	if t < 1 || len(shares) <= t {
		return false
	}
	base := shares[:t]
	xs := make([]uint64, t)
	for i, b := range base {
		xs[i] = uint64(b.X)
	}
	lag := make([]uint64, t)
	for _, s := range shares[t:] {
		if len(s.Values) != len(base[0].Values) {
			return false
		}
		lagrangeAt(lag, xs, uint64(s.X))
		for v, want := range s.Values {
			var acc uint64
			for i, b := range base {
				acc = fadd(acc, fmul(b.Values[v], lag[i]))
			}
			if acc != want {
				return false
			}
		}
	}
	return true
}

// MarshalShare encodes s: X, then the values, little-endian.
func MarshalShare(s Share) []byte {
	b := make([]byte, 0, 4+8*len(s.Values))
	b = binary.LittleEndian.AppendUint32(b, s.X)
	for _, v := range s.Values {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

// UnmarshalShare decodes a share of want values written by MarshalShare.
func UnmarshalShare(b []byte, want int) (Share, error) {
	if len(b) != 4+8*want {
		return Share{}, fmt.Errorf("secagg: share of %d bytes, want %d (%d values)", len(b), 4+8*want, want)
	}
	s := Share{X: binary.LittleEndian.Uint32(b), Values: make([]uint64, want)}
	for i := range s.Values {
		v := binary.LittleEndian.Uint64(b[4+8*i:])
		if v >= Prime {
			return Share{}, fmt.Errorf("secagg: share value %d is not a field element", v)
		}
		s.Values[i] = v
	}
	return s, nil
}
