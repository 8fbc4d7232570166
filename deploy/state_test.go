package deploy

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/model"
)

// statefulStrategy is a strategy with state, as SCAFFOLD's will be.
type statefulStrategy struct {
	fl.Strategy
	state []byte
}

func (s *statefulStrategy) MarshalState() ([]byte, error) { return s.state, nil }
func (s *statefulStrategy) UnmarshalState(b []byte) error {
	if len(b) == 0 {
		return errors.New("empty")
	}
	s.state = b
	return nil
}

func TestStateRoundTrip(t *testing.T) {
	arch := model.DefaultArch([]string{"audio", "visual"}, []int{4, 3}, 3)
	global, err := arch.Init(7)
	if err != nil {
		t.Fatal(err)
	}
	schema := metrics.Schema{Heads: []string{"fused", "a", "b", "c", "d"}, Classes: []string{"0", "1", "2"}}
	nan := math.NaN()
	rounds := []metrics.Round{
		{Round: 1, Heads: []float64{0.5, 0.4, nan, 0.2, 0.1}, PerClass: []float64{1, 0, nan}, Dominance: 1.5, FirstDominant: 0.5, TrainLoss: 2, Clients: 3, Seconds: 1, Elapsed: 1},
		{Round: 2, Heads: []float64{0.6, 0.4, 0.3, 0.2, 0.1}, PerClass: []float64{1, 0.5, 0}, Dominance: nan, FirstDominant: nan, TrainLoss: 1, Clients: 2, Failures: 1, Seconds: 2, Elapsed: 3},
	}
	src := &statefulStrategy{state: []byte{1, 2, 3, 0, 255}}
	sst, err := strategyState(src)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	in := &State{Round: 2, Global: global, Strategy: sst, Rounds: rounds, ConfigDigest: "abc", Elapsed: 3.5}
	if err := WriteState(&buf, in, schema); err != nil {
		t.Fatal(err)
	}
	out, err := ReadState(bytes.NewReader(buf.Bytes()), &arch)
	if err != nil {
		t.Fatal(err)
	}
	if out.Round != 2 || out.ConfigDigest != "abc" || out.Elapsed != 3.5 || !reflect.DeepEqual(out.Global, global) {
		t.Errorf("state %+v", out)
	}
	if len(out.Rounds) != 2 || out.Rounds[1].Failures != 1 || !math.IsNaN(out.Rounds[0].Heads[2]) || out.Rounds[0].Heads[0] != 0.5 {
		t.Errorf("rounds %+v", out.Rounds)
	}
	dst := &statefulStrategy{}
	if err := restoreStrategy(dst, out.Strategy); err != nil || !bytes.Equal(dst.state, src.state) {
		t.Errorf("restored %v (%v), want %v", dst.state, err, src.state)
	}
	// A stateless strategy refuses strategy state, and the reverse.
	if err := restoreStrategy(&fl.ModalityAware{}, out.Strategy); err == nil {
		t.Error("stateless strategy took state")
	}
	if err := restoreStrategy(dst, nil); err == nil {
		t.Error("stateful strategy resumed without state")
	}
	// A truncated file is refused.
	if _, err := ReadState(bytes.NewReader(buf.Bytes()[:buf.Len()/2]), &arch); err == nil {
		t.Error("truncated state accepted")
	}
}
