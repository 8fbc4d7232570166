// Package audio turns audio files into the inputs of fedcmi's audio
// encoders: it decodes WAV files, mixes them to mono, resamples them,
// brings them to a fixed length and computes the log spectrogram that the
// FedCMI and OGM-GE reference code feeds its audio network.
//
// # The pipeline
//
// For a CREMA-D clip the reference preprocessing loads the file as mono
// float32 at a fixed rate, repeats it until it is long enough and cuts it
// to 3 s (np.tile(samples, k)[:n]), clips it to [-1, 1] and computes
//
//	f, t, S = scipy.signal.spectrogram(x, fs, nperseg=512, noverlap=353)
//	S = log(S + 1e-7)
//	S = (S - mean(S)) / (std(S) + 1e-9)
//
// The same steps here, for many clips, reuse a [Resampler] and a
// [SpectrogramPlan]:
//
//	c, err := audio.ReadWAVFile(path)      // or DecodeWAV(r)
//	x, err := rs.Resample(buf, c.Mono())   // rs := NewResampler(c.Rate, 16000)
//	x = audio.Fit(x, 3*16000)              // tile or crop to 3 s
//	audio.Clamp(x)
//	s, err := plan.Compute(&spec, x, 16000) // 257 x 299, s.Data row-major
//
// For AVE, whose annotations give an event's start and end second,
// [WindowFit] cuts the window and tiles it to 10 s.
//
// # Clips and sample values
//
// A [Clip] holds one float32 slice per channel (planar, not interleaved)
// and the sample rate. Integer PCM is scaled by 2^(bits-1), so that 16-bit
// -32768 becomes -1 and 32767 becomes 0.99997, the convention of soundfile
// and librosa, whose output the reference code used; 8-bit data, which WAV
// stores unsigned, is first offset by 128. Floating-point files are passed
// through unchanged, so they may exceed [-1, 1]; [Clamp] clips, as the
// reference does before its spectrogram. [Clip.Mono] averages the channels,
// as librosa's mono=True does.
//
// # WAV decoding
//
// [DecodeWAV] reads RIFF/WAVE from any io.Reader: integer PCM of 8, 16, 24
// and 32 bits, IEEE float of 32 and 64 bits, both also as the sub-format of
// WAVE_FORMAT_EXTENSIBLE (which ffmpeg writes for 24-bit audio and for more
// than two channels), any number of channels and any rate. Chunks other
// than fmt and data are skipped with their pad bytes, and a data size of
// 0xFFFFFFFF (left by writers that stream to a pipe) reads to the end. Because datasets are
// large and occasionally damaged, the decoder is defensive: every failure is
// a [*DecodeError] naming the byte offset and chunk and wrapping a sentinel
// ([ErrNotWAV], [ErrUnsupported] naming the format, [ErrMalformed],
// [ErrTruncated] with the bytes and frames declared and present), and no
// size from a header is used to allocate memory: beyond 256 KiB, buffers
// grow with the bytes actually read (or are sized by the input's known
// length: a file's, a bytes.Reader's). A fuzz target (FuzzDecodeWAV) checks
// that no input makes it panic or allocate out of proportion.
//
// The decoder is this package's own, some 400 lines, rather than a library.
// The established Go package, github.com/go-audio/wav, reads samples as
// integers without looking at the format tag (so IEEE float data come out
// as bit patterns), has no 64-bit float, needs an io.ReadSeeker, and treats
// a truncated data chunk as a normal end of file; fixing that around it
// would take more code than the decoder. [EncodeWAV] and [EncodeWAVFormat]
// write the same formats, so that tests here and fixture trees of other
// packages can make WAV files of any kind.
//
// # Resampling
//
// [Resampler] is a polyphase Kaiser-windowed-sinc resampler: the rate ratio
// is reduced to up/down, each output sample is a weighted sum of the input
// around its position with one of up precomputed filters, and the filter's
// cutoff is 94.5% of the lower Nyquist frequency. The response is flat
// within 0.01 dB to 90% of the output Nyquist frequency and content that
// would alias is attenuated by more than 100 dB, comparable to the resampy
// filter that librosa used before version 0.10 (newer librosa uses soxr;
// results agree with either to within filter differences, not bit for
// bit). The output has round(n·to/from) samples. No well-kept pure-Go
// resampler exists among the modules available (the usual one wraps
// libsoxr through cgo, which would break the project's static build).
// Converting a 3 s clip from 44.1 kHz to 16 kHz takes about 7 ms.
//
// # Spectrograms
//
// [Spectrogram] and [SpectrogramPlan.Compute] reproduce
// scipy.signal.spectrogram with scipy's defaults — periodic Tukey window
// with α = 0.25, mean removed from each segment (detrend='constant'),
// one-sided, density scaling, PSD mode — followed, unless
// [SpectrogramConfig] asks for the PSD, by the reference's log and
// per-clip z-score. The result is a [Spec] of NPerSeg/2+1 frequency rows by
// (n-NPerSeg)/(NPerSeg-NOverlap)+1 time columns, stored row-major like
// scipy's S[f, t]: 257 x 299 for 3 s at 16 kHz, 257 x 1004 for 10 s. The
// FFT is gonum's (gonum.org/v1/gonum/dsp/fourier); a plan keeps the FFT
// tables, the window and all work buffers, so a warm plan computes a
// spectrogram without allocating, in about 3 ms for a 3 s clip.
//
// The test suite compares the PSD and the final values with scipy's on
// fixtures made by testdata/gen_spectrogram.py (a chirp, a sine in seeded
// noise, an odd-length signal at 8 kHz) to a relative 1e-4; the actual
// agreement is about 1e-7, float32 rounding. The arithmetic is float64.
// The reference code runs scipy on librosa's float32 output and so computes
// in float32; its z-scored values differ from the float64 ones by up to
// about 1e-5, far below anything a network trained on them could notice.
//
// # Deviations from the reference
//
//   - A signal shorter than one segment is an error; scipy would shrink
//     nperseg to the signal's length with a warning and return a different
//     shape. The reference always tiles to a fixed length first.
//   - [Fit] of an empty clip gives silence of the requested length, where
//     np.tile would give an empty array.
//   - NaN or infinite samples are errors: in a float WAV file, in the input
//     of a spectrogram and in a clip to encode. Nothing downstream can use
//     them, and they would turn a whole z-scored spectrogram into NaN.
//   - The resampler is not librosa's (see above).
//
// # Concurrency and state
//
// The package has no state of its own. [Resampler] values are immutable and
// may be shared between goroutines; a [SpectrogramPlan] holds work buffers
// and must not be, so give each worker its own.
package audio
