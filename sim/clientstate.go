package sim

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/fedcmi/fedcmi/rundir"
)

// clientStore keeps the states of the clients that carry state between
// rounds in ClientStateDir: with each checkpoint, one file
// (round-NNNNNN.state, named by the checkpoint's round; client IDs and
// their fl.ClientStateful states, see writeStates) holding the clients
// that trained since the previous one, written atomically before the
// checkpoint; one file per checkpoint, rather than per client, costs one
// sync. Once the checkpoint is written (commit), the files whose clients
// all have newer states are removed; a resume reads the files up to its
// checkpoint's round and removes later ones, left by a crash between the
// two writes.
type clientStore struct {
	dir    string
	latest map[string]int // client -> round of the file with its newest state
	refs   map[int]int    // round -> clients whose newest state its file holds
}

func newClientStore(dir string) *clientStore {
	return &clientStore{dir: dir, latest: map[string]int{}, refs: map[int]int{}}
}

func roundFile(round int) string { return fmt.Sprintf("round-%06d.state", round) }

// save writes the states of the clients that trained since the last
// checkpoint, for the checkpoint of round.
func (s *clientStore) save(round int, states map[string][]byte) error {
	if len(states) == 0 {
		return nil
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("sim: client states: %w", err)
	}
	if err := rundir.WriteFileAtomic(s.dir, roundFile(round), func(w io.Writer) error {
		return writeStates(w, states)
	}); err != nil {
		return fmt.Errorf("sim: client states: %w", err)
	}
	s.took(round, states)
	return nil
}

// took records that the file of round holds the newest states of the
// clients in states.
func (s *clientStore) took(round int, states map[string][]byte) {
	for id := range states {
		if old, ok := s.latest[id]; ok {
			s.refs[old]--
		}
		s.latest[id] = round
		s.refs[round]++
	}
}

// commit removes, once the checkpoint of the last save is written, the
// files no longer needed.
func (s *clientStore) commit() error {
	for r, n := range s.refs {
		if n > 0 {
			continue
		}
		delete(s.refs, r)
		if err := os.Remove(filepath.Join(s.dir, roundFile(r))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("sim: client states: %w", err)
		}
	}
	return nil
}

// load returns every client's newest state saved up to the checkpoint of
// round upTo (later files override earlier ones), removes the files of
// later rounds and takes up the bookkeeping.
func (s *clientStore) load(upTo int) (map[string][]byte, error) {
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sim: client states: %w", err)
	}
	var rounds []int
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "round-") || !strings.HasSuffix(name, ".state") {
			continue // a temporary file of an interrupted write, say
		}
		r, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "round-"), ".state"))
		if err != nil || r < 1 {
			return nil, fmt.Errorf("sim: client states: unexpected file %s", filepath.Join(s.dir, name))
		}
		if r > upTo {
			// Written for a checkpoint that was not.
			if err := os.Remove(filepath.Join(s.dir, name)); err != nil {
				return nil, fmt.Errorf("sim: client states: %w", err)
			}
			continue
		}
		rounds = append(rounds, r)
	}
	slices.Sort(rounds)
	out := map[string][]byte{}
	for _, r := range rounds {
		p := filepath.Join(s.dir, roundFile(r))
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("sim: client states: %w", err)
		}
		states, err := readStates(raw)
		if err != nil {
			return nil, fmt.Errorf("sim: client states: %s: %w", p, err)
		}
		s.took(r, states)
		maps.Copy(out, states)
	}
	return out, nil
}

// stateMagic starts a client-state file; entries follow, each a client ID
// and its state, both preceded by their length (uvarint).
const stateMagic = "fedcmi client states 1\n"

// writeStates writes states, in ID order, to w.
func writeStates(w io.Writer, states map[string][]byte) error {
	if _, err := io.WriteString(w, stateMagic); err != nil {
		return err
	}
	var n [binary.MaxVarintLen64]byte
	for _, id := range slices.Sorted(maps.Keys(states)) {
		for _, b := range [][]byte{[]byte(id), states[id]} {
			if _, err := w.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))]); err != nil {
				return err
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
	}
	return nil
}

// readStates parses a file written by writeStates.
func readStates(raw []byte) (map[string][]byte, error) {
	rest, ok := bytes.CutPrefix(raw, []byte(stateMagic))
	if !ok {
		return nil, errors.New("not a client-state file")
	}
	next := func() ([]byte, error) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return nil, errors.New("truncated")
		}
		b := rest[k : k+int(n)]
		rest = rest[k+int(n):]
		return b, nil
	}
	out := map[string][]byte{}
	for len(rest) > 0 {
		id, err := next()
		if err != nil {
			return nil, err
		}
		state, err := next()
		if err != nil {
			return nil, err
		}
		out[string(id)] = state
	}
	return out, nil
}
