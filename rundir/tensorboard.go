package rundir

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/tensorboard"
)

// TensorBoardFile is the event file LogTensorBoard writes. TensorBoard
// reads files whose names contain "tfevents"; one fixed name, rewritten
// from the start, keeps a resumed run from showing its rounds twice.
const TensorBoardFile = "events.out.tfevents.fedcmi"

// LogTensorBoard makes r also log every round as TensorBoard scalars in
// TensorBoardFile: the rounds appended so far at once, later ones as they
// are appended (see RoundScalars). The file is created anew.
func (r *Run) LogTensorBoard() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("rundir: tensorboard log of %s: run is closed", r.dir)
	}
	p := filepath.Join(r.dir, TensorBoardFile)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("rundir: %w", err)
	}
	w, err := tensorboard.NewWriter(f, time.Now())
	if err != nil {
		f.Close()
		return fmt.Errorf("rundir: %s: %w", p, err)
	}
	// Rounds carry their time since the run's start; the first one dates
	// that start when the log begins after some rounds (a resumed run).
	r.tbFile, r.tb, r.tbStart = f, w, time.Now()
	if len(r.rounds) > 0 {
		r.tbStart = r.tbStart.Add(-time.Duration(r.rounds[len(r.rounds)-1].Elapsed * float64(time.Second)))
	}
	for _, m := range r.rounds {
		if err := r.logRound(m); err != nil {
			return err
		}
	}
	return nil
}

// logRound writes m to the TensorBoard log, if there is one, stamped with
// the run's start plus the round's elapsed time.
func (r *Run) logRound(m metrics.Round) error {
	if r.tb == nil {
		return nil
	}
	wall := time.Now()
	if m.Elapsed > 0 {
		wall = r.tbStart.Add(time.Duration(m.Elapsed * float64(time.Second)))
	}
	if err := r.tb.WriteScalars(int64(m.Round), wall, RoundScalars(r.schema, m)); err != nil {
		return fmt.Errorf("rundir: %s: %w", TensorBoardFile, err)
	}
	return nil
}

// RoundScalars names a round's metrics as TensorBoard tags: accuracy/<head>
// for every head, accuracy_per_class/<class>, and dominance,
// first_dominant, train_loss, clients, failures and seconds, the names of
// metrics.csv's columns.
func RoundScalars(s metrics.Schema, m metrics.Round) []tensorboard.Scalar {
	var out []tensorboard.Scalar
	for i, h := range s.Heads {
		out = append(out, tensorboard.Scalar{Tag: "accuracy/" + h, Value: m.Heads[i]})
	}
	for i, c := range s.Classes {
		out = append(out, tensorboard.Scalar{Tag: "accuracy_per_class/" + c, Value: m.PerClass[i]})
	}
	return append(out,
		tensorboard.Scalar{Tag: "dominance", Value: m.Dominance},
		tensorboard.Scalar{Tag: "first_dominant", Value: m.FirstDominant},
		tensorboard.Scalar{Tag: "train_loss", Value: m.TrainLoss},
		tensorboard.Scalar{Tag: "clients", Value: float64(m.Clients)},
		tensorboard.Scalar{Tag: "failures", Value: float64(m.Failures)},
		tensorboard.Scalar{Tag: "seconds", Value: m.Seconds},
	)
}
