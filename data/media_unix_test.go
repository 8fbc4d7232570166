//go:build unix

package data

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestMediaFIFO: an audio file that is a named pipe is reported as bad
// media before any worker opens it (opening it would block for ever).
func TestMediaFIFO(t *testing.T) {
	root, splitDir := cremaDTree(t)
	wav := filepath.Join(root, "AudioWAV", cremaDTrain[1]+".wav")
	if err := os.Remove(wav); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(wav, 0o644); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	_, _, err := LoadCremaD(context.Background(), root, splitDir, MediaSpec{}, quiet(t))
	checkError(t, err, fs.ErrNotExist, cremaDTrain[1], "not a regular file")
}
