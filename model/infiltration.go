package model

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // see network.go
)

// infiltrationLoss is FedCMI's cross-modal infiltration term L_inf
// (docs/methods.md; the method note): the soft-target distillation, at
// the rows' temperatures temp, from the frozen teacher's dominant self head
// (ta = C_A(aa), tv = C_V(vv) of the start-of-round model) into the weak
// modality's infiltration head, averaged over the rows of mask.
//
// The direction: rho = sumPA/sumPV > 1 means A dominates the batch, so V's
// infiltration head C_V(va) learns from the teacher's C_A(aa); otherwise
// A's C_A(av) learns from the teacher's C_V(vv). A row whose dir input is
// non-zero overrides the batch's choice (+1 into V, -1 into A): the
// dominance variants' per-class or per-round directions.
func infiltrationLoss(net *network, ea, ev embeddings, ta, tv, temp, dir, sumPA, sumPV, mask *Node) *Node {
	intoV := softCrossEntropy(ta, net.classify(1, ev.inf), temp)
	intoA := softCrossEntropy(tv, net.classify(0, ea.inf), temp)
	one := OnesLike(dir)
	batchV := Where(GreaterThan(sumPA, sumPV), one, ZerosLike(dir))
	selV := Where(GreaterThan(dir, ZerosLike(dir)), one, Where(LessThan(dir, ZerosLike(dir)), ZerosLike(dir), batchV))
	return maskedMean(Add(Mul(selV, intoV), Mul(Sub(one, selV), intoA)), mask)
}
