package model

import "slices"

// SCAFFOLD (Karimireddy et al., "SCAFFOLD: Stochastic Controlled Averaging
// for Federated Learning", ICML 2020) corrects every local gradient by the
// difference of the server's and the client's control variates:
//
//	y <- y - lr * (g(y) + c - c_i)
//
// TrainConfig.Correction carries c - c_i for the whole layout; the step
// graph adds its entries to the gradients of the parameters the step
// trains, before weight decay and momentum (stepExt.correct). The control
// variates themselves are kept and updated by package fl.

// Trainable lists the layout indices of the parameters this session's
// steps update (which depends on the client's modalities and the method).
func (l *Local) Trainable() []int { return slices.Clone(l.graph.trainable) }
