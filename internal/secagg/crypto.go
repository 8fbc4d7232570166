package secagg

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	mrand "math/rand/v2"
)

// PublicKeySize is the size of an X25519 public key.
const PublicKeySize = 32

// label prefixes every key derivation, so keys of this protocol (and
// version) never serve another purpose.
const label = "fedcmi secagg v1 "

// decodePublicKey decodes an X25519 public key of 32 bytes in canonical
// form. A low-order point passes; agreeing on a secret with it fails.
//
// X25519 ignores the top bit and reduces the u-coordinate modulo
// 2^255-19, so a key has aliases that agree on the same secrets but differ
// as bytes. They are refused: otherwise one member could advertise an alias
// of another's key that a byte comparison does not catch, and a mask key
// advertised as an alias never matches the key recovered from its shares.
func decodePublicKey(b []byte) (*ecdh.PublicKey, error) {
	if len(b) != PublicKeySize {
		return nil, fmt.Errorf("public key of %d bytes, want %d", len(b), PublicKeySize)
	}
	if !canonicalU(b) {
		return nil, fmt.Errorf("public key %x is not canonical (top bit set or u-coordinate not below 2^255-19)", b)
	}
	pub, err := ecdh.X25519().NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	return pub, nil
}

// canonicalU reports whether the 32-byte little-endian b is below
// 2^255-19, the canonical encoding of an X25519 u-coordinate.
func canonicalU(b []byte) bool {
	if b[31] != 0x7f {
		return b[31] < 0x7f
	}
	for _, c := range b[1:31] {
		if c != 0xff {
			return true
		}
	}
	return b[0] < 0xed
}

// keyClash returns an error naming a key of member a that equals one of
// member b's, or nil. Members must not share keys: see Server.Advertise.
func keyClash(a, b Keys) error {
	uses := [2]string{"cipher", "mask"}
	ka, kb := [2][]byte{a.Cipher, a.Mask}, [2][]byte{b.Cipher, b.Mask}
	for i, x := range ka {
		for j, y := range kb {
			if bytes.Equal(x, y) {
				return fmt.Errorf("secagg: %s's %s key is %s's %s key", a.Name, uses[i], b.Name, uses[j])
			}
		}
	}
	return nil
}

// ParsePublicKey checks and decodes a peer's X25519 public key: 32 bytes,
// canonical, not a low-order point (which would make the agreed secret
// public).
func ParsePublicKey(b []byte) (*ecdh.PublicKey, error) {
	pub, err := decodePublicKey(b)
	if err != nil {
		return nil, err
	}
	probe, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("public key check: %w", err)
	}
	if _, err := probe.ECDH(pub); err != nil {
		return nil, fmt.Errorf("public key is a low-order point: %w", err)
	}
	return pub, nil
}

// info builds a key derivation's context: the label, the purpose, the
// round's ID and further numbers.
func info(purpose, roundID string, nums ...uint64) string {
	b := []byte(label + purpose + "|" + roundID)
	for _, n := range nums {
		b = binary.BigEndian.AppendUint64(append(b, '|'), n)
	}
	return string(b)
}

func derive(secret []byte, inf string) [32]byte {
	k, err := hkdf.Key(sha256.New, secret, nil, inf, 32)
	if err != nil { // only for lengths HKDF cannot produce
		panic("secagg: hkdf: " + err.Error())
	}
	return [32]byte(k)
}

// PairSeed returns the seed of the mask two members agreeing on shared
// (X25519 of their mask keys) add to group's input in the round: keyed by
// round and group, so masks never repeat.
func PairSeed(shared []byte, roundID string, group int) [32]byte {
	return derive(shared, info("pair", roundID, uint64(group)))
}

// SelfSeed returns the seed of a member's self mask of group from its
// secret seed b.
func SelfSeed(b Secret, roundID string, group int) [32]byte {
	return derive(b[:], info("self", roundID, uint64(group)))
}

// Commitment returns the hash by which a member commits to its self-mask
// seed of group, so that the coordinator can tell a correct
// reconstruction from one with a corrupt share.
func Commitment(b Secret, roundID string, group int) []byte {
	h := sha256.New()
	h.Write([]byte(info("commit", roundID, uint64(group))))
	h.Write(b[:])
	return h.Sum(nil)
}

// AddMask adds (or with negate subtracts) the pseudo-random stream of
// seed, ChaCha8, to dst modulo 2^64.
func AddMask(dst []uint64, seed [32]byte, negate bool) {
	prg := mrand.NewChaCha8(seed)
	if negate {
		for i := range dst {
			dst[i] -= prg.Uint64()
		}
		return
	}
	for i := range dst {
		dst[i] += prg.Uint64()
	}
}

// shareAEAD returns the cipher of the shares two members exchange,
// keyed by their agreed secret (X25519 of their cipher keys).
func shareAEAD(shared []byte, roundID string) (cipher.AEAD, error) {
	key := derive(shared, info("share", roundID))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func shareAAD(roundID, from, to string) []byte {
	return []byte(info("share-aad", roundID) + "|" + from + "|" + to)
}

// seal encrypts plain from member from to member to.
func seal(shared []byte, roundID, from, to string, plain []byte, rnd io.Reader) ([]byte, error) {
	aead, err := shareAEAD(shared, roundID)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := io.ReadFull(rnd, nonce); err != nil {
		return nil, fmt.Errorf("secagg: randomness: %w", err)
	}
	return aead.Seal(nonce, nonce, plain, shareAAD(roundID, from, to)), nil
}

// open decrypts a ciphertext from member from to member to.
func open(shared []byte, roundID, from, to string, ct []byte) ([]byte, error) {
	aead, err := shareAEAD(shared, roundID)
	if err != nil {
		return nil, err
	}
	if len(ct) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("ciphertext of %d bytes is too short", len(ct))
	}
	n := aead.NonceSize()
	plain, err := aead.Open(nil, ct[:n], ct[n:], shareAAD(roundID, from, to))
	if err != nil {
		return nil, fmt.Errorf("ciphertext does not decrypt: %w", err)
	}
	return plain, nil
}
