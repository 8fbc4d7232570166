package secagg

import (
	"bytes"
	"crypto/ecdh"
	"errors"
	"fmt"
	"math/bits"
	"slices"
)

// Server phases.
const (
	phaseAdvertise = iota
	phaseShare
	phaseInput
	phaseReveal
	phaseDone
)

// Server is the aggregator's side of a round: it relays keys and
// encrypted shares, sums the masked inputs as they arrive (it never holds
// more than one sum per group), and unmasks the sums from the survivors'
// shares. Each phase is closed explicitly (when every member answered or
// its deadline passed), which fixes the members left: the key set U1, the
// share set U2, the survivors U3. Every submission is checked; a bad one
// is refused with an error naming the member and changes nothing.
type Server struct {
	r         Round
	phase     int
	keys      map[int]peerKeys
	keySet    []int
	cts       map[int][]Ciphertext // by sender; Peer is the recipient
	commits   map[int][][]byte
	shareSet  []int
	inputs    map[int]bool
	sums      [][]uint64
	survivors []int
	reveals   map[int][]Reveal // by revealer
}

// NewServer starts the server's side of round r.
func NewServer(r Round) (*Server, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	s := &Server{r: r, keys: map[int]peerKeys{}, cts: map[int][]Ciphertext{}, commits: map[int][][]byte{},
		inputs: map[int]bool{}, reveals: map[int][]Reveal{}}
	s.sums = make([][]uint64, len(r.Lengths))
	for g, l := range r.Lengths {
		s.sums[g] = make([]uint64, l)
	}
	return s, nil
}

func (s *Server) member(name string) (int, error) {
	i := s.r.index(name)
	if i < 0 {
		return -1, fmt.Errorf("secagg: %q is not a member of round %s", name, s.r.ID)
	}
	return i, nil
}

func (s *Server) inPhase(p int, what string) error {
	if s.phase != p {
		return fmt.Errorf("secagg: %s outside its phase (the round is past it or not there yet)", what)
	}
	return nil
}

// Advertise records a member's public keys. It refuses keys that are
// malformed, low-order or not canonical, and keys another member advertised.
func (s *Server) Advertise(k Keys) error {
	if err := s.inPhase(phaseAdvertise, "keys"); err != nil {
		return err
	}
	i, err := s.member(k.Name)
	if err != nil {
		return err
	}
	if _, ok := s.keys[i]; ok {
		return fmt.Errorf("secagg: %s advertised keys twice", k.Name)
	}
	pk := peerKeys{raw: Keys{Name: k.Name, Cipher: slices.Clone(k.Cipher), Mask: slices.Clone(k.Mask)}}
	if pk.cipher, err = ParsePublicKey(k.Cipher); err != nil {
		return fmt.Errorf("secagg: %s's cipher key: %w", k.Name, err)
	}
	if pk.mask, err = ParsePublicKey(k.Mask); err != nil {
		return fmt.Errorf("secagg: %s's mask key: %w", k.Name, err)
	}
	if bytes.Equal(k.Cipher, k.Mask) {
		return fmt.Errorf("secagg: %s advertised one key for both uses", k.Name)
	}
	// A member that copies another's mask key makes every third member's
	// pairwise masks with the two cancel (added for one, subtracted for
	// the other), exposing that member's input once its self mask is
	// removed; a copied cipher key lets the key's owner read shares meant
	// for the copier. Keys are canonical (ParsePublicKey), so equal
	// secrets mean equal bytes.
	for j := range s.r.Members {
		if other, ok := s.keys[j]; ok {
			if err := keyClash(k, other.raw); err != nil {
				return err
			}
		}
	}
	s.keys[i] = pk
	return nil
}

// Advertised reports whether name's keys are in.
func (s *Server) Advertised(name string) bool { _, ok := s.keys[s.r.index(name)]; return ok }

// CloseAdvertise ends the key phase and returns the key set U1 (an error
// wrapping ErrTooFew if it is smaller than the threshold).
func (s *Server) CloseAdvertise() ([]Keys, error) {
	if err := s.inPhase(phaseAdvertise, "closing the key phase"); err != nil {
		return nil, err
	}
	s.phase = phaseShare
	for i := range s.r.Members {
		if _, ok := s.keys[i]; ok {
			s.keySet = append(s.keySet, i)
		}
	}
	if len(s.keySet) < s.r.Threshold {
		s.phase = phaseDone
		return nil, fmt.Errorf("%w: %d of %d participants advertised keys, threshold %d", ErrTooFew, len(s.keySet), len(s.r.Members), s.r.Threshold)
	}
	out := make([]Keys, len(s.keySet))
	for k, i := range s.keySet {
		out[k] = s.keys[i].raw
	}
	return out, nil
}

// Shares records a member's encrypted shares, one to every other member
// of the key set, and its commitments to its self-mask seeds, one per
// group of SHA-256 size.
func (s *Server) Shares(name string, cts []Ciphertext, commits [][]byte) error {
	if err := s.inPhase(phaseShare, "shares"); err != nil {
		return err
	}
	i, err := s.member(name)
	if err != nil {
		return err
	}
	if !slices.Contains(s.keySet, i) {
		return fmt.Errorf("secagg: %s sent shares without keys in the key set", name)
	}
	if _, ok := s.cts[i]; ok {
		return fmt.Errorf("secagg: %s sent its shares twice", name)
	}
	if len(cts) != len(s.keySet)-1 {
		return fmt.Errorf("secagg: %s sent %d shares, want %d (one per other member of the key set)", name, len(cts), len(s.keySet)-1)
	}
	to := make([]string, len(cts))
	for k, ct := range cts {
		to[k] = ct.Peer
		if len(ct.Data) > maxCiphertext(s.r) {
			return fmt.Errorf("secagg: %s's share for %s has %d bytes, more than %d", name, ct.Peer, len(ct.Data), maxCiphertext(s.r))
		}
	}
	idx, err := s.r.indexes(to, name+"'s shares")
	if err != nil {
		return err
	}
	for k, j := range idx {
		if j == i || !slices.Contains(s.keySet, j) {
			return fmt.Errorf("secagg: %s sent a share to %s, not another member of the key set", name, s.r.Members[idx[k]].Name)
		}
	}
	if len(commits) != len(s.r.Lengths) {
		return fmt.Errorf("secagg: %s sent %d commitments, want %d (one per group)", name, len(commits), len(s.r.Lengths))
	}
	for g, c := range commits {
		if len(c) != 32 {
			return fmt.Errorf("secagg: %s's commitment of group %d has %d bytes, want 32", name, g, len(c))
		}
	}
	own := make([]Ciphertext, len(cts))
	for k, ct := range cts {
		own[k] = Ciphertext{Peer: ct.Peer, Data: slices.Clone(ct.Data)}
	}
	s.cts[i] = own
	s.commits[i] = slices.Clone(commits)
	return nil
}

// maxCiphertext bounds an encrypted share: a nonce, a tag and the share.
func maxCiphertext(r Round) int { return 12 + 16 + 4 + 8*r.secrets()*ElementsPerSecret }

// Shared reports whether name's shares are in.
func (s *Server) Shared(name string) bool { _, ok := s.cts[s.r.index(name)]; return ok }

// CloseShares ends the share phase and returns the share set U2.
func (s *Server) CloseShares() ([]string, error) {
	if err := s.inPhase(phaseShare, "closing the share phase"); err != nil {
		return nil, err
	}
	s.phase = phaseInput
	for _, i := range s.keySet {
		if _, ok := s.cts[i]; ok {
			s.shareSet = append(s.shareSet, i)
		}
	}
	if len(s.shareSet) < s.r.Threshold {
		s.phase = phaseDone
		return nil, fmt.Errorf("%w: %d of %d participants sent their shares, threshold %d", ErrTooFew, len(s.shareSet), len(s.keySet), s.r.Threshold)
	}
	return s.r.names(s.shareSet), nil
}

// SharesFor returns the ciphertexts members of the share set sent to name,
// each with its sender as Peer.
func (s *Server) SharesFor(name string) []Ciphertext {
	var out []Ciphertext
	for _, i := range s.shareSet {
		for _, ct := range s.cts[i] {
			if ct.Peer == name {
				out = append(out, Ciphertext{Peer: s.r.Members[i].Name, Data: ct.Data})
			}
		}
	}
	return out
}

// CheckInput checks a member's masked input, one vector per group (nil for
// the groups it does not input to), before it is summed.
func (s *Server) CheckInput(name string, input [][]uint64) error {
	if err := s.inPhase(phaseInput, "masked input"); err != nil {
		return err
	}
	i, err := s.member(name)
	if err != nil {
		return err
	}
	if !slices.Contains(s.shareSet, i) {
		return fmt.Errorf("secagg: %s is not in the share set", name)
	}
	if s.inputs[i] {
		return fmt.Errorf("secagg: %s sent its input twice", name)
	}
	if len(input) != len(s.r.Lengths) {
		return fmt.Errorf("secagg: %s's input has %d groups, want %d", name, len(input), len(s.r.Lengths))
	}
	for g, v := range input {
		want := 0
		if s.r.inGroup(i, g) {
			want = s.r.Lengths[g]
		}
		if len(v) != want {
			return fmt.Errorf("secagg: %s's input to group %d has %d values, want %d", name, g, len(v), want)
		}
	}
	return nil
}

// Input adds a member's masked input (see CheckInput) to the sums.
func (s *Server) Input(name string, input [][]uint64) error {
	if err := s.CheckInput(name, input); err != nil {
		return err
	}
	for g, v := range input {
		sum := s.sums[g]
		for j, x := range v {
			sum[j] += x
		}
	}
	s.inputs[s.r.index(name)] = true
	return nil
}

// HasInput reports whether name's masked input is in.
func (s *Server) HasInput(name string) bool { return s.inputs[s.r.index(name)] }

// CloseInput ends the input phase and returns the survivors U3, whose
// inputs are in the sums.
func (s *Server) CloseInput() ([]string, error) {
	if err := s.inPhase(phaseInput, "closing the input phase"); err != nil {
		return nil, err
	}
	s.phase = phaseReveal
	for _, i := range s.shareSet {
		if s.inputs[i] {
			s.survivors = append(s.survivors, i)
		}
	}
	if len(s.survivors) < s.r.Threshold {
		s.phase = phaseDone
		return nil, fmt.Errorf("%w: %d of %d masked inputs arrived, threshold %d", ErrTooFew, len(s.survivors), len(s.shareSet), s.r.Threshold)
	}
	return s.r.names(s.survivors), nil
}

// Reveal records a survivor's shares for unmasking: for each owner it
// reveals, exactly the secrets the round allows (Round.allowed), at the
// revealer's point.
func (s *Server) Reveal(name string, rs []Reveal) error {
	if err := s.inPhase(phaseReveal, "reveal"); err != nil {
		return err
	}
	i, err := s.member(name)
	if err != nil {
		return err
	}
	if !slices.Contains(s.survivors, i) {
		return fmt.Errorf("secagg: %s is not a survivor of the round", name)
	}
	if _, ok := s.reveals[i]; ok {
		return fmt.Errorf("secagg: %s revealed twice", name)
	}
	revealed := s.r.revealed(s.survivors)
	seen := map[int]bool{}
	for _, rv := range rs {
		o := s.r.index(rv.Owner)
		if o < 0 || !slices.Contains(s.shareSet, o) {
			return fmt.Errorf("secagg: %s revealed a share of %q, not in the share set", name, rv.Owner)
		}
		if seen[o] {
			return fmt.Errorf("secagg: %s revealed two shares of %s", name, rv.Owner)
		}
		seen[o] = true
		want := s.r.allowed(o, slices.Contains(s.survivors, o), revealed)
		if rv.Secrets != want {
			return fmt.Errorf("secagg: %s revealed secrets %b of %s, the round allows %b", name, rv.Secrets, rv.Owner, want)
		}
		if rv.Share.X != uint32(i+1) {
			return fmt.Errorf("secagg: %s revealed a share at point %d, its point is %d", name, rv.Share.X, i+1)
		}
		if n := bits.OnesCount32(want) * ElementsPerSecret; len(rv.Share.Values) != n {
			return fmt.Errorf("secagg: %s's share of %s has %d values, want %d", name, rv.Owner, len(rv.Share.Values), n)
		}
		for _, v := range rv.Share.Values {
			if v >= Prime {
				return fmt.Errorf("secagg: %s's share of %s holds %d, not a field element", name, rv.Owner, v)
			}
		}
	}
	s.reveals[i] = slices.Clone(rs)
	return nil
}

// Revealers returns how many survivors revealed their shares.
func (s *Server) Revealers() int { return len(s.reveals) }

// Unmask ends the round: it reconstructs the survivors' self-mask seeds
// and the dropped members' mask keys from the revealed shares, removes
// their masks, and returns the sum of the survivors' inputs per group, nil
// for a group revealed over fewer than MinGroupSurvivors inputs. It needs
// Threshold revealers (else an error wrapping ErrTooFew); a reconstruction
// that does not match the owner's commitment or public key is retried
// without each share in turn, so one corrupt share is tolerated when more
// than Threshold shares are in.
func (s *Server) Unmask() ([][]uint64, error) {
	if err := s.inPhase(phaseReveal, "unmasking"); err != nil {
		return nil, err
	}
	s.phase = phaseDone
	if len(s.reveals) < s.r.Threshold {
		return nil, fmt.Errorf("%w: %d of %d survivors revealed their shares, threshold %d", ErrTooFew, len(s.reveals), len(s.survivors), s.r.Threshold)
	}
	revealers := make([]int, 0, len(s.reveals))
	for i := range s.reveals {
		revealers = append(revealers, i)
	}
	slices.Sort(revealers)
	revealed := s.r.revealed(s.survivors)
	for _, o := range s.shareSet {
		survived := slices.Contains(s.survivors, o)
		want := s.r.allowed(o, survived, revealed)
		if want == 0 {
			continue
		}
		var shares []Share
		for _, r := range revealers {
			for _, rv := range s.reveals[r] {
				if rv.Owner == s.r.Members[o].Name {
					shares = append(shares, rv.Share)
				}
			}
		}
		owner := s.r.Members[o].Name
		if !survived {
			sk, err := combineVerified(shares, s.r.Threshold, func(sec []Secret) error {
				k, err := ecdh.X25519().NewPrivateKey(sec[0][:])
				if err == nil && !bytes.Equal(k.PublicKey().Bytes(), s.keys[o].raw.Mask) {
					err = errors.New("does not match its advertised mask key")
				}
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("secagg: cannot recover the mask key of %s, who dropped out: %w", owner, err)
			}
			key, _ := ecdh.X25519().NewPrivateKey(sk[0][:])
			for g, ok := range revealed {
				if !ok || !s.r.inGroup(o, g) {
					continue
				}
				for _, u := range s.survivors {
					if !s.r.inGroup(u, g) {
						continue
					}
					shared, err := key.ECDH(s.keys[u].mask)
					if err != nil {
						return nil, fmt.Errorf("secagg: agree %s with %s: %w", owner, s.r.Members[u].Name, err)
					}
					AddMask(s.sums[g], PairSeed(shared, s.r.ID, g), u < o)
				}
			}
			continue
		}
		var groups []int
		for g := range revealed {
			if want&(1<<(1+g)) != 0 {
				groups = append(groups, g)
			}
		}
		seeds, err := combineVerified(shares, s.r.Threshold, func(sec []Secret) error {
			for k, g := range groups {
				if !bytes.Equal(Commitment(sec[k], s.r.ID, g), s.commits[o][g]) {
					return fmt.Errorf("the self-mask seed of group %d does not match its commitment", g)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("secagg: cannot recover the self masks of %s: %w", owner, err)
		}
		for k, g := range groups {
			AddMask(s.sums[g], SelfSeed(seeds[k], s.r.ID, g), true)
		}
	}
	out := make([][]uint64, len(s.sums))
	for g, ok := range revealed {
		if ok {
			out[g] = s.sums[g]
		}
	}
	return out, nil
}

// combineVerified reconstructs secrets from the first t shares, and if
// verify refuses them, from the first t+1 with each of the first t left
// out in turn (Combine reads the first t it is given: leaving out a later
// share would repeat the first try).
func combineVerified(shares []Share, t int, verify func([]Secret) error) ([]Secret, error) {
	if len(shares) < t {
		return nil, fmt.Errorf("%w: %d shares, threshold %d", ErrTooFew, len(shares), t)
	}
	try := func(ss []Share) ([]Secret, error) {
		sec, err := Combine(ss, t)
		if err == nil {
			err = verify(sec)
		}
		return sec, err
	}
	sec, first := try(shares)
	if first == nil {
		return sec, nil
	}
	for skip := 0; len(shares) > t && skip < t; skip++ {
		rest := append(slices.Clone(shares[:skip]), shares[skip+1:t+1]...)
		if sec, err := try(rest); err == nil {
			return sec, nil
		}
	}
	switch {
	case consistent(shares, t):
		// Every t shares give the same secrets: the owner shared other
		// secrets than it committed to or advertised, and blaming the
		// revealers' shares would point at the wrong members.
		return nil, fmt.Errorf("%w (all %d shares agree: the owner shared a secret other than the one it committed to or advertised)", first, len(shares))
	case len(shares) == t:
		return nil, fmt.Errorf("%w (from %d shares, the threshold: a share is corrupt or the owner shared a wrong secret, and no spare share can tell which)", first, t)
	}
	return nil, fmt.Errorf("%w (from %d shares, threshold %d: more than one is corrupt)", first, len(shares), t)
}
