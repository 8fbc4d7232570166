package data

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadNPZLimit: ReadNPZLimit bounds the decompressed arrays by its
// maxBytes (0 meaning DefaultNPZMaxBytes), checked before decompressing,
// and ReadNPZ by the default.
func TestReadNPZLimit(t *testing.T) {
	const rows, cols = 1 << 14, 64 // audio: 4 MiB of zeros
	path := filepath.Join(t.TempDir(), "set.npz")
	writeBomb(t, path, rows, cols)
	for _, tc := range []struct {
		name     string
		read     func() (*Set, []string, error)
		wantErr  error // nil: loads
		contains []string
	}{
		{"beyond maxBytes", func() (*Set, []string, error) { return ReadNPZLimit(path, []string{"audio", "visual"}, 1<<20) },
			ErrFormat, []string{"set.npz", `array "audio"`, "limit of 1048576 bytes", "data.npz_max_mb"}},
		{"within maxBytes", func() (*Set, []string, error) { return ReadNPZLimit(path, []string{"audio", "visual"}, 5<<20) }, nil, nil},
		{"0, the default", func() (*Set, []string, error) { return ReadNPZLimit(path, []string{"audio", "visual"}, 0) }, nil, nil},
		{"ReadNPZ, the default", func() (*Set, []string, error) { return ReadNPZ(path, []string{"audio", "visual"}) }, nil, nil},
		{"negative", func() (*Set, []string, error) { return ReadNPZLimit(path, []string{"audio", "visual"}, -1) },
			nil, []string{"set.npz", "maxBytes = -1"}},
	} {
		set, missing, err := tc.read()
		switch {
		case tc.contains == nil && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.contains == nil && (set.Len() != rows || set.Dims[0] != cols || strings.Join(missing, ",") != "visual"):
			t.Errorf("%s: %d rows of %v, missing %v; want %d of %d, missing visual", tc.name, set.Len(), set.Dims, missing, rows, cols)
		case tc.contains != nil && (err == nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr)):
			t.Errorf("%s: err = %v, want one wrapping %v", tc.name, err, tc.wantErr)
		case tc.contains != nil:
			for _, w := range tc.contains {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: error %q does not contain %q", tc.name, err, w)
				}
			}
		}
	}
}
