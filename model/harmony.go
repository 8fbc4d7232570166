package model

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // see network.go
)

// Harmony (Ouyang et al., "Harmony: Heterogeneous Multi-Modal Federated
// Learning through Disentangled Model Training", MobiSys 2023; authors'
// code xmouyang/Harmony) trains in two stages. Its first stage,
// modality-wise federated learning, trains each modality's unimodal network
// on every client that holds the modality. Here a client's step in that
// stage (TrainConfig.HarmonyUnimodal) minimises
//
//	sum over held modalities m of CE(C_m(S_m(E_m(x_m))), y)
//
// (both terms, weight 1 each, on multimodal clients) and updates exactly
// those modalities' encoders E_m, self projectors S_m and classifiers C_m.
// The second stage (federated fusion learning on multimodal clients) is the
// ordinary multimodal step; package fl switches between the two.

// harmonyTrainable lists the parameters of Harmony's unimodal stage: the
// encoder, self projector and classifier of every held modality.
func (e *Engine) harmonyTrainable(key stepKey) []int {
	var idx []int
	for i, info := range e.layout {
		held := key.held.has(info.Side)
		if held && (info.Part == PartEncoder || info.Part == PartSelf || info.Part == PartClassifier) {
			idx = append(idx, i)
		}
	}
	return idx
}

// harmonyUnimodalLoss is the sum of the held modalities' unimodal
// cross-entropies (x[m] is nil for a modality the client lacks), and, for a
// multimodal client, per modality the sum of its self head's true-class
// probabilities (the dominance sums, as in the multimodal step; else zero).
func harmonyUnimodalLoss(net *network, x []*Node, onehot, mask *Node) (loss *Node, sums []*Node) {
	sums = make([]*Node, len(x))
	held := 0
	for m := range x {
		sums[m] = ScalarZero(onehot.Graph(), onehot.DType())
		if x[m] == nil {
			continue
		}
		held++
		logits := net.classify(m, net.embed(m, x[m], false).self)
		l := maskedMean(crossEntropy(logits, onehot), mask)
		if loss == nil {
			loss = l
		} else {
			loss = Add(loss, l)
		}
		sums[m] = StopGradient(ReduceAllSum(Mul(trueClassProb(logits, onehot), mask)))
	}
	if held < 2 {
		for m := range sums {
			sums[m] = ScalarZero(onehot.Graph(), onehot.DType())
		}
	}
	return loss, sums
}
