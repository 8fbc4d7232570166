// Package fedtest holds helpers for the tests of several packages: runs
// of an experiment compared (say, a deployment with the simulation of the
// same config) or made to look an older fedcmi's, and a context that ends
// midway through work.
package fedtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/rundir"
)

// SameRounds fails t unless got and want hold the same rounds, equal in
// everything but wall times (NaN equals NaN).
func SameRounds(t testing.TB, got, want []metrics.Round) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d rounds, want %d", len(got), len(want))
	}
	eq := func(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }
	for i, w := range want {
		g := got[i]
		ok := g.Round == w.Round && g.Clients == w.Clients && g.Failures == w.Failures &&
			eq(g.TrainLoss, w.TrainLoss) && eq(g.Dominance, w.Dominance) && eq(g.Epsilon, w.Epsilon) && eq(g.FirstDominant, w.FirstDominant) &&
			len(g.Heads) == len(w.Heads) && len(g.PerClass) == len(w.PerClass)
		for h := range min(len(g.Heads), len(w.Heads)) {
			ok = ok && eq(g.Heads[h], w.Heads[h])
		}
		for c := range min(len(g.PerClass), len(w.PerClass)) {
			ok = ok && eq(g.PerClass[c], w.PerClass[c])
		}
		if !ok {
			t.Errorf("round %d differs:\n got %+v\nwant %+v", w.Round, g, w)
		}
	}
}

// SameModel fails t unless the run directories gotDir and wantDir hold
// the same final model (rundir.ModelFile), byte for byte.
func SameModel(t testing.TB, gotDir, wantDir string) {
	t.Helper()
	a, err := os.ReadFile(filepath.Join(gotDir, rundir.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(wantDir, rundir.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("final models differ: %s vs %s", gotDir, wantDir)
	}
}

// AsOlderVersion makes the run in dir look as if an older fedcmi, which
// lacked the fields whose YAML lines are cuts, had written it: its
// config.yaml loses those lines, and the state file (a checkpoint) named
// state gets, in place of the digest current, the older one: the SHA-256
// of cfg's YAML less the run-local fields and the cut lines, computed here
// independently of the code under test. It returns that digest.
func AsOlderVersion(t testing.TB, dir, state, current string, cfg config.Config, cuts ...string) string {
	t.Helper()
	cut := func(b []byte) []byte {
		for _, c := range cuts {
			if !bytes.Contains(b, []byte(c)) {
				t.Fatalf("the config YAML has no %q", c)
			}
			b = bytes.Replace(b, []byte(c), nil, 1)
		}
		return b
	}
	saved, err := os.ReadFile(filepath.Join(dir, rundir.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, rundir.ConfigFile), cut(saved), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Name, cfg.OutDir, cfg.Overwrite, cfg.Parallel, cfg.Backend, cfg.TensorBoard = "", "", false, 0, "", false
	cfg.Data.CacheDir = ""
	y, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cut(y))
	older := hex.EncodeToString(sum[:])
	path := filepath.Join(dir, state)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(current)) {
		t.Fatalf("%s does not hold the digest %s", path, current)
	}
	if err := os.WriteFile(path, bytes.Replace(b, []byte(current), []byte(older), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	return older
}

// ErrAfter returns a context whose Err is nil for its first n calls and
// context.Canceled from then on: a deterministic way to stop, midway, work
// that checks ctx.Err.
func ErrAfter(n int64) context.Context {
	c := &errAfter{Context: context.Background()}
	c.left.Store(n)
	return c
}

type errAfter struct {
	context.Context
	left atomic.Int64
}

func (c *errAfter) Err() error {
	if c.left.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}
