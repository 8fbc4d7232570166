package fl

import (
	"fmt"
	"math"

	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/model"
)

// FedCMIFit is FedCMI's part of a round's recipe (FitConfig.FedCMI): the
// infiltration loss, its temperatures, where the dominance comes from,
// and personalisation.
type FedCMIFit struct {
	// Infiltration turns on FedCMI's cross-modal infiltration (multimodal
	// clients only).
	Infiltration bool
	// ClassTemperature uses class-wise temperatures (needs Infiltration);
	// otherwise every sample uses Temperature.
	ClassTemperature bool
	// Alpha weights the infiltration loss; C3 the class-wise temperature
	// formula; Temperature is the global distillation temperature.
	Alpha, C3, Temperature float64
	// Personalized keeps the infiltration projectors and classifiers on the
	// client between rounds.
	Personalized bool
	// Dominance says where the infiltration direction and the class-wise
	// temperatures come from (DominanceBatch: the method's own rule).
	Dominance Dominance
	// Holdout is the fraction of each class a multimodal client sets aside
	// (never trained on) to measure dominance, for DominanceHoldout and
	// optionally DominanceFederated; HoldoutSeed picks the slice and stays
	// the same every round.
	Holdout     float64
	HoldoutSeed uint64
	// ClassDirection gives every class its own infiltration direction
	// (from its own ratio) instead of one per round; not for DominanceBatch.
	ClassDirection bool
	// Table is the server's pooled dominance table (DominanceFederated;
	// nil until the first round has been pooled).
	Table *DominanceTable
}

// validate checks the recipe for a model of nm modalities and k classes:
// finite coefficients, Holdout in [0, 1), a known Dominance, Table nil or
// of nm modalities and k classes with means in [0, 1] or NaN (no report
// yet).
func (c *FedCMIFit) validate(nm, k int) error {
	if err := finite("alpha", c.Alpha, "c3", c.C3, "temperature", c.Temperature, "holdout", c.Holdout); err != nil {
		return err
	}
	switch {
	case c.Holdout < 0 || c.Holdout >= 1:
		return fmt.Errorf("fl: recipe: holdout %v outside [0, 1)", c.Holdout)
	case c.Dominance < DominanceBatch || c.Dominance > DominanceFederated:
		return fmt.Errorf("fl: recipe: unknown dominance source %v", c.Dominance)
	}
	if c.Table != nil {
		if err := c.Table.validate(nm, k); err != nil {
			return fmt.Errorf("fl: recipe: %w", err)
		}
	}
	return nil
}

// FedCMIReport is what FedCMI's client side measured (FitMetrics.FedCMI).
type FedCMIReport struct {
	// Temperatures holds the class-wise temperatures used (nil if none;
	// with more than two modalities those of modalities 0 and 1).
	Temperatures []float64
	// ClassStats are the per-class self-head statistics the client
	// measured before training (nil if none); DominanceFederated pools them.
	ClassStats *ClassStats
}

// validate checks a report for a model of b.Modalities modalities and
// b.Classes classes: Temperatures nil or k finite positive values;
// ClassStats nil or valid (ClassStats.Validate) with counts summing to at
// most the client's b.Samples, so that no client outweighs its data in
// the pooled table (PoolStats).
func (m *FedCMIReport) validate(b MetricBounds) error {
	nm, k := b.Modalities, b.Classes
	if m.Temperatures != nil {
		if len(m.Temperatures) != k {
			return fmt.Errorf("fl: metrics: %d temperatures for %d classes", len(m.Temperatures), k)
		}
		for c, t := range m.Temperatures {
			if math.IsNaN(t) || math.IsInf(t, 0) || t <= 0 {
				return fmt.Errorf("fl: metrics: temperature of class %d is %v", c, t)
			}
		}
	}
	if m.ClassStats != nil {
		if err := m.ClassStats.Validate(nm, k); err != nil {
			return err
		}
		total := 0.0
		for _, n := range m.ClassStats.Count {
			total += n
		}
		if total > float64(b.Samples) {
			return fmt.Errorf("fl: metrics: class statistics of %v samples, more than the client's %d", total, b.Samples)
		}
	}
	return nil
}

// fedcmiHook is the client side of FedCMI and its dominance variants on a
// multimodal client (docs/methods.md, docs/dominance.md): the held-out
// slice, the per-class statistics measured with the model the client
// starts from (the received one, with its personal parts if any), the
// frozen teacher's logits (the received model's), the class-wise temperatures and the
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
	infil := cfg.FedCMI.Infiltration
	var held []int
	if cfg.FedCMI.Holdout > 0 && (cfg.FedCMI.Dominance == DominanceHoldout || cfg.FedCMI.Dominance == DominanceFederated) {
		train, hold := HoldoutSplit(c.index, c.labels(c.index), cfg.FedCMI.Holdout, cfg.FedCMI.HoldoutSeed)
		if len(hold) > 0 && len(train) > 0 { // else too few samples of every class to set any aside
			r.train, held = train, hold
		}
	}
	// stats are the per-class statistics the direction and temperatures
	// come from; measured only where something uses them.
	var stats ClassStats
	useTeacher := infil && c.augment == nil
	if cfg.FedCMI.Dominance == DominanceFederated || infil && (cfg.FedCMI.ClassTemperature || cfg.FedCMI.Dominance != DominanceBatch) {
		measure := r.train
		if held != nil {
			measure = held
		}
		measured, pred, err := c.classStats(r.start, measure)
		if err != nil {
			return err
		}
		if useTeacher && held == nil && !r.personal { // measured on the train rows by the teacher: the same pass gives its logits
			h.teacher = pred.Logits
		}
		if r.has == data.Full(len(c.set.Modalities)) { // else some sums are of absent inputs
			r.metrics.FedCMI.ClassStats = &measured
		}
		stats = measured
		if cfg.FedCMI.Dominance == DominanceFederated && cfg.FedCMI.Table != nil {
			if err := cfg.FedCMI.Table.validate(len(stats.Sum), stats.Len()); err != nil {
				return fmt.Errorf("fl: %w (the data's)", err)
			}
			stats = cfg.FedCMI.Table.Stats()
		}
	}
	if useTeacher && h.teacher == nil {
		b := c.gather(r.train)
		pred, err := c.engine.Predict(r.ins.Params, b.X, len(r.train)) // the received model teaches
		if err != nil {
			return err
		}
		h.teacher = pred.Logits
	}
	if infil {
		nm := len(c.set.Modalities)
		var pairs [][]float64
		if cfg.FedCMI.ClassTemperature {
			pairs = PairTemperatures(stats.Means(), cfg.FedCMI.C3)
		} else {
			pairs = make([][]float64, c.set.NumClasses)
			for k := range pairs {
				pairs[k] = make([]float64, nm*nm)
				for i := range pairs[k] {
					pairs[k][i] = GuardTemperature(cfg.FedCMI.Temperature)
				}
			}
		}
		// The report: modality 0 and 1's temperatures, the two
		// modalities' of the method.
		r.metrics.FedCMI.Temperatures = make([]float64, len(pairs))
		h.classTmp = make([][]float32, len(pairs))
		for k, p := range pairs {
			r.metrics.FedCMI.Temperatures[k] = p[1]
			h.classTmp[k] = make([]float32, len(p))
			for i, t := range p {
				h.classTmp[k][i] = float32(t)
			}
		}
		if cfg.FedCMI.Dominance != DominanceBatch {
			h.classDir = Directions(stats, cfg.FedCMI.ClassDirection)
			for k, d := range h.classDir {
				if !r.has.Has(int(d) - 1) { // a teacher the client lacks: the batch's choice
					h.classDir[k] = 0
				}
			}
		}
	}
	if infil {
		r.tc.Terms = append(r.tc.Terms, model.Infiltration(cfg.FedCMI.Alpha, useTeacher))
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
	r.c.keepOwn(trained, model.ParamInfo.Personal)
	return nil
}
