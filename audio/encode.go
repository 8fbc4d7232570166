package audio

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// WAVFormat selects how [EncodeWAVFormat] stores samples.
type WAVFormat struct {
	// Bits is the size of one sample: 8, 16, 24 or 32 for integer PCM
	// (8-bit is unsigned, as the format requires), 32 or 64 for Float.
	Bits int
	// Float selects IEEE floating-point samples instead of integer PCM.
	Float bool
	// Extensible writes a WAVE_FORMAT_EXTENSIBLE fmt chunk, with the PCM or
	// IEEE float sub-format GUID, instead of a plain one.
	Extensible bool
}

// String names the format, e.g. "PCM 16-bit" or "extensible float 32-bit".
func (f WAVFormat) String() string {
	kind := "PCM"
	if f.Float {
		kind = "float"
	}
	if f.Extensible {
		kind = "extensible " + kind
	}
	return fmt.Sprintf("%s %d-bit", kind, f.Bits)
}

// EncodeWAV writes c to w as a RIFF/WAVE file of integer PCM samples with
// the given bits per sample (8, 16, 24 or 32), in the plain layout that
// every reader accepts: a 16-byte fmt chunk followed by the data chunk. It
// is shorthand for [EncodeWAVFormat] with WAVFormat{Bits: bits}.
func EncodeWAV(w io.Writer, c *Clip, bits int) error {
	return EncodeWAVFormat(w, c, WAVFormat{Bits: bits})
}

// EncodeWAVFormat writes c to w as a RIFF/WAVE file in format f. It is the
// inverse of [DecodeWAV]: integer samples are v·2^(bits-1) rounded to the
// nearest integer and clipped to the format's range (8-bit data offset by
// 128), so a value k/2^(bits-1) survives a round trip exactly, and a float32
// sample survives a float round trip exactly. Float files get the fmt
// extension field and a fact chunk (the frame count), as the format
// specification asks of non-PCM data.
//
// The clip must satisfy [Clip.Validate] and its samples must be finite; the
// encoded file must fit in the 4 GiB that RIFF sizes can express. Errors
// wrap [ErrArgument], or the writer's error. Nothing is written when the
// arguments are rejected, but a write error can leave a partial file.
func EncodeWAVFormat(w io.Writer, c *Clip, f WAVFormat) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if int64(c.Rate) > math.MaxUint32 {
		return fmt.Errorf("audio: EncodeWAV: %w: sample rate %d does not fit in 32 bits", ErrArgument, c.Rate)
	}
	if c.Channels > math.MaxUint16 {
		return fmt.Errorf("audio: EncodeWAV: %w: %d channels, at most 65535 fit in a fmt chunk", ErrArgument, c.Channels)
	}
	switch {
	case f.Float && (f.Bits == 32 || f.Bits == 64):
	case !f.Float && (f.Bits == 8 || f.Bits == 16 || f.Bits == 24 || f.Bits == 32):
	default:
		return fmt.Errorf("audio: EncodeWAV: %w: cannot encode %v samples (PCM takes 8, 16, 24 or 32 bits, float 32 or 64)", ErrArgument, f)
	}
	for ch, s := range c.Samples {
		if i := checkFinite(s); i >= 0 {
			return fmt.Errorf("audio: EncodeWAV: %w: channel %d frame %d is %v", ErrArgument, ch, i, s[i])
		}
	}
	bytesPer := f.Bits / 8
	frameSize := c.Channels * bytesPer
	if frameSize > math.MaxUint16 {
		// The fmt chunk's block align is 16 bits: a larger frame would be
		// written truncated, giving a file no reader accepts.
		return fmt.Errorf("audio: EncodeWAV: %w: %d channels of %v samples make %d-byte frames, at most 65535 fit in a fmt chunk", ErrArgument, c.Channels, f, frameSize)
	}
	frames := c.Frames()

	tag := uint16(tagPCM)
	if f.Float {
		tag = tagIEEEFloat
	}
	fmtSize := 16
	switch {
	case f.Extensible:
		fmtSize = 40
	case f.Float:
		fmtSize = 18
	}
	header := 12 + 8 + fmtSize
	if f.Float {
		header += 12 // fact chunk
	}
	dataSize := int64(frames) * int64(frameSize)
	total := int64(header) + 8 + dataSize + dataSize&1
	if total-8 > math.MaxUint32 {
		return fmt.Errorf("audio: EncodeWAV: %w: %d frames of %d bytes exceed the 4 GiB limit of a RIFF file", ErrArgument, frames, frameSize)
	}

	le := binary.LittleEndian
	h := make([]byte, 0, header+8)
	h = append(h, "RIFF"...)
	h = le.AppendUint32(h, uint32(total-8))
	h = append(h, "WAVEfmt "...)
	h = le.AppendUint32(h, uint32(fmtSize))
	if f.Extensible {
		h = le.AppendUint16(h, tagExtensible)
	} else {
		h = le.AppendUint16(h, tag)
	}
	h = le.AppendUint16(h, uint16(c.Channels))
	h = le.AppendUint32(h, uint32(c.Rate))
	h = le.AppendUint32(h, uint32(min(int64(c.Rate)*int64(frameSize), math.MaxUint32)))
	h = le.AppendUint16(h, uint16(frameSize))
	h = le.AppendUint16(h, uint16(f.Bits))
	switch {
	case f.Extensible:
		h = le.AppendUint16(h, 22)             // cbSize
		h = le.AppendUint16(h, uint16(f.Bits)) // valid bits
		var mask uint32                        // no speaker assignment
		switch c.Channels {
		case 1:
			mask = 0x4 // front centre
		case 2:
			mask = 0x3 // front left, front right
		}
		h = le.AppendUint32(h, mask)
		h = le.AppendUint16(h, tag)
		h = append(h, extensibleGUIDTail...)
	case f.Float:
		h = le.AppendUint16(h, 0) // cbSize
	}
	if f.Float {
		h = append(h, "fact"...)
		h = le.AppendUint32(h, 4)
		h = le.AppendUint32(h, uint32(frames))
	}
	h = append(h, "data"...)
	h = le.AppendUint32(h, uint32(dataSize))
	if _, err := w.Write(h); err != nil {
		return fmt.Errorf("audio: EncodeWAV: writing header: %w", err)
	}

	perBuf := max(1, readChunk/frameSize)
	buf := make([]byte, 0, perBuf*frameSize+1)
	for fr := 0; fr < frames; {
		end := min(frames, fr+perBuf)
		buf = buf[:0]
		for ; fr < end; fr++ {
			for _, s := range c.Samples {
				buf = appendSample(buf, s[fr], f)
			}
		}
		if fr == frames && dataSize&1 == 1 {
			buf = append(buf, 0) // pad byte
		}
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("audio: EncodeWAV: writing samples: %w", err)
		}
	}
	return nil
}

// appendSample appends the encoding of one finite sample v in format f.
func appendSample(b []byte, v float32, f WAVFormat) []byte {
	le := binary.LittleEndian
	if f.Float {
		if f.Bits == 32 {
			return le.AppendUint32(b, math.Float32bits(v))
		}
		return le.AppendUint64(b, math.Float64bits(float64(v)))
	}
	scale := float64(int64(1) << (f.Bits - 1))
	q := math.Round(float64(v) * scale)
	q = math.Max(-scale, math.Min(scale-1, q))
	n := int32(q)
	switch f.Bits {
	case 8:
		return append(b, byte(n+128))
	case 16:
		return le.AppendUint16(b, uint16(n))
	case 24:
		return append(b, byte(n), byte(n>>8), byte(n>>16))
	default:
		return le.AppendUint32(b, uint32(n))
	}
}
