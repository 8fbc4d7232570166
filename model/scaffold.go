package model

import (
	"fmt"
	"slices"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // see network.go
	"github.com/gomlx/gomlx/core/tensors"
)

// SCAFFOLD (Karimireddy et al., "SCAFFOLD: Stochastic Controlled Averaging
// for Federated Learning", ICML 2020) corrects every local gradient by the
// difference of the server's and the client's control variates:
//
//	y <- y - lr * (g(y) + c - c_i)
//
// ScaffoldCorrection carries c - c_i for the whole layout; the step graph
// adds its entries to the gradients of the parameters the step trains,
// before weight decay and momentum. The control variates themselves are
// kept and updated by package fl.

// ScaffoldCorrection returns SCAFFOLD's gradient correction term;
// correction is c - c_i in Layout order (its values may be anything
// finite; names and shapes must match).
func ScaffoldCorrection(correction Params) Term { return &scaffoldTerm{corr: correction} }

type scaffoldTerm struct{ corr Params }

func (t *scaffoldTerm) key(*stepSpec) string { return "scaffold" }
func (t *scaffoldTerm) gradientOnly()        {}

func (t *scaffoldTerm) check(s *stepSpec) error {
	if err := s.e.arch.checkShapes(t.corr); err != nil {
		return fmt.Errorf("model: SCAFFOLD correction: %w", err)
	}
	return nil
}

// inputs: the correction of every trainable parameter.
func (t *scaffoldTerm) inputs(s *stepSpec) []shapes.Shape {
	var sh []shapes.Shape
	for _, i := range s.trainable {
		sh = append(sh, shapes.Make(dtypes.Float32, s.e.layout[i].Shape...))
	}
	return sh
}

func (t *scaffoldTerm) build(b *stepBuild, in []*Node) {
	b.preDecay = append(b.preDecay, func(j int, grad *Node) *Node { return Add(grad, in[j]) })
}

func (t *scaffoldTerm) session(s *stepSpec) (termSession, error) {
	x := &scaffoldSession{}
	for _, i := range s.trainable {
		x.corr = append(x.corr, t.corr[i].Data)
		x.dims = append(x.dims, s.e.layout[i].Shape)
	}
	return x, nil
}

type scaffoldSession struct {
	corr [][]float32
	dims [][]int
}

func (x *scaffoldSession) args(*Batch, int) ([]*tensors.Tensor, error) {
	out := make([]*tensors.Tensor, len(x.corr))
	for k, c := range x.corr {
		out[k] = tensors.FromFlatDataAndDimensions(c, x.dims[k]...)
	}
	return out, nil
}

func (*scaffoldSession) consume([]*tensors.Tensor, *StepStats) {}

// Trainable lists the layout indices of the parameters this session's
// steps update (which depends on the client's modalities and the method).
func (l *Local) Trainable() []int { return slices.Clone(l.graph.trainable) }

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
