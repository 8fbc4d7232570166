package text

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// refBucket is a second, independent implementation of the bucket choice
// documented at HashedBag: the n-gram joined with "\x1f" and hashed by
// hash/fnv's FNV-1a 64, then the MurmurHash3 finaliser computed with
// math/big (products reduced mod 2^64), then sign from bit 0 and bucket
// (m>>1) mod dim.
func refBucket(ngram []string, dim int) (int, float32) {
	f := fnv.New64a()
	f.Write([]byte(strings.Join(ngram, "\x1f")))
	m := new(big.Int).SetUint64(f.Sum64())
	two64 := new(big.Int).Lsh(big.NewInt(1), 64)
	xorShift := func() { m.Xor(m, new(big.Int).Rsh(m, 33)) }
	mul := func(c uint64) { m.Mod(m.Mul(m, new(big.Int).SetUint64(c)), two64) }
	xorShift()
	mul(0xff51afd7ed558ccd)
	xorShift()
	mul(0xc4ceb9fe1a85ec53)
	xorShift()
	sign := float32(1)
	if m.Bit(0) == 1 {
		sign = -1
	}
	j := new(big.Int).Rsh(m, 1)
	j.Mod(j, big.NewInt(int64(dim)))
	return int(j.Int64()), sign
}

// TestHashGolden pins the hash to values computed outside Go. The FNV-1a
// values of "", "a" and "foobar" are the published test vectors of the
// FNV reference code (Fowler, Noll, Vo); all values were computed with this
// Python 3 snippet, which shares no code with the package:
//
//	M = 2**64 - 1
//	def fnv(b):
//	    h = 14695981039346656037
//	    for c in b: h = ((h ^ c) * 1099511628211) & M
//	    return h
//	def fmix(k):
//	    k ^= k >> 33; k = (k * 0xff51afd7ed558ccd) & M; k ^= k >> 33
//	    k = (k * 0xc4ceb9fe1a85ec53) & M; k ^= k >> 33; return k
//	m = fmix(fnv(s.encode())); index, sign = (m >> 1) % dim, (-1 if m & 1 else 1)
//
// For example "a": FNV-1a 0xaf63dc4c8601ec8c, mixed 0x82a2a958a9bece5b,
// odd so sign -1, (m>>1) mod 4096 = 1837.
func TestHashGolden(t *testing.T) {
	tests := []struct {
		ngram []string
		fnv   uint64 // FNV-1a 64 of the joined n-gram
		mixed uint64 // after the finaliser
		dim   int
		index int
		sign  float32
	}{
		{[]string{""}, 0xcbf29ce484222325, 0xefd01f60ba992926, 4096, 1171, 1},
		{[]string{"a"}, 0xaf63dc4c8601ec8c, 0x82a2a958a9bece5b, 4096, 1837, -1},
		{[]string{"b"}, 0xaf63df4c8601f1a5, 0x6e673288764ad2d0, 4096, 2408, 1},
		{[]string{"foobar"}, 0x85944171f73967e8, 0x2c22194922d1672b, 4096, 917, -1},
		{[]string{"flood"}, 0xa03a7ea942db54bb, 0x3db3933ac8399601, 4096, 2816, -1},
		{[]string{"<url>"}, 0x9343124e3892d3f6, 0xde5977dd90d7a7b9, 4096, 988, -1},
		{[]string{"heavy"}, 0x8af96746729a08c0, 0x811edb3e87c4f726, 4096, 2963, 1},
		{[]string{"heavy", "rain"}, 0x754e939c0d3d555b, 0x422f1ffde195a037, 4096, 27, -1},
		{[]string{"a"}, 0xaf63dc4c8601ec8c, 0x82a2a958a9bece5b, 10, 7, -1},
		{[]string{"b"}, 0xaf63df4c8601f1a5, 0x6e673288764ad2d0, 10, 2, 1},
		{[]string{"flood"}, 0xa03a7ea942db54bb, 0x3db3933ac8399601, 1, 0, -1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q/%d", tt.ngram, tt.dim), func(t *testing.T) {
			h := HashedBag{Dim: tt.dim, N: len(tt.ngram)}
			hashes := h.appendHashes(nil, tt.ngram)
			// The n-gram of the highest order is the last one of the
			// first token.
			if got := hashes[len(tt.ngram)-1]; got != tt.mixed {
				t.Errorf("mixed hash %#x, want %#x", got, tt.mixed)
			}
			if got := fmix64(tt.fnv); got != tt.mixed {
				t.Errorf("fmix64(%#x) = %#x, want %#x", tt.fnv, got, tt.mixed)
			}
			f := fnv.New64a()
			f.Write([]byte(strings.Join(tt.ngram, "\x1f")))
			if f.Sum64() != tt.fnv {
				t.Errorf("hash/fnv gives %#x, want %#x", f.Sum64(), tt.fnv)
			}
			if j, s := refBucket(tt.ngram, tt.dim); j != tt.index || s != tt.sign {
				t.Errorf("refBucket = %d, %v; want %d, %v", j, s, tt.index, tt.sign)
			}
			if len(tt.ngram) == 1 {
				// Through the public API: one token, one non-zero element.
				dst := make([]float32, tt.dim)
				if err := h.Featurize(tt.ngram, dst); err != nil {
					t.Fatal(err)
				}
				want := make([]float32, tt.dim)
				want[tt.index] = tt.sign
				if !slices.Equal(dst, want) {
					t.Errorf("Featurize: element %d = %v, want %v", tt.index, dst[tt.index], tt.sign)
				}
			}
		})
	}
}

// TestHashMatchesReference compares Featurize with refBucket on many
// generated token sequences, for every n-gram order and several
// dimensions.
func TestHashMatchesReference(t *testing.T) {
	words := []string{"", "a", "flood", "RT", "<url>", "σεισμός", "🙏", "x\x00y", "water", "help"}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dim := range []int{1, 7, 4096, 1<<20 - 1} {
		dst := make([]float32, dim)
		want := make([]float32, dim)
		for n := 1; n <= MaxN; n++ {
			for range 20 {
				toks := make([]string, rng.IntN(9))
				for i := range toks {
					toks[i] = words[rng.IntN(len(words))]
				}
				clear(want)
				for i := range toks {
					for k := i + 1; k <= len(toks) && k <= i+n; k++ {
						j, s := refBucket(toks[i:k], dim)
						want[j] += s
					}
				}
				h := HashedBag{Dim: dim, N: n}
				if err := h.Featurize(toks, dst); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(dst, want) {
					t.Fatalf("dim %d, n %d, tokens %q: Featurize differs from the reference", dim, n, toks)
				}
			}
		}
	}
}

// TestHashBalance checks that signs are balanced and buckets evenly filled
// over many distinct tokens; both fail badly if the finaliser is dropped.
func TestHashBalance(t *testing.T) {
	const tokens, dim = 40000, 64
	h := HashedBag{Dim: dim, N: 1}
	var neg int
	counts := make([]int, dim)
	for i := range tokens {
		m := h.appendHashes(nil, []string{fmt.Sprint(i)})[0]
		j, s := bucket(m, dim)
		counts[j]++
		if s < 0 {
			neg++
		}
	}
	// Binomial(40000, 1/2) has standard deviation 100: allow 5.
	if neg < tokens/2-500 || neg > tokens/2+500 {
		t.Errorf("%d of %d signs negative", neg, tokens)
	}
	// Chi-squared with 63 degrees of freedom: mean 63, sd 11.2; allow 120.
	expect := float64(tokens) / dim
	var chi2 float64
	for _, c := range counts {
		chi2 += (float64(c) - expect) * (float64(c) - expect) / expect
	}
	if chi2 > 120 {
		t.Errorf("bucket counts %v: chi-squared %.1f", counts, chi2)
	}
}

func TestFeaturizeValues(t *testing.T) {
	raw := func(dim, n int) HashedBag { return HashedBag{Dim: dim, N: n} }
	sub := func(dim, n int) HashedBag { return HashedBag{Dim: dim, N: n, Sublinear: true} }
	const (
		ln2  = 0.69314718 // ln 2
		ln4  = 1.38629436 // ln 4
		r17  = 4.12310563 // sqrt(17)
		tol  = 1e-6
		dim4 = 4096
	)
	// Buckets and signs at dim 4096 (see TestHashGolden): a 1837 -,
	// b 2408 +, "a b" 4031 -, "b a" 1128 -, heavy 2963 +, rain 1327 -,
	// "heavy rain" 27 -. At dim 10: a 7 -, foobar 7 -, b 2 +, z 2 -.
	// At dim 1 everything is in bucket 0: a -, b +, x -.
	tests := []struct {
		name   string
		bag    HashedBag
		tokens []string
		want   map[int]float32
	}{
		{"one token", raw(dim4, 1), []string{"a"}, map[int]float32{1837: -1}},
		{"counts", raw(dim4, 1), []string{"a", "a", "b", "a", "a"}, map[int]float32{1837: -4, 2408: 1}},
		{"sublinear", sub(dim4, 1), []string{"a", "a", "b", "a", "a"}, map[int]float32{1837: -(1 + ln4), 2408: 1}},
		{"normalised", HashedBag{Dim: dim4, N: 1, Normalize: true}, []string{"a", "a", "b", "a", "a"},
			map[int]float32{1837: -4 / r17, 2408: 1 / r17}},
		{"bigram counts", raw(dim4, 2), []string{"a", "b", "a", "b"},
			map[int]float32{1837: -2, 2408: 2, 4031: -2, 1128: -1}},
		{"bigram sublinear", sub(dim4, 2), []string{"a", "b", "a", "b"},
			map[int]float32{1837: -(1 + ln2), 2408: 1 + ln2, 4031: -(1 + ln2), 1128: -1}},
		{"heavy rain", raw(dim4, 2), []string{"heavy", "rain"}, map[int]float32{2963: 1, 1327: -1, 27: -1}},
		{"order above length", raw(dim4, 5), []string{"a"}, map[int]float32{1837: -1}},
		{"no tokens", DefaultHashedBag(), nil, nil},
		{"no tokens, empty slice", DefaultHashedBag(), []string{}, nil},

		// Collisions: same-sign n-grams add, opposite signs cancel, and
		// a cancelled vector stays zero when normalised.
		{"collision cancels", raw(1, 1), []string{"a", "b"}, nil},
		{"cancelled normalised stays zero", HashedBag{Dim: 1, N: 1, Normalize: true}, []string{"a", "b"}, nil},
		{"collision adds", raw(1, 1), []string{"a", "x"}, map[int]float32{0: -2}},
		{"collision adds normalised", HashedBag{Dim: 1, N: 1, Normalize: true}, []string{"a", "x"}, map[int]float32{0: -1}},
		{"same bucket same sign", raw(10, 1), []string{"a", "foobar"}, map[int]float32{7: -2}},
		{"same bucket opposite signs", raw(10, 1), []string{"b", "z"}, nil},
		{"sublinear before collision", sub(10, 1), []string{"b", "z", "b"}, map[int]float32{2: ln2}},
		{"counts before collision", raw(10, 1), []string{"b", "z", "b"}, map[int]float32{2: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := make([]float32, tt.bag.Dim)
			for i := range dst {
				dst[i] = 7 // Featurize must clear what was there
			}
			if err := tt.bag.Featurize(tt.tokens, dst); err != nil {
				t.Fatal(err)
			}
			for j, got := range dst {
				if want := tt.want[j]; math.Abs(float64(got-want)) > tol {
					t.Errorf("element %d = %v, want %v", j, got, want)
				}
			}
		})
	}
}

// l2 returns the Euclidean norm of v.
func l2(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func TestVectorUnitNorm(t *testing.T) {
	texts := []string{
		"flood",
		"RT @KHOU: Heavy flooding on I-45 #HurricaneHarvey https://t.co/x",
		"help help help help please",
		strings.Repeat("water rising fast ", 500),
	}
	for _, bag := range []HashedBag{DefaultHashedBag(), {Dim: 3, N: 5, Normalize: true}, {Dim: 1 << 20, N: 1, Normalize: true}} {
		for _, s := range texts {
			v, err := bag.Vector(s)
			if err != nil {
				t.Fatal(err)
			}
			if len(v) != bag.Dim {
				t.Errorf("%+v.Vector(%.20q): length %d", bag, s, len(v))
			}
			if n := l2(v); math.Abs(n-1) > 1e-6 {
				t.Errorf("%+v.Vector(%.20q): norm %v, want 1", bag, s, n)
			}
		}
	}
}

// TestVectorIsFeaturizeOfTokenize checks that Vector is a shorthand.
func TestVectorIsFeaturizeOfTokenize(t *testing.T) {
	const s = "RT @a: Bridge #collapsed near Exit 12 🙏 http://t.co/z"
	bag := DefaultHashedBag()
	got, err := bag.Vector(s)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, bag.Dim)
	if err := bag.Featurize(Tokenize(s), want); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Error("Vector differs from Featurize(Tokenize(s))")
	}
}

// TestSublinearOrderIndependent checks that a permutation of unigrams
// gives bit-identical vectors: counts are summed in hash order.
func TestSublinearOrderIndependent(t *testing.T) {
	toks := []string{"a", "b", "flood", "a", "x", "flood", "a", "y", "z", "b"}
	bag := HashedBag{Dim: 3, N: 1, Sublinear: true, Normalize: true}
	want := make([]float32, bag.Dim)
	if err := bag.Featurize(toks, want); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	got := make([]float32, bag.Dim)
	for range 20 {
		rng.Shuffle(len(toks), func(i, j int) { toks[i], toks[j] = toks[j], toks[i] })
		if err := bag.Featurize(toks, got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("tokens %q: %v, want %v", toks, got, want)
		}
	}
}

func TestFeaturizeErrors(t *testing.T) {
	tests := []struct {
		name   string
		bag    HashedBag
		dstLen int
		want   error
	}{
		{"zero value", HashedBag{}, 0, ErrConfig},
		{"dim 0", HashedBag{Dim: 0, N: 1}, 0, ErrConfig},
		{"negative dim", HashedBag{Dim: -5, N: 1}, 0, ErrConfig},
		{"dim too large", HashedBag{Dim: MaxDim + 1, N: 1}, 1, ErrConfig},
		{"n 0", HashedBag{Dim: 4, N: 0}, 4, ErrConfig},
		{"n too large", HashedBag{Dim: 4, N: MaxN + 1}, 4, ErrConfig},
		{"negative n", HashedBag{Dim: 4, N: -1}, 4, ErrConfig},
		{"dst too short", HashedBag{Dim: 4, N: 1}, 3, ErrShape},
		{"dst too long", HashedBag{Dim: 4, N: 1}, 5, ErrShape},
		{"dst nil", HashedBag{Dim: 4, N: 1}, 0, ErrShape},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := make([]float32, tt.dstLen)
			for i := range dst {
				dst[i] = 7
			}
			err := tt.bag.Featurize([]string{"a"}, dst)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Featurize: error %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "text: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			for i, x := range dst {
				if x != 7 {
					t.Errorf("dst[%d] changed to %v on error", i, x)
				}
			}
			if tt.want == ErrConfig {
				if err := tt.bag.Validate(); !errors.Is(err, ErrConfig) {
					t.Errorf("Validate: %v, want ErrConfig", err)
				}
				if v, err := tt.bag.Vector("a"); v != nil || !errors.Is(err, ErrConfig) {
					t.Errorf("Vector: %v, %v; want nil, ErrConfig", v, err)
				}
			}
		})
	}
}

func TestDefaultHashedBag(t *testing.T) {
	want := HashedBag{Dim: 4096, N: 2, Sublinear: true, Normalize: true}
	if got := DefaultHashedBag(); got != want {
		t.Errorf("DefaultHashedBag() = %+v, want %+v", got, want)
	}
	if err := want.Validate(); err != nil {
		t.Error(err)
	}
}

// benchTweet is a typical CrisisMMD-style tweet of exactly 30 tokens.
const benchTweet = "RT @KHOU: Heavy flooding on I-45 near downtown Houston, water still rising fast. " +
	"Stay off the roads and call 911 if trapped, please share with family now " +
	"#HurricaneHarvey #houstonflood https://t.co/AbCdEf123"

func BenchmarkVector(b *testing.B) {
	if n := len(Tokenize(benchTweet)); n != 30 {
		b.Fatalf("benchmark tweet has %d tokens, want 30", n)
	}
	bag := DefaultHashedBag()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bag.Vector(benchTweet); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFeaturize is BenchmarkVector without tokenizing and without
// allocating the vector.
func BenchmarkFeaturize(b *testing.B) {
	toks := Tokenize(benchTweet)
	bag := DefaultHashedBag()
	dst := make([]float32, bag.Dim)
	b.ReportAllocs()
	for b.Loop() {
		if err := bag.Featurize(toks, dst); err != nil {
			b.Fatal(err)
		}
	}
}
