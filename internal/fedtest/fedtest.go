// Package fedtest holds helpers for the tests of several packages that
// compare two runs of an experiment (say, a deployment with the
// simulation of the same config).
package fedtest

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"

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
