package secagg

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"math/big"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestFieldMul(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	p := big.NewInt(Prime)
	for _, pair := range [][2]uint64{{0, 5}, {1, Prime - 1}, {Prime - 1, Prime - 1}, {1 << 60, 1 << 60}} {
		want := new(big.Int).Mul(new(big.Int).SetUint64(pair[0]), new(big.Int).SetUint64(pair[1]))
		want.Mod(want, p)
		if got := fmul(pair[0], pair[1]); got != want.Uint64() {
			t.Errorf("fmul(%d, %d) = %d, want %d", pair[0], pair[1], got, want)
		}
	}
	for range 1000 {
		a, b := rng.Uint64N(Prime), rng.Uint64N(Prime)
		want := new(big.Int).Mul(new(big.Int).SetUint64(a), new(big.Int).SetUint64(b))
		if got := fmul(a, b); got != want.Mod(want, p).Uint64() {
			t.Fatalf("fmul(%d, %d) = %d, want %d", a, b, got, want)
		}
		if a != 0 && fmul(a, finv(a)) != 1 {
			t.Fatalf("%d * inv = %d", a, fmul(a, finv(a)))
		}
		if fsub(fadd(a, b), b) != a {
			t.Fatalf("(%d + %d) - %d != %d", a, b, b, a)
		}
	}
}

func randomSecrets(k int) []Secret {
	out := make([]Secret, k)
	for i := range out {
		rand.Read(out[i][:])
	}
	return out
}

func TestShamir(t *testing.T) {
	for _, tc := range []struct{ n, t int }{{2, 2}, {3, 2}, {5, 3}, {10, 7}, {100, 67}} {
		t.Run(fmt.Sprintf("n%d_t%d", tc.n, tc.t), func(t *testing.T) {
			secrets := randomSecrets(4)
			secrets[0] = Secret{} // zeros and all-ones round-trip too
			for i := range secrets[1] {
				secrets[1][i] = 0xff
			}
			shares, err := Split(secrets, tc.n, tc.t, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			// Any t shares, here the last t in reverse order.
			pick := slices.Clone(shares[tc.n-tc.t:])
			slices.Reverse(pick)
			got, err := Combine(pick, tc.t)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, secrets) {
				t.Fatal("reconstruction differs from the secrets")
			}
			// t-1 shares (completed by a forged one) give something else.
			forged := slices.Clone(pick)
			forged[0] = Share{X: forged[0].X, Values: make([]uint64, len(forged[0].Values))}
			if got, err := Combine(forged, tc.t); err == nil && slices.Equal(got, secrets) {
				t.Fatal("a forged share reconstructs the secrets")
			}
		})
	}
}

func TestShamirBadInput(t *testing.T) {
	shares, err := Split(randomSecrets(1), 5, 3, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		shares []Share
		t      int
		want   string
	}{
		{"too few", shares[:2], 3, "2 shares, the threshold is 3"},
		{"same point", []Share{shares[0], shares[0], shares[1]}, 3, "two shares at point 1"},
		{"point 0", []Share{{X: 0, Values: shares[0].Values}, shares[1], shares[2]}, 3, "share point 0"},
		{"ragged", []Share{shares[0], {X: 2, Values: shares[1].Values[:3]}, shares[2]}, 3, "shares of 5 and 3 values"},
		{"not whole secrets", []Share{{X: 1, Values: []uint64{1, 2}}}, 1, "not whole secrets"},
		{"outside the field", []Share{{X: 1, Values: []uint64{Prime, 0, 0, 0, 0}}}, 1, "not a field element"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Combine(tc.shares, tc.t)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	for _, tc := range []struct{ n, t int }{{3, 4}, {3, 0}, {MaxParticipants + 1, 2}} {
		if _, err := Split(randomSecrets(1), tc.n, tc.t, rand.Reader); err == nil {
			t.Errorf("Split(n=%d, t=%d) succeeded", tc.n, tc.t)
		}
	}
	b := MarshalShare(shares[0])
	if _, err := UnmarshalShare(b[:len(b)-1], 5); err == nil {
		t.Error("a truncated share decoded")
	}
	if s, err := UnmarshalShare(b, 5); err != nil || s.X != 1 || !slices.Equal(s.Values, shares[0].Values) {
		t.Errorf("share round trip: %v %v", s, err)
	}
}

func TestFixedPoint(t *testing.T) {
	for _, tc := range []struct {
		v, want float64
		clipped bool
	}{
		{0, 0, false}, {1.5, 1.5, false}, {-2.25e-3, -2.25e-3, false},
		{Clip, Clip, false}, {1e9, Clip, true}, {-1e9, -Clip, true}, {math.Inf(1), Clip, true}, {math.NaN(), 0, true},
	} {
		u, clipped := Encode(tc.v)
		if got := Decode(u); math.Abs(got-tc.want) > 1.0/scale || clipped != tc.clipped {
			t.Errorf("Encode(%v) decodes to %v (clipped %v), want %v (%v)", tc.v, got, clipped, tc.want, tc.clipped)
		}
	}
	// The worst case sum of a full round stays in the signed range.
	top, _ := Encode(Clip)
	var sum uint64
	for range MaxParticipants {
		sum += top
	}
	if got := Decode(sum); got != Clip*MaxParticipants {
		t.Errorf("sum of %d clipped values decodes to %v, want %v", MaxParticipants, got, Clip*MaxParticipants)
	}
	for _, n := range []int{0, MaxParticipants + 1} {
		if err := CheckCapacity(n); err == nil {
			t.Errorf("CheckCapacity(%d) accepted", n)
		}
	}
}

// member of a simulated round, with the phase before which it stops
// (0: never).
type simMember struct {
	name   string
	groups uint32
	stop   int // 1 advertise, 2 share, 3 input, 4 reveal
	input  [][]float64
}

// Phases a member may stop before.
const (
	stopAdvertise = iota + 1
	stopShare
	stopInput
	stopReveal
)

// simulate runs a round in memory and returns the decoded sums and the
// true sums of the survivors' inputs.
func simulate(t *testing.T, thr int, lengths []int, members []simMember) (got, want [][]float64, err error) {
	t.Helper()
	r := Round{ID: "test-round", Threshold: thr, Lengths: lengths}
	for _, m := range members {
		r.Members = append(r.Members, Member{Name: m.name, Groups: m.groups})
	}
	srv, err := NewServer(r)
	if err != nil {
		return nil, nil, err
	}
	clients := map[string]*Client{}
	for _, m := range members {
		c, err := NewClient(r, m.name, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		clients[m.name] = c
	}
	active := func(m simMember, phase int) bool { return m.stop == 0 || m.stop > phase }
	for _, m := range members {
		if active(m, stopAdvertise) {
			if err := srv.Advertise(clients[m.name].Keys()); err != nil {
				t.Fatal(err)
			}
		}
	}
	keys, err := srv.CloseAdvertise()
	if err != nil {
		return nil, nil, err
	}
	for _, m := range members {
		if active(m, stopShare) {
			cts, commits, err := clients[m.name].ShareKeys(keys)
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Shares(m.name, cts, commits); err != nil {
				t.Fatal(err)
			}
		}
	}
	shareSet, err := srv.CloseShares()
	if err != nil {
		return nil, nil, err
	}
	for _, m := range members {
		if !active(m, stopInput) {
			continue
		}
		c := clients[m.name]
		if err := c.ReceiveShares(shareSet, srv.SharesFor(m.name)); err != nil {
			t.Fatal(err)
		}
		if sk := c.Skipped(); len(sk) > 0 {
			t.Fatalf("%s skipped shares: %v", m.name, sk)
		}
		in := make([][]uint64, len(lengths))
		for g := range lengths {
			if m.groups&(1<<g) == 0 {
				continue
			}
			in[g] = make([]uint64, lengths[g])
			for j, v := range m.input[g] {
				in[g][j], _ = Encode(v)
			}
			if err := c.Mask(g, in[g]); err != nil {
				t.Fatal(err)
			}
		}
		if err := srv.Input(m.name, in); err != nil {
			t.Fatal(err)
		}
	}
	survivors, err := srv.CloseInput()
	if err != nil {
		return nil, nil, err
	}
	for _, m := range members {
		if active(m, stopReveal) {
			rs, err := clients[m.name].Reveal(survivors)
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Reveal(m.name, rs); err != nil {
				t.Fatal(err)
			}
		}
	}
	sums, err := srv.Unmask()
	if err != nil {
		return nil, nil, err
	}
	revealed := r.Revealed(survivors)
	got = make([][]float64, len(lengths))
	want = make([][]float64, len(lengths))
	for g := range lengths {
		if !revealed[g] {
			if sums[g] != nil {
				t.Fatalf("group %d is revealed over fewer than %d inputs", g, MinGroupSurvivors)
			}
			continue
		}
		got[g] = make([]float64, lengths[g])
		for j, u := range sums[g] {
			got[g][j] = Decode(u)
		}
		want[g] = make([]float64, lengths[g])
		for _, m := range members {
			if m.groups&(1<<g) != 0 && slices.Contains(survivors, m.name) {
				for j, v := range m.input[g] {
					want[g][j] += v
				}
			}
		}
	}
	return got, want, nil
}

func members(n int, groups func(i int) uint32, lengths []int, seed uint64) []simMember {
	rng := mrand.New(mrand.NewPCG(seed, 7))
	out := make([]simMember, n)
	for i := range out {
		m := simMember{name: fmt.Sprintf("p%03d", i), groups: groups(i), input: make([][]float64, len(lengths))}
		for g, l := range lengths {
			if m.groups&(1<<g) != 0 {
				m.input[g] = make([]float64, l)
				for j := range m.input[g] {
					m.input[g][j] = rng.NormFloat64() * 0.1
				}
			}
		}
		out[i] = m
	}
	return out
}

func all(int) uint32 { return 0b111 }

func TestRoundSums(t *testing.T) {
	lengths := []int{7, 5, 3}
	// Members 0, 3, 6, ... hold modality 0 only, 1, 4, ... modality 1
	// only, the others both; everyone inputs to the fusion group 2.
	mixed := func(i int) uint32 { return [3]uint32{0b101, 0b110, 0b111}[i%3] }
	stops := func(ms []simMember, st map[int]int) []simMember {
		for i, s := range st {
			ms[i].stop = s
		}
		return ms
	}
	for _, tc := range []struct {
		name    string
		n, t    int
		groups  func(int) uint32
		stop    map[int]int
		tooFew  bool
		noGroup []int // groups whose sums are withheld
	}{
		{name: "two", n: 2, t: 2, groups: all},
		{name: "no dropout", n: 10, t: 7, groups: all},
		{name: "groups", n: 9, t: 6, groups: mixed},
		{name: "drop before keys", n: 10, t: 7, groups: all, stop: map[int]int{2: stopAdvertise}},
		{name: "drop before shares", n: 10, t: 7, groups: mixed, stop: map[int]int{4: stopShare}},
		{name: "drop before input", n: 10, t: 7, groups: mixed, stop: map[int]int{0: stopInput, 5: stopInput}},
		{name: "drop before reveal", n: 10, t: 7, groups: mixed, stop: map[int]int{8: stopReveal}},
		{name: "n-t dropouts, mixed phases", n: 10, t: 7, groups: mixed, stop: map[int]int{1: stopAdvertise, 3: stopInput, 9: stopReveal}},
		{name: "n-t+1 dropouts", n: 10, t: 7, groups: mixed, stop: map[int]int{1: stopAdvertise, 3: stopInput, 6: stopInput, 9: stopReveal}, tooFew: true},
		{name: "all drop input", n: 5, t: 3, groups: all, stop: map[int]int{0: stopInput, 1: stopInput, 2: stopInput}, tooFew: true},
		{name: "too few reveal", n: 5, t: 3, groups: all, stop: map[int]int{0: stopReveal, 1: stopReveal, 2: stopReveal}, tooFew: true},
		// Only member 0 holds modality 0 among survivors: its sum would be
		// its input, so the group stays masked.
		{name: "lone holder", n: 4, t: 2, groups: func(i int) uint32 { return [4]uint32{0b101, 0b101, 0b110, 0b110}[i] },
			stop: map[int]int{1: stopInput}, noGroup: []int{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, want, err := simulate(t, tc.t, lengths, stops(members(tc.n, tc.groups, lengths, 1), tc.stop))
			if tc.tooFew {
				if !errors.Is(err, ErrTooFew) {
					t.Fatalf("err = %v, want ErrTooFew", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for g := range lengths {
				if slices.Contains(tc.noGroup, g) {
					if got[g] != nil {
						t.Errorf("group %d revealed", g)
					}
					continue
				}
				if got[g] == nil {
					t.Fatalf("group %d withheld", g)
				}
				for j := range got[g] {
					if d := math.Abs(got[g][j] - want[g][j]); d > float64(tc.n)/scale {
						t.Fatalf("group %d value %d: %v, want %v", g, j, got[g][j], want[g][j])
					}
				}
			}
		})
	}
}

// TestLoneInputHidden checks that one masked input, all the server holds
// of a member, is as far from the true input as the mask itself: it tells
// nothing usable about it.
func TestLoneInputHidden(t *testing.T) {
	const n, l = 5, 1000
	lengths := []int{l}
	ms := members(n, func(int) uint32 { return 1 }, lengths, 3)
	r := Round{ID: "lone", Threshold: 3, Lengths: lengths}
	for _, m := range ms {
		r.Members = append(r.Members, Member{Name: m.name, Groups: m.groups})
	}
	var clients []*Client
	var keys []Keys
	for _, m := range ms {
		c, err := NewClient(r, m.name, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		keys = append(keys, c.Keys())
	}
	all := map[string][]Ciphertext{}
	for k, c := range clients {
		cts, _, err := c.ShareKeys(keys)
		if err != nil {
			t.Fatal(err)
		}
		for _, ct := range cts {
			all[ct.Peer] = append(all[ct.Peer], Ciphertext{Peer: ms[k].name, Data: ct.Data})
		}
	}
	names := make([]string, n)
	for k, m := range ms {
		names[k] = m.name
	}
	c := clients[0]
	if err := c.ReceiveShares(names, all[ms[0].name]); err != nil {
		t.Fatal(err)
	}
	in := make([]uint64, l)
	var trueNorm float64
	for j, v := range ms[0].input[0] {
		in[j], _ = Encode(v)
		trueNorm += v * v
	}
	plain := slices.Clone(in)
	if err := c.Mask(0, in); err != nil {
		t.Fatal(err)
	}
	var dist, mask float64
	for j := range in {
		d := Decode(in[j]) - ms[0].input[0][j]
		m := Decode(in[j] - plain[j])
		dist += d * d
		mask += m * m
	}
	dist, mask, trueNorm = math.Sqrt(dist), math.Sqrt(mask), math.Sqrt(trueNorm)
	// The mask is uniform over the ring: its values are of order 2^23,
	// the update's of order 0.1.
	if dist < 1e6*trueNorm {
		t.Errorf("masked input at distance %g from the true one (norm %g): the mask hides too little", dist, trueNorm)
	}
	if math.Abs(dist-mask)/mask > 1e-3 {
		t.Errorf("distance %g to the true input, mask norm %g: not comparable", dist, mask)
	}
}

func TestRoundBadInput(t *testing.T) {
	lengths := []int{3}
	base := func() Round {
		return Round{ID: "bad", Threshold: 2, Lengths: lengths, Members: []Member{{"a", 1}, {"b", 1}, {"c", 1}}}
	}
	for _, tc := range []struct {
		name string
		edit func(*Round)
		want string
	}{
		{"threshold above participants", func(r *Round) { r.Threshold = 4 }, "threshold 4 outside 2..3"},
		{"threshold 1", func(r *Round) { r.Threshold = 1 }, "threshold 1 outside 2..3"},
		{"unsorted", func(r *Round) { r.Members[0].Name = "z" }, "not sorted"},
		{"no ID", func(r *Round) { r.ID = "" }, "without an ID"},
		{"group out of range", func(r *Round) { r.Members[1].Groups = 0b10 }, "in groups 10 of 1"},
		{"too many", func(r *Round) {
			r.Members = nil
			for i := range MaxParticipants + 1 {
				r.Members = append(r.Members, Member{fmt.Sprintf("m%05d", i), 1})
			}
		}, "at most 2047"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			tc.edit(&r)
			if _, err := NewServer(r); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}

	r := base()
	clients := map[string]*Client{}
	var keys []Keys
	for _, m := range r.Members {
		c, err := NewClient(r, m.Name, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		clients[m.Name] = c
		keys = append(keys, c.Keys())
	}
	srv, err := NewServer(r)
	if err != nil {
		t.Fatal(err)
	}
	short := keys[0]
	short.Mask = short.Mask[:31]
	zero := keys[0]
	zero.Cipher = make([]byte, 32) // a low-order point
	for _, tc := range []struct {
		name string
		k    Keys
		want string
	}{
		{"key of the wrong size", short, "a's mask key: public key of 31 bytes, want 32"},
		{"low-order key", zero, "a's cipher key"},
		{"stranger", Keys{Name: "x", Cipher: keys[0].Cipher, Mask: keys[0].Mask}, `"x" is not a member`},
	} {
		if err := srv.Advertise(tc.k); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	for _, k := range keys {
		if err := srv.Advertise(k); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Advertise(keys[1]); err == nil {
		t.Error("keys advertised twice")
	}
	set, err := srv.CloseAdvertise()
	if err != nil {
		t.Fatal(err)
	}
	// A member told of a key set with a key of the wrong size refuses it.
	bad := slices.Clone(set)
	bad[1].Cipher = bad[1].Cipher[:16]
	if _, _, err := clients["a"].ShareKeys(bad); err == nil || !strings.Contains(err.Error(), "b's cipher key: public key of 16 bytes") {
		t.Errorf("client took a short key: %v", err)
	}
	cts, commits, err := clients["a"].ShareKeys(set)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		cts     []Ciphertext
		commits [][]byte
		want    string
	}{
		{"one share missing", cts[:1], commits, "sent 1 shares, want 2"},
		{"a share too many", append(slices.Clone(cts), cts[0]), commits, "sent 3 shares, want 2"},
		{"share to self", []Ciphertext{cts[0], {Peer: "a", Data: cts[1].Data}}, commits, "sent a share to a"},
		{"two to one", []Ciphertext{cts[0], cts[0]}, commits, "names \"b\" twice"},
		{"no commitment", cts, nil, "sent 0 commitments, want 1"},
		{"short commitment", cts, [][]byte{commits[0][:5]}, "has 5 bytes, want 32"},
		{"huge share", []Ciphertext{cts[0], {Peer: "c", Data: make([]byte, 1<<20)}}, commits, "more than"},
	} {
		if err := srv.Shares("a", tc.cts, tc.commits); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	if err := srv.Shares("a", cts, commits); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"b", "c"} {
		cts, commits, err := clients[n].ShareKeys(set)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Shares(n, cts, commits); err != nil {
			t.Fatal(err)
		}
	}
	shareSet, err := srv.CloseShares()
	if err != nil {
		t.Fatal(err)
	}
	// A share that does not decrypt is skipped, not fatal.
	got := srv.SharesFor("c")
	got[0].Data = slices.Clone(got[0].Data)
	got[0].Data[20] ^= 1
	if err := clients["c"].ReceiveShares(shareSet, got); err != nil {
		t.Fatal(err)
	}
	if sk := clients["c"].Skipped(); len(sk) != 1 || sk[got[0].Peer] == nil {
		t.Errorf("skipped %v, want %s's share", sk, got[0].Peer)
	}
	for _, n := range []string{"a", "b"} {
		if err := clients[n].ReceiveShares(shareSet, srv.SharesFor(n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Input("a", [][]uint64{make([]uint64, 2)}); err == nil || !strings.Contains(err.Error(), "has 2 values, want 3") {
		t.Errorf("short input: %v", err)
	}
	for _, n := range []string{"a", "b"} {
		in := make([]uint64, 3)
		if err := clients[n].Mask(0, in); err != nil {
			t.Fatal(err)
		}
		if err := srv.Input(n, [][]uint64{in}); err != nil {
			t.Fatal(err)
		}
	}
	survivors, err := srv.CloseInput()
	if err != nil {
		t.Fatal(err)
	}
	// c dropped: a slow upload is refused, and no one reveals both of c's
	// secrets kinds.
	if err := srv.Input("c", [][]uint64{make([]uint64, 3)}); err == nil {
		t.Error("an input after the phase closed was summed")
	}
	if _, err := clients["a"].Reveal([]string{"a", "b", "x"}); err == nil {
		t.Error("reveal for a stranger")
	}
	ra, err := clients["a"].Reveal(survivors)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clients["a"].Reveal(survivors); err == nil {
		t.Error("a revealed twice")
	}
	both := slices.Clone(ra)
	for k := range both {
		both[k].Secrets = 0b11
	}
	if err := srv.Reveal("a", both); err == nil || !strings.Contains(err.Error(), "the round allows") {
		t.Errorf("reveal of both kinds: %v", err)
	}
	if err := srv.Reveal("c", nil); err == nil || !strings.Contains(err.Error(), "not a survivor") {
		t.Errorf("reveal by a dropped member: %v", err)
	}
	if err := srv.Reveal("a", ra); err != nil {
		t.Fatal(err)
	}
	rb, err := clients["b"].Reveal(survivors)
	if err != nil {
		t.Fatal(err)
	}
	// b's share of the dropped c's key is corrupt; with only t shares in,
	// unmasking fails cleanly. (Not in the lowest bits of the key, which
	// X25519 ignores.)
	for k := range rb {
		if rb[k].Owner == "c" {
			rb[k].Share.Values[1] ^= 1 << 20
		}
	}
	if err := srv.Reveal("b", rb); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Unmask(); err == nil || !strings.Contains(err.Error(), "mask key of c") {
		t.Errorf("unmask with a corrupt share: %v", err)
	}
}

// TestCombineVerified: with one corrupt share among the first t, the
// secrets are recovered; with two, none are. When every share is shifted
// alike (an owner that shared other secrets than it committed to: every t
// shares reconstruct the same wrong secrets, so each try reaches verify),
// the error comes after 1 + t verifications, however many spare shares
// there are: no combination is tried twice.
func TestCombineVerified(t *testing.T) {
	const n, th = 7, 3
	secrets := []Secret{{}, {}} // zero: a reconstruction one off still decodes
	for _, tc := range []struct {
		name    string
		corrupt []int // shares whose first value is off by 1, 2, ...
		shift   bool  // every share's first value off by 1
		ok      bool
		calls   int // verifications; -1: not checked
	}{
		{"none corrupt", nil, false, true, 1},
		{"the first corrupt", []int{0}, false, true, -1},
		{"the third corrupt", []int{2}, false, true, -1},
		{"a spare corrupt", []int{5}, false, true, 1},
		{"two corrupt", []int{0, 1}, false, false, -1},
		{"every share shifted", nil, true, false, 1 + th},
	} {
		shares, err := Split(secrets, n, th, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range tc.corrupt {
			// Unequal errors: equal ones can cancel in the interpolation.
			shares[c].Values[0] = fadd(shares[c].Values[0], uint64(i+1))
		}
		for i := range shares {
			if tc.shift {
				shares[i].Values[0] = fadd(shares[i].Values[0], 1)
			}
		}
		calls := 0
		got, err := combineVerified(shares, th, func(s []Secret) error {
			calls++
			if !slices.Equal(s, secrets) {
				return errors.New("wrong secrets")
			}
			return nil
		})
		if (err == nil) != tc.ok || tc.ok && !slices.Equal(got, secrets) {
			t.Errorf("%s: %v, ok %v", tc.name, err, tc.ok)
		}
		if tc.calls >= 0 && calls != tc.calls {
			t.Errorf("%s: %d verifications, want %d", tc.name, calls, tc.calls)
		}
	}
}

// TestCorruptShareTolerated: with more than t revealers, one corrupt
// share is found by its commitment and left out.
func TestCorruptShareTolerated(t *testing.T) {
	lengths := []int{4}
	ms := members(5, func(int) uint32 { return 1 }, lengths, 9)
	ms[4].stop = stopInput
	r := Round{ID: "corrupt", Threshold: 3, Lengths: lengths}
	for _, m := range ms {
		r.Members = append(r.Members, Member{Name: m.name, Groups: 1})
	}
	srv, _ := NewServer(r)
	cl := map[string]*Client{}
	for _, m := range ms {
		cl[m.name], _ = NewClient(r, m.name, rand.Reader)
		srv.Advertise(cl[m.name].Keys())
	}
	keys, _ := srv.CloseAdvertise()
	for _, m := range ms {
		cts, commits, _ := cl[m.name].ShareKeys(keys)
		srv.Shares(m.name, cts, commits)
	}
	set, _ := srv.CloseShares()
	want := make([]float64, 4)
	for _, m := range ms[:4] {
		cl[m.name].ReceiveShares(set, srv.SharesFor(m.name))
		in := make([]uint64, 4)
		for j, v := range m.input[0] {
			in[j], _ = Encode(v)
			want[j] += v
		}
		cl[m.name].Mask(0, in)
		if err := srv.Input(m.name, [][]uint64{in}); err != nil {
			t.Fatal(err)
		}
	}
	surv, _ := srv.CloseInput()
	for k, m := range ms[:4] {
		rs, _ := cl[m.name].Reveal(surv)
		if k == 0 {
			for j := range rs {
				rs[j].Share.Values[len(rs[j].Share.Values)-1] ^= 0x5
			}
		}
		if err := srv.Reveal(m.name, rs); err != nil {
			t.Fatal(err)
		}
	}
	sums, err := srv.Unmask()
	if err != nil {
		t.Fatal(err)
	}
	for j, u := range sums[0] {
		if math.Abs(Decode(u)-want[j]) > 4.0/scale {
			t.Fatalf("value %d: %v, want %v", j, Decode(u), want[j])
		}
	}
}

// TestAdvertiseKeyClash: members must not share keys, nor advertise an
// alias of a key (X25519 ignores the top bit and reduces u mod 2^255-19).
// If a copies c's mask key, b's pairwise masks with a and c are the same
// stream, added for one and subtracted for the other: they cancel, and
// b's input is exposed once its self mask is removed. A mask key
// advertised with its top bit set agrees on the same secrets, but the key
// recovered from its shares when a drops never matches it, so one member
// could make every round's unmasking fail. Both the server and a member
// told of such a key set refuse it, naming the members.
func TestAdvertiseKeyClash(t *testing.T) {
	r := Round{ID: "clash", Threshold: 2, Lengths: []int{3}, Members: []Member{{"a", 1}, {"b", 1}, {"c", 1}}}
	var keys []Keys
	for _, m := range r.Members {
		c, err := NewClient(r, m.Name, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, c.Keys())
	}
	topBit := func(k []byte) []byte { k = slices.Clone(k); k[31] ^= 0x80; return k }
	// 2^255-10 = 9 + (2^255-19): the base point's u-coordinate, unreduced.
	unreduced := append([]byte{0xf6}, bytes.Repeat([]byte{0xff}, 30)...)
	unreduced = append(unreduced, 0x7f)
	for _, tc := range []struct {
		name       string
		cipher     []byte
		mask       []byte
		wantServer string
		wantClient string
	}{
		{"copied mask key", keys[0].Cipher, keys[2].Mask, "a's mask key is c's mask key", "c's mask key is a's mask key"},
		{"copied cipher key", keys[2].Cipher, keys[0].Mask, "a's cipher key is c's cipher key", "c's cipher key is a's cipher key"},
		{"other's mask as cipher", keys[2].Mask, keys[0].Mask, "a's cipher key is c's mask key", "c's mask key is a's cipher key"},
		{"alias of other's mask", keys[0].Cipher, topBit(keys[2].Mask), "a's mask key: public key", "a's mask key: public key"},
		{"alias of own mask", keys[0].Cipher, topBit(keys[0].Mask), "not canonical", "not canonical"},
		{"unreduced", unreduced, keys[0].Mask, "a's cipher key: public key", "not canonical"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := NewServer(r)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys[1:] {
				if err := srv.Advertise(k); err != nil {
					t.Fatal(err)
				}
			}
			bad := Keys{Name: "a", Cipher: tc.cipher, Mask: tc.mask}
			if err := srv.Advertise(bad); err == nil || !strings.Contains(err.Error(), tc.wantServer) {
				t.Errorf("server: err = %v, want %q", err, tc.wantServer)
			}
			b, err := NewClient(r, "b", rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			set := []Keys{bad, b.Keys(), keys[2]}
			if _, _, err := b.ShareKeys(set); err == nil || !strings.Contains(err.Error(), tc.wantClient) {
				t.Errorf("client: err = %v, want %q", err, tc.wantClient)
			}
		})
	}
}

// TestUnmaskBlamesOwner: when a member's shares all agree but do not
// reconstruct what it committed to (or the mask key it advertised), the
// fault is the owner's; unmasking must say so instead of blaming the
// revealers' shares as "more than one is corrupt".
func TestUnmaskBlamesOwner(t *testing.T) {
	lengths := []int{2}
	for _, tc := range []struct {
		name string
		drop bool // p001 drops before input: its mask key is recovered
		want string
	}{
		{"bad commitment", false, "self masks of p001: the self-mask seed of group 0 does not match its commitment (all 4 shares agree: the owner shared"},
		{"bad mask key", true, "mask key of p001, who dropped out: does not match its advertised mask key (all 3 shares agree: the owner shared"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Round{ID: "blame", Threshold: 2, Lengths: lengths}
			for i := range 4 {
				r.Members = append(r.Members, Member{Name: fmt.Sprintf("p%03d", i), Groups: 1})
			}
			srv, _ := NewServer(r)
			cl := map[string]*Client{}
			for _, m := range r.Members {
				cl[m.Name], _ = NewClient(r, m.Name, rand.Reader)
				if err := srv.Advertise(cl[m.Name].Keys()); err != nil {
					t.Fatal(err)
				}
			}
			keys, _ := srv.CloseAdvertise()
			for _, m := range r.Members {
				set := keys
				if m.Name == "p001" && tc.drop {
					// p001 shares a mask key other than the one it
					// advertised (and believes the set holds it).
					other, _ := NewClient(r, "p001", rand.Reader)
					cl["p001"].sKey = other.sKey
					set = slices.Clone(keys)
					set[1] = cl["p001"].Keys()
				}
				cts, commits, err := cl[m.Name].ShareKeys(set)
				if err != nil {
					t.Fatal(err)
				}
				if m.Name == "p001" && !tc.drop {
					// p001 commits to a seed other than the one it shares.
					commits[0][0] ^= 1
				}
				if err := srv.Shares(m.Name, cts, commits); err != nil {
					t.Fatal(err)
				}
			}
			set, _ := srv.CloseShares()
			for _, m := range r.Members {
				if tc.drop && m.Name == "p001" {
					continue
				}
				if err := cl[m.Name].ReceiveShares(set, srv.SharesFor(m.Name)); err != nil {
					t.Fatal(err)
				}
				in := make([]uint64, 2)
				cl[m.Name].Mask(0, in)
				if err := srv.Input(m.Name, [][]uint64{in}); err != nil {
					t.Fatal(err)
				}
			}
			surv, _ := srv.CloseInput()
			for _, n := range surv {
				rs, err := cl[n].Reveal(surv)
				if err != nil {
					t.Fatal(err)
				}
				if err := srv.Reveal(n, rs); err != nil {
					t.Fatal(err)
				}
			}
			_, err := srv.Unmask()
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "more than one is corrupt") {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSharesConsistent(t *testing.T) {
	shares, err := Split(randomSecrets(2), 5, 3, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	bad := slices.Clone(shares)
	bad[4].Values = slices.Clone(bad[4].Values)
	bad[4].Values[3] = fadd(bad[4].Values[3], 1)
	for _, tc := range []struct {
		name   string
		shares []Share
		t      int
		want   bool
	}{
		{"all agree", shares, 3, true},
		{"one off the polynomial", bad, 3, false},
		{"first t only", bad[:4], 3, true},
		{"no spare", shares[:3], 3, false},
		{"threshold 0", shares, 0, false},
	} {
		if got := consistent(tc.shares, tc.t); got != tc.want {
			t.Errorf("%s: consistent = %v, want %v", tc.name, got, tc.want)
		}
	}
}
