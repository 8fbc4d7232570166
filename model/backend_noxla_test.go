//go:build !xla

package model

import (
	"strings"
	"testing"
)

// TestNewBackendXLAWithoutTag: asking a build without the XLA backend for
// it says how to get one, instead of listing the registered backends.
func TestNewBackendXLAWithoutTag(t *testing.T) {
	for _, name := range []string{"xla", "xla:cuda", "xla:cpu"} {
		_, err := NewBackend(name, Arch{}, 1)
		if err == nil || !strings.Contains(err.Error(), "build it with -tags xla") {
			t.Errorf("NewBackend(%q) = %v, want an error saying to build with -tags xla", name, err)
		}
	}
}
