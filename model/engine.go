package model

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // see network.go
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/support/exceptions"
)

// DefaultEvalBatch is the padded batch size of evaluation graphs.
const DefaultEvalBatch = 256

// evalTail is the block size of the evaluation graphs' second compilation,
// for what is left after the full blocks when that is at most half a full
// block: a client's 260 rows run as 256 + 32 padded rows, not 512.
const evalTail = 32

// Hyper-parameter slots of the step graph's hyper input, so that changing a
// value (a learning-rate schedule, say) never recompiles.
const (
	hypLR = iota
	hypC1
	hypAlpha
	hypMu
	hypWeightDecay
	hypMomentum
	hypFused  // weight of the fused head's CE on multimodal clients (1)
	hypFirst  // extra weight of modality 0's self-head CE, times C1 (1)
	hypSecond // extra weight of modality 1's self-head CE, times C1 (1)
	numHyper
)

// TrainConfig says what one client's local training optimises.
type TrainConfig struct {
	// Has tells which modalities the client holds. Both: the multimodal loss
	// CE(F(aa,vv)) + C1*(CE(C_A(aa)) + CE(C_V(vv))); one: CE of
	// fusion(self, infiltration) of that modality.
	Has [2]bool
	// Infiltration adds Alpha * L_inf, the soft-target distillation from the
	// frozen start-of-round model's dominant self head into the weak
	// modality's infiltration head (multimodal clients only).
	Infiltration bool
	// Alpha weights L_inf (method default 1).
	Alpha float64
	// C1 weights the unimodal self-head CE terms of multimodal clients (default 2).
	C1 float64
	// HeadWeights, if not nil, scales the multimodal loss's terms: the
	// fused head's CE by HeadWeights[0] and the self heads' by C1 times
	// HeadWeights[1] and [2] (gradient blending, fl/gradblend.go); nil is
	// 1, 1, 1. Multiplying by 1 is exact, so nil changes nothing.
	HeadWeights *[3]float64
	// PartialRows says that rows of this multimodal client may lack a
	// modality (Batch.Present): a missing side's embedding enters the fused
	// head as zeros, its self head's loss skips the row, and the
	// infiltration loss and the dominance sums use the rows holding both.
	// Not with OGM-GE, the prototype loss or Harmony's first stage.
	PartialRows bool
	// Mu is the FedProx coefficient: grad += Mu * (w - w_start). Zero turns it off.
	Mu float64
	// WeightDecay is SGD's L2 coefficient (default 1e-4).
	WeightDecay float64
	// Momentum is SGD's momentum (default 0.9); buffers start at zero each round.
	Momentum float64
	// Correction, if not nil, is SCAFFOLD's c - c_i (Layout order), added to
	// the gradient of every parameter the step trains (see scaffold.go).
	Correction Params
	// OGM, if not nil, turns on OGM-GE gradient modulation on multimodal
	// clients (see ogm.go).
	OGM *OGM
	// HarmonyUnimodal trains Harmony's first stage: each held modality's
	// encoder, self projector and classifier on its unimodal loss only
	// (see harmony.go).
	HarmonyUnimodal bool
	// Proto adds the prototype-guided loss of PMR / FedMDrop (prototype.go);
	// nil is off. Steps then need prototypes (Local.SetPrototypes).
	Proto *ProtoLoss
	// TeacherLogits makes infiltration steps take the frozen teacher's
	// self-head logits from Batch.Teacher instead of running the teacher
	// in every step: the teacher is fixed for the round, so a client whose
	// inputs do not change between epochs (no augmentation) computes them
	// once per round (Prediction.LogitsFirst/LogitsSecond of the start model).
	TeacherLogits bool
}

// kind is the client kind a step graph is built for.
type kind int

const (
	kindMulti  kind = iota
	kindFirst       // only modality 0
	kindSecond      // only modality 1
)

func (c TrainConfig) kind() (kind, error) {
	switch {
	case c.Has[0] && c.Has[1]:
		return kindMulti, nil
	case c.Has[0]:
		return kindFirst, nil
	case c.Has[1]:
		return kindSecond, nil
	}
	return 0, errors.New("model: client holds no modality")
}

// stepKey identifies one compiled training graph.
type stepKey struct {
	kind  kind
	infil bool
	prox  bool
	ext   extKey // baseline methods' variants (stepext.go)
	proto bool   // prototype-guided loss (prototype.go)
	// teacherIn: the teacher's self-head logits are inputs (infil only).
	teacherIn bool
	// partial: rows of a multimodal client may lack a modality
	// (Batch.Present are inputs).
	partial bool
}

// needStart reports whether the step graph takes the start parameters: as
// the proximal anchor, or to run the teacher in-graph.
func (k stepKey) needStart() bool { return k.prox || k.infil && !k.teacherIn }

func (k stepKey) String() string {
	partial := ""
	if k.partial {
		partial = " partial_rows=true"
	}
	return fmt.Sprintf("step[kind=%d infiltration=%v prox=%v proto=%v teacher_inputs=%v%s%s]", k.kind, k.infil, k.prox, k.proto, k.teacherIn, k.ext, partial)
}

// Engine compiles and runs the training and evaluation graphs of one Arch
// on a GoMLX backend. Graphs are compiled once per (client kind, loss
// variant) at a fixed padded batch size, so partial batches never
// recompile. An Engine is safe for concurrent use.
type Engine struct {
	arch      Arch
	layout    []ParamInfo
	backend   compute.Backend
	batch     int
	evalBatch int

	mu       sync.Mutex
	steps    map[stepKey]*stepGraph
	eval     evalGraphs
	embed    evalGraphs // self embeddings (prototype.go)
	compiled map[string]time.Duration
}

// stepGraph is a compiled training step and the parameters it updates.
type stepGraph struct {
	exec      *Exec
	trainable []int // indices into layout
}

// NewEngine returns an engine for arch with training batches of batchSize
// rows (smaller batches are padded and masked).
func NewEngine(backend compute.Backend, arch Arch, batchSize int) (*Engine, error) {
	if err := arch.Validate(); err != nil {
		return nil, err
	}
	if batchSize < 1 {
		return nil, fmt.Errorf("model: batch size %d < 1", batchSize)
	}
	arch.Hidden = append([]int(nil), arch.Hidden...)
	return &Engine{
		arch:      arch,
		layout:    arch.Layout(),
		backend:   backend,
		batch:     batchSize,
		evalBatch: DefaultEvalBatch,
		steps:     make(map[stepKey]*stepGraph),
		compiled:  make(map[string]time.Duration),
	}, nil
}

// Arch returns the engine's architecture.
func (e *Engine) Arch() Arch { return e.arch }

// Layout returns the parameter layout of the engine's architecture.
func (e *Engine) Layout() []ParamInfo { return append([]ParamInfo(nil), e.layout...) }

// BatchSize is the padded training batch size.
func (e *Engine) BatchSize() int { return e.batch }

// CompileTimes returns how long each graph took to compile, by graph name.
func (e *Engine) CompileTimes() map[string]time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]time.Duration, len(e.compiled))
	for k, v := range e.compiled {
		out[k] = v
	}
	return out
}

// trainable lists the parameters a step of this key updates. A multimodal
// client updates every parameter: in the reference model both projectors of
// a modality feed its classifier in one call, so the infiltration
// projectors get a (zero) gradient, and with it weight decay and momentum,
// even when infiltration is off. A unimodal client updates its modality's
// encoder and projectors and the fusion head, what its loss
// CE(F(self, infiltration)) reaches; the other modality and its own
// classifier get no gradient and, as in PyTorch's SGD, are left untouched.
func (e *Engine) trainable(key stepKey) []int {
	if key.ext.harmonyUni {
		return e.harmonyTrainable(key)
	}
	var idx []int
	for i, info := range e.layout {
		ok := false
		switch key.kind {
		case kindMulti:
			ok = true
		case kindFirst:
			ok = info.Side == -1 || (info.Side == 0 && info.Part != PartClassifier)
		case kindSecond:
			ok = info.Side == -1 || (info.Side == 1 && info.Part != PartClassifier)
		}
		if ok {
			idx = append(idx, i)
		}
	}
	return idx
}

// stepInputShapes lists the input shapes of a step graph, in order:
// params, momentum (trainable), start params (if infiltration or prox),
// present modality inputs, labels, mask, temperatures and directions (if
// infiltration), the teacher's logits of both modalities (if teacherIn), the
// baseline methods' extension inputs (stepext.go), hyper.
func (e *Engine) stepInputShapes(key stepKey, trainable []int) []shapes.Shape {
	var s []shapes.Shape
	for _, info := range e.layout {
		s = append(s, shapes.Make(dtypes.Float32, info.Shape...))
	}
	for _, i := range trainable {
		s = append(s, shapes.Make(dtypes.Float32, e.layout[i].Shape...))
	}
	if key.needStart() {
		for _, info := range e.layout {
			s = append(s, shapes.Make(dtypes.Float32, info.Shape...))
		}
	}
	for m := range 2 {
		if key.kind == kindMulti || int(key.kind) == m+1 {
			s = append(s, shapes.Make(dtypes.Float32, e.batch, e.arch.InputDims[m]))
		}
	}
	s = append(s, shapes.Make(dtypes.Int32, e.batch), shapes.Make(dtypes.Float32, e.batch))
	if key.partial {
		s = append(s, shapes.Make(dtypes.Float32, e.batch), shapes.Make(dtypes.Float32, e.batch))
	}
	if key.infil {
		s = append(s, shapes.Make(dtypes.Float32, e.batch), shapes.Make(dtypes.Float32, e.batch))
	}
	if key.teacherIn {
		k := e.arch.NumClasses
		s = append(s, shapes.Make(dtypes.Float32, e.batch, k), shapes.Make(dtypes.Float32, e.batch, k))
	}
	s = append(s, e.extInputShapes(key, trainable)...)
	s = append(s, e.protoInputShapes(key)...)
	return append(s, shapes.Make(dtypes.Float32, numHyper))
}

// stepFn builds the training step graph of key: forward, loss, gradient and
// SGD update (momentum, weight decay, optional proximal term), all in-graph.
// Outputs: updated trainable params, their momentum, loss, sum of p_A(y),
// sum of p_V(y) over the real rows, then the prototype loss outputs
// (prototype.go) and the extension outputs (stepext.go).
func (e *Engine) stepFn(key stepKey, trainable []int) func(g *Graph, in []*Node) []*Node {
	return func(g *Graph, in []*Node) []*Node {
		n := len(e.layout)
		params := in[:n]
		mom := in[n : n+len(trainable)]
		rest := in[n+len(trainable):]
		var start []*Node
		if key.needStart() {
			start, rest = rest[:n], rest[n:]
		}
		var x [2]*Node
		for m := range 2 {
			if key.kind == kindMulti || int(key.kind) == m+1 {
				x[m], rest = rest[0], rest[1:]
			}
		}
		labels, mask, rest := rest[0], rest[1], rest[2:]
		var presA, presV *Node
		if key.partial {
			presA, presV, rest = rest[0], rest[1], rest[2:]
		}
		var temp, dir, ta, tv *Node
		if key.infil {
			temp, dir, rest = rest[0], rest[1], rest[2:]
		}
		if key.teacherIn {
			ta, tv, rest = rest[0], rest[1], rest[2:]
		}
		ext, rest := e.splitExtInputs(key, trainable, rest)
		centers, pmasks, phyper, rest := key.protoInputs(rest)
		hyper := rest[0]
		hp := func(i int) *Node { return Reshape(Slice(hyper, AxisRange(i, i+1))) }

		net := newNetwork(&e.arch, e.layout, params)
		onehot := OneHot(labels, e.arch.NumClasses, dtypes.Float32)
		zero := ScalarZero(g, dtypes.Float32)
		var loss *Node
		sumPA, sumPV := zero, zero
		var z [2]*Node // self embeddings, for the prototype loss
		switch {
		case key.ext.harmonyUni:
			loss, sumPA, sumPV = harmonyUnimodalLoss(net, x, onehot, mask)
		case key.kind == kindMulti:
			ea := net.embed(0, x[0], key.infil)
			ev := net.embed(1, x[1], key.infil)
			z = [2]*Node{ea.self, ev.self}
			la, lv := net.classify(0, ea.self), net.classify(1, ev.self)
			// Without partial rows every mask below is mask itself.
			selfA, selfV, maskA, maskV, maskBoth := ea.self, ev.self, mask, mask, mask
			if key.partial {
				selfA = Mul(ea.self, Reshape(presA, e.batch, 1))
				selfV = Mul(ev.self, Reshape(presV, e.batch, 1))
				maskA, maskV = Mul(mask, presA), Mul(mask, presV)
				maskBoth = Mul(maskA, presV)
			}
			loss = Mul(hp(hypFused), maskedMean(crossEntropy(net.fuse(selfA, selfV), onehot), mask))
			uni := Add(Mul(hp(hypFirst), maskedMean(crossEntropy(la, onehot), maskA)), Mul(hp(hypSecond), maskedMean(crossEntropy(lv, onehot), maskV)))
			loss = Add(loss, Mul(hp(hypC1), uni))
			sumPA = StopGradient(ReduceAllSum(Mul(trueClassProb(la, onehot), maskBoth)))
			sumPV = StopGradient(ReduceAllSum(Mul(trueClassProb(lv, onehot), maskBoth)))
			if key.infil {
				if !key.teacherIn {
					teacher := newNetwork(&e.arch, e.layout, start)
					ta = StopGradient(teacher.classify(0, teacher.embed(0, x[0], false).self))
					tv = StopGradient(teacher.classify(1, teacher.embed(1, x[1], false).self))
				}
				linf := infiltrationLoss(net, ea, ev, ta, tv, temp, dir, sumPA, sumPV, maskBoth)
				loss = Add(loss, Mul(hp(hypAlpha), linf))
			}
			if key.ext.ogm {
				ext.ogmMeasure(net, ea.self, ev.self, onehot, mask)
			}
		case key.kind == kindFirst:
			ea := net.embed(0, x[0], true)
			z[0] = ea.self
			loss = maskedMean(crossEntropy(net.fuse(ea.self, ea.inf), onehot), mask)
		case key.kind == kindSecond:
			ev := net.embed(1, x[1], true)
			z[1] = ev.self
			loss = maskedMean(crossEntropy(net.fuse(ev.inf, ev.self), onehot), mask)
		}
		var protoOut []*Node
		if key.proto {
			pl, sa, sv := protoTerms(z, centers, pmasks, onehot, mask, phyper)
			loss = Add(loss, pl)
			protoOut = []*Node{sa, sv}
		}

		wrt := make([]*Node, len(trainable))
		for j, i := range trainable {
			wrt[j] = params[i]
		}
		grads := ext.modulate(Gradient(loss, wrt...))
		lr, wd, beta, mu := hp(hypLR), hp(hypWeightDecay), hp(hypMomentum), hp(hypMu)
		out := make([]*Node, 0, 2*len(trainable)+3)
		newMom := make([]*Node, len(trainable))
		for j, i := range trainable {
			w := params[i]
			grad := Add(ext.correct(j, grads[j]), Mul(wd, w))
			if key.prox {
				grad = Add(grad, Mul(mu, Sub(w, start[i])))
			}
			newMom[j] = Add(Mul(beta, mom[j]), grad)
			out = append(out, Sub(w, Mul(lr, newMom[j])))
		}
		out = append(out, newMom...)
		out = append(out, loss, sumPA, sumPV)
		out = append(out, protoOut...)
		return append(out, ext.outputs()...)
	}
}

// step returns the compiled graph for key, compiling it on first use.
func (e *Engine) step(key stepKey) (*stepGraph, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if sg, ok := e.steps[key]; ok {
		return sg, nil
	}
	trainable := e.trainable(key)
	exec, err := NewExec(e.backend, e.stepFn(key, trainable))
	if err != nil {
		return nil, fmt.Errorf("model: %s: %w", key, err)
	}
	exec = exec.WithName(key.String()).SetMaxCache(1)
	t0 := time.Now()
	if err := compile(exec, e.stepInputShapes(key, trainable)); err != nil {
		return nil, fmt.Errorf("model: compile %s: %w", key, err)
	}
	e.compiled[key.String()] = time.Since(t0)
	slog.Debug("compiled training graph", "graph", key.String(), "took", time.Since(t0))
	sg := &stepGraph{exec: exec, trainable: trainable}
	e.steps[key] = sg
	return sg, nil
}

// Batch is up to BatchSize rows of training data.
type Batch struct {
	// X holds the rows of each modality, row-major [n, InputDims[m]]; nil
	// for a modality the client does not hold.
	X [2][]float32
	// Labels holds the n class labels.
	Labels []int
	// Temp holds per-row distillation temperatures (T_{y_i}); nil means 1.
	Temp []float32
	// Dir holds per-row infiltration directions: +1 distils modality 0
	// into modality 1, -1 the reverse, 0 lets the batch's dominance ratio
	// decide (the method's rule). nil means all 0.
	Dir []float32
	// Teacher holds the frozen teacher's self-head logits of each modality,
	// row-major [n, NumClasses], for sessions with TrainConfig.TeacherLogits.
	Teacher [2][]float32
	// Present says, per modality and row, whether the row has that
	// modality (1) or not (0; its features should be zeros), for sessions
	// with TrainConfig.PartialRows; nil means every row has it.
	Present [2][]float32
}

// StepStats is what one training step measured on the real rows.
type StepStats struct {
	// Loss is the total training loss of the batch.
	Loss float64
	// SumPA and SumPV are the sums over the batch of the true-class
	// probabilities of the self heads C_A(aa) and C_V(vv) (multimodal
	// clients only); their ratio is the dominance ratio rho.
	SumPA, SumPV float64
	// Rows is the number of real rows.
	Rows int
	// OGMCoef holds OGM-GE's modulation coefficients (k_A, k_V) of the
	// batch when OGM is on, else zero.
	OGMCoef [2]float64
	// Proto holds the prototype loss's measurements (zero without it).
	Proto ProtoStats
}

// Local is one client's local training session: parameters, optimiser
// state and the frozen start-of-round model live in the engine between
// steps. It is not safe for concurrent use.
type Local struct {
	e      *Engine
	key    stepKey
	graph  *stepGraph
	params []*tensors.Tensor
	mom    []*tensors.Tensor
	start  []*tensors.Tensor
	hyper  []float32
	// pads holds reusable host buffers for padded inputs.
	padX     [2][]float32
	padY     []int32
	padMask  []float32
	padTemp  []float32
	padDir   []float32
	padTeach [2][]float32
	ext      *localExt // baseline methods' per-session inputs (stepext.go)
	finished bool

	// protos and protoHyper feed the prototype loss (prototype.go).
	protos     *Prototypes
	protoHyper []float32
}

// NewLocal starts local training from start (the model the client received
// this round, with its personal parts if any).
func (e *Engine) NewLocal(start Params, cfg TrainConfig) (*Local, error) {
	return e.newLocal(start, start, cfg)
}

// newLocal starts from params with start as the frozen teacher and
// proximal anchor (the two differ only in tests).
func (e *Engine) newLocal(params, start Params, cfg TrainConfig) (*Local, error) {
	if err := e.arch.Check(params); err != nil {
		return nil, fmt.Errorf("model: start parameters: %w", err)
	}
	if !sameParams(params, start) {
		if err := e.arch.Check(start); err != nil {
			return nil, fmt.Errorf("model: start parameters: %w", err)
		}
	}
	k, err := cfg.kind()
	if err != nil {
		return nil, err
	}
	key := stepKey{kind: k, infil: cfg.Infiltration && k == kindMulti, prox: cfg.Mu != 0, proto: cfg.Proto != nil}
	key.teacherIn = key.infil && cfg.TeacherLogits
	key.partial = cfg.PartialRows && k == kindMulti
	if key.partial && (cfg.OGM != nil || cfg.Proto != nil || cfg.HarmonyUnimodal) {
		return nil, errors.New("model: rows missing a modality (PartialRows) do not work with OGM-GE, the prototype loss or Harmony's unimodal stage")
	}
	if key.ext, err = e.extKeyOf(cfg, k); err != nil {
		return nil, err
	}
	sg, err := e.step(key)
	if err != nil {
		return nil, err
	}
	l := &Local{e: e, key: key, graph: sg}
	l.params = toTensors(params)
	if key.needStart() {
		l.start = toTensors(start)
	}
	for _, i := range sg.trainable {
		l.mom = append(l.mom, tensors.FromShape(shapes.Make(dtypes.Float32, e.layout[i].Shape...)))
	}
	l.hyper = make([]float32, numHyper)
	l.hyper[hypC1] = float32(cfg.C1)
	l.hyper[hypFused], l.hyper[hypFirst], l.hyper[hypSecond] = 1, 1, 1
	if w := cfg.HeadWeights; w != nil {
		for i, v := range w {
			if !(v >= 0) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("model: head weight %d is %v, want finite and >= 0", i, v)
			}
		}
		l.hyper[hypFused], l.hyper[hypFirst], l.hyper[hypSecond] = float32(w[0]), float32(w[1]), float32(w[2])
	}
	l.hyper[hypAlpha] = float32(cfg.Alpha)
	l.hyper[hypMu] = float32(cfg.Mu)
	l.hyper[hypWeightDecay] = float32(cfg.WeightDecay)
	l.hyper[hypMomentum] = float32(cfg.Momentum)
	l.setProtoHyper(cfg.Proto)
	for m := range 2 {
		l.padX[m] = make([]float32, e.batch*e.arch.InputDims[m])
	}
	l.padY = make([]int32, e.batch)
	l.padMask = make([]float32, e.batch)
	l.padTemp = make([]float32, e.batch)
	l.padDir = make([]float32, e.batch)
	if key.teacherIn {
		for m := range 2 {
			l.padTeach[m] = make([]float32, e.batch*e.arch.NumClasses)
		}
	}
	if l.ext, err = e.newLocalExt(key, sg.trainable, cfg); err != nil {
		return nil, err
	}
	return l, nil
}

// sameParams reports whether a and b hold the very same tensors' data.
func sameParams(a, b Params) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i].Data) != len(b[i].Data) || len(a[i].Data) > 0 && &a[i].Data[0] != &b[i].Data[0] {
			return false
		}
	}
	return true
}

func toTensors(p Params) []*tensors.Tensor {
	out := make([]*tensors.Tensor, len(p))
	for i, t := range p {
		out[i] = tensors.FromFlatDataAndDimensions(t.Data, t.Shape...)
	}
	return out
}

// Step runs one SGD step on b with learning rate lr.
func (l *Local) Step(b Batch, lr float64) (StepStats, error) {
	e := l.e
	n := len(b.Labels)
	if n < 1 || n > e.batch {
		return StepStats{}, fmt.Errorf("model: batch of %d rows, want 1..%d", n, e.batch)
	}
	if b.Temp != nil && len(b.Temp) != n {
		return StepStats{}, fmt.Errorf("model: %d temperatures for %d rows", len(b.Temp), n)
	}
	if b.Dir != nil && len(b.Dir) != n {
		return StepStats{}, fmt.Errorf("model: %d directions for %d rows", len(b.Dir), n)
	}
	args := make([]any, 0, len(l.params)+len(l.mom)+len(l.start)+6)
	// The trainable parameters and their momentum are replaced by the
	// step's outputs: donating their buffers lets the backend update them
	// in place instead of allocating (and zeroing) new ones every step.
	donate := func(t *tensors.Tensor) (any, error) {
		return DonateTensorBuffer(t, e.backend, 0)
	}
	trained := make([]bool, len(l.params))
	for _, i := range l.graph.trainable {
		trained[i] = true
	}
	for i, t := range l.params {
		if !trained[i] {
			args = append(args, t)
			continue
		}
		d, err := donate(t)
		if err != nil {
			return StepStats{}, fmt.Errorf("model: %s: %w", l.key, err)
		}
		args = append(args, d)
	}
	for _, t := range l.mom {
		d, err := donate(t)
		if err != nil {
			return StepStats{}, fmt.Errorf("model: %s: %w", l.key, err)
		}
		args = append(args, d)
	}
	for _, t := range l.start {
		args = append(args, t)
	}
	for m := range 2 {
		if !(l.key.kind == kindMulti || int(l.key.kind) == m+1) {
			continue
		}
		d := e.arch.InputDims[m]
		if len(b.X[m]) != n*d {
			return StepStats{}, fmt.Errorf("model: modality %q: %d values for %d rows of width %d", e.arch.Modalities[m], len(b.X[m]), n, d)
		}
		copy(l.padX[m], b.X[m])
		clear(l.padX[m][n*d:])
		args = append(args, tensors.FromFlatDataAndDimensions(l.padX[m], e.batch, d))
	}
	for i := range e.batch {
		l.padY[i], l.padMask[i], l.padTemp[i], l.padDir[i] = 0, 0, 1, 0
		if i < n {
			y := b.Labels[i]
			if y < 0 || y >= e.arch.NumClasses {
				return StepStats{}, fmt.Errorf("model: label %d of row %d outside 0..%d", y, i, e.arch.NumClasses-1)
			}
			l.padY[i], l.padMask[i] = int32(y), 1
			if b.Temp != nil {
				l.padTemp[i] = b.Temp[i]
			}
			if b.Dir != nil {
				l.padDir[i] = b.Dir[i]
			}
		}
	}
	args = append(args, tensors.FromFlatDataAndDimensions(l.padY, e.batch), tensors.FromFlatDataAndDimensions(l.padMask, e.batch))
	if l.key.partial {
		for m := range 2 {
			if b.Present[m] != nil && len(b.Present[m]) != n {
				return StepStats{}, fmt.Errorf("model: modality %q: presence of %d rows for %d", e.arch.Modalities[m], len(b.Present[m]), n)
			}
			pres := make([]float32, e.batch)
			for i := range n {
				pres[i] = 1
				if b.Present[m] != nil {
					pres[i] = b.Present[m][i]
				}
			}
			args = append(args, tensors.FromFlatDataAndDimensions(pres, e.batch))
		}
	}
	if l.key.infil {
		args = append(args, tensors.FromFlatDataAndDimensions(l.padTemp, e.batch), tensors.FromFlatDataAndDimensions(l.padDir, e.batch))
	}
	if l.key.teacherIn {
		k := e.arch.NumClasses
		for m := range 2 {
			if len(b.Teacher[m]) != n*k {
				return StepStats{}, fmt.Errorf("model: modality %q: %d teacher logits for %d rows of %d classes", e.arch.Modalities[m], len(b.Teacher[m]), n, k)
			}
			copy(l.padTeach[m], b.Teacher[m])
			clear(l.padTeach[m][n*k:])
			args = append(args, tensors.FromFlatDataAndDimensions(l.padTeach[m], e.batch, k))
		}
	}
	args = append(args, l.ext.args()...)
	pargs, err := l.protoArgs()
	if err != nil {
		return StepStats{}, err
	}
	args = append(args, pargs...)
	l.hyper[hypLR] = float32(lr)
	args = append(args, tensors.FromFlatDataAndDimensions(l.hyper, numHyper))

	outs, err := l.graph.exec.Exec(args...)
	// Free the per-step inputs now rather than at the garbage collector's
	// leisure (on an accelerator they hold device memory).
	for _, a := range args[len(l.params)+len(l.mom)+len(l.start):] {
		a.(*tensors.Tensor).FinalizeAll()
	}
	if err != nil {
		return StepStats{}, fmt.Errorf("model: %s: %w", l.key, err)
	}
	nt := len(l.graph.trainable)
	for j, i := range l.graph.trainable {
		l.params[i].FinalizeAll()
		l.params[i] = outs[j]
		l.mom[j].FinalizeAll()
		l.mom[j] = outs[nt+j]
	}
	st := StepStats{
		Loss:  float64(tensors.ToScalar[float32](outs[2*nt])),
		SumPA: float64(tensors.ToScalar[float32](outs[2*nt+1])),
		SumPV: float64(tensors.ToScalar[float32](outs[2*nt+2])),
		Rows:  n,
	}
	nproto := 0
	if l.key.proto {
		st.Proto.SumA = float64(tensors.ToScalar[float32](outs[2*nt+3]))
		st.Proto.SumV = float64(tensors.ToScalar[float32](outs[2*nt+4]))
		nproto = 2
	}
	l.ext.consume(outs[2*nt+3+nproto:], &st)
	for _, t := range outs[2*nt:] {
		t.FinalizeAll()
	}
	if math.IsNaN(st.Loss) || math.IsInf(st.Loss, 0) {
		return st, fmt.Errorf("model: training loss is %v (diverged; try a lower learning rate or standardised features)", st.Loss)
	}
	return st, nil
}

// Params downloads the current parameters.
func (l *Local) Params() (Params, error) {
	out := make(Params, len(l.params))
	for i, info := range l.e.layout {
		data, err := tensors.CopyFlatData[float32](l.params[i])
		if err != nil {
			return nil, fmt.Errorf("model: read %s: %w", info.Name, err)
		}
		out[i] = Tensor{Name: info.Name, Shape: append([]int(nil), info.Shape...), Data: data}
	}
	return out, nil
}

// Close frees the session's tensors.
func (l *Local) Close() {
	if l.finished {
		return
	}
	l.finished = true
	for _, ts := range [][]*tensors.Tensor{l.params, l.mom, l.start} {
		for _, t := range ts {
			t.FinalizeAll()
		}
	}
}

// compile compiles exec for the given input shapes, turning a panic raised
// while building the graph into an error.
func compile(exec *Exec, in []shapes.Shape) (err error) {
	if perr := tryCatch(func() { _, err = exec.Compile(in...) }); perr != nil {
		return perr
	}
	return err
}

// tryCatch converts a panic raised while building or running a graph into an error.
func tryCatch(fn func()) error {
	return exceptions.TryCatch[error](fn)
}
