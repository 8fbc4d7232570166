package model

import (
	"errors"
	"fmt"
	"os"

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
// ...). An empty config uses $GOMLX_BACKEND if set, else the pure-Go backend.
func NewBackend(config string) (b compute.Backend, err error) {
	if config == "" {
		config = os.Getenv(BackendEnv)
	}
	if config == "" {
		config = "go"
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
