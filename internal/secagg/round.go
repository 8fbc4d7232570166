package secagg

import (
	"errors"
	"fmt"
	"slices"
	"sort"
)

// MaxGroups bounds the groups of a round (fedcmi uses three: each
// modality's holders and everyone for the fusion head).
const MaxGroups = 8

// MinGroupSurvivors is the fewest inputs a group's sum is revealed over:
// the sum of one input is that input, which secure aggregation must never
// reveal. Members do not reveal the self-mask seeds of a smaller group.
const MinGroupSurvivors = 2

// ErrTooFew is returned (wrapped) when fewer members than the threshold
// are left at some phase of a round: the round cannot be completed, and
// nothing about the inputs is revealed.
var ErrTooFew = errors.New("secagg: fewer participants left than the threshold")

// Round is what every member and the server agree on before a round.
type Round struct {
	// ID is unique to the round; it keys every derivation, so that masks
	// never repeat between rounds.
	ID string
	// Threshold is t: any t members' shares reconstruct a member's
	// secrets, fewer reveal nothing; at least t members must be left at
	// every phase.
	Threshold int
	// Members are sorted by name; member i's shares are at X = i+1.
	Members []Member
	// Lengths is the number of values of an input of each group.
	Lengths []int
}

// Member is one participant of a round and the groups it inputs to.
type Member struct {
	Name string
	// Groups has bit g set if the member inputs to group g.
	Groups uint32
}

// Keys are the public keys a member advertises: Cipher encrypts the
// shares sent to it, Mask agrees its pairwise masks.
type Keys struct {
	Name         string
	Cipher, Mask []byte
}

// Ciphertext is an encrypted share: Peer is its recipient when a member
// sends it, its sender when a member receives it.
type Ciphertext struct {
	Peer string
	Data []byte
}

// Reveal is one member's share of another's secrets, sent for unmasking:
// Secrets has bit 0 set for the owner's mask key (the owner dropped out)
// or bit 1+g for its self-mask seed of group g (the owner's input is in
// the sum); Share holds those secrets' values in bit order.
type Reveal struct {
	Owner   string
	Secrets uint32
	Share   Share
}

// Validate checks the round.
func (r *Round) Validate() error {
	n := len(r.Members)
	if err := CheckCapacity(n); err != nil {
		return err
	}
	if r.Threshold < 2 || r.Threshold > n {
		return fmt.Errorf("secagg: threshold %d outside 2..%d (the round's participants)", r.Threshold, n)
	}
	if r.ID == "" {
		return errors.New("secagg: round without an ID")
	}
	if len(r.Lengths) == 0 || len(r.Lengths) > MaxGroups {
		return fmt.Errorf("secagg: %d groups, want 1..%d", len(r.Lengths), MaxGroups)
	}
	for g, l := range r.Lengths {
		if l < 0 {
			return fmt.Errorf("secagg: group %d has length %d", g, l)
		}
	}
	for i, m := range r.Members {
		if m.Name == "" {
			return fmt.Errorf("secagg: member %d has no name", i)
		}
		if i > 0 && r.Members[i-1].Name >= m.Name {
			return fmt.Errorf("secagg: members not sorted and distinct at %q", m.Name)
		}
		if m.Groups>>len(r.Lengths) != 0 {
			return fmt.Errorf("secagg: member %q in groups %b of %d", m.Name, m.Groups, len(r.Lengths))
		}
	}
	return nil
}

// index returns the position of name among the members, or -1.
func (r *Round) index(name string) int {
	i := sort.Search(len(r.Members), func(i int) bool { return r.Members[i].Name >= name })
	if i < len(r.Members) && r.Members[i].Name == name {
		return i
	}
	return -1
}

func (r *Round) inGroup(i, g int) bool { return r.Members[i].Groups&(1<<g) != 0 }

// secrets is the number of secrets a member shares: its mask key and one
// self-mask seed per group.
func (r *Round) secrets() int { return 1 + len(r.Lengths) }

// indexes maps names to member positions, refusing strangers and
// repetitions; what names them in errors.
func (r *Round) indexes(names []string, what string) ([]int, error) {
	out := make([]int, 0, len(names))
	for _, n := range names {
		i := r.index(n)
		if i < 0 {
			return nil, fmt.Errorf("secagg: %s names %q, not a member of the round", what, n)
		}
		if slices.Contains(out, i) {
			return nil, fmt.Errorf("secagg: %s names %q twice", what, n)
		}
		out = append(out, i)
	}
	slices.Sort(out)
	return out, nil
}

func (r *Round) names(idx []int) []string {
	out := make([]string, len(idx))
	for k, i := range idx {
		out[k] = r.Members[i].Name
	}
	return out
}

// Revealed reports, per group, whether its sum is revealed when
// survivors' inputs are in it: at least MinGroupSurvivors of them input
// to the group. Unknown names are ignored.
func (r *Round) Revealed(survivors []string) []bool {
	out := make([]bool, len(r.Lengths))
	for g := range out {
		n := 0
		for _, s := range survivors {
			if i := r.index(s); i >= 0 && r.inGroup(i, g) {
				n++
			}
		}
		out[g] = n >= MinGroupSurvivors
	}
	return out
}

func (r *Round) revealed(survivors []int) []bool { return r.Revealed(r.names(survivors)) }

// allowed returns the secrets of member i (Reveal.Secrets bits) that may
// be revealed, given whether it survived and the groups revealed: a
// survivor's self-mask seeds of the revealed groups it inputs to, a
// dropped member's mask key; never both kinds.
func (r *Round) allowed(i int, survived bool, revealed []bool) uint32 {
	if !survived {
		return 1
	}
	var bits uint32
	for g, ok := range revealed {
		if ok && r.inGroup(i, g) {
			bits |= 1 << (1 + g)
		}
	}
	return bits
}

// pick returns the values of the secrets in bits from a full share.
func pick(s Share, bits uint32) Share {
	out := Share{X: s.X}
	for k := 0; k < 32; k++ {
		if bits&(1<<k) != 0 {
			out.Values = append(out.Values, s.Values[k*ElementsPerSecret:(k+1)*ElementsPerSecret]...)
		}
	}
	return out
}
