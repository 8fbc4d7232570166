package model

import (
	"fmt"

	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // see network.go
)

// Harmony (Ouyang et al., "Harmony: Heterogeneous Multi-Modal Federated
// Learning through Disentangled Model Training", MobiSys 2023; authors'
// code xmouyang/Harmony) trains in two stages. Its first stage,
// modality-wise federated learning, trains each modality's unimodal network
// on every client that holds the modality. Here a client's step in that
// stage (HarmonyStage1) minimises
//
//	sum over held modalities m of CE(C_m(S_m(E_m(x_m))), y)
//
// (both terms, weight 1 each, on multimodal clients) and updates exactly
// those modalities' encoders E_m, self projectors S_m and classifiers C_m.
// The second stage (federated fusion learning on multimodal clients) is the
// ordinary multimodal step; package fl switches between the two.

// HarmonyStage1 returns the term of Harmony's first stage: it replaces the
// base losses by the held modalities' unimodal losses and trains their
// encoders, self projectors and classifiers only.
func HarmonyStage1() Term { return harmonyTerm{} }

type harmonyTerm struct{}

func (harmonyTerm) key(*stepSpec) string { return "harmony-unimodal" }

func (harmonyTerm) check(s *stepSpec) error {
	if s.partial {
		return fmt.Errorf("model: rows missing a modality (PartialRows) do not work with Harmony's unimodal stage")
	}
	return nil
}

func (harmonyTerm) inputs(*stepSpec) []shapes.Shape { return nil }
func (harmonyTerm) build(*stepBuild, []*Node)       {}

func (harmonyTerm) session(*stepSpec) (termSession, error) { return noInputs{}, nil }

func (harmonyTerm) baseLoss(b *stepBuild) (*Node, []*Node) {
	return harmonyUnimodalLoss(b.net, b.x, b.onehot, b.mask)
}

// trainable lists the parameters of Harmony's unimodal stage: the
// encoder, self projector and classifier of every held modality.
func (harmonyTerm) trainable(s *stepSpec) []int {
	var idx []int
	for i, info := range s.e.layout {
		held := s.held.has(info.Side)
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
