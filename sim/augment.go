package sim

import (
	"fmt"
	"math/rand/v2"

	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/vision"
)

// Augmentations (config data.augment).
const (
	augmentNone     = "none"
	augmentCrop     = "crop"      // random resized crop back to the image's size
	augmentCropFlip = "crop_flip" // and a horizontal flip with probability 1/2
)

// augmenter returns the training augmentation of an image-shaped modality,
// as torchvision's RandomResizedCrop (scale 0.08-1, ratio 3/4-4/3) and
// RandomHorizontalFlip, which the reference applies to video frames. Each
// frame of a [frames, C, H, W] sample is transformed on its own. Shapes of
// rank 2 are [H, W]; rank 1 (vectors) cannot be augmented. kinds[m] is
// modality m's augmentation; modalities past the list are not augmented.
func augmenter(kinds []string, shapes [][]int) (fl.Augmenter, error) {
	if len(kinds) > len(shapes) {
		return nil, fmt.Errorf("sim: data.augment names %d augmentations for %d modalities", len(kinds), len(shapes))
	}
	pipes := make([]vision.Pipeline, len(shapes))
	imgShape := make([][3]int, len(shapes))
	active := false
	for m, kind := range kinds {
		if kind == augmentNone || kind == "" {
			continue
		}
		shape := shapes[m]
		switch len(shape) {
		case 2:
			imgShape[m] = [3]int{1, shape[0], shape[1]}
		case 3:
			imgShape[m] = [3]int{shape[0], shape[1], shape[2]}
		case 4:
			imgShape[m] = [3]int{shape[1], shape[2], shape[3]}
		default:
			return nil, fmt.Errorf("sim: data.augment %s for modality %d: samples of shape %v are not images", kind, m, shape)
		}
		h, w := imgShape[m][1], imgShape[m][2]
		pipes[m] = vision.Pipeline{vision.RandomResizedCrop{H: h, W: w}}
		if kind == augmentCropFlip {
			pipes[m] = append(pipes[m], vision.RandomHorizontalFlip{P: 0.5})
		}
		active = true
	}
	if !active {
		return nil, nil
	}
	return func(m int, rows []float32, n int, rng *rand.Rand) error {
		if m < 0 || m >= len(pipes) || pipes[m] == nil {
			return nil
		}
		c, h, w := imgShape[m][0], imgShape[m][1], imgShape[m][2]
		size := c * h * w
		for off := 0; off+size <= len(rows); off += size {
			img := &vision.Image{C: c, H: h, W: w, Pix: rows[off : off+size]}
			out, err := pipes[m].Apply(img, rng)
			if err != nil {
				return err
			}
			copy(rows[off:off+size], out.Pix)
		}
		return nil
	}, nil
}
