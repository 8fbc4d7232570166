package secagg

import (
	"bytes"
	"crypto/ecdh"
	"errors"
	"fmt"
	"io"
	"slices"
)

type peerKeys struct {
	raw          Keys
	cipher, mask *ecdh.PublicKey
}

// Client is one member's side of a round. Its methods are the protocol's
// phases, called in order: Keys (advertise), ShareKeys, ReceiveShares,
// Mask (for each group it inputs to) and Reveal. It checks what the
// server relays, so a server that lies about the member sets learns no
// more than the sums.
type Client struct {
	r        Round
	me       int
	rnd      io.Reader
	cKey     *ecdh.PrivateKey
	sKey     *ecdh.PrivateKey
	seeds    []Secret         // self-mask seed per group
	keys     map[int]peerKeys // the advertised key set, U1
	held     map[int]Share    // shares held, by owner (own included)
	shareSet []int            // U2
	pairs    map[int][]byte   // agreed mask secrets, by peer
	phase    int              // phases done
	skipped  map[int]error    // peers whose shares could not be used
}

// NewClient starts member name's side of round r, drawing keys and seeds
// from rnd.
func NewClient(r Round, name string, rnd io.Reader) (*Client, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	me := r.index(name)
	if me < 0 {
		return nil, fmt.Errorf("secagg: %q is not a member of round %s", name, r.ID)
	}
	c := &Client{r: r, me: me, rnd: rnd, held: map[int]Share{}, pairs: map[int][]byte{}, skipped: map[int]error{}}
	var err error
	if c.cKey, err = ecdh.X25519().GenerateKey(rnd); err != nil {
		return nil, fmt.Errorf("secagg: key: %w", err)
	}
	if c.sKey, err = ecdh.X25519().GenerateKey(rnd); err != nil {
		return nil, fmt.Errorf("secagg: key: %w", err)
	}
	c.seeds = make([]Secret, len(r.Lengths))
	for g := range c.seeds {
		if _, err := io.ReadFull(rnd, c.seeds[g][:]); err != nil {
			return nil, fmt.Errorf("secagg: randomness: %w", err)
		}
	}
	return c, nil
}

// Keys returns the public keys to advertise.
func (c *Client) Keys() Keys {
	return Keys{Name: c.r.Members[c.me].Name, Cipher: c.cKey.PublicKey().Bytes(), Mask: c.sKey.PublicKey().Bytes()}
}

// ShareKeys takes the advertised key set (at least Threshold members, this
// one with its own keys among them) and returns this member's shares of
// its mask key and self-mask seeds, encrypted to each other member of the
// set, and its commitments to the seeds (one per group).
func (c *Client) ShareKeys(set []Keys) ([]Ciphertext, [][]byte, error) {
	if c.phase != 0 {
		return nil, nil, errors.New("secagg: keys shared twice")
	}
	names := make([]string, len(set))
	for i, k := range set {
		names[i] = k.Name
	}
	idx, err := c.r.indexes(names, "the key set")
	if err != nil {
		return nil, nil, err
	}
	if len(idx) < c.r.Threshold {
		return nil, nil, fmt.Errorf("%w: %d advertised keys, threshold %d", ErrTooFew, len(idx), c.r.Threshold)
	}
	c.keys = map[int]peerKeys{}
	mine := c.Keys()
	for n, k := range set {
		i := c.r.index(k.Name)
		pk := peerKeys{raw: k}
		// The server checked the keys for low-order points; agreeing with
		// one fails anyway, so a cheap decoding suffices here.
		if pk.cipher, err = decodePublicKey(k.Cipher); err != nil {
			return nil, nil, fmt.Errorf("secagg: %s's cipher key: %w", k.Name, err)
		}
		if pk.mask, err = decodePublicKey(k.Mask); err != nil {
			return nil, nil, fmt.Errorf("secagg: %s's mask key: %w", k.Name, err)
		}
		for _, prev := range set[:n] {
			// Relayed by a server that did not check (Server.Advertise
			// refuses such keys): masking with them could cancel this
			// member's pairwise masks and expose its input.
			if err := keyClash(k, prev); err != nil {
				return nil, nil, err
			}
		}
		c.keys[i] = pk
	}
	if k, ok := c.keys[c.me]; !ok || !bytes.Equal(k.raw.Cipher, mine.Cipher) || !bytes.Equal(k.raw.Mask, mine.Mask) {
		return nil, nil, fmt.Errorf("secagg: the key set does not hold %s's own keys", mine.Name)
	}
	secrets := append([]Secret{Secret(c.sKey.Bytes())}, c.seeds...)
	shares, err := Split(secrets, len(c.r.Members), c.r.Threshold, c.rnd)
	if err != nil {
		return nil, nil, err
	}
	c.held[c.me] = shares[c.me]
	var out []Ciphertext
	for _, i := range idx {
		if i == c.me {
			continue
		}
		shared, err := c.cKey.ECDH(c.keys[i].cipher)
		if err != nil {
			return nil, nil, fmt.Errorf("secagg: agree with %s: %w", c.r.Members[i].Name, err)
		}
		ct, err := seal(shared, c.r.ID, mine.Name, c.r.Members[i].Name, MarshalShare(shares[i]), c.rnd)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, Ciphertext{Peer: c.r.Members[i].Name, Data: ct})
	}
	commits := make([][]byte, len(c.seeds))
	for g, b := range c.seeds {
		commits[g] = Commitment(b, c.r.ID, g)
	}
	c.phase = 1
	return out, commits, nil
}

// ReceiveShares takes the members whose shares reached the server (U2, at
// least Threshold, this one among them, all of the key set) and the
// ciphertexts they sent this member. A peer's missing or undecryptable
// share is skipped (returned by Skipped): the others' shares can stand in
// for it at unmasking.
func (c *Client) ReceiveShares(shareSet []string, cts []Ciphertext) error {
	if c.phase != 1 {
		return errors.New("secagg: shares received before the keys were shared, or twice")
	}
	idx, err := c.r.indexes(shareSet, "the share set")
	if err != nil {
		return err
	}
	if len(idx) < c.r.Threshold {
		return fmt.Errorf("%w: %d members sent their shares, threshold %d", ErrTooFew, len(idx), c.r.Threshold)
	}
	if !slices.Contains(idx, c.me) {
		return fmt.Errorf("secagg: the share set leaves out %s", c.r.Members[c.me].Name)
	}
	for _, i := range idx {
		if _, ok := c.keys[i]; !ok {
			return fmt.Errorf("secagg: the share set names %s, who advertised no keys", c.r.Members[i].Name)
		}
	}
	me := c.r.Members[c.me].Name
	got := map[int]bool{}
	for _, ct := range cts {
		i := c.r.index(ct.Peer)
		if i < 0 || i == c.me || !slices.Contains(idx, i) {
			return fmt.Errorf("secagg: a share from %q, not another member of the share set", ct.Peer)
		}
		if got[i] {
			return fmt.Errorf("secagg: two shares from %s", ct.Peer)
		}
		got[i] = true
		shared, err := c.cKey.ECDH(c.keys[i].cipher)
		if err != nil {
			c.skipped[i] = err
			continue
		}
		plain, err := open(shared, c.r.ID, ct.Peer, me, ct.Data)
		if err != nil {
			c.skipped[i] = err
			continue
		}
		s, err := UnmarshalShare(plain, c.r.secrets()*ElementsPerSecret)
		if err == nil && s.X != uint32(c.me+1) {
			err = fmt.Errorf("share at point %d, want %d", s.X, c.me+1)
		}
		if err != nil {
			c.skipped[i] = err
			continue
		}
		c.held[i] = s
	}
	for _, i := range idx {
		if i != c.me && !got[i] {
			c.skipped[i] = errors.New("no share received")
		}
	}
	c.shareSet = idx
	c.phase = 2
	return nil
}

// Skipped lists the peers whose shares this member could not use, with why.
func (c *Client) Skipped() map[string]error {
	out := map[string]error{}
	for i, err := range c.skipped {
		out[c.r.Members[i].Name] = err
	}
	return out
}

// Mask adds this member's masks of group g to its encoded input in place:
// its self mask, and for every other member of the share set in g the
// pairwise mask, added if this member's name sorts first and subtracted
// otherwise, so that the pair's masks cancel in the sum.
func (c *Client) Mask(g int, input []uint64) error {
	if c.phase != 2 {
		return errors.New("secagg: input masked before the shares were received")
	}
	if g < 0 || g >= len(c.r.Lengths) || !c.r.inGroup(c.me, g) {
		return fmt.Errorf("secagg: %s does not input to group %d", c.r.Members[c.me].Name, g)
	}
	if len(input) != c.r.Lengths[g] {
		return fmt.Errorf("secagg: input of %d values to group %d of %d", len(input), g, c.r.Lengths[g])
	}
	AddMask(input, SelfSeed(c.seeds[g], c.r.ID, g), false)
	for _, i := range c.shareSet {
		if i == c.me || !c.r.inGroup(i, g) {
			continue
		}
		shared, ok := c.pairs[i]
		if !ok {
			var err error
			if shared, err = c.sKey.ECDH(c.keys[i].mask); err != nil {
				return fmt.Errorf("secagg: agree with %s: %w", c.r.Members[i].Name, err)
			}
			c.pairs[i] = shared
		}
		AddMask(input, PairSeed(shared, c.r.ID, g), i < c.me)
	}
	return nil
}

// Reveal takes the members whose masked inputs reached the server (U3,
// at least Threshold, all of the share set, this one among them) and
// returns this member's shares for unmasking: of each survivor's self-mask
// seeds of the groups whose sums are revealed, and of each dropped
// member's mask key, never both for one member. It answers once per round.
func (c *Client) Reveal(survivors []string) ([]Reveal, error) {
	if c.phase != 2 {
		return nil, errors.New("secagg: reveal before the shares were received, or twice")
	}
	idx, err := c.r.indexes(survivors, "the survivor set")
	if err != nil {
		return nil, err
	}
	if len(idx) < c.r.Threshold {
		return nil, fmt.Errorf("%w: %d masked inputs arrived, threshold %d", ErrTooFew, len(idx), c.r.Threshold)
	}
	for _, i := range idx {
		if !slices.Contains(c.shareSet, i) {
			return nil, fmt.Errorf("secagg: survivor %s is not in the share set", c.r.Members[i].Name)
		}
	}
	if !slices.Contains(idx, c.me) {
		return nil, fmt.Errorf("secagg: the survivor set leaves out %s", c.r.Members[c.me].Name)
	}
	c.phase = 3
	revealed := c.r.revealed(idx)
	var out []Reveal
	for _, i := range c.shareSet {
		s, ok := c.held[i]
		if !ok {
			continue
		}
		bits := c.r.allowed(i, slices.Contains(idx, i), revealed)
		if bits == 0 {
			continue
		}
		out = append(out, Reveal{Owner: c.r.Members[i].Name, Secrets: bits, Share: pick(s, bits)})
	}
	return out, nil
}
