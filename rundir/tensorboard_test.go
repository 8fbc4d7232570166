package rundir

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/fedcmi/fedcmi/tensorboard"
)

// TestLogTensorBoard: rounds appended before the log starts (a resumed
// run) are written at once, later ones as they come, each once, with the
// metrics' names as tags; NaN values are left out.
func TestLogTensorBoard(t *testing.T) {
	dir := t.TempDir()
	r, err := Create(dir, schema(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AppendRound(round(1, 0.5, 1.5)); err != nil {
		t.Fatal(err)
	}
	if err := r.LogTensorBoard(); err != nil {
		t.Fatal(err)
	}
	if err := r.AppendRound(round(2, 0.75, math.NaN())); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Finish(nil); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, TensorBoardFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	events, err := tensorboard.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 3 || events[0].FileVersion == "" || events[1].Step != 1 || events[2].Step != 2 {
		t.Fatalf("events %+v", events)
	}
	tags := func(e tensorboard.Event) map[string]float64 {
		m := map[string]float64{}
		for _, s := range e.Scalars {
			m[s.Tag] = s.Value
		}
		return m
	}
	first, second := tags(events[1]), tags(events[2])
	for tag, want := range map[string]float64{"accuracy/fused": 0.5, "accuracy/audio_only": 0.25, "accuracy_per_class/0": 0.5, "dominance": 1.5, "train_loss": 1, "clients": 2} {
		if first[tag] != want {
			t.Errorf("round 1 %s = %v, want %v", tag, first[tag], want)
		}
	}
	if _, ok := first["accuracy_per_class/1"]; ok {
		t.Error("a NaN accuracy was logged")
	}
	if _, ok := second["dominance"]; ok || second["accuracy/fused"] != 0.75 {
		t.Errorf("round 2 = %v", second)
	}
	if d := events[2].WallTime.Sub(events[1].WallTime).Seconds(); math.Abs(d-1) > 1e-3 {
		t.Errorf("rounds logged %v s apart, their elapsed times differ by 1 s", d)
	}
}
