package text

import (
	"fmt"
	"math"
	"slices"
)

// Limits of a HashedBag's settings.
const (
	// MaxDim is the largest dimension a HashedBag accepts (2^24 = 16777216
	// buckets, 64 MiB per float32 vector), so that a mistyped setting fails
	// with an error instead of exhausting memory.
	MaxDim = 1 << 24

	// MaxN is the highest n-gram order a HashedBag accepts.
	MaxN = 5
)

// Hashing constants. fnvOffset and fnvPrime are those of 64-bit FNV-1a
// (hash/fnv.New64a); the two multipliers are those of the finaliser of
// MurmurHash3 (fmix64). sep joins the tokens of an n-gram; it is the ASCII
// unit separator, a control character that Tokenize never puts in a token.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
	fmixMul1  = 0xff51afd7ed558ccd
	fmixMul2  = 0xc4ceb9fe1a85ec53
	sep       = 0x1f
)

// HashedBag turns a token sequence into a fixed-length vector: a bag of
// word n-grams (orders 1..N) hashed into Dim buckets, with no vocabulary to
// fit or store. See the package documentation for the reasoning.
//
// Each n-gram (its tokens joined by the byte 0x1f) is hashed with 64-bit
// FNV-1a, exactly as hash/fnv.New64a would, and the result h is mixed with
// the MurmurHash3 finaliser:
//
//	m = h;  m ^= m>>33;  m *= 0xff51afd7ed558ccd;  m ^= m>>33
//	        m *= 0xc4ceb9fe1a85ec53;  m ^= m>>33
//
// The lowest bit of m gives the sign (0: +1, 1: -1) and the other 63 bits
// the bucket, (m>>1) mod Dim. The mixing step is there because FNV-1a
// alone mixes its last byte poorly into the high bits ("a" and "b" hash to
// 0xaf63dc4c8601ec8c and 0xaf63df4c8601f1a5, equal in their top 22 bits);
// the finaliser is a bijection, so distinct FNV-1a values stay distinct.
// These functions and constants are fixed: a bucket index never changes
// between versions, machines or runs, so vectors stored by one run stay
// valid for the next.
//
// The sign is the signed-hash trick of Weinberger et al. (2009): n-grams
// that share a bucket add with independent random signs, so that a
// collision adds noise with zero mean instead of inflating the bucket,
// and inner products between vectors are unbiased estimates of those
// between the unhashed bags.
//
// The value of an n-gram that occurs tf times in the sequence is tf, or
// 1+ln(tf) when Sublinear is set (an n-gram seen once counts 1, twice
// 1.693..., four times 2.386...), taken per n-gram before hashing, so that
// the logarithm never sees a bucket's signed sum. When Normalize is set,
// the vector is then scaled to Euclidean (L2) norm 1; a vector without
// n-grams, or whose n-grams cancel exactly, stays zero.
//
// Tokens are hashed as given, so featurise the output of Tokenize or of
// another tokenizer that never puts the byte 0x1f in a token (otherwise
// the unigram "a\x1fb" and the bigram "a", "b" are the same feature).
//
// The zero value is not valid; start from DefaultHashedBag. A HashedBag has
// no internal state: it may be copied and used from several goroutines at
// once. The JSON field names allow storing it with a run.
type HashedBag struct {
	Dim       int  `json:"dim"`       // number of buckets, the vector length: 1..MaxDim
	N         int  `json:"n"`         // n-gram orders 1..N are counted: 1..MaxN
	Sublinear bool `json:"sublinear"` // value 1+ln(tf) instead of tf
	Normalize bool `json:"normalize"` // scale to L2 norm 1
}

// DefaultHashedBag returns the default featuriser: 4096 buckets, unigrams
// and bigrams, sublinear term frequency and L2 normalisation.
func DefaultHashedBag() HashedBag {
	return HashedBag{Dim: 4096, N: 2, Sublinear: true, Normalize: true}
}

// Validate reports whether h's settings are in range: Dim in 1..MaxDim and
// N in 1..MaxN. The error wraps ErrConfig.
func (h HashedBag) Validate() error {
	if err := h.check(); err != nil {
		return fmt.Errorf("text: %w", err)
	}
	return nil
}

// check is Validate without the package prefix, for use inside other
// messages.
func (h HashedBag) check() error {
	if h.Dim < 1 || h.Dim > MaxDim {
		return fmt.Errorf("hashed bag: %w: dim %d, want 1..%d", ErrConfig, h.Dim, MaxDim)
	}
	if h.N < 1 || h.N > MaxN {
		return fmt.Errorf("hashed bag: %w: n-gram order %d, want 1..%d", ErrConfig, h.N, MaxN)
	}
	return nil
}

// Featurize writes the feature vector of tokens to dst, which must have
// length h.Dim. dst is zeroed first, so it can be reused across calls. An
// empty token sequence gives the zero vector.
//
// Errors wrap ErrConfig (h is not valid) or ErrShape (dst has the wrong
// length); dst is left unchanged then.
func (h HashedBag) Featurize(tokens []string, dst []float32) error {
	if err := h.Validate(); err != nil {
		return err
	}
	if len(dst) != h.Dim {
		return fmt.Errorf("text: featurize: %w: dst has length %d, want dim %d", ErrShape, len(dst), h.Dim)
	}
	clear(dst)
	h.fill(tokens, dst)
	return nil
}

// fill adds the feature vector of tokens to dst, which must be zero and of
// length h.Dim; h must be valid.
func (h HashedBag) fill(tokens []string, dst []float32) {
	hashes := h.appendHashes(make([]uint64, 0, numNGrams(len(tokens), h.N)), tokens)
	if h.Sublinear {
		// Equal hashes are occurrences of the same n-gram (up to a 64-bit
		// collision, which is vanishingly rare): sort to count them. The
		// sorted order also makes the floating-point sums independent of
		// the order of the tokens' n-grams.
		slices.Sort(hashes)
	}
	// touched collects the bucket of every n-gram, reusing the part of
	// hashes already read (it never grows past i), so that normalisation
	// visits only the non-zero elements instead of all Dim.
	touched := hashes[:0]
	for i := 0; i < len(hashes); {
		k, w := i+1, float32(1)
		if h.Sublinear {
			for k < len(hashes) && hashes[k] == hashes[i] {
				k++
			}
			w = float32(1 + math.Log(float64(k-i)))
		}
		j, sign := bucket(hashes[i], h.Dim)
		dst[j] += sign * w
		touched = append(touched, uint64(j))
		i = k
	}
	if h.Normalize {
		slices.Sort(touched)
		normalizeAt(dst, slices.Compact(touched))
	}
}

// Vector tokenizes text with Tokenize and returns its feature vector, a new
// slice of length h.Dim. The error wraps ErrConfig when h is not valid.
func (h HashedBag) Vector(text string) ([]float32, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	v := make([]float32, h.Dim)
	h.fill(Tokenize(text), v)
	return v, nil
}

// numNGrams returns the number of n-grams of orders 1..n in a sequence of
// t tokens.
func numNGrams(t, n int) int {
	total := 0
	for k := 1; k <= n && k <= t; k++ {
		total += t - k + 1
	}
	return total
}

// appendHashes appends the mixed hash of every n-gram of tokens, orders
// 1..h.N, to dst. The hash of an n-gram extends that of its prefix, so all
// n-grams starting at one token cost one pass over their bytes.
func (h HashedBag) appendHashes(dst []uint64, tokens []string) []uint64 {
	for i := range tokens {
		x := uint64(fnvOffset)
		for k := i; k < len(tokens) && k < i+h.N; k++ {
			if k > i {
				x = (x ^ sep) * fnvPrime
			}
			for b := 0; b < len(tokens[k]); b++ {
				x = (x ^ uint64(tokens[k][b])) * fnvPrime
			}
			dst = append(dst, fmix64(x))
		}
	}
	return dst
}

// fmix64 is the 64-bit finaliser of MurmurHash3, a bijection on uint64
// whose every output bit depends on every input bit.
func fmix64(m uint64) uint64 {
	m ^= m >> 33
	m *= fmixMul1
	m ^= m >> 33
	m *= fmixMul2
	m ^= m >> 33
	return m
}

// bucket maps a mixed hash to its bucket index in 0..dim-1 and its sign;
// dim must be positive.
func bucket(m uint64, dim int) (int, float32) {
	j := int((m >> 1) % uint64(dim))
	if m&1 != 0 {
		return j, -1
	}
	return j, 1
}

// normalize scales v to Euclidean norm 1, computing the norm in float64.
// A zero vector, or one holding NaN or infinite values, is left as it is.
func normalize(v []float32) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if !(s > 0) || math.IsInf(s, 0) {
		return
	}
	scale := 1 / math.Sqrt(s)
	for i, x := range v {
		v[i] = float32(float64(x) * scale)
	}
}

// normalizeAt is normalize for a vector that is zero outside the distinct,
// ascending indices idx; the result is the same, bit for bit.
func normalizeAt(v []float32, idx []uint64) {
	var s float64
	for _, j := range idx {
		s += float64(v[j]) * float64(v[j])
	}
	if !(s > 0) || math.IsInf(s, 0) {
		return
	}
	scale := 1 / math.Sqrt(s)
	for _, j := range idx {
		v[j] = float32(float64(v[j]) * scale)
	}
}
