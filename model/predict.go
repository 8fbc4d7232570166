package model

import (
	"math"
	"slices"

	"fmt"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // see network.go
	"github.com/gomlx/gomlx/core/tensors"
)

// Inference heads, in the order of Prediction.Preds (method note,
// "Inference outputs"): the fused head F over every modality's self
// embedding; per modality m, F with m alone (zeros in the other slots,
// HeadOnly); per modality m, F with m's self embedding in its slot and
// its infiltration embedding in every other (HeadBoth), what a client
// holding only m trains; with three or more modalities, per modality m,
// F with every self embedding but m's (zeros in slot m, HeadWithout): the
// fused accuracy when m is missing at test time (with two modalities that
// is the other's HeadOnly). With two modalities A, V: F(aa, vv), F(aa, 0),
// F(0, vv), F(aa, av), F(va, vv).
const HeadFused = 0

// NumHeads is the number of inference heads for nm modalities: 1 + 2 nm,
// and nm more (HeadWithout) for nm >= 3.
func NumHeads(nm int) int {
	if nm >= 3 {
		return 1 + 3*nm
	}
	return 1 + 2*nm
}

// HeadWithout is the index of the fused head with modality m missing, for
// nm modalities.
func HeadWithout(m, nm int) int {
	if nm == 2 {
		return HeadOnly(1 - m)
	}
	return 1 + 2*nm + m
}

// HeadOnly is the index of the head reading modality m alone.
func HeadOnly(m int) int { return 1 + m }

// HeadBoth is the index of the head of modality m with its infiltration
// embedding, for nm modalities.
func HeadBoth(m, nm int) int { return 1 + nm + m }

// HeadNames returns the metric names of the heads for the given modality
// names, in head order: "fused", "<m>_only" per modality, "<m>_both" per
// modality, and with three or more modalities "no_<m>" per modality.
func HeadNames(modalities []string) []string {
	out := []string{"fused"}
	for _, m := range modalities {
		out = append(out, m+"_only")
	}
	for _, m := range modalities {
		out = append(out, m+"_both")
	}
	if len(modalities) >= 3 {
		for _, m := range modalities {
			out = append(out, "no_"+m)
		}
	}
	return out
}

// HeadsWith returns the inference heads that read only the modalities
// present (has[m] for modality m), in head order: the fused head with all
// of them, a modality's "only" and "both" heads with it, and with three or
// more modalities the fused head without m with all but m.
func HeadsWith(has []bool) []int {
	nm := len(has)
	var out []int
	if !slices.Contains(has, false) {
		out = append(out, HeadFused)
	}
	for _, head := range []func(m int) int{HeadOnly, func(m int) int { return HeadBoth(m, nm) }} {
		for m := range nm {
			if has[m] {
				out = append(out, head(m))
			}
		}
	}
	if nm >= 3 {
		for m := range nm {
			others := slices.Clone(has)
			others[m] = true
			if !slices.Contains(others, false) {
				out = append(out, HeadWithout(m, nm))
			}
		}
	}
	return out
}

// Prediction holds the outputs of Predict for n rows.
type Prediction struct {
	// Preds[h][i] is the argmax class of head h for row i.
	Preds [][]int
	// Prob[m] holds the softmax outputs of modality m's self head
	// C_m(S_m(E_m(x_m))), row-major [n, K].
	Prob [][]float32
	// Logits[m] holds the same head's logits, [n, K]: the teacher's
	// outputs when these parameters are a round's start model.
	Logits [][]float32
	// LogitsFused are the fused head's logits, [n, K].
	LogitsFused []float32
}

// evalExec returns the evaluation graph, compiled for a block of rows rows
// (the engine's evalBatch or evalTail). Outputs: the heads' argmax
// classes, then per modality the self head's softmax, then its logits,
// then the fused logits.
func (e *Engine) evalExec(rows int) (*Exec, error) {
	return e.evalGraph("eval", &e.eval, rows, func(net *network, in []*Node) []*Node {
		nm := len(in)
		emb := make([]embeddings, nm)
		self := make([]*Node, nm)
		for m := range nm {
			emb[m] = net.embed(m, in[m], true)
			self[m] = emb[m].self
		}
		zero := ZerosLike(emb[0].self)
		fused := net.fuse(self...)
		heads := []*Node{fused}
		for m := range nm {
			heads = append(heads, net.fuseAlone(m, self[m], zero))
		}
		for m := range nm {
			heads = append(heads, net.fuseAlone(m, self[m], emb[m].inf))
		}
		if nm >= 3 {
			for m := range nm {
				slots := append([]*Node(nil), self...)
				slots[m] = zero
				heads = append(heads, net.fuse(slots...))
			}
		}
		out := make([]*Node, 0, len(heads)+2*nm+1)
		for _, h := range heads {
			out = append(out, ArgMax(h, -1, dtypes.Int32))
		}
		logits := make([]*Node, nm)
		for m := range nm {
			logits[m] = net.classify(m, self[m])
			out = append(out, Softmax(logits[m], -1))
		}
		out = append(out, logits...)
		return append(out, fused)
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
		return build(newNetwork(&e.arch, e.layout, in[:n], false), in[n:])
	})
	if err != nil {
		return nil, fmt.Errorf("model: %s graph: %w", name, err)
	}
	exec = exec.WithName(name).SetMaxCache(1)
	var in []shapes.Shape
	for _, info := range e.layout {
		in = append(in, shapes.Make(dtypes.Float32, info.Shape...))
	}
	for _, d := range e.arch.InputDims {
		in = append(in, shapes.Make(dtypes.Float32, rows, d))
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
// modality m, row-major [n, InputDims[m]]; a nil (or missing) x[m] means the modality is
// absent and is fed as zeros (only the heads that do not read it are then
// meaningful).
func (e *Engine) Predict(p Params, x [][]float32, n int) (*Prediction, error) {
	if err := e.checkEvalInput("predict", p, x, n); err != nil {
		return nil, err
	}
	k, nm := e.arch.NumClasses, e.arch.NumModalities()
	nh := NumHeads(nm)
	pred := &Prediction{Preds: make([][]int, nh), Prob: make([][]float32, nm), Logits: make([][]float32, nm), LogitsFused: make([]float32, 0, n*k)}
	for h := range nh {
		pred.Preds[h] = make([]int, 0, n)
	}
	for m := range nm {
		pred.Prob[m] = make([]float32, 0, n*k)
		pred.Logits[m] = make([]float32, 0, n*k)
	}
	err := e.runEval("predict", e.evalExec, p, x, n, func(lo, hi int, outs []*tensors.Tensor) {
		rows := hi - lo
		for h := range nh {
			cls := tensors.MustCopyFlatData[int32](outs[h])
			for _, c := range cls[:rows] {
				pred.Preds[h] = append(pred.Preds[h], int(c))
			}
		}
		for m := range nm {
			pred.Prob[m] = append(pred.Prob[m], tensors.MustCopyFlatData[float32](outs[nh+m])[:rows*k]...)
			pred.Logits[m] = append(pred.Logits[m], tensors.MustCopyFlatData[float32](outs[nh+nm+m])[:rows*k]...)
		}
		pred.LogitsFused = append(pred.LogitsFused, tensors.MustCopyFlatData[float32](outs[nh+2*nm])[:rows*k]...)
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
func (e *Engine) runEval(what string, graph func(rows int) (*Exec, error), p Params, x [][]float32, n int, use func(lo, hi int, outs []*tensors.Tensor)) error {
	params := toTensors(p)
	defer func() {
		for _, t := range params {
			t.FinalizeAll()
		}
	}()
	nm := e.arch.NumModalities()
	pad := make([][]float32, nm)
	for m := range nm {
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
		for m := range nm {
			w := e.arch.InputDims[m]
			block := pad[m][:rows*w]
			clear(block)
			if m < len(x) && x[m] != nil {
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
func (e *Engine) checkEvalInput(what string, p Params, x [][]float32, n int) error {
	if err := e.arch.Check(p); err != nil {
		return err
	}
	if len(x) > e.arch.NumModalities() {
		return fmt.Errorf("model: %s: rows of %d modalities, the model has %d", what, len(x), e.arch.NumModalities())
	}
	if n < 0 {
		return fmt.Errorf("model: %s: %d rows", what, n)
	}
	given := false
	for m := range x {
		given = given || x[m] != nil
	}
	if !given && n > 0 {
		// Nothing bounds n then: a huge one would allocate or loop for ever.
		return fmt.Errorf("model: %s: %d rows, but no modality's values", what, n)
	}
	for m := range x {
		if x[m] != nil && (n > math.MaxInt/e.arch.InputDims[m] || len(x[m]) != n*e.arch.InputDims[m]) {
			return fmt.Errorf("model: %s: modality %q: %d values for %d rows of width %d", what, e.arch.Modalities[m], len(x[m]), n, e.arch.InputDims[m])
		}
	}
	return nil
}
