package sim

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/model"
)

// fallbackMemory is the memory assumed when the machine's cannot be read
// (not Linux): generous, so that only absurd experiments are refused.
const fallbackMemory = 64 << 30

// checkBatch refuses a training batch larger than both the largest client
// and the evaluation batch: every batch is padded to the batch size, so
// the excess is allocated and computed for nothing (a batch size of 1e9
// died with an out-of-memory stack dump). Up to the evaluation batch, a
// training batch costs no more than evaluation does anyway.
func checkBatch(cfg *config.Config, parts [][]int) error {
	largest := 0
	for _, p := range parts {
		largest = max(largest, len(p))
	}
	if limit := max(largest, model.DefaultEvalBatch); cfg.Train.BatchSize > limit {
		return &config.FieldError{Path: "train.batch_size", Err: fmt.Errorf(
			"%d is larger than the largest client (%d samples); every batch is padded to this size: use at most %d",
			cfg.Train.BatchSize, largest, limit)}
	}
	return nil
}

// memoryEstimate is a rough lower estimate, in bytes, of what training
// arch needs: the parameter copies (global, aggregation, and per client
// trained at once its parameters, momentum, start point and gradients) and
// per client trained at once the activations of a training step (all kept
// for the backward pass, and as many gradients) or of an evaluation batch
// (inputs and the largest layer with its input), whichever is larger. It
// is computed in float64, which cannot overflow for any configuration.
//
// A simulation's server also holds the updates of a round's sampled
// clients until it aggregates them, heldValueBytes per parameter each.
type memoryEstimate struct {
	params, activations, updates float64
}

// heldValueBytes is what each value of an update a server holds until it
// aggregates costs, about 8 bytes (measured: 15 MB per client of a
// 1.9-million-parameter model); the memory check and Options.TuneGC
// count it.
const heldValueBytes = 8

func (m memoryEstimate) total() float64 { return m.params + m.activations + m.updates }

// layerSizes accumulates per-sample activation sizes, in floats.
type layerSizes struct{ sum, largest float64 }

func (l *layerSizes) add(n float64) {
	l.sum += n
	l.largest = max(l.largest, n)
}

func estimateMemory(arch *model.Arch, batch, parallel, held int) memoryEstimate {
	var nParams float64
	for _, p := range arch.Layout() {
		n := 1.0
		for _, d := range p.Shape {
			n *= float64(d)
		}
		nParams += n
	}
	d, k := float64(arch.EmbedDim), float64(arch.NumClasses)
	var acts layerSizes
	inputs := 0.0
	for _, w := range arch.InputDims {
		inputs += float64(w)
	}
	for m := range arch.InputDims {
		if arch.Encoder(m) == model.EncoderCNN {
			cnnActivations(&arch.CNN[m], &acts)
		} else {
			for _, h := range arch.Hidden {
				acts.add(float64(h))
			}
		}
		for range 4 { // embedding, self and infiltration projections, their sum
			acts.add(d)
		}
		acts.add(2 * k) // logits of both projections
	}
	acts.add(2*d + k) // fusion
	train := 2 * (inputs + acts.sum) * float64(batch)
	eval := (inputs + 2*acts.largest) * model.DefaultEvalBatch
	par := float64(max(parallel, 1))
	return memoryEstimate{
		params:      4 * nParams * (2 + 4*par),
		activations: 4 * max(train, eval) * par,
		updates:     heldValueBytes * nParams * float64(max(held, 0)),
	}
}

// cnnActivations adds the floats a CNN encoder produces per sample to
// acts: the im2col patches and the output of every convolution (see
// model.CNN), per frame.
func cnnActivations(c *model.CNN, acts *layerSizes) {
	h, w := c.Input[1], c.Input[2]
	cin := float64(c.Input[0])
	frames := float64(max(c.Frames, 1))
	conv := func(cout, stride int) {
		h, w = (h-1)/stride+1, (w-1)/stride+1
		hw := float64(h) * float64(w) * frames
		acts.add(hw * 9 * cin)
		acts.add(hw * float64(cout))
		cin = float64(cout)
	}
	conv(c.Channels[0], max(c.StemStride, 1))
	for s, ch := range c.Channels {
		if s > 0 {
			conv(ch, 2)
		}
		for range 2 * c.Blocks {
			conv(ch, 1)
		}
	}
}

// checkMemory refuses an experiment whose model cannot fit in the
// machine's memory (the smaller of physical memory and a cgroup limit),
// naming the field most likely at fault: the batch size when activations
// dominate, else the widest of the model's sizes. clients is how many
// clients the process trains at once.
func checkMemory(cfg *config.Config, arch *model.Arch, clients, held int) error {
	par := max(1, clients)
	est := estimateMemory(arch, cfg.Train.BatchSize, par, held)
	limit := machineMemory()
	if est.total() <= float64(limit) {
		return nil
	}
	if est.updates > est.params+est.activations {
		return &config.FieldError{Path: "clients_per_round", Err: fmt.Errorf(
			"holding the updates of %d clients for aggregation needs about %s (training: %s more), more than the %s of memory here; sample fewer clients per round, or use a smaller model",
			held, bytesText(est.updates), bytesText(est.params+est.activations), bytesText(float64(limit)))}
	}
	path := "train.batch_size"
	if est.params > est.activations {
		path = widestField(cfg, arch)
	}
	sizes := fmt.Sprintf("model.embed_dim %d, %d classes", cfg.Model.EmbedDim, arch.NumClasses)
	if hasEncoder(arch, model.EncoderMLP) {
		sizes = fmt.Sprintf("model.hidden %v, %s", cfg.Model.Hidden, sizes)
	}
	if hasEncoder(arch, model.EncoderCNN) {
		sizes = fmt.Sprintf("model.cnn_channels %v, %s", cfg.Model.CNNChannels, sizes)
	}
	return &config.FieldError{Path: path, Err: fmt.Errorf(
		"training this model needs about %s (parameters %s, activations of %d clients at once with batch %d: %s), more than the %s of memory here; use a smaller train.batch_size, parallel or model (%s)",
		bytesText(est.total()), bytesText(est.params), par, cfg.Train.BatchSize, bytesText(est.activations), bytesText(float64(limit)), sizes)}
}

// hasEncoder reports whether some modality of arch has the encoder kind.
func hasEncoder(arch *model.Arch, kind string) bool {
	for m := range arch.Modalities {
		if arch.Encoder(m) == kind {
			return true
		}
	}
	return false
}

// widestField names the size field with the largest value among those that
// shape the parameters.
func widestField(cfg *config.Config, arch *model.Arch) string {
	path, width := "model.embed_dim", cfg.Model.EmbedDim
	if len(cfg.Model.Hidden) > 0 && hasEncoder(arch, model.EncoderMLP) {
		if h := slices.Max(cfg.Model.Hidden); h > width {
			path, width = "model.hidden", h
		}
	}
	if hasEncoder(arch, model.EncoderCNN) {
		if ch := slices.Max(cfg.Model.CNNChannels); ch > width {
			path, width = "model.cnn_channels", ch
		}
	}
	if arch.NumClasses > width {
		path = "data.num_classes"
	}
	return path
}

// machineMemory returns the memory this process may use: the smaller of
// the physical memory and the cgroup (v2) limit, on Linux; fallbackMemory
// elsewhere.
func machineMemory() int64 {
	limit := int64(fallbackMemory)
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) >= 2 && fields[0] == "MemTotal:" {
				if kb, err := strconv.ParseInt(fields[1], 10, 64); err == nil && kb > 0 {
					limit = kb << 10
				}
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			limit = min(limit, n)
		}
	}
	return limit
}

// bytesText formats a byte count for people: "1.5 GiB".
func bytesText(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	u := 0
	for n >= 1024 && u < len(units)-1 {
		n /= 1024
		u++
	}
	if u == 0 {
		return fmt.Sprintf("%.0f B", n)
	}
	return fmt.Sprintf("%.1f %s", n, units[u])
}
