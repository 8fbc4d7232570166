package audio

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// Format tags of the WAVE fmt chunk that this package reads or names.
const (
	tagPCM        = 0x0001
	tagIEEEFloat  = 0x0003
	tagExtensible = 0xFFFE
)

const (
	// maxPrealloc bounds, in bytes of decoded float32 samples, what the
	// decoder allocates before the data are actually read, when the size of
	// the input is not known. Beyond it the channel slices grow with what
	// the reader delivers, so a header that announces gigabytes costs
	// nothing unless the gigabytes are there. (When the input's size is
	// known, the samples it can hold are allocated at once.)
	maxPrealloc = 256 << 10
	// readChunk is the size of the decoder's read buffer, rounded down to
	// whole frames (and raised to one frame when a frame is larger).
	readChunk = 64 << 10
	// maxFmtRead is how much of a fmt chunk is kept; the rest is skipped.
	// WAVE_FORMAT_EXTENSIBLE needs 40 bytes.
	maxFmtRead = 64
)

// extensibleGUIDTail is bytes 2..15 of KSDATAFORMAT_SUBTYPE_PCM and
// KSDATAFORMAT_SUBTYPE_IEEE_FLOAT ({0000000X-0000-0010-8000-00AA00389B71}
// stored little-endian): the GUIDs that wrap a plain format tag, which
// occupies bytes 0..1.
const extensibleGUIDTail = "\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"

// wavFormat is what the fmt chunk says, after validation.
type wavFormat struct {
	tag        uint16 // effective format: tagPCM or tagIEEEFloat
	extensible bool   // the fmt chunk used WAVE_FORMAT_EXTENSIBLE
	channels   int
	rate       int
	bytes      int // bytes per sample (container size)
}

func (f *wavFormat) frameSize() int { return f.channels * f.bytes }

// formatName describes a format tag for error messages.
func formatName(tag uint16) string {
	var name string
	switch tag {
	case 0x0000:
		name = "unknown"
	case tagPCM:
		name = "PCM"
	case 0x0002:
		name = "Microsoft ADPCM"
	case tagIEEEFloat:
		name = "IEEE float"
	case 0x0006:
		name = "A-law"
	case 0x0007:
		name = "µ-law"
	case 0x0011:
		name = "IMA ADPCM"
	case 0x0031:
		name = "GSM 6.10"
	case 0x0050:
		name = "MPEG"
	case 0x0055:
		name = "MPEG layer 3"
	case 0x00FF, 0x1600, 0x1601, 0x1602, 0x1610:
		name = "AAC"
	case 0x674F, 0x6750, 0x6751, 0x676F, 0x6770, 0x6771:
		name = "Ogg Vorbis"
	case 0xF1AC:
		name = "FLAC"
	case tagExtensible:
		name = "WAVE_FORMAT_EXTENSIBLE"
	default:
		name = "unknown format"
	}
	return fmt.Sprintf("0x%04X (%s)", tag, name)
}

// wavDecoder reads one WAV stream and tracks the byte offset for errors.
type wavDecoder struct {
	r    io.Reader
	off  int64
	size int64 // total size of the input if known, else -1
}

// fail builds a *DecodeError at offset off for chunk, wrapping sentinel with
// a formatted detail.
func fail(off int64, chunk string, sentinel error, format string, args ...any) error {
	return &DecodeError{Offset: off, Chunk: chunk, Err: fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))}
}

// read fills p from the stream and advances the offset by what was read.
// It returns io.ErrUnexpectedEOF or io.EOF as io.ReadFull does.
func (d *wavDecoder) read(p []byte) (int, error) {
	n, err := io.ReadFull(d.r, p)
	d.off += int64(n)
	return n, err
}

// ioFail wraps a reader error that is neither io.EOF nor
// io.ErrUnexpectedEOF, which the callers turn into ErrTruncated themselves.
func ioFail(off int64, chunk string, what string, err error) error {
	return &DecodeError{Offset: off, Chunk: chunk, Err: fmt.Errorf("reading %s: %w", what, err)}
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// skip discards n bytes, returning how many were discarded.
func (d *wavDecoder) skip(n int64) (int64, error) {
	m, err := io.CopyN(io.Discard, d.r, n)
	d.off += m
	return m, err
}

// DecodeWAV reads a RIFF/WAVE stream from r and returns its samples.
//
// Supported sample formats are integer PCM with 8 (unsigned), 16, 24 or 32
// (signed) bits per sample, and IEEE floating point with 32 or 64 bits,
// each either with a plain fmt chunk or as the sub-format of
// WAVE_FORMAT_EXTENSIBLE (whose valid-bits field may be smaller than the
// container; the samples are left-justified, so they are scaled by the
// container size). Any number of channels and any sample rate are accepted.
//
// Integer samples are scaled to [-1, 1) by dividing by 2^(bits-1) (after
// subtracting 128 for 8-bit data), so that -32768 maps to -1 and 32767 to
// 32767/32768, as soundfile and librosa do. Floating-point samples are
// returned as stored, which may exceed [-1, 1] (see [Clamp]); a NaN or
// infinite one is an error.
//
// Chunks other than fmt and data (LIST, fact, bext, cue, ...) are skipped,
// with their pad byte when their size is odd. Decoding stops at the end of
// the first data chunk; what follows is not read. The RIFF size field is
// not checked, since many writers leave it wrong. A data chunk must follow
// the fmt chunk. A data size of 0xFFFFFFFF, which streaming writers leave
// when they cannot seek back to fill it in, means that the samples run to
// the end of the stream.
//
// DecodeWAV never trusts a size from the header for allocation. When r is
// a *bytes.Reader, *bytes.Buffer or *strings.Reader, whose length is known,
// room for the samples that the remaining bytes can hold is reserved at
// once; for other readers at most 256 KiB of samples is reserved up front,
// and beyond that memory grows with the bytes the reader actually
// delivers. A stream that ends early gives an error wrapping
// [ErrTruncated] that says how many bytes and frames the header declared
// and how many were present.
//
// Errors are *[DecodeError] values naming the byte offset and chunk, and
// wrapping [ErrNotWAV], [ErrUnsupported], [ErrMalformed], [ErrTruncated] or
// the reader's own error.
func DecodeWAV(r io.Reader) (*Clip, error) {
	size := int64(-1)
	switch r := r.(type) {
	case *bytes.Reader:
		size = int64(r.Len())
	case *bytes.Buffer:
		size = int64(r.Len())
	case *strings.Reader:
		size = int64(r.Len())
	}
	return decodeWAV(r, size)
}

// decodeWAV is DecodeWAV for an input of the given size in bytes, or -1 if
// unknown. The size only bounds preallocation; it need not be exact.
func decodeWAV(r io.Reader, size int64) (*Clip, error) {
	d := &wavDecoder{r: r, size: size}
	if err := d.readRIFF(); err != nil {
		return nil, err
	}
	var f *wavFormat
	for {
		var hdr [8]byte
		at := d.off
		n, err := d.read(hdr[:])
		if n == 0 && errors.Is(err, io.EOF) {
			if f == nil {
				return nil, fail(at, "", ErrMalformed, "stream ends without a fmt chunk")
			}
			return nil, fail(at, "", ErrMalformed, "stream ends without a data chunk")
		}
		if err != nil {
			if isEOF(err) {
				return nil, fail(at, "", ErrTruncated, "chunk header needs 8 bytes, only %d present", n)
			}
			return nil, ioFail(at, "", "chunk header", err)
		}
		id := string(hdr[:4])
		size := int64(binary.LittleEndian.Uint32(hdr[4:]))
		switch id {
		case "fmt ":
			if f != nil {
				return nil, fail(at, id, ErrMalformed, "second fmt chunk (the first was read already)")
			}
			f, err = d.readFmt(at, size)
			if err != nil {
				return nil, err
			}
		case "data":
			if f == nil {
				return nil, fail(at, id, ErrMalformed, "data chunk comes before any fmt chunk")
			}
			return d.readData(at, size, f)
		default:
			if err := d.skipChunk(at, id, size+size&1); err != nil {
				return nil, err
			}
		}
	}
}

// readRIFF reads and checks the 12-byte RIFF/WAVE header.
func (d *wavDecoder) readRIFF() error {
	var hdr [12]byte
	n, err := d.read(hdr[:])
	if err != nil && !isEOF(err) {
		return ioFail(0, "", "RIFF header", err)
	}
	if n == 0 {
		return fail(0, "", ErrNotWAV, "empty stream")
	}
	magic := string(hdr[:min(n, 4)])
	switch {
	case magic == "RIFX":
		return fail(0, "", ErrNotWAV, "big-endian RIFX files are not supported")
	case magic == "RF64" || magic == "BW64":
		return fail(0, "", ErrNotWAV, "64-bit %s files are not supported", magic)
	case n < 4 && magic == "RIFF"[:n]:
		return fail(0, "RIFF", ErrTruncated, "RIFF header needs 12 bytes, only %d present", n)
	case magic != "RIFF":
		return fail(0, "", ErrNotWAV, "stream starts with %q, want \"RIFF\"", magic)
	case n < 12:
		return fail(0, "RIFF", ErrTruncated, "RIFF header needs 12 bytes, only %d present", n)
	case string(hdr[8:12]) != "WAVE":
		return fail(8, "RIFF", ErrNotWAV, "RIFF form type %q, want \"WAVE\"", hdr[8:12])
	}
	return nil
}

// skipChunk discards the n-byte body (with its pad byte) of chunk id whose
// header starts at offset at.
func (d *wavDecoder) skipChunk(at int64, id string, n int64) error {
	m, err := d.skip(n)
	if err != nil {
		if isEOF(err) {
			return fail(at, id, ErrTruncated, "chunk declares %d bytes (with padding), only %d present", n, m)
		}
		return ioFail(d.off, id, "chunk body", err)
	}
	return nil
}

// readFmt reads and validates a fmt chunk of the given declared size whose
// header starts at offset at.
func (d *wavDecoder) readFmt(at, size int64) (*wavFormat, error) {
	const id = "fmt "
	body := at + 8
	if size < 16 {
		return nil, fail(at, id, ErrMalformed, "fmt chunk of %d bytes, need at least 16", size)
	}
	var buf [maxFmtRead]byte
	keep := min(size, maxFmtRead)
	n, err := d.read(buf[:keep])
	if err != nil {
		if isEOF(err) {
			return nil, fail(at, id, ErrTruncated, "fmt chunk declares %d bytes, only %d present", size, n)
		}
		return nil, ioFail(d.off, id, "fmt chunk", err)
	}
	if rest := size - keep + size&1; rest > 0 {
		if m, err := d.skip(rest); err != nil {
			if isEOF(err) {
				return nil, fail(at, id, ErrTruncated, "fmt chunk declares %d bytes (with padding), only %d present", size+size&1, keep+m)
			}
			return nil, ioFail(d.off, id, "fmt chunk", err)
		}
	}
	le := binary.LittleEndian
	rawTag := le.Uint16(buf[0:])
	channels := int(le.Uint16(buf[2:]))
	rate := le.Uint32(buf[4:])
	blockAlign := int(le.Uint16(buf[12:]))
	bits := int(le.Uint16(buf[14:]))
	f := &wavFormat{tag: rawTag, channels: channels}
	switch {
	case channels == 0:
		return nil, fail(body+2, id, ErrMalformed, "zero channels")
	case rate == 0:
		return nil, fail(body+4, id, ErrMalformed, "sample rate 0")
	case rate > math.MaxInt32:
		return nil, fail(body+4, id, ErrMalformed, "absurd sample rate %d Hz", rate)
	}
	f.rate = int(rate)
	if rawTag == tagExtensible {
		f.extensible = true
		cb := 0
		if size >= 18 {
			cb = int(le.Uint16(buf[16:]))
		}
		if size < 40 || cb < 22 {
			return nil, fail(at, id, ErrMalformed, "WAVE_FORMAT_EXTENSIBLE fmt chunk of %d bytes with cbSize %d, need 40 bytes and cbSize 22", size, cb)
		}
		valid := int(le.Uint16(buf[18:]))
		if valid > bits {
			return nil, fail(body+18, id, ErrMalformed, "%d valid bits per sample in a %d-bit container", valid, bits)
		}
		if string(buf[26:40]) != extensibleGUIDTail {
			return nil, fail(body+24, id, ErrUnsupported, "WAVE_FORMAT_EXTENSIBLE sub-format GUID %s does not wrap a format tag", guidString(buf[24:40]))
		}
		f.tag = le.Uint16(buf[24:])
	}
	name := formatName(f.tag)
	if f.extensible {
		name = "WAVE_FORMAT_EXTENSIBLE with sub-format " + name
	}
	switch {
	case f.tag == tagPCM && (bits == 8 || bits == 16 || bits == 24 || bits == 32):
	case f.tag == tagIEEEFloat && (bits == 32 || bits == 64):
	case f.tag == tagPCM || f.tag == tagIEEEFloat:
		return nil, fail(body, id, ErrUnsupported, "%s with %d bits per sample", name, bits)
	default:
		return nil, fail(body, id, ErrUnsupported, "%s", name)
	}
	f.bytes = bits / 8
	if blockAlign != f.frameSize() {
		return nil, fail(body+12, id, ErrMalformed, "block align %d does not match %d channels of %d bits (%d bytes)", blockAlign, channels, bits, f.frameSize())
	}
	return f, nil
}

// guidString formats a little-endian GUID as {XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}.
func guidString(g []byte) string {
	le := binary.LittleEndian
	return fmt.Sprintf("{%08X-%04X-%04X-%X-%X}", le.Uint32(g[0:]), le.Uint16(g[4:]), le.Uint16(g[6:]), g[8:10], g[10:16])
}

// readData decodes a data chunk of the given declared size whose header
// starts at offset at.
func (d *wavDecoder) readData(at, size int64, f *wavFormat) (*Clip, error) {
	const id = "data"
	frameSize := f.frameSize()
	// A size of 0xFFFFFFFF is what streaming writers leave when they cannot
	// seek back to fill it in: the data then run to the end of the stream.
	streaming := size == math.MaxUint32
	if streaming {
		size = math.MaxInt64
	}
	want := size / int64(frameSize)
	pre := min(want, int64(maxPrealloc/(4*f.channels)))
	bufLen := min(size, int64(readChunk/frameSize*frameSize))
	if d.size >= 0 {
		left := max(0, d.size-d.off)
		pre = min(want, left/int64(frameSize))
		// Whole frames only: the size is only an estimate (a file may grow
		// after its size was taken), and a read ending inside a frame
		// would drop the frame's first bytes and misalign all that follow.
		bufLen = min(bufLen, left/int64(frameSize)*int64(frameSize))
	}
	// At least one frame, so that every read can complete frames. The
	// channel slices are made when the first whole frame has arrived.
	buf := make([]byte, max(bufLen, int64(frameSize)))
	var samples [][]float32
	alloc := func() {
		samples = make([][]float32, f.channels)
		for c := range samples {
			samples[c] = make([]float32, 0, pre)
		}
	}
	start := d.off
	var got int64
	for got < size {
		n, err := d.read(buf[:min(int64(len(buf)), size-got)])
		whole := n / frameSize * frameSize
		if whole > 0 {
			if samples == nil {
				alloc()
			}
			if bad := decodeFrames(samples, buf[:whole], f); bad >= 0 {
				off := start + got + int64(bad)
				sample := (got + int64(bad)) / int64(f.bytes)
				return nil, fail(off, id, ErrMalformed, "frame %d channel %d: floating-point sample is NaN, infinite or beyond float32 range", sample/int64(f.channels), sample%int64(f.channels))
			}
		}
		got += int64(n)
		if err != nil {
			if isEOF(err) && streaming {
				if rest := got % int64(frameSize); rest != 0 {
					return nil, fail(d.off-rest, id, ErrTruncated, "stream ends %d bytes into a %d-byte frame (data size 0xFFFFFFFF: until the end of the stream)", rest, frameSize)
				}
				break
			}
			if isEOF(err) {
				return nil, fail(at, id, ErrTruncated, "header declares %d bytes (%d frames of %d bytes), only %d bytes (%d whole frames) present", size, want, frameSize, got, got/int64(frameSize))
			}
			return nil, ioFail(d.off, id, "samples", err)
		}
	}
	if !streaming && size%int64(frameSize) != 0 {
		return nil, fail(at, id, ErrMalformed, "data chunk of %d bytes is not a whole number of %d-byte frames", size, frameSize)
	}
	if samples == nil {
		alloc()
	}
	return &Clip{Rate: f.rate, Channels: f.channels, Samples: samples}, nil
}

// decodeFrames appends the whole frames in raw to the channel slices. It
// returns the byte offset in raw of the first non-finite floating-point
// sample, or -1; in that case the samples are left partly appended.
//
// It works channel by channel, so that each channel's samples are written
// contiguously while raw is read with a stride of one frame.
func decodeFrames(samples [][]float32, raw []byte, f *wavFormat) int {
	frameSize := len(samples) * f.bytes
	frames := len(raw) / frameSize
	base := len(samples[0])
	bad := -1
	for c := range samples {
		samples[c] = slices.Grow(samples[c], frames)[:base+frames]
		dst := samples[c][base : base+frames]
		i := c * f.bytes
		if b := decodeChannel(dst, raw, i, frameSize, f); b >= 0 && (bad < 0 || b < bad) {
			bad = b
		}
	}
	return bad
}

// decodeChannel decodes len(dst) samples from raw, starting at byte i and
// stepping by stride bytes. It returns the offset of the first non-finite
// floating-point sample, or -1.
func decodeChannel(dst []float32, raw []byte, i, stride int, f *wavFormat) int {
	le := binary.LittleEndian
	switch {
	case f.tag == tagIEEEFloat && f.bytes == 4:
		for k := range dst {
			v := math.Float32frombits(le.Uint32(raw[i:]))
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return i
			}
			dst[k] = v
			i += stride
		}
	case f.tag == tagIEEEFloat:
		for k := range dst {
			v := float32(math.Float64frombits(le.Uint64(raw[i:])))
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return i
			}
			dst[k] = v
			i += stride
		}
	case f.bytes == 1:
		for k := range dst {
			dst[k] = float32(int(raw[i])-128) * (1.0 / 128)
			i += stride
		}
	case f.bytes == 2:
		for k := range dst {
			dst[k] = float32(int16(le.Uint16(raw[i:]))) * (1.0 / 32768)
			i += stride
		}
	case f.bytes == 3:
		for k := range dst {
			v := int32(uint32(raw[i])<<8|uint32(raw[i+1])<<16|uint32(raw[i+2])<<24) >> 8
			dst[k] = float32(v) * (1.0 / (1 << 23))
			i += stride
		}
	default: // 4-byte integer
		for k := range dst {
			dst[k] = float32(float64(int32(le.Uint32(raw[i:]))) * (1.0 / (1 << 31)))
			i += stride
		}
	}
	return -1
}

// ReadWAVFile opens the file at path and decodes it with [DecodeWAV],
// through a buffered reader and with the file's size bounding the memory
// reserved for samples. A *[DecodeError] it returns has its File field set
// to path; other errors (opening, reading) name the path too.
func ReadWAVFile(path string) (*Clip, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audio: %w", err)
	}
	defer f.Close()
	size := int64(-1)
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	c, err := decodeWAV(bufio.NewReaderSize(f, readChunk), size)
	if err != nil {
		var de *DecodeError
		if errors.As(err, &de) {
			de.File = path
			return nil, de
		}
		return nil, fmt.Errorf("audio: %s: %w", path, err)
	}
	return c, nil
}
