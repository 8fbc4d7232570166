package model

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // see network.go
	"github.com/gomlx/gomlx/core/tensors"
)

// A Term is one method's part of a training step, beside the base losses
// every method shares (engine.go): its loss terms or gradient
// transformation in the step graph, its per-step inputs and outputs, and
// their host side. Each lives in its method's file: Infiltration
// (infiltration.go), Proximal (prox.go), ScaffoldCorrection (scaffold.go),
// OGMGE (ogm.go), PrototypeLoss (prototype.go), HarmonyStage1
// (harmony.go). TrainConfig.Terms lists a session's terms; the engine
// compiles one step graph per held set and list of term keys, so values
// that are inputs (a coefficient, a correction) never recompile.
//
// A new method's graph code is a new type here implementing Term; the
// engine does not change.
type Term interface {
	// key identifies the term's graph for the session s; "" means the
	// term does nothing for this client (e.g. infiltration on a client
	// of one modality) and is dropped.
	key(s *stepSpec) string
	// check reports why the term cannot run in session s, if it cannot.
	check(s *stepSpec) error
	// inputs lists the shapes of the term's per-step inputs.
	inputs(s *stepSpec) []shapes.Shape
	// build adds the term to the step graph; in holds its inputs.
	build(b *stepBuild, in []*Node)
	// session returns the term's host side for one Local.
	session(s *stepSpec) (termSession, error)
}

// termSession is a term's host side in one Local session.
type termSession interface {
	// args returns the term's inputs of a step on the n rows of b (the
	// caller frees them).
	args(b *Batch, n int) ([]*tensors.Tensor, error)
	// consume reads the term's outputs of a step into st (the caller
	// frees them).
	consume(outs []*tensors.Tensor, st *StepStats)
}

// noInputs is the host side of a term without per-step inputs or
// outputs.
type noInputs struct{}

func (noInputs) args(*Batch, int) ([]*tensors.Tensor, error) { return nil, nil }
func (noInputs) consume([]*tensors.Tensor, *StepStats)       {}

// Optional parts of a Term.
type (
	// startReader is a Term that reads the start-of-round parameters.
	startReader interface{ readsStart(s *stepSpec) bool }
	// infReader is a Term that reads the infiltration embeddings of a
	// multimodal client's held modalities.
	infReader interface{ readsInfiltration() bool }
	// baseReplacer is a Term that replaces the base losses (and the sums
	// of the self heads' true-class probabilities) and the set of
	// parameters a step trains: Harmony's first stage.
	baseReplacer interface {
		baseLoss(b *stepBuild) (loss *Node, sums []*Node)
		trainable(s *stepSpec) []int
	}
	// gradientOnly is a Term that adds no loss, only changes gradients
	// (SCAFFOLD's correction, the proximal term): it combines with a
	// baseReplacer.
	gradientOnly interface{ gradientOnly() }
)

// stepSpec is what a step graph is built for: the engine, the client's
// modalities, whether its rows may lack some, and the active terms.
type stepSpec struct {
	e       *Engine
	held    heldSet
	partial bool
	terms   []Term
	keys    []string
	// trainable lists the layout indices the step updates.
	trainable []int
}

// readsStart reports whether some term reads the start parameters.
func (s *stepSpec) readsStart() bool {
	for _, t := range s.terms {
		if r, ok := t.(startReader); ok && r.readsStart(s) {
			return true
		}
	}
	return false
}

// readsInfiltration reports whether some term reads the infiltration
// embeddings.
func (s *stepSpec) readsInfiltration() bool {
	for _, t := range s.terms {
		if r, ok := t.(infReader); ok && r.readsInfiltration() {
			return true
		}
	}
	return false
}

// replacer returns the term replacing the base losses, if any.
func (s *stepSpec) replacer() baseReplacer {
	for _, t := range s.terms {
		if r, ok := t.(baseReplacer); ok {
			return r
		}
	}
	return nil
}

// newStepSpec returns the spec of a session holding h with terms (those
// whose key is empty for it dropped), checked.
func (e *Engine) newStepSpec(h heldSet, partial bool, terms []Term) (*stepSpec, error) {
	s := &stepSpec{e: e, held: h, partial: partial}
	var replacers []string // the keys of terms replacing the base loss
	for _, t := range terms {
		if t == nil {
			return nil, errors.New("model: nil term")
		}
		k := t.key(s)
		if k == "" {
			continue
		}
		if strings.ContainsAny(k, ",[]") {
			return nil, fmt.Errorf("model: term key %q", k)
		}
		s.terms = append(s.terms, t)
		s.keys = append(s.keys, k)
		if _, ok := t.(baseReplacer); ok {
			replacers = append(replacers, k)
		}
	}
	if len(replacers) > 1 || len(replacers) == 1 && !onlyGradientTerms(s) {
		return nil, fmt.Errorf("model: terms %s: a term that replaces the base loss (%s) cannot be combined with loss terms", strings.Join(s.keys, ", "), strings.Join(replacers, ", "))
	}
	for _, t := range s.terms {
		if err := t.check(s); err != nil {
			return nil, err
		}
	}
	if r := s.replacer(); r != nil {
		s.trainable = r.trainable(s)
	} else {
		s.trainable = e.trainable(h)
	}
	return s, nil
}

// onlyGradientTerms reports whether every term beside the base replacer
// only transforms gradients.
func onlyGradientTerms(s *stepSpec) bool {
	for _, t := range s.terms {
		switch t.(type) {
		case baseReplacer, gradientOnly:
		default:
			return false
		}
	}
	return true
}

// stepBuild is the step graph under construction, what terms read and
// extend: the network, inputs, embeddings, logits and masks of the base
// losses, the loss so far, and the gradient hooks and extra outputs.
type stepBuild struct {
	spec   *stepSpec
	g      *Graph
	net    *network
	params []*Node
	// start holds the start-of-round parameters (nil unless a term reads
	// them).
	start []*Node
	// x holds the inputs of the held modalities (nil for the others);
	// pres their row presence (partial sessions only).
	x, pres      []*Node
	onehot, mask *Node
	// maskAll are the real rows holding every held modality (multimodal
	// clients).
	maskAll *Node
	// emb are the held modalities' embeddings of a multimodal client; z
	// the self embeddings of every client (the fusion inputs).
	emb []embeddings
	z   []*Node
	// sums[m] is the detached sum of p_m(y) over maskAll (zero unless
	// multimodal).
	sums []*Node

	loss *Node
	// gradMods transform the loss gradients of the trainable parameters,
	// in order, before the optimiser.
	gradMods []func(grads []*Node) []*Node
	// outs[k] are term k's extra outputs; cur is the term being built.
	outs [][]*Node
	cur  int
}

// addLoss adds t to the step's loss.
func (b *stepBuild) addLoss(t *Node) { b.loss = Add(b.loss, t) }

// output returns a function that adds outputs of the term being built,
// also from a gradient hook that runs after every term is built.
func (b *stepBuild) output() func(n ...*Node) {
	k := b.cur
	return func(n ...*Node) { b.outs[k] = append(b.outs[k], n...) }
}

// scalarInput returns the scalar of a one-value input.
func scalarInput(n *Node) *Node { return Reshape(n) }
