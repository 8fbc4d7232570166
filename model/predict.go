package model

import (
	"fmt"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // see network.go
	"github.com/gomlx/gomlx/core/tensors"
)

// Inference heads, in the order of Prediction.Preds (method note, "Inference outputs").
const (
	HeadFused      = iota // F(aa, vv)
	HeadFirstOnly         // F(aa, 0)
	HeadSecondOnly        // F(0, vv)
	HeadFirstBoth         // F(aa, av)
	HeadSecondBoth        // F(va, vv)
	NumHeads
)

// HeadNames returns the metric names of the heads for the given modality
// names: "fused", "<A>_only", "<V>_only", "<A>_both", "<V>_both".
func HeadNames(modalities [2]string) [NumHeads]string {
	a, v := modalities[0], modalities[1]
	return [NumHeads]string{"fused", a + "_only", v + "_only", a + "_both", v + "_both"}
}

// Prediction holds the outputs of Predict for n rows.
type Prediction struct {
	// Preds[h][i] is the argmax class of head h for row i.
	Preds [NumHeads][]int
	// ProbFirst and ProbSecond are the softmax outputs of the self heads
	// C_A(aa) and C_V(vv), row-major [n, K].
	ProbFirst, ProbSecond []float32
	// LogitsFirst and LogitsSecond are the self heads' logits, [n, K]: the
	// teacher's outputs when these parameters are a round's start model.
	LogitsFirst, LogitsSecond []float32
	// LogitsFused are the fused head F(aa, vv)'s logits, [n, K].
	LogitsFused []float32
}

// evalExec returns the evaluation graph, compiled for a block of rows rows
// (the engine's evalBatch or evalTail).
func (e *Engine) evalExec(rows int) (*Exec, error) {
	return e.evalGraph("eval", &e.eval, rows, func(net *network, in []*Node) []*Node {
		ea := net.embed(0, in[0], true)
		ev := net.embed(1, in[1], true)
		zero := ZerosLike(ea.self)
		heads := [NumHeads]*Node{
			net.fuse(ea.self, ev.self),
			net.fuse(ea.self, zero),
			net.fuse(zero, ev.self),
			net.fuse(ea.self, ea.inf),
			net.fuse(ev.inf, ev.self),
		}
		out := make([]*Node, 0, NumHeads+5)
		for _, h := range heads {
			out = append(out, ArgMax(h, -1, dtypes.Int32))
		}
		la, lv := net.classify(0, ea.self), net.classify(1, ev.self)
		return append(out, Softmax(la, -1), Softmax(lv, -1), la, lv, net.fuse(ea.self, ev.self))
	})
}

// evalGraphs is one evaluation graph compiled at the two block sizes
// runEval uses.
type evalGraphs struct {
	full, tail *Exec
}

// evalGraph returns the graph of cache for blocks of rows rows (evalBatch
// or evalTail), compiling it first if needed: a graph over the parameters
// and one block of each modality, whose outputs build computes from the
// network and the two blocks (runEval runs it). name names the graph in
// errors and compile times.
func (e *Engine) evalGraph(name string, cache *evalGraphs, rows int, build func(net *network, in []*Node) []*Node) (*Exec, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	slot := &cache.full
	if rows != e.evalBatch {
		slot, name = &cache.tail, fmt.Sprintf("%s[%d rows]", name, rows)
	}
	if *slot != nil {
		return *slot, nil
	}
	exec, err := NewExec(e.backend, func(g *Graph, in []*Node) []*Node {
		n := len(e.layout)
		return build(newNetwork(&e.arch, e.layout, in[:n]), in[n:])
	})
	if err != nil {
		return nil, fmt.Errorf("model: %s graph: %w", name, err)
	}
	exec = exec.WithName(name).SetMaxCache(1)
	var in []shapes.Shape
	for _, info := range e.layout {
		in = append(in, shapes.Make(dtypes.Float32, info.Shape...))
	}
	for m := range 2 {
		in = append(in, shapes.Make(dtypes.Float32, rows, e.arch.InputDims[m]))
	}
	t0 := time.Now()
	if err := compile(exec, in); err != nil {
		return nil, fmt.Errorf("model: compile %s graph: %w", name, err)
	}
	e.compiled[name] = time.Since(t0)
	*slot = exec
	return exec, nil
}

// evalBlock returns the rows of the next block of an evaluation with rem
// rows left: a full block, or evalTail rows when at most half a full block
// is left (less padding for one more, small graph).
func (e *Engine) evalBlock(rem int) int {
	if rem <= e.evalBatch/2 && evalTail < e.evalBatch {
		return evalTail
	}
	return e.evalBatch
}

// Predict runs every inference head on n rows. x[m] holds the rows of
// modality m, row-major [n, InputDims[m]]; a nil x[m] means the modality is
// absent and is fed as zeros (only the heads that do not read it are then
// meaningful).
func (e *Engine) Predict(p Params, x [2][]float32, n int) (*Prediction, error) {
	if err := e.checkEvalInput("predict", p, x, n); err != nil {
		return nil, err
	}
	k := e.arch.NumClasses
	pred := &Prediction{
		ProbFirst: make([]float32, 0, n*k), ProbSecond: make([]float32, 0, n*k),
		LogitsFirst: make([]float32, 0, n*k), LogitsSecond: make([]float32, 0, n*k), LogitsFused: make([]float32, 0, n*k),
	}
	for h := range NumHeads {
		pred.Preds[h] = make([]int, 0, n)
	}
	err := e.runEval("predict", e.evalExec, p, x, n, func(lo, hi int, outs []*tensors.Tensor) {
		rows := hi - lo
		for h := range NumHeads {
			cls := tensors.MustCopyFlatData[int32](outs[h])
			for _, c := range cls[:rows] {
				pred.Preds[h] = append(pred.Preds[h], int(c))
			}
		}
		pred.ProbFirst = append(pred.ProbFirst, tensors.MustCopyFlatData[float32](outs[NumHeads])[:rows*k]...)
		pred.ProbSecond = append(pred.ProbSecond, tensors.MustCopyFlatData[float32](outs[NumHeads+1])[:rows*k]...)
		pred.LogitsFirst = append(pred.LogitsFirst, tensors.MustCopyFlatData[float32](outs[NumHeads+2])[:rows*k]...)
		pred.LogitsSecond = append(pred.LogitsSecond, tensors.MustCopyFlatData[float32](outs[NumHeads+3])[:rows*k]...)
		pred.LogitsFused = append(pred.LogitsFused, tensors.MustCopyFlatData[float32](outs[NumHeads+4])[:rows*k]...)
	})
	if err != nil {
		return nil, err
	}
	return pred, nil
}

// runEval runs an evaluation graph over the parameters and one block of
// each modality (graph returns it compiled for a block size) over the n
// rows of x (checked by checkEvalInput) with parameters p: full blocks of
// evalBatch rows, the rest in evalTail-row blocks when that is at most half
// a full block (evalBlock); a nil x[m] is fed as zeros and the last block
// is zero-padded. It calls use with each block's rows lo..hi and the
// graph's outputs, which it finalizes after use returns; what names the
// caller in errors.
func (e *Engine) runEval(what string, graph func(rows int) (*Exec, error), p Params, x [2][]float32, n int, use func(lo, hi int, outs []*tensors.Tensor)) error {
	params := toTensors(p)
	defer func() {
		for _, t := range params {
			t.FinalizeAll()
		}
	}()
	var pad [2][]float32
	for m := range 2 {
		pad[m] = make([]float32, e.evalBatch*e.arch.InputDims[m])
	}
	for lo := 0; lo < n; {
		rows := e.evalBlock(n - lo)
		exec, err := graph(rows)
		if err != nil {
			return err
		}
		hi := min(lo+rows, n)
		args := make([]any, 0, len(params)+2)
		for _, t := range params {
			args = append(args, t)
		}
		for m := range 2 {
			w := e.arch.InputDims[m]
			block := pad[m][:rows*w]
			clear(block)
			if x[m] != nil {
				copy(block, x[m][lo*w:hi*w])
			}
			args = append(args, tensors.FromFlatDataAndDimensions(block, rows, w))
		}
		outs, err := exec.Exec(args...)
		for _, a := range args[len(params):] {
			a.(*tensors.Tensor).FinalizeAll()
		}
		if err != nil {
			return fmt.Errorf("model: %s: %w", what, err)
		}
		use(lo, hi, outs)
		for _, t := range outs {
			t.FinalizeAll()
		}
		lo = hi
	}
	return nil
}

// checkEvalInput checks p against the architecture and that each given
// x[m] holds n rows of its modality's width; what names the caller.
func (e *Engine) checkEvalInput(what string, p Params, x [2][]float32, n int) error {
	if err := e.arch.Check(p); err != nil {
		return err
	}
	for m := range 2 {
		if x[m] != nil && len(x[m]) != n*e.arch.InputDims[m] {
			return fmt.Errorf("model: %s: modality %q: %d values for %d rows of width %d", what, e.arch.Modalities[m], len(x[m]), n, e.arch.InputDims[m])
		}
	}
	return nil
}
