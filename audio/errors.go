package audio

import (
	"errors"
	"strconv"
	"strings"
)

// Sentinel errors. The functions of this package wrap them with context (the
// chunk, offset, frame or argument concerned), so test for them with
// errors.Is.
var (
	// ErrNotWAV is returned when a stream does not start with a RIFF/WAVE
	// header. Big-endian RIFX and 64-bit RF64 files also get this error,
	// with a message naming what was found.
	ErrNotWAV = errors.New("not a RIFF/WAVE stream")

	// ErrUnsupported is returned for a well-formed WAV file whose sample
	// format this package does not decode, such as A-law, µ-law, ADPCM or
	// MP3 data, or PCM with 12 or 20 bits per sample. The message names the
	// format tag and bit depth.
	ErrUnsupported = errors.New("unsupported sample format")

	// ErrMalformed is returned when a WAV header contradicts itself or the
	// format specification: no fmt or data chunk, zero channels or zero
	// sample rate, a block alignment that does not match the channels and
	// bit depth, a data chunk that is not a whole number of frames, or a
	// floating-point sample that is NaN or infinite.
	ErrMalformed = errors.New("malformed WAV data")

	// ErrTruncated is returned when a stream ends before a chunk that its
	// header announced is complete. The message says how many bytes (and
	// for the data chunk, frames) were expected and how many were present.
	ErrTruncated = errors.New("truncated")

	// ErrArgument is returned when a function is given arguments it cannot
	// work with: a non-positive sample rate, a clip shorter than one
	// spectrogram segment, a non-finite sample, a window outside the clip,
	// an unsupported bit depth for encoding.
	ErrArgument = errors.New("invalid argument")
)

// DecodeError reports a problem at a known place in a WAV stream. Offset is
// the byte offset, from the start of the stream, of the chunk header or
// field concerned; Chunk is the four-character chunk ID ("RIFF", "fmt ",
// "data", ...) when the problem lies inside a chunk. File is set by
// [ReadWAVFile] and empty for [DecodeWAV], which reads from an io.Reader
// with no name.
type DecodeError struct {
	File   string // path of the file as given to ReadWAVFile, or ""
	Offset int64  // byte offset in the stream where the problem lies
	Chunk  string // chunk ID, or "" for the stream as a whole
	Err    error  // what went wrong; wraps one of the sentinels above
}

// Error formats the location followed by the cause, for example
// `audio: a.wav: offset 36: chunk "data": truncated: header declares 96000
// bytes (48000 frames), only 5000 bytes (2500 frames) present`.
func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString("audio: ")
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	b.WriteString("offset ")
	b.WriteString(strconv.FormatInt(e.Offset, 10))
	if e.Chunk != "" {
		b.WriteString(": chunk ")
		b.WriteString(strconv.Quote(e.Chunk))
	}
	b.WriteString(": ")
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("unknown error")
	}
	return b.String()
}

// Unwrap returns the underlying error, so errors.Is sees the sentinels and
// I/O errors of the reader.
func (e *DecodeError) Unwrap() error { return e.Err }
