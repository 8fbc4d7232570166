package deploy

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/model"
	"github.com/fedcmi/fedcmi/sim"
)

// StateFile is the coordinator's state in its run directory, rewritten
// atomically after every round: a sim.Checkpoint, that is a safetensors
// file holding the global model, whose metadata holds the round, the
// strategy's state, the metrics so far and the digest of the
// configuration.
const StateFile = "coordinator.safetensors"

// State is what a coordinator needs to continue after a crash: the
// simulation's checkpoint (participants keep their own state).
type State = sim.Checkpoint

// WriteState writes s to w (see StateFile).
func WriteState(w io.Writer, s *State, schema metrics.Schema) error {
	if err := sim.WriteCheckpoint(w, s, schema); err != nil {
		return fmt.Errorf("deploy: state: %w", err)
	}
	return nil
}

// ReadState reads a state written by WriteState for a model of arch.
func ReadState(r io.Reader, arch *model.Arch) (*State, error) {
	s, err := sim.ReadCheckpoint(r, arch)
	if err != nil {
		return nil, fmt.Errorf("deploy: state: %w", err)
	}
	return s, nil
}

// LoadState reads the state file at path.
func LoadState(path string, arch *model.Arch) (*State, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("deploy: no coordinator state to resume from: %w", err)
		}
		return nil, fmt.Errorf("deploy: %w", err)
	}
	defer f.Close()
	return ReadState(f, arch)
}

// strategyState returns the strategy's state if it keeps any.
func strategyState(s fl.Strategy) ([]byte, error) {
	b, err := sim.StrategyState(s)
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	return b, nil
}

// restoreStrategy gives the strategy its saved state.
func restoreStrategy(s fl.Strategy, b []byte) error {
	if err := sim.RestoreStrategy(s, b); err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	return nil
}
