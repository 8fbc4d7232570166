package model

import (
	"fmt"
	"slices"

	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // see network.go
)

// SCAFFOLD (Karimireddy et al., "SCAFFOLD: Stochastic Controlled Averaging
// for Federated Learning", ICML 2020) corrects every local gradient by the
// difference of the server's and the client's control variates:
//
//	y <- y - lr * (g(y) + c - c_i)
//
// ScaffoldCorrection carries c - c_i for the whole layout; the optimiser
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
	// Added on the host after the loss's NaN check, a non-finite
	// correction would spoil the parameters unnoticed.
	for _, tns := range t.corr {
		if !allFinite(tns.Data) {
			return fmt.Errorf("model: SCAFFOLD correction %q holds a NaN or infinite value", tns.Name)
		}
	}
	return nil
}

// The correction lives on the host: the optimiser adds it to each
// trained parameter's gradient before weight decay (Local.update), so the
// graph neither takes it as an input every step nor changes.
func (t *scaffoldTerm) inputs(*stepSpec) []shapes.Shape { return nil }
func (t *scaffoldTerm) build(*stepBuild, []*Node)       {}

func (t *scaffoldTerm) session(s *stepSpec) (termSession, error) {
	x := &scaffoldSession{}
	for _, i := range s.trainable {
		x.corr = append(x.corr, t.corr[i].Data)
	}
	return x, nil
}

// corrector is a term session that adds a constant to every trained
// parameter's gradient: corrections()[j] for trainable parameter j.
type corrector interface{ corrections() [][]float32 }

type scaffoldSession struct {
	noInputs
	corr [][]float32
}

func (x *scaffoldSession) corrections() [][]float32 { return x.corr }

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
