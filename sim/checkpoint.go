package sim

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
	"github.com/fedcmi/fedcmi/rundir"
)

// Checkpoint files in a simulation's run directory, rewritten after every
// round and removed once the run completes: CheckpointFile holds a
// Checkpoint; ClientStateDir, if the clients keep state between rounds,
// the fl.ClientStateful states of the clients that trained in each round
// (one file per round, written before the checkpoint itself, the files
// whose clients all trained again later removed).
const (
	CheckpointFile = "checkpoint.safetensors"
	ClientStateDir = "clients"
)

// Metadata keys of a checkpoint file.
const (
	metaRound    = "fedcmi.round"
	metaConfig   = "fedcmi.config_sha256"
	metaStrategy = "fedcmi.strategy_state"
	metaMetrics  = "fedcmi.metrics_jsonl"
	metaElapsed  = "fedcmi.elapsed_seconds"
	metaData     = "fedcmi.data_sha256"
)

// Checkpoint is what the server side of a run needs to continue after its
// last completed round: the simulation's checkpoint and a deployed
// coordinator's state share it. The file is a safetensors file holding
// the global model, whose metadata holds the rest.
type Checkpoint struct {
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
	// DataDigest identifies the run's training and test sets
	// (DataDigest); a resume on other data is refused. Empty: not
	// recorded (a coordinator's state, whose participants hold the
	// training data, or a checkpoint of a fedcmi before 2026-12-06).
	DataDigest string
	// Elapsed is the wall time of the run so far, in seconds.
	Elapsed float64
}

// Restamp rewrites the checkpoint c of run, its file name (CheckpointFile,
// or a coordinator's state file), with digest when c holds another: one
// that matched as an older fedcmi's (CheckpointMatches). The run's config.yaml
// is rewritten with every current field when it resumes, so without this a
// second stop before the next save could not resume.
func Restamp(run *rundir.Run, name string, c *Checkpoint, digest string, schema metrics.Schema) error {
	if c == nil || c.ConfigDigest == digest {
		return nil
	}
	up := *c
	up.ConfigDigest = digest
	return run.WriteAtomic(name, func(w io.Writer) error { return WriteCheckpoint(w, &up, schema) })
}

// WriteCheckpoint writes c to w, its metrics following schema.
func WriteCheckpoint(w io.Writer, c *Checkpoint, schema metrics.Schema) error {
	var jl bytes.Buffer
	jw := metrics.NewJSONLWriter(&jl, schema)
	for _, r := range c.Rounds {
		if err := jw.Write(r); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	meta := map[string]string{
		metaRound:   strconv.Itoa(c.Round),
		metaConfig:  c.ConfigDigest,
		metaMetrics: jl.String(),
		metaElapsed: strconv.FormatFloat(c.Elapsed, 'g', -1, 64),
	}
	if c.Strategy != nil {
		meta[metaStrategy] = base64.StdEncoding.EncodeToString(c.Strategy)
	}
	if c.DataDigest != "" {
		meta[metaData] = c.DataDigest
	}
	return model.WriteParams(w, c.Global, meta)
}

// ReadCheckpoint reads a checkpoint written by WriteCheckpoint for a model
// of arch.
func ReadCheckpoint(r io.Reader, arch *model.Arch) (*Checkpoint, error) {
	p, meta, err := model.ReadParams(r, arch)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	c := &Checkpoint{Global: p, ConfigDigest: meta[metaConfig], DataDigest: meta[metaData]}
	if c.Round, err = strconv.Atoi(meta[metaRound]); err != nil || c.Round < 0 {
		return nil, fmt.Errorf("checkpoint: bad round %q", meta[metaRound])
	}
	if c.Elapsed, err = strconv.ParseFloat(meta[metaElapsed], 64); err != nil {
		return nil, fmt.Errorf("checkpoint: bad elapsed time %q", meta[metaElapsed])
	}
	if b64, ok := meta[metaStrategy]; ok {
		if c.Strategy, err = base64.StdEncoding.DecodeString(b64); err != nil {
			return nil, fmt.Errorf("checkpoint: strategy state: %w", err)
		}
	}
	if jl := meta[metaMetrics]; jl != "" {
		if _, c.Rounds, err = metrics.ReadJSONL(bytes.NewReader([]byte(jl))); err != nil {
			return nil, fmt.Errorf("checkpoint: metrics: %w", err)
		}
	}
	if len(c.Rounds) != c.Round {
		return nil, fmt.Errorf("checkpoint: %d rounds of metrics for round %d", len(c.Rounds), c.Round)
	}
	return c, nil
}

// LoadCheckpoint reads the checkpoint file at path; a missing file is an
// error wrapping fs.ErrNotExist.
func LoadCheckpoint(path string, arch *model.Arch) (*Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	defer f.Close()
	c, err := ReadCheckpoint(f, arch)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// StrategyState returns the strategy's state if it keeps any (fl.Stateful).
func StrategyState(s fl.Strategy) ([]byte, error) {
	st, ok := s.(fl.Stateful)
	if !ok {
		return nil, nil
	}
	b, err := st.MarshalState()
	if err != nil {
		return nil, fmt.Errorf("strategy state: %w", err)
	}
	return b, nil
}

// RestoreStrategy gives the strategy its saved state b (from StrategyState).
func RestoreStrategy(s fl.Strategy, b []byte) error {
	st, ok := s.(fl.Stateful)
	switch {
	case !ok && b != nil:
		return errors.New("the saved state has strategy state, the strategy keeps none")
	case ok && b == nil:
		return errors.New("the strategy keeps state, the saved state has none")
	case !ok:
		return nil
	}
	if err := st.UnmarshalState(b); err != nil {
		return fmt.Errorf("restore strategy: %w", err)
	}
	return nil
}
