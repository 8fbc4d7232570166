package model

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // see network.go
)

// infiltrationLoss is FedCMI's cross-modal infiltration term L_inf
// (docs/methods.md; the method note), generalised to M modalities: on each
// row one held modality is the teacher, and the frozen start-of-round
// model's self head of that modality (teach[t] = C_t(S_t(E_t(x_t))))
// teaches the infiltration head C_s(I_s(E_s(x_s))) of every other held
// modality s, by soft-target cross-entropy at the row's temperature for
// the pair (temp [B, M, M], teacher-major). The terms of a row are summed
// and averaged over the rows of mask.
//
// The teacher: by default the batch's most confident modality, the held
// modality with the largest sum of true-class probabilities (sums; ties
// go to the later modality). With two modalities that is the method's
// rule: rho = sumPA/sumPV > 1 means A dominates, so V's infiltration head
// C_V(va) learns from the teacher's C_A(aa); otherwise A's C_A(av) learns
// from C_V(vv). A row whose dir input is m+1 has modality m as its teacher
// instead: the dominance variants' per-class or per-round choices.
func infiltrationLoss(net *network, held []int, emb []embeddings, teach []*Node, temp, dir *Node, sums []*Node, mask *Node) *Node {
	one, zero := OnesLike(dir), ZerosLike(dir)
	// sel[t] is 1 on the rows whose teacher is modality t, else 0.
	sel := make([]*Node, len(emb))
	for i, t := range held {
		best := OnesLike(sums[t])
		for j, o := range held {
			switch {
			case j < i:
				best = Mul(best, ConvertDType(GreaterOrEqual(sums[t], sums[o]), best.DType()))
			case j > i:
				best = Mul(best, ConvertDType(GreaterThan(sums[t], sums[o]), best.DType()))
			}
		}
		chosen := Equal(dir, Scalar(dir.Graph(), dir.DType(), float64(t+1)))
		sel[t] = Where(chosen, one, Where(Equal(dir, zero), Mul(one, best), zero))
	}
	// The row's teacher logits: a one-hot sum, exact.
	var tl *Node
	for _, t := range held {
		v := Mul(InsertAxes(sel[t], -1), teach[t])
		if tl == nil {
			tl = v
		} else {
			tl = Add(tl, v)
		}
	}
	var total *Node
	for _, s := range held {
		// The row's temperature for teacher -> s.
		var ts *Node
		for _, t := range held {
			if t == s {
				continue
			}
			v := Mul(sel[t], Reshape(Slice(temp, AxisRange(), AxisElem(t), AxisElem(s)), -1))
			if ts == nil {
				ts = v
			} else {
				ts = Add(ts, v)
			}
		}
		// On rows where s is the teacher ts is 0; any positive value does,
		// as the term is then multiplied by 0.
		ts = Add(ts, sel[s])
		term := Mul(Sub(one, sel[s]), softCrossEntropy(tl, net.classify(s, emb[s].inf), ts))
		if total == nil {
			total = term
		} else {
			total = Add(total, term)
		}
	}
	return maskedMean(total, mask)
}
