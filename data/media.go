package data

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"

	"github.com/fedcmi/fedcmi/audio"
	"github.com/fedcmi/fedcmi/text"
	"github.com/fedcmi/fedcmi/vision"
)

// The statistics grey images are normalised with: the mean and standard
// deviation of the MNIST training pixels, as torchvision's MNIST examples
// use them. RGB images are normalised with the ImageNet statistics
// (vision.ImageNetMeanR and so on), as the FedCMI reference code does.
const (
	MNISTMean = 0.1307
	MNISTStd  = 0.3081
)

// mediaPipelineVersion is part of every [MediaSpec.Key]. Increment it when
// a change of the decoding or preprocessing code changes the features a
// spec produces, so that caches built by older code are refused rather
// than silently mixed with new features.
//
// Version 2 (2026-12-06): images are resized to the square without a crop,
// as the reference's evaluation transform (it was a centre crop); frames
// are taken in numeric name order (frame_2 before frame_10); AVE's
// default is four frames.
const mediaPipelineVersion = 2

// Limits that keep a mistyped spec from asking for absurd amounts of memory
// per sample.
const (
	maxSampleRate = 384000
	// minSourceRate and maxSourceSeconds bound the audio files a data set
	// may hold (telephone audio is 8 kHz; clips are cut to at most
	// maxClipSeconds).
	minSourceRate    = 1000
	maxSourceSeconds = 3600
	maxClipSeconds   = 600
	maxImageSize     = 1024
	maxVideoFrames   = 64
)

// MediaSpec says how the media of a data set become features: how audio is
// resampled, cut and turned into a spectrogram, how many video frames are
// taken and how images are sized and normalised, and how long text vectors
// are. It is the identity of a preprocessing cache: [MediaSpec.Key] of the
// effective spec is stored with the cache (see [Prepare]).
//
// A zero field takes the data set's default, given by [DefaultCremaDSpec],
// [DefaultAVESpec], [DefaultCrisisMMDSpec] and [DefaultAVDigitsSpec]; the
// defaults are listed with each field. Fields a data set does not use (the
// audio fields for CrisisMMD, TextDim for the audio-visual sets, Frames for
// sets of single images) are ignored and set to zero in the effective spec
// ([Source.Spec]), so that they do not change its key.
//
// The defaults keep samples small enough for training on a CPU: images of
// 64 x 64 (the reference uses 224) and one to four frames per clip. The
// spectrogram defaults to the reference's full resolution, 257 x 299 values
// for 3 s of CREMA-D (300 KB per clip) and 257 x 1004 for 10 s of AVE
// (1 MB per clip); FreqPool and TimePool shrink it.
type MediaSpec struct {
	// SampleRate is the rate in Hz that audio is resampled to before the
	// spectrogram. Default 16000 (CREMA-D, AVE: the reference's rate) and
	// 8000 (AV digits, FSDD's own rate).
	SampleRate int `json:"sample_rate" yaml:"sample_rate"`

	// ClipSeconds is the length every clip is brought to, by tiling a
	// shorter clip and cropping a longer one to its start (audio.Fit), as
	// the reference does. For AVE, the annotated event window [start, end)
	// is cut out first and then tiled (audio.WindowFit). Default 3
	// (CREMA-D), 10 (AVE), 1 (AV digits).
	ClipSeconds float64 `json:"clip_seconds" yaml:"clip_seconds"`

	// FreqPool and TimePool average the reference spectrogram
	// (audio.ReferenceSpectrogram: 512-sample segments every 159 samples,
	// log power, per-clip z-score) over non-overlapping blocks of FreqPool
	// frequency bins by TimePool frames; bins and frames left over at the
	// end are dropped, like PyTorch's AvgPool2d. The pooling happens after
	// the z-score. It is a deviation from the reference, made to fit CPU
	// budgets: FreqPool 4 turns 257 bins into 64. Default 1 (no pooling),
	// except FreqPool 4 for AV digits.
	FreqPool int `json:"freq_pool" yaml:"freq_pool"`
	TimePool int `json:"time_pool" yaml:"time_pool"`

	// Frames is the number k of video frames per clip: the first k of the
	// clip's frame folder in name order (numbers by value, vision.FrameFiles), the last repeated when there are
	// fewer (vision.LoadFrames). Default 1 (CREMA-D, as the reference's
	// num_frame) and 4 (AVE, as the reference).
	Frames int `json:"frames" yaml:"frames"`

	// ImageSize is the side of the square images and frames: each is
	// resized to ImageSize x ImageSize (bilinear, antialiased; the aspect
	// ratio is not kept), the reference's evaluation transform
	// (torchvision's Resize((224, 224))), which keeps the whole frame where
	// a centre crop would drop a quarter of a 4:3 frame. Features, and so a
	// cache, hold these evaluation-preprocessed images; random training
	// augmentation (crops, flips) is not applied here. Default 64, except 28 for AV digits (MNIST's
	// own size, so that its images are not resampled).
	ImageSize int `json:"image_size" yaml:"image_size"`

	// Channels is 3 (RGB, normalised per channel with the ImageNet mean and
	// standard deviation) or 1 (grey, by BT.601 luma, normalised with
	// MNISTMean and MNISTStd). Default 3, except 1 for AV digits.
	Channels int `json:"channels" yaml:"channels"`

	// TextDim is the number of buckets of the hashed n-gram bag that texts
	// become (text.DefaultHashedBag with this Dim: unigrams and bigrams,
	// sublinear counts, unit norm). Default 4096 (CrisisMMD).
	TextDim int `json:"text_dim" yaml:"text_dim"`
}

// uses says which groups of MediaSpec fields a data set reads.
type uses struct {
	audio  bool // SampleRate, ClipSeconds, FreqPool, TimePool
	frames bool // Frames
	image  bool // ImageSize, Channels
	text   bool // TextDim
}

// DefaultCremaDSpec returns the default spec of CREMA-D: 16 kHz, 3 s clips,
// the full reference spectrogram (1 x 257 x 299), and one RGB frame of
// 64 x 64 per clip (1 x 3 x 64 x 64).
func DefaultCremaDSpec() MediaSpec {
	return MediaSpec{SampleRate: 16000, ClipSeconds: 3, FreqPool: 1, TimePool: 1,
		Frames: 1, ImageSize: 64, Channels: 3}
}

// DefaultAVESpec returns the default spec of AVE: 16 kHz, the event window
// tiled to 10 s, the full reference spectrogram (1 x 257 x 1004), and four
// RGB frames of 64 x 64 per clip (4 x 3 x 64 x 64), as the reference's
// four.
func DefaultAVESpec() MediaSpec {
	return MediaSpec{SampleRate: 16000, ClipSeconds: 10, FreqPool: 1, TimePool: 1,
		Frames: 4, ImageSize: 64, Channels: 3}
}

// DefaultCrisisMMDSpec returns the default spec of CrisisMMD: RGB images of
// 64 x 64 (3 x 64 x 64) and hashed text vectors of 4096 values.
func DefaultCrisisMMDSpec() MediaSpec {
	return MediaSpec{ImageSize: 64, Channels: 3, TextDim: text.DefaultHashedBag().Dim}
}

// DefaultAVDigitsSpec returns the default spec of the audio-visual digits:
// FSDD's 8 kHz, 1 s clips, the reference spectrogram pooled by 4 over
// frequency (1 x 64 x 48), and MNIST's 28 x 28 grey images (1 x 28 x 28).
func DefaultAVDigitsSpec() MediaSpec {
	return MediaSpec{SampleRate: 8000, ClipSeconds: 1, FreqPool: 4, TimePool: 1,
		ImageSize: 28, Channels: 1}
}

// Key returns a stable identity of s: "sha256:" followed by the hex SHA-256
// of s's canonical JSON encoding (its fields in declaration order) and the
// version of this package's preprocessing code. Equal specs have equal
// keys in every process and on every machine; any changed field changes
// the key. Compare keys of effective specs ([Source.Spec]), whose unused
// fields are zero.
func (s MediaSpec) Key() string {
	b, err := json.Marshal(struct {
		Version int       `json:"version"`
		Spec    MediaSpec `json:"spec"`
	}{mediaPipelineVersion, s})
	if err != nil {
		// Unreachable: the struct holds only numbers. A NaN ClipSeconds,
		// which json refuses, is caught by Validate before keys matter.
		b = fmt.Appendf(nil, "%d %#v", mediaPipelineVersion, s)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// resolve returns s with its zero fields taken from def and the fields the
// data set does not use set to zero, and validates the result.
func (s MediaSpec) resolve(def MediaSpec, u uses) (MediaSpec, error) {
	fill := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	fill(&s.SampleRate, def.SampleRate)
	if s.ClipSeconds == 0 {
		s.ClipSeconds = def.ClipSeconds
	}
	fill(&s.FreqPool, def.FreqPool)
	fill(&s.TimePool, def.TimePool)
	fill(&s.Frames, def.Frames)
	fill(&s.ImageSize, def.ImageSize)
	fill(&s.Channels, def.Channels)
	fill(&s.TextDim, def.TextDim)
	if !u.audio {
		s.SampleRate, s.ClipSeconds, s.FreqPool, s.TimePool = 0, 0, 0, 0
	}
	if !u.frames {
		s.Frames = 0
	}
	if !u.image {
		s.ImageSize, s.Channels = 0, 0
	}
	if !u.text {
		s.TextDim = 0
	}
	if err := s.validate(u); err != nil {
		return MediaSpec{}, err
	}
	return s, nil
}

// validate checks the fields that u marks as used.
func (s MediaSpec) validate(u uses) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("data: media spec: %s", fmt.Sprintf(format, args...))
	}
	if u.audio {
		if s.SampleRate < 1 || s.SampleRate > maxSampleRate {
			return bad("sample rate %d Hz, want 1 to %d", s.SampleRate, maxSampleRate)
		}
		if !(s.ClipSeconds > 0 && s.ClipSeconds <= maxClipSeconds) { // also NaN
			return bad("clip length %v s, want more than 0 and at most %d", s.ClipSeconds, maxClipSeconds)
		}
		n := s.clipSamples()
		if n < audio.RefNPerSeg {
			return bad("a %v s clip at %d Hz has %d samples, fewer than one %d-sample spectrogram segment",
				s.ClipSeconds, s.SampleRate, n, audio.RefNPerSeg)
		}
		f, t := s.specShape()
		if s.FreqPool < 1 || s.FreqPool > f {
			return bad("freq pool %d, want 1 to %d (the spectrogram's frequency bins)", s.FreqPool, f)
		}
		if s.TimePool < 1 || s.TimePool > t {
			return bad("time pool %d, want 1 to %d (the spectrogram's frames)", s.TimePool, t)
		}
	}
	if u.frames && (s.Frames < 1 || s.Frames > maxVideoFrames) {
		return bad("frames %d, want 1 to %d", s.Frames, maxVideoFrames)
	}
	if u.image {
		if s.ImageSize < 1 || s.ImageSize > maxImageSize {
			return bad("image size %d, want 1 to %d", s.ImageSize, maxImageSize)
		}
		if s.Channels != 1 && s.Channels != 3 {
			return bad("channels %d, want 1 (grey) or 3 (RGB)", s.Channels)
		}
	}
	if u.text && (s.TextDim < 1 || s.TextDim > text.MaxDim) {
		return bad("text dim %d, want 1 to %d", s.TextDim, text.MaxDim)
	}
	return nil
}

// clipSamples returns the number of samples of a clip, round(ClipSeconds *
// SampleRate).
func (s MediaSpec) clipSamples() int {
	return int(math.Round(s.ClipSeconds * float64(s.SampleRate)))
}

// specShape returns the frequency bins and frames of the reference
// spectrogram of a clip, before pooling.
func (s MediaSpec) specShape() (freqs, frames int) {
	c := audio.ReferenceSpectrogram()
	return c.NPerSeg/2 + 1, c.Frames(s.clipSamples())
}

// audioShape returns the sample shape of the audio modality:
// [1, bins/FreqPool, frames/TimePool].
func (s MediaSpec) audioShape() []int {
	f, t := s.specShape()
	return []int{1, f / s.FreqPool, t / s.TimePool}
}

// imageShape returns the shape of one image: [Channels, ImageSize, ImageSize].
func (s MediaSpec) imageShape() []int {
	return []int{s.Channels, s.ImageSize, s.ImageSize}
}

// normalize returns the normalisation step for s.Channels channels.
func (s MediaSpec) normalize() vision.Normalize {
	if s.Channels == 1 {
		return vision.Normalize{Mean: []float32{MNISTMean}, Std: []float32{MNISTStd}}
	}
	return vision.ImageNetNormalize()
}

// evalPipeline returns the deterministic image transform of s, the
// reference's evaluation transform: resize to ImageSize x ImageSize,
// normalisation.
func (s MediaSpec) evalPipeline() vision.Pipeline {
	return vision.Pipeline{
		vision.Resize{H: s.ImageSize, W: s.ImageSize},
		s.normalize(),
	}
}
