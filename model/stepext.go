package model

import (
	"fmt"
	"math/rand/v2"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // see network.go
	"github.com/gomlx/gomlx/core/tensors"
)

// This file holds the hook points the baseline methods (SCAFFOLD, OGM-GE,
// Harmony) use in the training step graph of engine.go: extra inputs after
// the temperatures, a gradient transformation before the optimiser, and
// extra outputs after the step statistics. Each method's own graph code is
// in its own file (scaffold.go, ogm.go, harmony.go).

// extKey is the baseline-method part of a stepKey.
type extKey struct {
	scaffold   bool // SCAFFOLD gradient correction
	ogm        bool // OGM-GE modulation (multimodal clients only)
	harmonyUni bool // Harmony stage 1: unimodal losses only
}

func (k extKey) String() string {
	s := ""
	if k.scaffold {
		s += " scaffold"
	}
	if k.ogm {
		s += " ogm-ge"
	}
	if k.harmonyUni {
		s += " harmony-unimodal"
	}
	return s
}

// extKeyOf returns the extension key of cfg for a client holding h.
func (e *Engine) extKeyOf(cfg TrainConfig, h heldSet) (extKey, error) {
	key := extKey{scaffold: cfg.Correction != nil, ogm: cfg.OGM != nil && h.multi(), harmonyUni: cfg.HarmonyUnimodal}
	if key.scaffold {
		if err := e.arch.checkShapes(cfg.Correction); err != nil {
			return extKey{}, fmt.Errorf("model: SCAFFOLD correction: %w", err)
		}
	}
	if key.ogm {
		if err := e.arch.ogmSupported(); err != nil {
			return extKey{}, err
		}
	}
	if key.harmonyUni && (key.ogm || cfg.Infiltration) {
		return extKey{}, fmt.Errorf("model: Harmony's unimodal stage cannot be combined with OGM-GE or infiltration")
	}
	return key, nil
}

// extInputShapes lists the extra inputs of a step graph, in order:
// SCAFFOLD corrections (one per trainable parameter), then OGM-GE's RNG
// state and its two hyper-parameters (alpha, noise scale).
func (e *Engine) extInputShapes(key stepKey, trainable []int) []shapes.Shape {
	var s []shapes.Shape
	if key.ext.scaffold {
		for _, i := range trainable {
			s = append(s, shapes.Make(dtypes.Float32, e.layout[i].Shape...))
		}
	}
	if key.ext.ogm {
		s = append(s, RNGStateShape, shapes.Make(dtypes.Float32, numOGMHyper))
	}
	return s
}

// stepExt is the graph-time state of the extensions inside one step graph.
type stepExt struct {
	e         *Engine
	key       extKey
	trainable []int
	corr      []*Node // SCAFFOLD: c - c_i per trainable parameter
	rng       *Node   // OGM-GE: RNG state in; after modulate, the new state
	ogmHyper  *Node   // OGM-GE: [alpha, noise scale]
	coef      [2]*Node
}

// splitExtInputs takes the extension inputs off the front of rest.
func (e *Engine) splitExtInputs(key stepKey, trainable []int, rest []*Node) (*stepExt, []*Node) {
	x := &stepExt{e: e, key: key.ext, trainable: trainable}
	if key.ext.scaffold {
		x.corr, rest = rest[:len(trainable)], rest[len(trainable):]
	}
	if key.ext.ogm {
		x.rng, x.ogmHyper, rest = rest[0], rest[1], rest[2:]
	}
	return x, rest
}

// correct returns the gradient of the j-th trainable parameter with the
// SCAFFOLD correction added, if on.
func (x *stepExt) correct(j int, grad *Node) *Node {
	if !x.key.scaffold {
		return grad
	}
	return Add(grad, x.corr[j])
}

// modulate transforms the loss gradients of the trainable parameters
// before the optimiser (OGM-GE), or returns them unchanged.
func (x *stepExt) modulate(grads []*Node) []*Node {
	if !x.key.ogm {
		return grads
	}
	return x.ogmModulate(grads)
}

// outputs lists the extra graph outputs: OGM-GE's new RNG state and k_A, k_V.
func (x *stepExt) outputs() []*Node {
	if !x.key.ogm {
		return nil
	}
	return []*Node{x.rng, x.coef[0], x.coef[1]}
}

// localExt is the host side of the extensions in one Local session.
type localExt struct {
	key      extKey
	corr     [][]float32 // per trainable parameter
	corrDims [][]int
	rng      []uint64
	ogmHyper []float32
}

// newLocalExt prepares the session's extension inputs.
func (e *Engine) newLocalExt(key stepKey, trainable []int, cfg TrainConfig) (*localExt, error) {
	x := &localExt{key: key.ext}
	if key.ext.scaffold {
		for _, i := range trainable {
			x.corr = append(x.corr, cfg.Correction[i].Data)
			x.corrDims = append(x.corrDims, e.layout[i].Shape)
		}
	}
	if key.ext.ogm {
		x.rng = make([]uint64, RNGStateShape.Size())
		r := rand.New(rand.NewPCG(cfg.OGM.Seed, 0x6f676d))
		for i := range x.rng {
			x.rng[i] = r.Uint64()
		}
		x.ogmHyper = make([]float32, numOGMHyper)
		x.ogmHyper[ogmAlpha] = float32(cfg.OGM.Alpha)
		if !cfg.OGM.NoNoise {
			x.ogmHyper[ogmNoise] = 1
		}
	}
	return x, nil
}

// args returns fresh input tensors for one step (the caller frees them).
func (x *localExt) args() []any {
	var a []any
	for k, c := range x.corr {
		a = append(a, tensors.FromFlatDataAndDimensions(c, x.corrDims[k]...))
	}
	if x.key.ogm {
		a = append(a, tensors.FromFlatDataAndDimensions(x.rng, RNGStateShape.Dimensions...),
			tensors.FromFlatDataAndDimensions(x.ogmHyper, numOGMHyper))
	}
	return a
}

// consume reads the extension outputs of a step (the caller frees them).
func (x *localExt) consume(outs []*tensors.Tensor, st *StepStats) {
	if !x.key.ogm {
		return
	}
	tensors.MustConstFlatData(outs[0], func(flat []uint64) { copy(x.rng, flat) })
	st.OGMCoef = [2]float64{
		float64(tensors.ToScalar[float32](outs[1])),
		float64(tensors.ToScalar[float32](outs[2])),
	}
}

// checkShapes verifies that p has the layout's names and shapes (values
// may be anything).
func (a *Arch) checkShapes(p Params) error {
	layout := a.Layout()
	if len(p) != len(layout) {
		return fmt.Errorf("%d tensors, architecture has %d", len(p), len(layout))
	}
	for i, info := range layout {
		if p[i].Name != info.Name || len(p[i].Data) != info.Size() {
			return fmt.Errorf("tensor %d is %q with %d values, want %q with %d", i, p[i].Name, len(p[i].Data), info.Name, info.Size())
		}
	}
	return nil
}
