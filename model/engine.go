package model

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
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
	hypFused // weight of the fused head's CE on multimodal clients (1)
	// hypSelf + m is the extra weight of modality m's self-head CE, times
	// C1 (1); the hyper input has hypSelf + M slots.
	hypSelf
)

// numHyper is the length of the hyper input for M modalities.
func numHyper(nm int) int { return hypSelf + nm }

// TrainConfig says what one client's local training optimises.
type TrainConfig struct {
	// Has tells which modalities the client holds, one entry per modality.
	// Two or more: the multimodal loss CE(F(held self embeddings, zeros
	// for the others)) + C1 * sum over held m of CE(C_m(self_m)); one: CE
	// of F with that modality's self embedding in its slot and its
	// infiltration embedding in every other.
	Has []bool
	// Infiltration adds Alpha * L_inf, the soft-target distillation from the
	// frozen start-of-round model's dominant self head into the other
	// held modalities' infiltration heads (multimodal clients only;
	// infiltration.go).
	Infiltration bool
	// Alpha weights L_inf (method default 1).
	Alpha float64
	// C1 weights the unimodal self-head CE terms of multimodal clients (default 2).
	C1 float64
	// HeadWeights, if not nil, scales the multimodal loss's terms: the
	// fused head's CE by HeadWeights[0] and modality m's self head's by C1
	// times HeadWeights[1+m] (gradient blending, fl/gradblend.go); nil is
	// all ones. Multiplying by 1 is exact, so nil changes nothing.
	HeadWeights []float64
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
	// once per round (Prediction.Logits of the start model).
	TeacherLogits bool
}

// heldSet is the set of modalities a client holds, bit m for modality m.
type heldSet uint8

// heldOf returns the held set of cfg for an architecture of nm modalities.
func (c TrainConfig) heldOf(nm int) (heldSet, error) {
	if len(c.Has) != nm {
		return 0, fmt.Errorf("model: client holdings for %d modalities, the model has %d", len(c.Has), nm)
	}
	var h heldSet
	for m, ok := range c.Has {
		if ok {
			h |= 1 << m
		}
	}
	if h == 0 {
		return 0, errors.New("model: client holds no modality")
	}
	return h, nil
}

// has reports whether modality m is held.
func (h heldSet) has(m int) bool { return m >= 0 && h&(1<<m) != 0 }

// multi reports whether at least two modalities are held.
func (h heldSet) multi() bool { return bits.OnesCount8(uint8(h)) >= 2 }

// list returns the held modalities in order.
func (h heldSet) list() []int {
	var out []int
	for m := range 8 {
		if h.has(m) {
			out = append(out, m)
		}
	}
	return out
}

// stepKey identifies one compiled training graph.
type stepKey struct {
	held  heldSet
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
	return fmt.Sprintf("step[held=%b infiltration=%v prox=%v proto=%v teacher_inputs=%v%s%s]", k.held, k.infil, k.prox, k.proto, k.teacherIn, k.ext, partial)
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
	arch = arch.Clone()
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
// client updates every parameter of its held modalities and the fusion
// head: in the reference model both projectors of a modality feed its
// classifier in one call, so the infiltration projectors get a (zero)
// gradient, and with it weight decay and momentum, even when infiltration
// is off. A unimodal client updates its modality's encoder and projectors
// and the fusion head, what its loss CE(F(self, infiltration)) reaches; the
// other modalities and its own classifier get no gradient and, as in
// PyTorch's SGD, are left untouched.
func (e *Engine) trainable(key stepKey) []int {
	if key.ext.harmonyUni {
		return e.harmonyTrainable(key)
	}
	var idx []int
	for i, info := range e.layout {
		ok := info.Side == -1 || key.held.has(info.Side) && (key.held.multi() || info.Part != PartClassifier)
		if ok {
			idx = append(idx, i)
		}
	}
	return idx
}

// stepInputShapes lists the input shapes of a step graph, in order:
// params, momentum (trainable), start params (if infiltration or prox),
// held modality inputs, labels, mask, the held modalities' row presence
// (if partial), temperatures [B, M, M] and teacher choices (if
// infiltration), the teacher's logits of the held modalities (if
// teacherIn), the baseline methods' extension inputs (stepext.go), the
// prototype inputs (prototype.go), hyper.
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
	held := key.held.list()
	for _, m := range held {
		s = append(s, shapes.Make(dtypes.Float32, e.batch, e.arch.InputDims[m]))
	}
	s = append(s, shapes.Make(dtypes.Int32, e.batch), shapes.Make(dtypes.Float32, e.batch))
	if key.partial {
		for range held {
			s = append(s, shapes.Make(dtypes.Float32, e.batch))
		}
	}
	nm := e.arch.NumModalities()
	if key.infil {
		s = append(s, shapes.Make(dtypes.Float32, e.batch, nm, nm), shapes.Make(dtypes.Float32, e.batch))
	}
	if key.teacherIn {
		for range held {
			s = append(s, shapes.Make(dtypes.Float32, e.batch, e.arch.NumClasses))
		}
	}
	s = append(s, e.extInputShapes(key, trainable)...)
	s = append(s, e.protoInputShapes(key)...)
	return append(s, shapes.Make(dtypes.Float32, numHyper(nm)))
}

// stepFn builds the training step graph of key: forward, loss, gradient and
// SGD update (momentum, weight decay, optional proximal term), all in-graph.
// Outputs: updated trainable params, their momentum, loss, then per
// modality the sum of its self head's true-class probability p_m(y) over
// the real rows holding every held modality (zero for a unimodal client),
// then the prototype loss outputs (prototype.go) and the extension outputs
// (stepext.go).
func (e *Engine) stepFn(key stepKey, trainable []int) func(g *Graph, in []*Node) []*Node {
	nm := e.arch.NumModalities()
	held := key.held.list()
	return func(g *Graph, in []*Node) []*Node {
		n := len(e.layout)
		params := in[:n]
		mom := in[n : n+len(trainable)]
		rest := in[n+len(trainable):]
		var start []*Node
		if key.needStart() {
			start, rest = rest[:n], rest[n:]
		}
		x := make([]*Node, nm)
		for _, m := range held {
			x[m], rest = rest[0], rest[1:]
		}
		labels, mask, rest := rest[0], rest[1], rest[2:]
		pres := make([]*Node, nm)
		if key.partial {
			for _, m := range held {
				pres[m], rest = rest[0], rest[1:]
			}
		}
		var temp, dir *Node
		if key.infil {
			temp, dir, rest = rest[0], rest[1], rest[2:]
		}
		teach := make([]*Node, nm)
		if key.teacherIn {
			for _, m := range held {
				teach[m], rest = rest[0], rest[1:]
			}
		}
		ext, rest := e.splitExtInputs(key, trainable, rest)
		centers, pmasks, phyper, rest := key.protoInputs(rest)
		hyper := rest[0]
		hp := func(i int) *Node { return Reshape(Slice(hyper, AxisRange(i, i+1))) }

		net := newNetwork(&e.arch, e.layout, params)
		onehot := OneHot(labels, e.arch.NumClasses, dtypes.Float32)
		zero := ScalarZero(g, dtypes.Float32)
		var loss *Node
		sums := make([]*Node, nm)
		for m := range sums {
			sums[m] = zero
		}
		z := make([]*Node, nm) // self embeddings, for the prototype loss
		switch {
		case key.ext.harmonyUni:
			loss, sums = harmonyUnimodalLoss(net, x, onehot, mask)
		case key.held.multi():
			emb := make([]embeddings, nm)
			logits := make([]*Node, nm)
			slots := make([]*Node, nm)
			masks := make([]*Node, nm)
			// maskAll: the real rows holding every held modality.
			// Without partial rows every mask below is mask itself.
			var maskAll *Node
			for _, m := range held {
				emb[m] = net.embed(m, x[m], key.infil)
				z[m] = emb[m].self
				logits[m] = net.classify(m, emb[m].self)
				slots[m], masks[m] = emb[m].self, mask
				if key.partial {
					slots[m] = Mul(emb[m].self, Reshape(pres[m], e.batch, 1))
					masks[m] = Mul(mask, pres[m])
				}
				switch {
				case maskAll == nil:
					maskAll = masks[m]
				case key.partial:
					maskAll = Mul(maskAll, pres[m])
				}
			}
			for m := range slots {
				if slots[m] == nil { // not held: an absent modality enters F as zeros
					slots[m] = ZerosLike(emb[held[0]].self)
				}
			}
			loss = Mul(hp(hypFused), maskedMean(crossEntropy(net.fuse(slots...), onehot), mask))
			var uni *Node
			for _, m := range held {
				t := Mul(hp(hypSelf+m), maskedMean(crossEntropy(logits[m], onehot), masks[m]))
				if uni == nil {
					uni = t
				} else {
					uni = Add(uni, t)
				}
				sums[m] = StopGradient(ReduceAllSum(Mul(trueClassProb(logits[m], onehot), maskAll)))
			}
			loss = Add(loss, Mul(hp(hypC1), uni))
			if key.infil {
				if !key.teacherIn {
					teacher := newNetwork(&e.arch, e.layout, start)
					for _, m := range held {
						teach[m] = StopGradient(teacher.classify(m, teacher.embed(m, x[m], false).self))
					}
				}
				linf := infiltrationLoss(net, held, emb, teach, temp, dir, sums, maskAll)
				loss = Add(loss, Mul(hp(hypAlpha), linf))
			}
			if key.ext.ogm {
				ext.ogmMeasure(net, emb[0].self, emb[1].self, onehot, mask)
			}
		default:
			m := held[0]
			em := net.embed(m, x[m], true)
			z[m] = em.self
			loss = maskedMean(crossEntropy(net.fuseAlone(m, em.self, em.inf), onehot), mask)
		}
		var protoOut []*Node
		if key.proto {
			pl, sa, sv := protoTerms([2]*Node{z[0], z[1]}, centers, pmasks, onehot, mask, phyper)
			loss = Add(loss, pl)
			protoOut = []*Node{sa, sv}
		}

		wrt := make([]*Node, len(trainable))
		for j, i := range trainable {
			wrt[j] = params[i]
		}
		grads := ext.modulate(Gradient(loss, wrt...))
		lr, wd, beta, mu := hp(hypLR), hp(hypWeightDecay), hp(hypMomentum), hp(hypMu)
		out := make([]*Node, 0, 2*len(trainable)+1+nm)
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
		out = append(out, loss)
		out = append(out, sums...)
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
	X [][]float32
	// Labels holds the n class labels.
	Labels []int
	// Temp holds per-row distillation temperatures for each (teacher,
	// student) pair of modalities, row-major [n, M, M]: Temp[(i*M+t)*M+s]
	// is row i's temperature when modality t's self head teaches modality
	// s's infiltration head (the class-wise T_{y_i} of that pair). nil
	// means 1.
	Temp []float32
	// Dir holds per-row teacher choices: m+1 makes modality m the row's
	// teacher, 0 lets the batch's dominance decide (the method's rule:
	// the held modality with the largest sum of true-class probabilities).
	// nil means all 0.
	Dir []float32
	// Teacher holds the frozen teacher's self-head logits of each held
	// modality, row-major [n, NumClasses], for sessions with
	// TrainConfig.TeacherLogits.
	Teacher [][]float32
	// Present says, per modality and row, whether the row has that
	// modality (1) or not (0; its features should be zeros), for sessions
	// with TrainConfig.PartialRows; nil means every row has it.
	Present [][]float32
}

// StepStats is what one training step measured on the real rows.
type StepStats struct {
	// Loss is the total training loss of the batch.
	Loss float64
	// SumP[m] is the sum over the batch's rows holding every held
	// modality of the true-class probability of modality m's self head
	// C_m(S_m(E_m(x_m))) (multimodal clients only, else zero); with two
	// modalities SumP[0] / SumP[1] is the dominance ratio rho.
	SumP []float64
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
	padX     [][]float32
	padY     []int32
	padMask  []float32
	padTemp  []float32
	padDir   []float32
	padTeach [][]float32
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
	nm := e.arch.NumModalities()
	h, err := cfg.heldOf(nm)
	if err != nil {
		return nil, err
	}
	key := stepKey{held: h, infil: cfg.Infiltration && h.multi(), prox: cfg.Mu != 0, proto: cfg.Proto != nil}
	key.teacherIn = key.infil && cfg.TeacherLogits
	key.partial = cfg.PartialRows && h.multi()
	if key.partial && (cfg.OGM != nil || cfg.Proto != nil || cfg.HarmonyUnimodal) {
		return nil, errors.New("model: rows missing a modality (PartialRows) do not work with OGM-GE, the prototype loss or Harmony's unimodal stage")
	}
	if key.proto && nm != 2 {
		return nil, fmt.Errorf("model: the prototype loss of PMR and FedMDrop is defined for 2 modalities (a prototype score ratio between them), the model has %d", nm)
	}
	if key.ext, err = e.extKeyOf(cfg, h); err != nil {
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
	l.hyper = make([]float32, numHyper(nm))
	l.hyper[hypC1] = float32(cfg.C1)
	for i := hypFused; i < len(l.hyper); i++ {
		l.hyper[i] = 1
	}
	if w := cfg.HeadWeights; w != nil {
		if len(w) != 1+nm {
			return nil, fmt.Errorf("model: %d head weights, want %d (the fused head and %d self heads)", len(w), 1+nm, nm)
		}
		for i, v := range w {
			if !(v >= 0) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("model: head weight %d is %v, want finite and >= 0", i, v)
			}
			l.hyper[hypFused+i] = float32(v)
		}
	}
	l.hyper[hypAlpha] = float32(cfg.Alpha)
	l.hyper[hypMu] = float32(cfg.Mu)
	l.hyper[hypWeightDecay] = float32(cfg.WeightDecay)
	l.hyper[hypMomentum] = float32(cfg.Momentum)
	l.setProtoHyper(cfg.Proto)
	l.padX = make([][]float32, nm)
	l.padTeach = make([][]float32, nm)
	for _, m := range h.list() {
		l.padX[m] = make([]float32, e.batch*e.arch.InputDims[m])
		if key.teacherIn {
			l.padTeach[m] = make([]float32, e.batch*e.arch.NumClasses)
		}
	}
	l.padY = make([]int32, e.batch)
	l.padMask = make([]float32, e.batch)
	l.padTemp = make([]float32, e.batch*nm*nm)
	l.padDir = make([]float32, e.batch)
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
	nm := e.arch.NumModalities()
	if b.Temp != nil && len(b.Temp) != n*nm*nm {
		return StepStats{}, fmt.Errorf("model: %d temperatures for %d rows of %d modality pairs", len(b.Temp), n, nm*nm)
	}
	if b.Dir != nil && len(b.Dir) != n {
		return StepStats{}, fmt.Errorf("model: %d teacher choices for %d rows", len(b.Dir), n)
	}
	for i, d := range b.Dir {
		if d != 0 && (d != float32(int(d)) || !l.key.held.has(int(d)-1)) {
			return StepStats{}, fmt.Errorf("model: row %d's teacher choice %v is not 0 or 1 + a held modality", i, d)
		}
	}
	if len(b.X) > nm || len(b.Teacher) > nm || len(b.Present) > nm {
		return StepStats{}, fmt.Errorf("model: batch for more than the model's %d modalities", nm)
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
	for _, m := range l.key.held.list() {
		d := e.arch.InputDims[m]
		if m >= len(b.X) || len(b.X[m]) != n*d {
			if m >= len(b.X) {
				return StepStats{}, fmt.Errorf("model: modality %q: no rows", e.arch.Modalities[m])
			}
			return StepStats{}, fmt.Errorf("model: modality %q: %d values for %d rows of width %d", e.arch.Modalities[m], len(b.X[m]), n, d)
		}
		copy(l.padX[m], b.X[m])
		clear(l.padX[m][n*d:])
		args = append(args, tensors.FromFlatDataAndDimensions(l.padX[m], e.batch, d))
	}
	for i := range e.batch {
		l.padY[i], l.padMask[i], l.padDir[i] = 0, 0, 0
		if i < n {
			y := b.Labels[i]
			if y < 0 || y >= e.arch.NumClasses {
				return StepStats{}, fmt.Errorf("model: label %d of row %d outside 0..%d", y, i, e.arch.NumClasses-1)
			}
			l.padY[i], l.padMask[i] = int32(y), 1
			if b.Dir != nil {
				l.padDir[i] = b.Dir[i]
			}
		}
	}
	if b.Temp != nil {
		copy(l.padTemp, b.Temp)
		for i := len(b.Temp); i < len(l.padTemp); i++ {
			l.padTemp[i] = 1
		}
	} else {
		for i := range l.padTemp {
			l.padTemp[i] = 1
		}
	}
	args = append(args, tensors.FromFlatDataAndDimensions(l.padY, e.batch), tensors.FromFlatDataAndDimensions(l.padMask, e.batch))
	if l.key.partial {
		for _, m := range l.key.held.list() {
			var present []float32
			if m < len(b.Present) {
				present = b.Present[m]
			}
			if present != nil && len(present) != n {
				return StepStats{}, fmt.Errorf("model: modality %q: presence of %d rows for %d", e.arch.Modalities[m], len(present), n)
			}
			pres := make([]float32, e.batch)
			for i := range n {
				pres[i] = 1
				if present != nil {
					pres[i] = present[i]
				}
			}
			args = append(args, tensors.FromFlatDataAndDimensions(pres, e.batch))
		}
	}
	if l.key.infil {
		args = append(args, tensors.FromFlatDataAndDimensions(l.padTemp, e.batch, nm, nm), tensors.FromFlatDataAndDimensions(l.padDir, e.batch))
	}
	if l.key.teacherIn {
		k := e.arch.NumClasses
		for _, m := range l.key.held.list() {
			if m >= len(b.Teacher) || len(b.Teacher[m]) != n*k {
				got := 0
				if m < len(b.Teacher) {
					got = len(b.Teacher[m])
				}
				return StepStats{}, fmt.Errorf("model: modality %q: %d teacher logits for %d rows of %d classes", e.arch.Modalities[m], got, n, k)
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
	args = append(args, tensors.FromFlatDataAndDimensions(l.hyper, len(l.hyper)))

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
		Loss: float64(tensors.ToScalar[float32](outs[2*nt])),
		SumP: make([]float64, nm),
		Rows: n,
	}
	for m := range nm {
		st.SumP[m] = float64(tensors.ToScalar[float32](outs[2*nt+1+m]))
	}
	next := 2*nt + 1 + nm
	if l.key.proto {
		st.Proto.SumA = float64(tensors.ToScalar[float32](outs[next]))
		st.Proto.SumV = float64(tensors.ToScalar[float32](outs[next+1]))
		next += 2
	}
	l.ext.consume(outs[next:], &st)
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
