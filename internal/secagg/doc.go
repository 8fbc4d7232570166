// Package secagg is the arithmetic and cryptography of secure aggregation
// (Bonawitz, Ivanov, Kreuter, Marcedone, McMahan, Patel, Ramage, Segal,
// Seth, "Practical Secure Aggregation for Privacy-Preserving Machine
// Learning", CCS 2017), for a server that must learn only sums of its
// members' inputs. It does no I/O: fedcmi's deploy package carries its
// messages.
//
// # Protocol
//
// A Round names its members, the threshold t and the groups an input has
// (fedcmi: one per modality, holding that modality's tensors and
// weight, and one for the fusion head; a member inputs to the groups it
// holds). Every member (Client) and the server (Server) go through four
// phases; the members left after each (U1 ⊇ U2 ⊇ U3) must number at least
// t, or the round ends with ErrTooFew and nothing is revealed.
//
//  1. Advertise: each member draws two X25519 key pairs (crypto/ecdh), one
//     to encrypt shares to it, one to agree pairwise masks, and a random
//     self-mask seed per group. The server relays the public keys (U1).
//  2. Share keys: each member splits its mask private key and its seeds
//     into Shamir shares (threshold t, over GF(2^61-1)), encrypts each
//     other member's share with AES-GCM under a key agreed with that
//     member, and commits to its seeds (SHA-256). The server relays the
//     ciphertexts (U2: the members whose shares arrived).
//  3. Masked input: each member encodes its input in fixed point (Encode)
//     and adds, per group, its self mask and, for every other member of
//     U2 in the group, the pairwise mask of their agreed secret, with
//     opposite signs on the two sides. Masks are ChaCha8 streams seeded by
//     HKDF-SHA256 of the secret, the round's ID and the group, so none
//     repeats. The server sums the masked inputs (U3: the survivors).
//  4. Unmask: each survivor sends its shares of the survivors' self-mask
//     seeds and of the dropped members' (U2 \ U3) mask keys, never both
//     kinds for one member. From t of them the server removes the self
//     masks and the dropped members' pairwise masks; what is left is the
//     sum of the survivors' inputs, exactly (modulo 2^64).
//
// The self masks are the double masking of the paper: a member that is
// only slow, whose masked input arrives after the server has recovered
// its mask key, stays hidden by its self mask, whose seed is never
// revealed together with its mask key.
//
// # Guarantees and limits
//
// Against an honest-but-curious server (and up to t-1 members colluding
// with it), the server learns the sum of each group's surviving inputs
// and nothing else about one input; a group's sum over fewer than
// MinGroupSurvivors inputs is never revealed. The paper's defences
// against an actively malicious server (signed keys, a consistency round)
// are not implemented: mutual TLS authenticates the members to the
// server, not to one another. Members cannot check one another's inputs
// either: a member may send any vector, as without secure aggregation it
// could send any update a norm bound does not catch.
package secagg
