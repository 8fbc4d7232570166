package model

import (
	"fmt"
	"os"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend" // the pure-Go backend, always available
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
	if b == nil {
		// The XLA backend answers nil when its PJRT plugin cannot be loaded.
		return nil, fmt.Errorf("model: backend %q could not start (for xla: is its PJRT plugin installed?)", config)
	}
	return b, nil
}
