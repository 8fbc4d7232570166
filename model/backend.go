package model

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend" // the pure-Go backend, always available
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// BackendEnv is GoMLX's environment variable that selects the compute
// backend, e.g. GOMLX_BACKEND=go or, in a build with the XLA backend
// compiled in (go build -tags xla), GOMLX_BACKEND=xla:cuda.
const BackendEnv = compute.ConfigEnvVar

// NewBackend returns the compute backend named by config ("go", "xla:cuda",
// ...) for models of architecture arch, trained clients at a time. An
// empty config uses $GOMLX_BACKEND if set, else the pure-Go backend.
//
// For the Go backend it also chooses how graph nodes run (goOpsMode): a
// CNN trained one client at a time runs independent nodes on two
// goroutines, so that its independent work (the teacher beside the
// student, the two encoders, the batch's chunks) overlaps the
// single-threaded copies of the patch matrices; every other graph runs its
// nodes one after another, an MLP's nodes being too small to gain and
// clients trained at once keeping the cores busy already. A matrix product
// fans out over the worker-pool slots (two per core) that the node
// executors leave free. Options given in config ("go:ops_parallel", ...)
// win.
func NewBackend(config string, arch Arch, clients int) (b compute.Backend, err error) {
	from := "" // where config came from, for errors
	if config == "" {
		if config = os.Getenv(BackendEnv); config != "" {
			from = " (from $" + BackendEnv + ")"
		}
	}
	defer func() {
		if err != nil && from != "" {
			err = fmt.Errorf("%w%s", err, from)
		}
	}()
	config = goOpsMode(config, arch, clients)
	if name, _, _ := strings.Cut(config, ":"); name == "xla" && !slices.Contains(compute.List(), name) {
		return nil, fmt.Errorf("model: backend %q: this fedcmi was built without the XLA backend; "+
			"build it with -tags xla (GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd go build -tags xla ./cmd/fedcmi), or use backend go", config)
	}
	// compute.NewWithConfig panics on an unknown backend name.
	err = tryCatch(func() { b, err = compute.NewWithConfig(config) })
	if err != nil {
		return nil, fmt.Errorf("model: backend %q (available: %v): %w", config, compute.List(), err)
	}
	// A backend whose plugin failed to load (XLA without its PJRT plugin)
	// may still be returned; run a trivial graph to find out now, not in
	// the middle of the first round.
	var out *tensors.Tensor
	perr := tryCatch(func() {
		out, err = graph.ExecOnce(b, func(g *graph.Graph) *graph.Node { return graph.Const(g, float32(1)) })
	})
	if err = errors.Join(perr, err); err != nil || out == nil {
		return nil, fmt.Errorf("model: backend %q does not work (for xla: is its PJRT plugin installed?): %v", config, err)
	}
	return b, nil
}

// goOpsMode returns config (empty: "go") with the Go backend's node
// execution options NewBackend chooses: ops_sequential unless arch has a
// CNN encoder and at most one client trains at a time; then compute's
// default mode with num_executors=2. Options that config gives win.
//
// Measured on 2 cores (BenchmarkCNNStep, three interleaved rounds): the
// default mode's eight executors hold three of the pool's four slots for
// the whole execution, leaving one worker to every matrix product, and
// gain only where single-threaded copies dominate (small-stem2 42-53 ->
// 21-27 ms, large unchanged); two executors leave three slots to the
// products and gain everywhere (large 287-342 -> 202-216 ms, small
// 116-137 -> 95-102 ms against the eight). An MLP's step took 10-20%
// longer with eight executors and about the same with two.
func goOpsMode(config string, arch Arch, clients int) string {
	if config == "" {
		config = "go"
	}
	name, opts, _ := strings.Cut(config, ":")
	if name != "go" || strings.Contains(opts, "ops_") {
		return config
	}
	// Never two graphs with nodes in parallel at once: compute's Go
	// backend (v0.1.2, still v0.1.14) deadlocks when all its workers wait
	// for free workers (the simulation tests hang under go:ops_parallel
	// with two clients training at once). Its default mode runs an
	// execution's nodes in parallel only if it starts with no other
	// execution live on the backend.
	add := "ops_sequential"
	if arch.hasCNN() && clients <= 1 {
		if strings.Contains(opts, "num_executors") {
			return config
		}
		add = "num_executors=2"
	}
	return "go:" + strings.TrimPrefix(opts+","+add, ",")
}
