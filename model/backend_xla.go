//go:build xla

package model

// Built with -tags xla, fedcmi also carries GoMLX's XLA backend (cgo; it
// loads a PJRT plugin at run time), selectable with GOMLX_BACKEND=xla:cpu
// or xla:cuda or the config's backend field. The default build stays pure
// Go and static.
import _ "github.com/gomlx/go-xla/compute/xla"
