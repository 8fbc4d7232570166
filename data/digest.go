package data

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
)

// Digest identifies the set's content: "sha256:" and the hash of its
// modality names, shapes, class count, labels, groups and every feature
// value (as little-endian float32 bits). A run records the digest of its
// training set so that a resume on other data (another copy of a data
// set, or features from a newer preprocessing) is refused rather than
// continued silently. It reads every value once (about a second per
// gigabyte of features).
func (s *Set) Digest() string {
	h := sha256.New()
	buf := make([]byte, 0, 64<<10)
	flush := func() {
		h.Write(buf)
		buf = buf[:0]
	}
	putInt := func(v int) {
		if len(buf)+8 > cap(buf) {
			flush()
		}
		buf = binary.LittleEndian.AppendUint64(buf, uint64(v))
	}
	putInt(len(s.Modalities))
	for m, name := range s.Modalities {
		putInt(len(name))
		flush()
		h.Write([]byte(name))
		shape := s.Shape(m)
		putInt(len(shape))
		for _, d := range shape {
			putInt(d)
		}
	}
	putInt(s.NumClasses)
	putInt(len(s.Labels))
	for _, l := range s.Labels {
		putInt(l)
	}
	putInt(len(s.Groups))
	for _, g := range s.Groups {
		putInt(g)
	}
	for _, f := range s.Features {
		putInt(len(f))
		for _, v := range f {
			if len(buf)+4 > cap(buf) {
				flush()
			}
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
	}
	flush()
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
