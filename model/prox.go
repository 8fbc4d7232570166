package model

import (
	"fmt"
	"math"

	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // see network.go
)

// Proximal returns FedProx's proximal term (Li et al., "Federated
// Optimization in Heterogeneous Networks", MLSys 2020), which FedCMI uses
// too: every trained parameter's gradient, after weight decay, gets
// mu * (w - w_start), w_start the model the client received. mu 0 drops
// the term.
func Proximal(mu float64) Term { return &proximalTerm{mu: mu} }

type proximalTerm struct{ mu float64 }

func (t *proximalTerm) key(*stepSpec) string {
	if t.mu == 0 {
		return ""
	}
	return "prox"
}

func (t *proximalTerm) gradientOnly() {}

func (t *proximalTerm) check(*stepSpec) error {
	if math.IsNaN(t.mu) || math.IsInf(t.mu, 0) {
		return fmt.Errorf("model: proximal coefficient %v", t.mu)
	}
	return nil
}

// The term lives on the host: the optimiser (sgd.go) adds mu * (w -
// w_start) after weight decay, so the graph neither takes the start
// parameters for it nor changes.
func (t *proximalTerm) inputs(*stepSpec) []shapes.Shape { return nil }
func (t *proximalTerm) build(*stepBuild, []*Node)       {}

func (t *proximalTerm) session(*stepSpec) (termSession, error) {
	return proxSession{mu: float32(t.mu)}, nil
}

// anchorer is a term session that adds a proximal term to the optimiser's
// step: coefficient * (w - the start parameters).
type anchorer interface{ coefficient() float32 }

type proxSession struct {
	noInputs
	mu float32
}

func (p proxSession) coefficient() float32 { return p.mu }
