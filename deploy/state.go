package deploy

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/fedcmi/fedcmi/fl"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/model"
)

// StateFile is the coordinator's state in its run directory, rewritten
// atomically after every round: a safetensors file holding the global
// model, whose metadata holds the round, the strategy's state, the
// metrics so far and the digest of the configuration.
const StateFile = "coordinator.safetensors"

// Metadata keys of the state file.
const (
	metaRound    = "fedcmi.round"
	metaConfig   = "fedcmi.config_sha256"
	metaStrategy = "fedcmi.strategy_state"
	metaMetrics  = "fedcmi.metrics_jsonl"
	metaElapsed  = "fedcmi.elapsed_seconds"
)

// State is what a coordinator needs to continue after a crash.
type State struct {
	// Round is the last completed round.
	Round int
	// Global is the global model after Round.
	Global model.Params
	// Strategy is the strategy's fl.Stateful state (nil if it has none).
	Strategy []byte
	// Rounds holds the metrics of rounds 1..Round.
	Rounds []metrics.Round
	// ConfigDigest identifies the experiment; a resume with another
	// configuration is refused.
	ConfigDigest string
	// Elapsed is the wall time of the run so far, in seconds.
	Elapsed float64
}

// WriteState writes s to w (see StateFile).
func WriteState(w io.Writer, s *State, schema metrics.Schema) error {
	var jl bytes.Buffer
	jw := metrics.NewJSONLWriter(&jl, schema)
	for _, r := range s.Rounds {
		if err := jw.Write(r); err != nil {
			return fmt.Errorf("deploy: state: %w", err)
		}
	}
	meta := map[string]string{
		metaRound:   strconv.Itoa(s.Round),
		metaConfig:  s.ConfigDigest,
		metaMetrics: jl.String(),
		metaElapsed: strconv.FormatFloat(s.Elapsed, 'g', -1, 64),
	}
	if s.Strategy != nil {
		meta[metaStrategy] = base64.StdEncoding.EncodeToString(s.Strategy)
	}
	return model.WriteParams(w, s.Global, meta)
}

// ReadState reads a state written by WriteState for a model of arch.
func ReadState(r io.Reader, arch *model.Arch) (*State, error) {
	p, meta, err := model.ReadParams(r, arch)
	if err != nil {
		return nil, fmt.Errorf("deploy: state: %w", err)
	}
	s := &State{Global: p, ConfigDigest: meta[metaConfig]}
	if s.Round, err = strconv.Atoi(meta[metaRound]); err != nil || s.Round < 0 {
		return nil, fmt.Errorf("deploy: state: bad round %q", meta[metaRound])
	}
	if s.Elapsed, err = strconv.ParseFloat(meta[metaElapsed], 64); err != nil {
		return nil, fmt.Errorf("deploy: state: bad elapsed time %q", meta[metaElapsed])
	}
	if b64, ok := meta[metaStrategy]; ok {
		if s.Strategy, err = base64.StdEncoding.DecodeString(b64); err != nil {
			return nil, fmt.Errorf("deploy: state: strategy state: %w", err)
		}
	}
	if jl := meta[metaMetrics]; jl != "" {
		if _, s.Rounds, err = metrics.ReadJSONL(bytes.NewReader([]byte(jl))); err != nil {
			return nil, fmt.Errorf("deploy: state: metrics: %w", err)
		}
	}
	if len(s.Rounds) != s.Round {
		return nil, fmt.Errorf("deploy: state: %d rounds of metrics for round %d", len(s.Rounds), s.Round)
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
	st, ok := s.(fl.Stateful)
	if !ok {
		return nil, nil
	}
	b, err := st.MarshalState()
	if err != nil {
		return nil, fmt.Errorf("deploy: strategy state: %w", err)
	}
	return b, nil
}

// restoreStrategy gives the strategy its saved state.
func restoreStrategy(s fl.Strategy, b []byte) error {
	st, ok := s.(fl.Stateful)
	switch {
	case !ok && b != nil:
		return errors.New("deploy: the saved state has strategy state, the strategy keeps none")
	case ok && b == nil:
		return errors.New("deploy: the strategy keeps state, the saved state has none")
	case !ok:
		return nil
	}
	if err := st.UnmarshalState(b); err != nil {
		return fmt.Errorf("deploy: restore strategy: %w", err)
	}
	return nil
}
