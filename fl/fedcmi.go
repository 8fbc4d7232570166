package fl

import (
	"fmt"

	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/model"
)

// fedcmiHook is the client side of FedCMI and its dominance variants on a
// multimodal client (docs/methods.md, docs/dominance.md): the held-out
// slice, the per-class statistics measured with the received model, the
// frozen teacher's logits, the class-wise temperatures and the
// infiltration directions. The loss term itself is model.Infiltration
// (model/infiltration.go). For other methods it only measures what
// fedcmi-fedstats pools.
type fedcmiHook struct {
	// teacher holds the frozen teacher's self-head logits of every train
	// row (in r.train's order): without augmentation a row's inputs are
	// the same in every epoch, so the teacher runs once per round, not in
	// every step (model.Infiltration with teacher inputs).
	teacher [][]float32
	// classTmp[c] holds class c's temperature per (teacher, student)
	// pair, [M*M] (model.Batch.Temp's layout for one row).
	classTmp [][]float32
	classDir []float32
}

// prepare implements preparer.
func (h *fedcmiHook) prepare(r *localRound) error {
	c, cfg := r.c, r.cfg
	infil := cfg.Infiltration
	var held []int
	if cfg.Holdout > 0 && (cfg.Dominance == DominanceHoldout || cfg.Dominance == DominanceFederated) {
		train, hold := HoldoutSplit(c.index, c.labels(c.index), cfg.Holdout, cfg.HoldoutSeed)
		if len(hold) > 0 && len(train) > 0 { // else too few samples of every class to set any aside
			r.train, held = train, hold
		}
	}
	// stats are the per-class statistics the direction and temperatures
	// come from; measured only where something uses them.
	var stats ClassStats
	useTeacher := infil && c.augment == nil
	if cfg.Dominance == DominanceFederated || infil && (cfg.ClassTemperature || cfg.Dominance != DominanceBatch) {
		measure := r.train
		if held != nil {
			measure = held
		}
		measured, pred, err := c.classStats(r.start, measure)
		if err != nil {
			return err
		}
		if useTeacher && held == nil { // measured on the train rows: the same pass gives the teacher
			h.teacher = pred.Logits
		}
		if r.has == data.Full(len(c.set.Modalities)) { // else some sums are of absent inputs
			r.metrics.ClassStats = &measured
		}
		stats = measured
		if cfg.Dominance == DominanceFederated && cfg.Table != nil {
			if len(cfg.Table.P) != len(stats.Sum) || cfg.Table.Len() != stats.Len() {
				return fmt.Errorf("fl: dominance table of %d modalities for %d classes, data has %d and %d", len(cfg.Table.P), cfg.Table.Len(), len(stats.Sum), stats.Len())
			}
			stats = cfg.Table.Stats()
		}
	}
	if useTeacher && h.teacher == nil {
		b := c.gather(r.train)
		pred, err := c.engine.Predict(r.start, b.X, len(r.train))
		if err != nil {
			return err
		}
		h.teacher = pred.Logits
	}
	if infil {
		nm := len(c.set.Modalities)
		var pairs [][]float64
		if cfg.ClassTemperature {
			pairs = PairTemperatures(stats.Means(), cfg.C3)
		} else {
			pairs = make([][]float64, c.set.NumClasses)
			for k := range pairs {
				pairs[k] = make([]float64, nm*nm)
				for i := range pairs[k] {
					pairs[k][i] = GuardTemperature(cfg.Temperature)
				}
			}
		}
		// The report: modality 0 and 1's temperatures, the two
		// modalities' of the method.
		r.metrics.Temperatures = make([]float64, len(pairs))
		h.classTmp = make([][]float32, len(pairs))
		for k, p := range pairs {
			r.metrics.Temperatures[k] = p[1]
			h.classTmp[k] = make([]float32, len(p))
			for i, t := range p {
				h.classTmp[k][i] = float32(t)
			}
		}
		if cfg.Dominance != DominanceBatch {
			h.classDir = Directions(stats, cfg.ClassDirection)
			for k, d := range h.classDir {
				if !r.has.Has(int(d) - 1) { // a teacher the client lacks: the batch's choice
					h.classDir[k] = 0
				}
			}
		}
	}
	if infil {
		r.tc.Terms = append(r.tc.Terms, model.Infiltration(cfg.Alpha, useTeacher))
	}
	return nil
}

// fillBatch implements batchFiller: the teacher's logits, the rows'
// temperatures and directions.
func (h *fedcmiHook) fillBatch(r *localRound, b *model.Batch, pos []int) {
	if h.teacher != nil {
		k := r.c.set.NumClasses
		b.Teacher = make([][]float32, len(h.teacher))
		for m := range h.teacher {
			if !r.has.Has(m) {
				continue
			}
			b.Teacher[m] = make([]float32, 0, len(pos)*k)
			for _, i := range pos {
				b.Teacher[m] = append(b.Teacher[m], h.teacher[m][i*k:(i+1)*k]...)
			}
		}
	}
	if h.classTmp == nil {
		return
	}
	b.Temp = make([]float32, 0, len(b.Labels)*len(h.classTmp[0]))
	for _, y := range b.Labels {
		b.Temp = append(b.Temp, h.classTmp[y]...)
	}
	if h.classDir != nil {
		b.Dir = make([]float32, len(b.Labels))
		for k, y := range b.Labels {
			b.Dir[k] = h.classDir[y]
		}
	}
}

var (
	_ preparer    = (*fedcmiHook)(nil)
	_ batchFiller = (*fedcmiHook)(nil)
)

// personalHook keeps the client's personal parameters (infiltration
// projectors and classifiers) for its next round
// (FedCMIOptions.Personalized).
type personalHook struct{}

// finish implements finisher.
func (personalHook) finish(r *localRound, trained model.Params, _ *FitRes) error {
	c := r.c
	c.personal = make(map[int]model.Tensor)
	for i, info := range c.engine.Layout() {
		if info.Personal() {
			c.personal[i] = trained[i]
		}
	}
	return nil
}
