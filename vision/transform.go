package vision

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// The ImageNet channel statistics that torchvision's pretrained models, and
// the FedCMI reference code, normalise RGB images with.
const (
	ImageNetMeanR = 0.485
	ImageNetMeanG = 0.456
	ImageNetMeanB = 0.406
	ImageNetStdR  = 0.229
	ImageNetStdG  = 0.224
	ImageNetStdB  = 0.225
)

// The defaults of torchvision's RandomResizedCrop, used by
// [RandomResizedCrop] when its Scale or Ratio is zero.
const (
	DefaultScaleMin = 0.08
	DefaultScaleMax = 1.0
	DefaultRatioMin = 3.0 / 4.0
	DefaultRatioMax = 4.0 / 3.0
)

// Transform is one step of a [Pipeline]. Apply returns the transformed
// image and never modifies its input; it may return the input itself when
// the step leaves the image unchanged. Random steps draw from rng, and
// refuse a nil rng; deterministic ones ignore it.
type Transform interface {
	Apply(m *Image, rng *rand.Rand) (*Image, error)
}

// Pipeline applies its transforms in order. A nil or empty Pipeline returns
// its input unchanged.
type Pipeline []Transform

// Apply runs the pipeline on m. The error of a failing step names the step
// by its position and type.
func (p Pipeline) Apply(m *Image, rng *rand.Rand) (*Image, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	for i, t := range p {
		if t == nil {
			return nil, &Error{Err: errorf(ErrInvalid, "pipeline step %d is nil", i)}
		}
		out, err := t.Apply(m, rng)
		if err != nil {
			return nil, &Error{Err: fmt.Errorf("pipeline step %d (%T): %w", i, t, unwrapError(err))}
		}
		m = out
	}
	return m, nil
}

// unwrapError strips the *Error of a cause about to be wrapped again.
func unwrapError(err error) error {
	if e, ok := err.(*Error); ok && e.Path == "" {
		return e.Err
	}
	return err
}

// TrainPipeline returns the training augmentation of the FedCMI reference
// code (torchvision's RandomResizedCrop(size), RandomHorizontalFlip(),
// Normalize(ImageNet)), producing size x size images from RGB ones (decode
// with 3 channels; a grey image fails at the normalisation, which has three
// means). The reference uses size 224; small CPU models use 28 to 64.
func TrainPipeline(size int) Pipeline {
	return Pipeline{
		RandomResizedCrop{H: size, W: size},
		RandomHorizontalFlip{P: 0.5},
		ImageNetNormalize(),
	}
}

// EvalPipeline returns the deterministic evaluation transform for RGB
// images: the shorter side resized to size, the centre size x size
// cropped, and ImageNet normalisation. (The FedCMI and OGM-GE reference code resizes evaluation
// frames straight to size x size instead, distorting the aspect ratio;
// Pipeline{Resize{H: size, W: size}, ImageNetNormalize()} does that. The
// classic ImageNet evaluation resizes to 256 and crops 224:
// Pipeline{ResizeShorter{256}, CenterCrop{224, 224}, ImageNetNormalize()}.)
func EvalPipeline(size int) Pipeline {
	return Pipeline{
		ResizeShorter{Size: size},
		CenterCrop{H: size, W: size},
		ImageNetNormalize(),
	}
}

// ImageNetNormalize returns the [Normalize] step with the ImageNet mean and
// standard deviation, for 3-channel images.
func ImageNetNormalize() Normalize {
	return Normalize{
		Mean: []float32{ImageNetMeanR, ImageNetMeanG, ImageNetMeanB},
		Std:  []float32{ImageNetStdR, ImageNetStdG, ImageNetStdB},
	}
}

// Resize resizes to H x W, ignoring the aspect ratio; see [Image.Resize].
type Resize struct{ H, W int }

// Apply implements [Transform].
func (t Resize) Apply(m *Image, _ *rand.Rand) (*Image, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if m.H == t.H && m.W == t.W {
		return m, nil
	}
	return m.Resize(t.H, t.W)
}

// ResizeShorter resizes so that the shorter side is Size, keeping the
// aspect ratio, like torchvision's Resize(size); see [Image.ResizeShorter].
type ResizeShorter struct{ Size int }

// Apply implements [Transform].
func (t ResizeShorter) Apply(m *Image, _ *rand.Rand) (*Image, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if min(m.H, m.W) == t.Size {
		return m, nil
	}
	return m.ResizeShorter(t.Size)
}

// CenterCrop crops the central H x W region, as torchvision's CenterCrop:
// the top-left corner is at round((height-H)/2), round((width-W)/2), with
// halves rounded to even as Python does, and an image smaller than the crop
// is padded with zeros ((H-height)/2 rows above, rounded down, the rest
// below; likewise for columns).
type CenterCrop struct{ H, W int }

// Apply implements [Transform].
func (t CenterCrop) Apply(m *Image, _ *rand.Rand) (*Image, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if m.H == t.H && m.W == t.W {
		return m, nil
	}
	return m.Crop(centerOffset(m.H, t.H), centerOffset(m.W, t.W), t.H, t.W)
}

// centerOffset is the start of a centred crop of length n from length size,
// negative when the crop is longer and the image is padded.
func centerOffset(size, n int) int {
	if n > size {
		return -((n - size) / 2)
	}
	return int(math.RoundToEven(float64(size-n) / 2))
}

// RandomHorizontalFlip mirrors the image left to right with probability P,
// drawing one uniform number per image as torchvision does.
type RandomHorizontalFlip struct{ P float64 }

// Apply implements [Transform].
func (t RandomHorizontalFlip) Apply(m *Image, rng *rand.Rand) (*Image, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if !(t.P >= 0 && t.P <= 1) {
		return nil, &Error{Err: errorf(ErrInvalid, "horizontal flip: probability %v, want in [0, 1]", t.P)}
	}
	if rng == nil {
		return nil, &Error{Err: errorf(ErrInvalid, "horizontal flip: nil *rand.Rand")}
	}
	if rng.Float64() < t.P {
		return m.FlipHorizontal()
	}
	return m, nil
}

// Normalize maps each channel c to (v - Mean[c]) / Std[c]; see
// [Image.Normalize].
type Normalize struct{ Mean, Std []float32 }

// Apply implements [Transform].
func (t Normalize) Apply(m *Image, _ *rand.Rand) (*Image, error) {
	return m.Normalize(t.Mean, t.Std)
}

// RandomResizedCrop crops a random region and resizes it to H x W, as
// torchvision's RandomResizedCrop: the region's area is a fraction of the
// image's drawn uniformly from Scale, and its aspect ratio (width/height)
// is drawn log-uniformly from Ratio; up to 10 attempts are made to find
// such a region that fits, and if none does, the whole image is taken, or
// its central part when its aspect ratio lies outside Ratio. A zero Scale
// means (0.08, 1) and a zero Ratio (3/4, 4/3).
type RandomResizedCrop struct {
	H, W  int        // output size
	Scale [2]float64 // range of the region's area as a fraction of the image's: 0 < min <= max
	Ratio [2]float64 // range of the region's width/height: 0 < min <= max
}

// Apply implements [Transform].
func (t RandomResizedCrop) Apply(m *Image, rng *rand.Rand) (*Image, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := checkSize("random resized crop", t.H, t.W); err != nil {
		return nil, wrap("", err)
	}
	top, left, h, w, err := t.Params(rng, m.H, m.W)
	if err != nil {
		return nil, err
	}
	return m.ResizedCrop(top, left, h, w, t.H, t.W)
}

// Params draws the crop region for an image of height x width pixels, as
// torchvision's RandomResizedCrop.get_params does. Each attempt draws the
// area fraction s uniformly from Scale and the ratio r = exp(u), u uniform
// between the logarithms of Ratio, and takes w = round(sqrt(s*height*width*r))
// and h = round(sqrt(s*height*width/r)) (halves to even, as Python's round);
// if 0 < w <= width and 0 < h <= height, the top row is drawn uniformly
// from 0..height-h and then the left column from 0..width-w. After 10
// failed attempts it falls back to a centred crop of the whole image, cut
// to the nearest ratio in range. Scale must satisfy 0 < Scale[0] <=
// Scale[1] and Ratio 0 < Ratio[0] <= Ratio[1] (both finite).
func (t RandomResizedCrop) Params(rng *rand.Rand, height, width int) (top, left, h, w int, err error) {
	scale, ratio := t.Scale, t.Ratio
	if scale == [2]float64{} {
		scale = [2]float64{DefaultScaleMin, DefaultScaleMax}
	}
	if ratio == [2]float64{} {
		ratio = [2]float64{DefaultRatioMin, DefaultRatioMax}
	}
	switch {
	case !(scale[0] > 0 && scale[0] <= scale[1] && !math.IsInf(scale[1], 0)):
		err = errorf(ErrInvalid, "random resized crop: scale (%v, %v), want 0 < min <= max, finite",
			scale[0], scale[1])
	case !(ratio[0] > 0 && ratio[0] <= ratio[1] && !math.IsInf(ratio[1], 0)):
		err = errorf(ErrInvalid, "random resized crop: ratio (%v, %v), want 0 < min <= max, finite",
			ratio[0], ratio[1])
	case height <= 0 || width <= 0:
		err = errorf(ErrInvalid, "random resized crop: image size %dx%d, want positive", height, width)
	case rng == nil:
		err = errorf(ErrInvalid, "random resized crop: nil *rand.Rand")
	}
	if err != nil {
		return 0, 0, 0, 0, &Error{Err: err}
	}
	area := float64(height) * float64(width)
	logLo, logHi := math.Log(ratio[0]), math.Log(ratio[1])
	for range 10 {
		target := area * (scale[0] + (scale[1]-scale[0])*rng.Float64())
		r := math.Exp(logLo + (logHi-logLo)*rng.Float64())
		cw := math.RoundToEven(math.Sqrt(target * r))
		ch := math.RoundToEven(math.Sqrt(target / r))
		if 0 < cw && cw <= float64(width) && 0 < ch && ch <= float64(height) {
			h, w = int(ch), int(cw)
			top = rng.IntN(height - h + 1)
			left = rng.IntN(width - w + 1)
			return top, left, h, w, nil
		}
	}
	// Fallback: a centred crop.
	inRatio := float64(width) / float64(height)
	switch {
	case inRatio < ratio[0]:
		w = width
		h = int(math.RoundToEven(float64(w) / ratio[0]))
	case inRatio > ratio[1]:
		h = height
		w = int(math.RoundToEven(float64(h) * ratio[1]))
	default:
		h, w = height, width
	}
	h, w = min(max(h, 1), height), min(max(w, 1), width)
	return (height - h) / 2, (width - w) / 2, h, w, nil
}
