package model

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"strings"
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
// value never recompiles. A term's own coefficients are its own inputs
// (term.go); the optimiser's (learning rate, weight decay, momentum) are
// the host's (sgd.go).
const (
	hypC1    = iota
	hypFused // weight of the fused head's CE on multimodal clients (1)
	// hypSelf + m is the extra weight of modality m's self-head CE, times
	// C1 (1); the hyper input has hypSelf + M slots.
	hypSelf
)

// numHyper is the length of the hyper input for M modalities.
func numHyper(nm int) int { return hypSelf + nm }

// TrainConfig says what one client's local training optimises: the base
// losses every method shares, and the methods' terms.
type TrainConfig struct {
	// Has tells which modalities the client holds, one entry per modality.
	// Two or more: the multimodal loss CE(F(held self embeddings, zeros
	// for the others)) + C1 * sum over held m of CE(C_m(self_m)); one: CE
	// of F with that modality's self embedding in its slot and its
	// infiltration embedding in every other.
	Has []bool
	// C1 weights the unimodal self-head CE terms of multimodal clients (default 2).
	C1 float64
	// HeadWeights, if not nil, scales the multimodal loss's terms: the
	// fused head's CE by HeadWeights[0] and modality m's self head's by C1
	// times HeadWeights[1+m] (gradient blending, fl/gradblend.go); nil is
	// all ones. Multiplying by 1 is exact, so nil changes nothing.
	HeadWeights []float64
	// PartialRows says that rows of this multimodal client may lack a
	// modality (Batch.Present): a missing side's embedding enters the fused
	// head as zeros, its self head's loss skips the row, and the terms and
	// the dominance sums use the rows holding every held modality. Not
	// with OGM-GE, the prototype loss or Harmony's first stage.
	PartialRows bool
	// WeightDecay is SGD's L2 coefficient (default 1e-4).
	WeightDecay float64
	// Momentum is SGD's momentum (default 0.9); buffers start at zero each round.
	Momentum float64
	// Terms are the methods' parts of the step (term.go), added in order:
	// FedCMI's Infiltration, Proximal, ScaffoldCorrection, OGMGE,
	// PrototypeLoss, HarmonyStage1.
	Terms []Term
	// PartLR scales the learning rate of the parameters of the parts it
	// names (PartEncoder, PartSelf, ...); the others train at the step's
	// rate. nil: every part at the step's rate. (Harmony's fusion stage
	// fine-tunes the encoders at a tenth of it.)
	PartLR map[string]float64
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
	for m := range MaxModalities {
		if h.has(m) {
			out = append(out, m)
		}
	}
	return out
}

// stepKey identifies one compiled training graph.
type stepKey struct {
	held heldSet
	// partial: rows of a multimodal client may lack a modality
	// (Batch.Present are inputs).
	partial bool
	// terms joins the active terms' keys, in order.
	terms string
}

func (k stepKey) String() string {
	partial := ""
	if k.partial {
		partial = " partial_rows=true"
	}
	return fmt.Sprintf("step[held=%b terms=[%s]%s]", k.held, k.terms, partial)
}

// keyOf returns the graph key of a spec.
func keyOf(s *stepSpec) stepKey {
	return stepKey{held: s.held, partial: s.partial, terms: strings.Join(s.keys, ",")}
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

// stepGraph is a compiled training step, the parameters it updates and
// how many extra outputs each of its terms has.
type stepGraph struct {
	exec      *Exec
	trainable []int // indices into layout
	termOuts  []int
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

// trainable lists the parameters a step updates for a client holding h,
// unless a term chooses (Harmony's first stage). A multimodal client
// updates every parameter of its held modalities and the fusion head: in
// the reference model both projectors of a modality feed its classifier in
// one call, so the infiltration projectors get a (zero) gradient, and with
// it weight decay and momentum, even without infiltration. A unimodal
// client updates its modality's encoder and projectors and the fusion
// head, what its loss CE(F(self, infiltration)) reaches; the other
// modalities and its own classifier get no gradient and, as in PyTorch's
// SGD, are left untouched.
func (e *Engine) trainable(h heldSet) []int {
	var idx []int
	for i, info := range e.layout {
		if info.Side == -1 || h.has(info.Side) && (h.multi() || info.Part != PartClassifier) {
			idx = append(idx, i)
		}
	}
	return idx
}

// stepInputShapes lists the input shapes of a step graph, in order:
// params, start params (if a term reads them), held
// modality inputs, labels, mask, the held modalities' row presence (if
// partial), each term's inputs, hyper.
func (e *Engine) stepInputShapes(s *stepSpec) []shapes.Shape {
	var sh []shapes.Shape
	for _, info := range e.layout {
		sh = append(sh, shapes.Make(dtypes.Float32, info.Shape...))
	}
	if s.readsStart() {
		for _, info := range e.layout {
			sh = append(sh, shapes.Make(dtypes.Float32, info.Shape...))
		}
	}
	held := s.held.list()
	for _, m := range held {
		sh = append(sh, shapes.Make(dtypes.Float32, e.batch, e.arch.InputDims[m]))
	}
	sh = append(sh, shapes.Make(dtypes.Int32, e.batch), shapes.Make(dtypes.Float32, e.batch))
	if s.partial {
		for range held {
			sh = append(sh, shapes.Make(dtypes.Float32, e.batch))
		}
	}
	for _, t := range s.terms {
		sh = append(sh, t.inputs(s)...)
	}
	return append(sh, shapes.Make(dtypes.Float32, numHyper(e.arch.NumModalities())))
}

// stepFn builds the training step graph of s: forward, the base losses and
// the terms, and the gradient with the terms' hooks. The optimiser step is
// the host's (Local.Step, sgd.go). Outputs: the gradient of each trainable
// parameter, loss, then per modality the sum of its self head's true-class
// probability p_m(y) over the real rows holding every held modality (zero
// for a unimodal client), then each term's extra outputs; termOuts gets
// their counts.
func (e *Engine) stepFn(s *stepSpec, termOuts *[]int) func(g *Graph, in []*Node) []*Node {
	nm := e.arch.NumModalities()
	held := s.held.list()
	trainable := s.trainable
	return func(g *Graph, in []*Node) []*Node {
		n := len(e.layout)
		b := &stepBuild{spec: s, g: g, params: in[:n]}
		rest := in[n:]
		if s.readsStart() {
			b.start, rest = rest[:n], rest[n:]
		}
		b.x = make([]*Node, nm)
		for _, m := range held {
			b.x[m], rest = rest[0], rest[1:]
		}
		var labels *Node
		labels, b.mask, rest = rest[0], rest[1], rest[2:]
		b.pres = make([]*Node, nm)
		if s.partial {
			for _, m := range held {
				b.pres[m], rest = rest[0], rest[1:]
			}
		}
		termIn := make([][]*Node, len(s.terms))
		for k, t := range s.terms {
			c := len(t.inputs(s))
			termIn[k], rest = rest[:c], rest[c:]
		}
		hyper := rest[0]
		hp := func(i int) *Node { return Reshape(Slice(hyper, AxisRange(i, i+1))) }

		b.net = newNetwork(&e.arch, e.layout, b.params, true)
		b.onehot = OneHot(labels, e.arch.NumClasses, dtypes.Float32)
		zero := ScalarZero(g, dtypes.Float32)
		b.sums = make([]*Node, nm)
		for m := range b.sums {
			b.sums[m] = zero
		}
		b.z = make([]*Node, nm)
		switch r := s.replacer(); {
		case r != nil:
			b.loss, b.sums = r.baseLoss(b)
		case s.held.multi():
			e.multimodalLoss(b, hp)
		default:
			m := held[0]
			em := b.net.embed(m, b.x[m], true)
			b.z[m] = em.self
			b.loss = maskedMean(crossEntropy(b.net.fuseAlone(m, em.self, em.inf), b.onehot), b.mask)
		}
		b.outs = make([][]*Node, len(s.terms))
		for k, t := range s.terms {
			b.cur = k
			t.build(b, termIn[k])
		}

		wrt := make([]*Node, len(trainable))
		for j, i := range trainable {
			wrt[j] = b.params[i]
		}
		grads := Gradient(b.loss, wrt...)
		for _, f := range b.gradMods {
			grads = f(grads)
		}
		out := make([]*Node, 0, len(trainable)+1+nm+4)
		out = append(out, grads...)
		out = append(out, b.loss)
		out = append(out, b.sums...)
		*termOuts = (*termOuts)[:0]
		for _, o := range b.outs {
			out = append(out, o...)
			*termOuts = append(*termOuts, len(o))
		}
		return out
	}
}

// multimodalLoss builds the base losses of a multimodal client into b:
// CE(F(held self embeddings, zeros elsewhere)) + C1 sum over held m of
// CE(C_m(self_m)), each term at its head weight, and the dominance sums.
func (e *Engine) multimodalLoss(b *stepBuild, hp func(int) *Node) {
	s := b.spec
	nm := e.arch.NumModalities()
	held := s.held.list()
	withInf := s.readsInfiltration()
	b.emb = make([]embeddings, nm)
	// logits[m] are modality m's self-head logits; masks[m] the real
	// rows holding it.
	logits, masks := make([]*Node, nm), make([]*Node, nm)
	slots := make([]*Node, nm)
	// Without partial rows every mask below is mask itself.
	for _, m := range held {
		b.emb[m] = b.net.embed(m, b.x[m], withInf)
		b.z[m] = b.emb[m].self
		logits[m] = b.net.classify(m, b.emb[m].self)
		slots[m], masks[m] = b.emb[m].self, b.mask
		if s.partial {
			slots[m] = Mul(b.emb[m].self, Reshape(b.pres[m], e.batch, 1))
			masks[m] = Mul(b.mask, b.pres[m])
		}
		switch {
		case b.maskAll == nil:
			b.maskAll = masks[m]
		case s.partial:
			b.maskAll = Mul(b.maskAll, b.pres[m])
		}
	}
	for m := range slots {
		if slots[m] == nil { // not held: an absent modality enters F as zeros
			slots[m] = ZerosLike(b.emb[held[0]].self)
		}
	}
	b.loss = Mul(hp(hypFused), maskedMean(crossEntropy(b.net.fuse(slots...), b.onehot), b.mask))
	var uni *Node
	for _, m := range held {
		t := Mul(hp(hypSelf+m), maskedMean(crossEntropy(logits[m], b.onehot), masks[m]))
		if uni == nil {
			uni = t
		} else {
			uni = Add(uni, t)
		}
		b.sums[m] = StopGradient(ReduceAllSum(Mul(trueClassProb(logits[m], b.onehot), b.maskAll)))
	}
	b.loss = Add(b.loss, Mul(hp(hypC1), uni))
}

// step returns the compiled graph of spec s, compiling it on first use.
func (e *Engine) step(s *stepSpec) (*stepGraph, error) {
	key := keyOf(s)
	e.mu.Lock()
	defer e.mu.Unlock()
	if sg, ok := e.steps[key]; ok {
		return sg, nil
	}
	sg := &stepGraph{trainable: s.trainable}
	exec, err := NewExec(e.backend, e.stepFn(s, &sg.termOuts))
	if err != nil {
		return nil, fmt.Errorf("model: %s: %w", key, err)
	}
	exec = exec.WithName(key.String()).SetMaxCache(1)
	t0 := time.Now()
	if err := compile(exec, e.stepInputShapes(s)); err != nil {
		return nil, fmt.Errorf("model: compile %s: %w", key, err)
	}
	e.compiled[key.String()] = time.Since(t0)
	slog.Debug("compiled training graph", "graph", key.String(), "took", time.Since(t0))
	sg.exec = exec
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
	// Present says, per modality and row, whether the row has that
	// modality (1) or not (0; its features should be zeros), for sessions
	// with TrainConfig.PartialRows; nil means every row has it.
	Present [][]float32
	// Temp, Dir and Teacher are FedCMI's per-row inputs (Infiltration):
	// Temp holds per-row distillation temperatures for each (teacher,
	// student) pair of modalities, row-major [n, M, M]:
	// Temp[(i*M+t)*M+s] is row i's temperature when modality t's self
	// head teaches modality s's infiltration head (the class-wise T_{y_i}
	// of that pair); nil means 1.
	Temp []float32
	// Dir holds per-row teacher choices: m+1 makes modality m the row's
	// teacher, 0 lets the batch's dominance decide (the method's rule:
	// the held modality with the largest sum of true-class probabilities).
	// nil means all 0.
	Dir []float32
	// Teacher holds the frozen teacher's self-head logits of each held
	// modality, row-major [n, NumClasses], for Infiltration with teacher
	// inputs.
	Teacher [][]float32
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
	// batch when OGMGE is on, else zero.
	OGMCoef [2]float64
	// Proto holds the prototype loss's measurements (zero without it).
	Proto ProtoStats
}

// Local is one client's local training session: parameters, optimiser
// state and the frozen start-of-round model live in the engine between
// steps. It is not safe for concurrent use.
type Local struct {
	e     *Engine
	spec  *stepSpec
	key   stepKey
	graph *stepGraph
	// params are the parameters, in buffers the backend reads in place
	// and the optimiser (sgd.go) updates in place where it can share them.
	params []*tensors.Tensor
	// mom is the momentum of each trainable parameter.
	mom   [][]float32
	start []*tensors.Tensor
	// anchors[i] is the proximal term's anchor of layout tensor i (nil
	// without the term) and mu its coefficient.
	anchors [][]float32
	mu      float32
	// corr[j] is added to trainable parameter j's gradient before the
	// optimiser (SCAFFOLD's correction; nil without it).
	corr [][]float32
	// lrScale[j] scales the learning rate of trainable parameter j
	// (TrainConfig.PartLR; nil: all 1).
	lrScale  []float64
	hyper    []float32
	wd, beta float32
	terms    []termSession
	// pads holds reusable host buffers for padded inputs.
	padX     [][]float32
	padY     []int32
	padMask  []float32
	finished bool
}

// NewLocal starts local training from start, the model the client
// received this round, which is also the frozen teacher and the proximal
// anchor.
func (e *Engine) NewLocal(start Params, cfg TrainConfig) (*Local, error) {
	return e.NewLocalFrom(start, start, cfg)
}

// NewLocalFrom starts local training from params with global as the frozen
// teacher and the proximal anchor. They differ for a client that keeps
// personal parts: it trains its own, and the model it received (with the
// server's average of those parts) teaches and anchors it, as in the
// method.
func (e *Engine) NewLocalFrom(params, global Params, cfg TrainConfig) (*Local, error) {
	if err := e.arch.Check(params); err != nil {
		return nil, fmt.Errorf("model: start parameters: %w", err)
	}
	if !sameParams(params, global) {
		if err := e.arch.Check(global); err != nil {
			return nil, fmt.Errorf("model: start parameters: %w", err)
		}
	}
	nm := e.arch.NumModalities()
	h, err := cfg.heldOf(nm)
	if err != nil {
		return nil, err
	}
	spec, err := e.newStepSpec(h, cfg.PartialRows && h.multi(), cfg.Terms)
	if err != nil {
		return nil, err
	}
	sg, err := e.step(spec)
	if err != nil {
		return nil, err
	}
	l := &Local{e: e, spec: spec, key: keyOf(spec), graph: sg}
	for _, t := range spec.terms {
		ts, err := t.session(spec)
		if err != nil {
			return nil, err
		}
		l.terms = append(l.terms, ts)
	}
	if l.params, err = e.sharedTensors(params); err != nil {
		return nil, err
	}
	if spec.readsStart() {
		l.start = toTensors(global)
	}
	for _, ts := range l.terms {
		if c, ok := ts.(corrector); ok {
			l.corr = c.corrections()
		}
		if a, ok := ts.(anchorer); ok {
			l.mu = a.coefficient()
			l.anchors = make([][]float32, len(global))
			for i := range global {
				l.anchors[i] = global[i].Data
			}
		}
	}
	for _, i := range sg.trainable {
		l.mom = append(l.mom, make([]float32, e.layout[i].Size()))
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"C1", cfg.C1}, {"weight decay", cfg.WeightDecay}, {"momentum", cfg.Momentum}} {
		// A NaN here turns every parameter NaN at the first step.
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return nil, fmt.Errorf("model: %s is %v, want a finite number", f.name, f.v)
		}
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
	l.wd, l.beta = float32(cfg.WeightDecay), float32(cfg.Momentum)
	for part, v := range cfg.PartLR {
		if !(v >= 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("model: learning-rate scale of %s is %v, want finite and >= 0", part, v)
		}
	}
	if cfg.PartLR != nil {
		l.lrScale = make([]float64, len(sg.trainable))
		for j, i := range sg.trainable {
			l.lrScale[j] = 1
			if v, ok := cfg.PartLR[e.layout[i].Part]; ok {
				l.lrScale[j] = v
			}
		}
	}
	l.padX = make([][]float32, nm)
	for _, m := range h.list() {
		l.padX[m] = make([]float32, e.batch*e.arch.InputDims[m])
	}
	l.padY = make([]int32, e.batch)
	l.padMask = make([]float32, e.batch)
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
	if !(lr >= 0) || math.IsInf(lr, 0) {
		return StepStats{}, fmt.Errorf("model: learning rate %v, want finite and >= 0", lr)
	}
	nm := e.arch.NumModalities()
	if len(b.X) > nm || len(b.Teacher) > nm || len(b.Present) > nm {
		return StepStats{}, fmt.Errorf("model: batch for more than the model's %d modalities", nm)
	}
	args := make([]any, 0, len(l.params)+len(l.start)+8)
	for _, t := range l.params {
		args = append(args, t)
	}
	for _, t := range l.start {
		args = append(args, t)
	}
	fixed := len(args)
	// free releases the per-step inputs now rather than at the garbage
	// collector's leisure (on an accelerator they hold device memory).
	free := func() {
		for _, a := range args[fixed:] {
			a.(*tensors.Tensor).FinalizeAll()
		}
	}
	fail := func(err error) (StepStats, error) {
		free()
		return StepStats{}, err
	}
	for _, m := range l.spec.held.list() {
		d := e.arch.InputDims[m]
		if m >= len(b.X) || len(b.X[m]) != n*d {
			if m >= len(b.X) {
				return fail(fmt.Errorf("model: modality %q: no rows", e.arch.Modalities[m]))
			}
			return fail(fmt.Errorf("model: modality %q: %d values for %d rows of width %d", e.arch.Modalities[m], len(b.X[m]), n, d))
		}
		copy(l.padX[m], b.X[m])
		clear(l.padX[m][n*d:])
		args = append(args, tensors.FromFlatDataAndDimensions(l.padX[m], e.batch, d))
	}
	for i := range e.batch {
		l.padY[i], l.padMask[i] = 0, 0
		if i < n {
			y := b.Labels[i]
			if y < 0 || y >= e.arch.NumClasses {
				return fail(fmt.Errorf("model: label %d of row %d outside 0..%d", y, i, e.arch.NumClasses-1))
			}
			l.padY[i], l.padMask[i] = int32(y), 1
		}
	}
	args = append(args, tensors.FromFlatDataAndDimensions(l.padY, e.batch), tensors.FromFlatDataAndDimensions(l.padMask, e.batch))
	if l.spec.partial {
		for _, m := range l.spec.held.list() {
			var present []float32
			if m < len(b.Present) {
				present = b.Present[m]
			}
			if present != nil && len(present) != n {
				return fail(fmt.Errorf("model: modality %q: presence of %d rows for %d", e.arch.Modalities[m], len(present), n))
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
	for k, ts := range l.terms {
		targs, err := ts.args(&b, n)
		for _, t := range targs {
			args = append(args, t)
		}
		if err != nil {
			return fail(fmt.Errorf("model: %s: %s: %w", l.key, l.spec.keys[k], err))
		}
	}
	args = append(args, tensors.FromFlatDataAndDimensions(l.hyper, len(l.hyper)))

	outs, err := l.graph.exec.Exec(args...)
	free()
	if err != nil {
		return StepStats{}, fmt.Errorf("model: %s: %w", l.key, err)
	}
	defer func() {
		for _, t := range outs {
			t.FinalizeAll()
		}
	}()
	nt := len(l.graph.trainable)
	st := StepStats{
		Loss: float64(tensors.ToScalar[float32](outs[nt])),
		SumP: make([]float64, nm),
		Rows: n,
	}
	// Checked before the update: a NaN gradient would leave every
	// parameter NaN, and the session useless after one bad batch.
	if math.IsNaN(st.Loss) || math.IsInf(st.Loss, 0) {
		return st, fmt.Errorf("model: training loss is %v, parameters left as they were (diverged; try a lower learning rate or standardised features)", st.Loss)
	}
	for j, i := range l.graph.trainable {
		r := lr
		if l.lrScale != nil {
			r *= l.lrScale[j]
		}
		if err := l.update(j, i, outs[j], float32(r)); err != nil {
			return StepStats{}, fmt.Errorf("model: %s: %s: %w", l.key, e.layout[i].Name, err)
		}
	}
	for m := range nm {
		st.SumP[m] = float64(tensors.ToScalar[float32](outs[nt+1+m]))
	}
	next := nt + 1 + nm
	for k, ts := range l.terms {
		c := l.graph.termOuts[k]
		ts.consume(outs[next:next+c], &st)
		next += c
	}
	return st, nil
}

// update applies the optimiser step to trainable parameter j (layout
// index i) with its gradient grad (sgd.go), in place where the backend
// shares its buffers with the host.
func (l *Local) update(j, i int, grad *tensors.Tensor, lr float32) error {
	g, err := flatData(l.e, grad)
	if err != nil {
		return err
	}
	if l.corr != nil {
		for k, c := range l.corr[j] {
			g[k] += c
		}
	}
	var anchor []float32
	if l.anchors != nil {
		anchor = l.anchors[i]
	}
	return tensors.MutableFlatData(l.params[i], func(w []float32) {
		sgdStep(w, l.mom[j], g, anchor, lr, l.wd, l.beta, l.mu)
	})
}

// flatData returns the values of an output tensor: the backend's buffer
// itself where it shares its memory with the host, else a copy.
func flatData(e *Engine, t *tensors.Tensor) ([]float32, error) {
	if e.backend.HasSharedBuffers() {
		if buf, err := t.Buffer(e.backend, 0); err == nil {
			if flat, err := buf.Data(); err == nil {
				if f, ok := flat.([]float32); ok {
					return f, nil
				}
			}
		}
	}
	return tensors.CopyFlatData[float32](t)
}

// sharedTensors returns p as tensors in buffers the backend shares with the
// host where it can (the optimiser then updates them in place), else as
// host tensors.
func (e *Engine) sharedTensors(p Params) ([]*tensors.Tensor, error) {
	out := make([]*tensors.Tensor, len(p))
	for i, t := range p {
		st, err := tensors.FromShapeForBackend(e.backend, 0, shapes.Make(dtypes.Float32, t.Shape...))
		if err != nil {
			return nil, fmt.Errorf("model: parameter %s: %w", t.Name, err)
		}
		tensors.MustMutableFlatData(st, func(flat []float32) { copy(flat, t.Data) })
		out[i] = st
	}
	return out, nil
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
	for _, ts := range [][]*tensors.Tensor{l.params, l.start} {
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
